"""Seasonal complaint baseline per cluster and the Poisson tail test the outage detector uses."""

from __future__ import annotations

import math
from statistics import median
from typing import Any

_DAY = 86400
_LN10 = math.log(10.0)


def poisson_surprise(observed: float, expected: float) -> float:
    """-log10 P(X >= observed) for X ~ Poisson(expected); `observed` may be fractional (gamma form)."""
    if observed <= 0.0 or expected <= 0.0:
        return 0.0 if observed <= 0.0 else math.inf
    if observed <= expected + 1.0:
        return -math.log10(max(1e-300, 1.0 - _upper_gamma_q(observed, expected))) if observed > expected else 0.0
    return -_log_lower_gamma_p(observed, expected) / _LN10


def normal_surprise(z: float) -> float:
    """-log10 P(Z >= z) for a standard normal Z."""
    return -math.log10(max(1e-300, 0.5 * math.erfc(z / math.sqrt(2.0))))


def _log_lower_gamma_p(a: float, x: float) -> float:
    """ln of the regularised lower incomplete gamma P(a, x), by its series (good for x < a + 1)."""
    term = total = 1.0 / a
    n = a
    for _ in range(500):
        n += 1.0
        term *= x / n
        total += term
        if term < total * 1e-15:
            break
    return -x + a * math.log(x) - math.lgamma(a) + math.log(total)


def _upper_gamma_q(a: float, x: float) -> float:
    """Regularised upper incomplete gamma Q(a, x) by continued fraction (good for x > a - 1)."""
    if x < a + 1.0:
        return 1.0 - math.exp(_log_lower_gamma_p(a, x))
    tiny = 1e-300
    b = x + 1.0 - a
    c = 1.0 / tiny
    d = 1.0 / b
    h = d
    for i in range(1, 500):
        an = -i * (i - a)
        b += 2.0
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1.0 / d
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-15:
            break
    return math.exp(-x + a * math.log(x) - math.lgamma(a)) * h


class SeasonalBaseline:
    """Hourly complaint rates per UTC day, kept for `history_days`; expectation by hour of day and weekday."""

    __slots__ = ("_cache", "_complete", "_days", "history_days", "min_days")

    def __init__(self, history_days: int, min_days: int) -> None:
        self.history_days = history_days
        self.min_days = min_days
        # day number -> [24 sums, 24 bucket counts]; buckets inside episodes are never added
        self._days: dict[int, list[list[float]]] = {}
        # only past days feed an expectation, so it is fixed per (day, hour) until the next day starts
        self._cache: dict[tuple[int, int], float | None] = {}
        self._complete: dict[int, bool] = {}  # per day: whether its weekday factor is known (same lifetime as _cache)

    def add(self, bucket_start: float, count: float) -> None:
        """Record one closed, calm bucket."""
        day, hour = divmod(int(bucket_start // 3600), 24)
        row = self._days.get(day)
        if row is None:
            row = self._days[day] = [[0.0] * 24, [0.0] * 24]
            self._cache.clear()
            self._complete.clear()
            for old in [d for d in self._days if d <= day - self.history_days]:
                del self._days[old]
        row[0][hour] += count
        row[1][hour] += 1

    def expected(self, bucket_start: float) -> float | None:
        """Expected count per bucket at that instant from past days; None until `min_days` days are known.

        Hourly rates stand for the middle of their hour and are interpolated linearly in between, so a rising
        or falling daily rhythm is followed within the hour rather than lagged by up to half an hour.
        """
        hours, into = divmod(bucket_start / 3600.0, 1.0)
        day, hour = divmod(int(hours), 24)
        here = self._hourly(day, hour)
        if here is None:
            return None
        offset = into - 0.5
        there = self._hourly(day, (hour + (1 if offset > 0 else -1)) % 24)
        return here if there is None else here + abs(offset) * (there - here)

    def _hourly(self, day: int, hour: int) -> float | None:
        """Expected count per bucket for that hour of that day, cached until the next day starts."""
        if (day, hour) not in self._cache:
            self._cache[(day, hour)] = self._compute(day, hour)
        return self._cache[(day, hour)]

    def _compute(self, day: int, hour: int) -> float | None:
        """Median hourly rate of past days at that hour, times the weekday factor."""
        rates = [r[0][hour] / r[1][hour] for d, r in self._days.items() if d < day and r[1][hour] > 0]
        if len(rates) < self.min_days:
            return None
        return median(rates) * self._weekday_factor(day)

    def complete(self, bucket_start: float) -> bool:
        """Whether the expectation at that instant already has its weekday factor (two such weekdays known)."""
        day = int(bucket_start // _DAY)
        if day not in self._complete:
            self._complete[day] = self._weekday_means(day) is not None
        return self._complete[day]

    def _weekday_means(self, day: int) -> tuple[list[float], list[float]] | None:
        """Mean counts of past days like this weekday, and of all past days; None until two such days are known."""
        means = {d: sum(r[0]) / sum(r[1]) for d, r in self._days.items() if d < day and sum(r[1]) >= 12}
        same = [m for d, m in means.items() if (d - day) % 7 == 0]
        if len(same) < 2 or len(means) < 7:
            return None
        return same, list(means.values())

    def _weekday_factor(self, day: int) -> float:
        """How busy this weekday is against all days, from past days; 1.0 until two such days are known."""
        known = self._weekday_means(day)
        if known is None:
            return 1.0
        same, means = known
        overall = median(means)
        if overall <= 0.0:
            return 1.0
        return min(4.0, max(0.25, median(same) / overall))

    def overall_rate(self) -> float | None:
        """Mean count per bucket over the whole history, or None when empty."""
        n = sum(sum(r[1]) for r in self._days.values())
        return sum(sum(r[0]) for r in self._days.values()) / n if n else None

    def dump(self) -> dict[str, Any]:
        """JSON-able state."""
        return {str(d): r for d, r in self._days.items()}

    def load(self, data: dict[str, Any]) -> None:
        """Restore from `dump()`."""
        self._days = {int(d): [list(map(float, r[0])), list(map(float, r[1]))] for d, r in data.items()}
        self._cache.clear()
        self._complete.clear()
