"""Rate-change signal of the outage detector: a Poisson CUSUM per cluster, decided at each complaint.

The bucket windows of `outage_series` decide when a bucket closes (or at a tick inside it); this signal decides at
the complaint itself, from the same expected rate, so a step of a few times the rate alerts as soon as the evidence
suffices (docs/outage.md, "Rate signal").
"""

from __future__ import annotations

import math
from bisect import bisect_left, insort
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from carebox.outage_baseline import poisson_surprise
from carebox.outage_series import DetectorSettings, Series, Verdict, minutes

STEP = 4.0  # the rise the CUSUM is tuned to: between the 3x and 10x outages that matter, near the 5x target
LOG_STEP = math.log(STEP)
# On calm Poisson traffic this CUSUM crosses h about exp(-h) times per complaint (alarms an hour apart merged):
# 0.92 to 0.98 x exp(-h) at h = 6..11 at 1/min, 0.59 to 0.97 at 5/min, over 3 million simulated complaints each
# (`python -m benchmarks.outage_latency --rate-calibrate`), so h = ln(complaints a week / budget).
WEEK = 7 * 86400.0
MEMORY = 900.0  # seconds of complaint instants kept to put late ones back in order (the longest spike window)


@dataclass(slots=True)
class Cusum:
    """CUSUM of one series: log-likelihood ratio of "STEP x the expected rate" over its current run.

    Page's CUSUM is the highest log-likelihood ratio over every run ending now, which depends only on the set of
    complaint instants: complaints that arrive out of order (batches, connectors) are put back in order.
    """

    value: float = 0.0
    last: float = 0.0  # epoch seconds of the latest complaint
    start: float = 0.0  # first complaint of the run (the value was 0 before it)
    count: int = 0  # complaints in the run
    expected: float = 0.0  # complaints expected in the run
    times: list[float] = field(default_factory=list)  # complaint instants of the last MEMORY seconds, in order
    bucket: int | None = None  # bucket whose expected rate is cached (not persisted)
    rate: float | None = None  # its expected complaints per second; None without a seasonal baseline

    def add(self, at: float, rate: float) -> None:
        """One complaint at `at` (epoch seconds), the series expecting `rate` complaints per second."""
        if at < self.last:
            insort(self.times, at)
            self._rescan(rate)
            return
        gap = at - self.last
        decay = (STEP - 1.0) * rate * gap
        if self.value <= decay:
            self.value, self.start, self.count, self.expected = 0.0, at, 0, 0.0
        else:
            self.value -= decay
            self.expected += rate * gap
        self.value += LOG_STEP
        self.count += 1
        self.last = at
        self.times.append(at)
        if self.times[0] < at - MEMORY:
            del self.times[:bisect_left(self.times, at - MEMORY)]

    def _rescan(self, rate: float) -> None:
        """Recompute the run from the instants kept: the best log-likelihood ratio over every start."""
        self.value, self.count, self.expected = 0.0, 0, 0.0
        for n, begin in enumerate(reversed(self.times), start=1):
            expected = rate * (self.last - begin)
            llr = n * LOG_STEP - (STEP - 1.0) * expected
            if llr > self.value:
                self.value, self.start, self.count, self.expected = llr, begin, n, expected

    def clear(self, at: float) -> None:
        """Back to zero (after an alert, or while the series cannot be judged)."""
        self.value, self.start, self.count, self.expected = 0.0, at, 0, 0.0
        self.last = max(self.last, at)
        self.times.clear()


@dataclass(frozen=True, slots=True)
class Decision:
    """The signal fired on one series at one complaint: the episode opens at `at`."""

    account: str
    key: str
    bucket: int
    at: float  # epoch seconds of the latest complaint when it decided
    verdict: Verdict


def threshold(weekly: float, budget: float) -> float:
    """CUSUM threshold that keeps an account receiving `weekly` complaints within `budget` false alerts a week."""
    return math.log(max(weekly, 1.0) / budget)


