"""Level-shift signal of the outage detector: hours of counts against the seasonal baseline, in the series' own units.

A burst test asks whether the last minutes are improbable as counts; over hours, counting noise is negligible and
what varies is the level itself (a busy news day, a quiet holiday), by a factor. So the shift window compares the
last `shift_window` of counts with the seasonal baseline alone (without the recent level, which would follow the
shift) as a log ratio, and measures it in units of the series' own usual deviation: the median and MAD of the same
log ratio, sampled hourly over `history_days`. Both are robust: a few past incidents move neither.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from statistics import median
from typing import Any

MIN_SAMPLE_DAYS = 7  # hourly samples needed before the signal can fire: a week, so every weekday is seen once
MAD_TO_SIGMA = 1.4826  # the MAD of a normal law times this is its standard deviation
REARM_SHARE = 0.5  # after firing, the signal waits until the deviation falls below this share of shift_z


class LevelShift:
    """Running window sums, hourly log-ratio samples and the edge trigger of one series."""

    def __init__(self, window_buckets: int, bucket_seconds: float, history_days: int) -> None:
        self.n = max(1, window_buckets)
        self.per_hour = max(1, round(3600.0 / bucket_seconds))
        self.counts: deque[int] = deque()
        self.expects: deque[float] = deque()  # seasonal expectation per bucket; nan while none exists
        self.count_sum = 0
        self.expect_sum = 0.0
        self.unknown = 0  # buckets of the window without a seasonal expectation
        self.samples: deque[float] = deque(maxlen=history_days * 24)
        self.centre = 0.0
        self.scale = 0.0  # MAD-based standard deviation of the samples
        self.armed = True

    def add(self, bucket: int, count: int, seasonal: float | None, complete: bool) -> None:
        """Slide the window over one closed bucket; sample the log ratio at every hour once the baseline is complete.

        Before the baseline knows the weekday of the bucket (two such weekdays seen), its errors are its own learning
        (a first weekend priced as a weekday), not the series' usual deviation, and are not sampled.
        """
        self.slide(count, seasonal)
        ratio = self.log_ratio()
        if complete and ratio is not None and bucket % self.per_hour == 0:
            self.samples.append(ratio)
            self.refit()

    def slide(self, count: int, seasonal: float | None) -> None:
        """Move the window sums on by one bucket."""
        value = math.nan if seasonal is None else max(seasonal, 0.0)
        self.counts.append(count)
        self.expects.append(value)
        self.count_sum += count
        self.unknown += math.isnan(value)
        self.expect_sum += 0.0 if math.isnan(value) else value
        if len(self.counts) > self.n:
            old, old_e = self.counts.popleft(), self.expects.popleft()
            self.count_sum -= old
            self.unknown -= math.isnan(old_e)
            self.expect_sum -= 0.0 if math.isnan(old_e) else old_e

    def refit(self) -> None:
        """Median and MAD-based deviation of the samples."""
        if self.samples:
            self.centre = median(self.samples)
            self.scale = MAD_TO_SIGMA * median(abs(x - self.centre) for x in self.samples)

    def log_ratio(self) -> float | None:
        """ln(counted / expected) over a full window with a seasonal expectation throughout; None otherwise."""
        if len(self.counts) < self.n or self.unknown or self.expect_sum <= 0.0:
            return None
        return math.log(max(self.count_sum, 0.5) / self.expect_sum)

    def deviation(self) -> float | None:
        """How many of its usual deviations the window stands above the series' usual level; None while unknown."""
        ratio = self.log_ratio()
        if ratio is None or len(self.samples) < MIN_SAMPLE_DAYS * 24:
            return None
        return (ratio - self.centre) / max(self.scale, 1e-3)

    def fires(self, deviation: float | None, passes: bool, threshold: float, paged: bool) -> bool:
        """Edge trigger: True once when the deviation crosses `threshold`, unless that rise was already paged.

        A crossing while an episode is open, or within a window of one, is consumed by it; the signal re-arms
        when the level comes back within REARM_SHARE of the threshold, so one shift alerts once however long it lasts.
        """
        if deviation is None or deviation < REARM_SHARE * threshold:
            self.armed = True
            return False
        if not (passes and deviation >= threshold and self.armed):
            return False
        self.armed = False
        return not paged

    def dump(self) -> dict[str, Any]:
        """JSON-able state (nan stored as None)."""
        return {
            "counts": list(self.counts),
            "expects": [None if math.isnan(e) else e for e in self.expects],
            "samples": list(self.samples),
            "armed": self.armed,
        }

    def load(self, data: Mapping[str, Any]) -> None:
        """Restore from `dump()`."""
        for count, seasonal in zip(data["counts"], data["expects"], strict=True):
            self.slide(int(count), None if seasonal is None else float(seasonal))
        self.samples.extend(float(x) for x in data["samples"])
        self.refit()
        self.armed = bool(data["armed"])