class RateSignal:
    """Poisson CUSUM of every cluster series against its expected rate; decisions wait for the next tick."""

    def __init__(self, settings: DetectorSettings) -> None:
        self.s = settings
        self.cusums: dict[tuple[str, str], Cusum] = {}
        self.decided: list[Decision] = []

    def feed(self, ident: tuple[str, str], series: Series, account: Series, at: float, bucket: int,
             since: int) -> bool:
        """Add one counted complaint of a cluster series (`account`: the account-wide series); True when it fires.

        Quiet before the account's warm-up ends, without a seasonal baseline, and while an episode is open.
        """
        s = self.s
        at = max(at, bucket * s.bucket)  # a late complaint counts in the first bucket still open
        cusum = self.cusums.setdefault(ident, Cusum(last=at, start=at))
        if cusum.bucket != bucket:
            expected = series.expected_rate(bucket * s.bucket)
            floor = s.floor_rate * s.bucket / 60.0
            cusum.bucket, cusum.rate = bucket, max(expected, floor) / s.bucket if series.seasonal_known else None
        warm = bucket - since >= max(1, round(s.warmup / s.bucket))
        if cusum.rate is None or series.episode is not None or not warm:
            cusum.clear(at)
            return False
        cusum.add(at, cusum.rate)
        if cusum.count < s.min_count or cusum.value < LOG_STEP * s.min_count:
            return False
        verdict = self._verdict(cusum, series, account)
        if verdict is None:
            return False
        self.decided.append(Decision(ident[0], ident[1], bucket, cusum.last, verdict))
        cusum.clear(cusum.last)
        return True

    def take(self) -> list[Decision]:
        """The decisions since the last call, oldest first."""
        decided, self.decided = self.decided, []
        return decided

    def _verdict(self, cusum: Cusum, series: Series, account: Series) -> Verdict | None:
        """The run up to the latest complaint as a significant window, when the CUSUM passes its threshold and the
        detector's count rules."""
        s = self.s
        weekly = (account.baseline.overall_rate() or 0.0) * WEEK / s.bucket
        span = max(cusum.last - cusum.start, 1.0)
        expected = max(cusum.expected, s.floor_rate / 60.0 * span)
        phi = _dispersion(series, span / s.bucket, expected)
        limit = threshold(weekly, s.rate_budget) * phi  # over-dispersed series: the LLR's variance grows by phi
        ratio = cusum.count / expected
        if cusum.value < limit or ratio < s.min_ratio:
            return None
        surprise = poisson_surprise(cusum.count / phi, expected / phi)
        return Verdict(
            significant=True, suspicious=True, count=cusum.count, expected=expected, window=span, surprise=surprise,
            ratio=ratio,
            reason=f"{cusum.count} complaints in the last {minutes(span)} against {expected:.2f} expected "
                   f"(x{ratio:.1f}, rate signal {cusum.value:.1f} >= {limit:.1f}, dispersion {phi:.1f})",
        )

    def dump(self) -> list[list[Any]]:
        """JSON-able state: every CUSUM in a run, and the decisions not yet taken."""
        runs = [[a, k, c.value, c.last, c.start, c.count, c.expected, c.times] for (a, k), c in self.cusums.items()
                if c.value]
        decided = [[d.account, d.key, d.bucket, d.at, _verdict_dump(d.verdict)] for d in self.decided]
        return [runs, decided]

    def load(self, data: list[list[Any]] | None) -> None:
        """Restore from `dump()` (None: nothing saved, as in snapshots taken before this signal)."""
        runs, decided = data or ([], [])
        self.cusums = {(str(a), str(k)): Cusum(float(v), float(last), float(start), int(n), float(e), list(map(float, t)))
                       for a, k, v, last, start, n, e, t in runs}
        self.decided = [Decision(str(a), str(k), int(b), float(at), Verdict(**v)) for a, k, b, at, v in decided]


def _dispersion(series: Series, buckets: float, expected: float) -> float:
    """Variance over mean the series has learned for the shortest window covering `buckets` (1: Poisson)."""
    lengths = sorted(series.dispersion)
    if not lengths:
        return 1.0
    n = next((n for n in lengths if n >= buckets), lengths[-1])
    return series.phi(n, expected)


def _verdict_dump(v: Verdict) -> Mapping[str, Any]:
    """A verdict as JSON-able fields."""
    return {"significant": v.significant, "suspicious": v.suspicious, "count": v.count, "expected": v.expected,
            "window": v.window, "surprise": v.surprise, "ratio": v.ratio, "reason": v.reason}
