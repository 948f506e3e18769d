"""Per-series state of the outage detector: counts, seasonal baseline, dispersion, burst history, episode."""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from itertools import accumulate
from statistics import NormalDist
from typing import Any

from carebox.outage_baseline import SeasonalBaseline, normal_surprise, poisson_surprise
from carebox.outage_shift import LevelShift


@dataclass(frozen=True, slots=True)
class DetectorSettings:
    """The [outage] table; durations in seconds, rates in complaints per minute."""

    bucket: float = 60.0
    windows: tuple[float, ...] = (60.0, 120.0, 180.0, 300.0, 900.0)
    plateau_window: float = 3600.0
    plateau_ratio: float = 1.5
    min_ratio: float = 2.0
    min_count: int = 3
    threshold: float = 6.0
    floor_rate: float = 0.02
    corroborate_threshold: float = 4.0
    corroborate_min: int = 2
    history_days: int = 28
    min_history_days: int = 1
    level_window: float = 10800.0
    dedup_window: float = 900.0
    calm: float = 3600.0
    escalate_factor: float = 2.0
    escalate_hold: float = 900.0
    major_ratio: float = 5.0
    critical_ratio: float = 10.0
    max_exclusion: float = 21600.0
    warmup: float = 3600.0
    level_limit: float = 1.5
    peak_memory: float = 28 * 86400.0
    peak_allowance: int = 1
    peaks_in_episodes: bool = False
    episode_peak_share: float = 0.0
    shift_window: float = 21600.0
    shift_z: float = 4.0
    rate_budget: float = 0.25  # false alerts per account per week the rate signal may add (outage_rate.py)


@dataclass(frozen=True, slots=True)
class Verdict:
    """How one closed bucket of one series looks: the most surprising window and whether it counts."""

    significant: bool
    suspicious: bool
    count: int
    expected: float
    window: float
    surprise: float
    ratio: float
    reason: str


class Series:
    """Counts, baseline, dispersion and episode state of one account and key."""

    def __init__(self, settings: DetectorSettings) -> None:
        self.s = settings
        self.pending: dict[int, int] = {}
        self.counts: deque[int] = deque(maxlen=self._span())  # last closed buckets, newest last
        self.expects: deque[float] = deque(maxlen=self._span())  # their expected counts
        self.capped: deque[float] = deque(maxlen=self._plateau_len())  # their counts as the plateau window takes them
        self.baseline = SeasonalBaseline(settings.history_days, settings.min_history_days)
        # the recent level lags by one plateau window, so that a plateau does not raise its own baseline
        self.level_new: deque[tuple[float, float]] = deque()
        self.level_x: deque[float] = deque(maxlen=max(1, round(settings.level_window / settings.bucket)))
        self.level_e: deque[float] = deque(maxlen=max(1, round(settings.level_window / settings.bucket)))
        self.dispersion: dict[int, tuple[float, float]] = {}  # per window: EW sums of excess variance, mean^2
        self.seen_authors: dict[str, int] = {}
        self.seen_texts: dict[str, int] = {}
        self.episode: dict[str, Any] | None = None
        self.calm_since: int | None = None
        self.seasonal_known = False  # whether the last bucket had a seasonal baseline
        # per window length: [bucket, highest surprise] of each past run of suspicious buckets, and the current run
        self.peaks: dict[int, list[list[float]]] = {}
        self.run_peak: dict[int, float] = {}
        self._sums: dict[int, tuple[float, float]] | None = None  # window sums of the bucket just judged, for learn
        self.shift = LevelShift(round(settings.shift_window / settings.bucket), settings.bucket, settings.history_days)
        self.paged_at: int | None = None  # last bucket judged inside an episode
        self._threshold_z = NormalDist().inv_cdf(1.0 - 10.0 ** -settings.threshold)  # the threshold as normal deviations

    def bar(self, n: int, bucket: int) -> float:
        """Surprise an n-bucket window needs on top of the threshold: what this series' own past bursts reached.

        The `peak_allowance` highest past bursts are ignored, so one past incident does not blind the detector;
        a series whose noise is heavier-tailed than Poisson thereby alerts about that often at most.
        """
        horizon = bucket - self.s.peak_memory / self.s.bucket
        ranked = sorted((p[1] for p in self.peaks.get(n, ()) if p[0] > horizon), reverse=True)
        return ranked[self.s.peak_allowance] if len(ranked) > self.s.peak_allowance else 0.0

    def track_peak(self, n: int, bucket: int, surprise: float, needed: float) -> None:
        """Remember the highest surprise of each run of suspicious buckets of an n-bucket window.

        Unless `peaks_in_episodes`, what a burst reaches after it opened an episode is remembered only up to the bar
        it needed, or `episode_peak_share` of it: an incident says little about the noise, and must not blind the
        detector to the next incident of the same size. Before the seasonal baseline exists, everything is remembered.
        "After it opened" is meant literally: a bucket whose open part already opened the episode (a peek) is
        capped when it closes, a bucket that opened it on closing is remembered in full, so the memory depends on the
        tick phase only as much as the opening instant does (docs/outage.md, "Burst history and tick phase").
        """
        run = self.run_peak.get(n, 0.0)
        if surprise >= self.s.corroborate_threshold:
            grows = self.episode is None or self.s.peaks_in_episodes or not self.seasonal_known
            kept = surprise if grows else max(min(surprise, needed), self.s.episode_peak_share * surprise)
            self.run_peak[n] = max(run, kept)
        elif run > 0.0:
            self.peaks.setdefault(n, []).append([bucket, run])
            self.run_peak[n] = 0.0

    def _span(self) -> int:
        """Buckets of history the longest window needs."""
        return max(self._lengths() + [self._plateau_len()])

    def _lengths(self) -> list[int]:
        """Spike window lengths in buckets, deduplicated."""
        return sorted({max(1, round(w / self.s.bucket)) for w in self.s.windows})

    def _plateau_len(self) -> int:
        """Plateau window length in buckets."""
        return max(1, round(self.s.plateau_window / self.s.bucket))

    def admit(self, bucket: int, author: str, text: str) -> bool:
        """True when this author and this text have not been counted within the dedup window."""
        horizon = bucket - max(1, round(self.s.dedup_window / self.s.bucket))
        norm = " ".join(text.lower().split())
        if self.seen_authors.get(author, horizon - 1) > horizon:
            return False
        if norm and self.seen_texts.get(norm, horizon - 1) > horizon:
            return False
        self.seen_authors[author] = bucket
        if norm:
            self.seen_texts[norm] = bucket
        return True

    def prune(self, bucket: int) -> None:
        """Forget dedup entries older than the dedup window, and bursts older than peak_memory."""
        horizon = bucket - max(1, round(self.s.dedup_window / self.s.bucket))
        self.seen_authors = {a: b for a, b in self.seen_authors.items() if b > horizon}
        self.seen_texts = {t: b for t, b in self.seen_texts.items() if b > horizon}
        memory = bucket - self.s.peak_memory / self.s.bucket
        self.peaks = {n: [p for p in peaks if p[0] > memory] for n, peaks in self.peaks.items()}

    def expected_rate(self, start: float) -> float:
        """Expected complaints in the bucket starting at `start` (seconds since the epoch), before the floor."""
        seasonal = self.baseline.expected(start)
        self.seasonal_known = seasonal is not None
        if seasonal is None:
            seasonal = self.baseline.overall_rate() or 0.0
            return seasonal
        seen, want = sum(self.level_x), sum(self.level_e)
        prior = max(1.0, seasonal * 6)  # shrink the recent level towards 1 when counts are small
        factor = (seen + prior) / (want + prior)
        return seasonal * min(self.s.level_limit, max(1.0 / self.s.level_limit, factor))

    def judge(self, bucket: int, count: int) -> Verdict:
        """Close `bucket` with `count` complaints and test every window against its baseline."""
        s = self.s
        start = bucket * s.bucket
        floor = s.floor_rate * s.bucket / 60.0
        self.counts.append(count)
        self.expects.append(max(self.expected_rate(start), 0.0))
        self.capped.append(self.plateau_share(count, self.expects[-1]))
        best: tuple[bool, float, bool, int, float, float, float, float] | None = None
        sums = self._sums = self.window_sums()
        blind = self.plateau_blind(sums)
        plateau = [] if blind else [(self._plateau_len(), s.plateau_ratio)]
        windows = [(n, s.min_ratio) for n in self._lengths()] + plateau
        lowest = min(s.threshold, s.corroborate_threshold)
        for n, min_ratio in windows:
            if n not in sums:
                continue
            observed, raw = sums[n]
            expected = max(raw, floor * n)
            phi = self.phi(n, expected)
            ratio = observed / expected
            passes = observed >= s.min_count and ratio >= min_ratio
            surprise = poisson_surprise(observed / phi, expected / phi) if passes else 0.0
            # the burst history only matters for a window that could count: skip it on calm buckets (hot path)
            needed = max(s.threshold, self.bar(n, bucket)) if surprise >= lowest else s.threshold
            self.track_peak(n, bucket, surprise, needed)
            candidate = (passes and surprise >= needed, surprise, passes and surprise >= s.corroborate_threshold,
                         n, observed, expected, ratio, phi)
            if best is None or candidate[:2] > best[:2]:
                best = candidate
        shifted = self.judge_shift(bucket, count, blind)
        if shifted is not None and (best is None or not best[0]):
            return shifted
        if best is None:
            return Verdict(False, False, count, floor, s.bucket, 0.0, 0.0, "warming up")
        significant, surprise, suspicious, n, observed, expected, ratio, phi = best
        return Verdict(
            significant=significant, suspicious=suspicious, count=round(observed), expected=expected, window=n * s.bucket,
            surprise=surprise, ratio=ratio,
            reason=f"{observed:g} complaints in {minutes(n * s.bucket)} against {expected:.2f} expected "
                   f"(x{ratio:.1f}, p=1e-{surprise:.1f}, dispersion {phi:.1f})",
        )

    def judge_shift(self, bucket: int, count: int, plateau_blind: bool) -> Verdict | None:
        """Slide the level-shift window over the bucket just closed; a significant Verdict when a shift starts.

        Only where the plateau window is blind (see `plateau_blind`): elsewhere the plateau window judges
        sustained rises with the exact count test. The shift must also pass the plateau's count and ratio rules and
        be significant as counts (Poisson), and is not paged again when an episode within its window already was.
        """
        s, shift = self.s, self.shift
        start = bucket * s.bucket
        shift.add(bucket, count, self.baseline.expected(start), self.baseline.complete(start))
        if self.episode is not None:
            self.paged_at = bucket
        deviation = shift.deviation()
        observed = shift.count_sum
        expected = max(shift.expect_sum, s.floor_rate * s.shift_window / 60.0)
        ratio = observed / expected
        passes = (plateau_blind and deviation is not None and deviation >= s.shift_z and observed >= s.min_count
                  and ratio >= s.plateau_ratio and poisson_surprise(observed, expected) >= s.threshold)
        paged = self.paged_at is not None and bucket - self.paged_at < shift.n
        if not shift.fires(deviation, passes, s.shift_z, paged):
            return None
        window = minutes(s.shift_window)
        return Verdict(
            significant=True, suspicious=True, count=observed, expected=expected, window=shift.n * s.bucket,
            surprise=normal_surprise(deviation or 0.0), ratio=ratio,
            reason=f"{observed} complaints in {window} against {expected:.2f} expected from past days (x{ratio:.1f}, "
                   f"{deviation:.1f} times the series' usual deviation over {window})",
        )

    def peek(self, bucket: int, count: int, share: float) -> Verdict | None:
        """How the still-open `bucket` looks `share` of the way through it, over the spike windows; None if calm.

        Each window is the open part of the bucket plus the closed buckets before it; nothing is learned or
        remembered, the bucket is judged in full when it closes.
        """
        s = self.s
        floor = s.floor_rate * s.bucket / 60.0
        rate = max(self.expected_rate(bucket * s.bucket), 0.0)
        observed, raw, closed = count, rate * share, 0
        best: Verdict | None = None
        for n in self._lengths():
            if n - 1 > len(self.counts):
                break
            while closed < n - 1:
                closed += 1
                observed += self.counts[-closed]
                raw += self.expects[-closed]
            span = closed + share
            expected = max(raw, floor * span)
            ratio = observed / expected
            if observed < s.min_count or ratio < s.min_ratio:
                continue
            phi = self.phi(n, expected)
            surprise = poisson_surprise(observed / phi, expected / phi)
            if surprise < max(s.threshold, self.bar(n, bucket)):
                continue
            if best is None or surprise > best.surprise:
                best = Verdict(
                    significant=True, suspicious=True, count=observed, expected=expected, window=span * s.bucket,
                    surprise=surprise, ratio=ratio,
                    reason=f"{observed} complaints in the last {minutes(span * s.bucket)} against {expected:.2f} "
                           f"expected (x{ratio:.1f}, p=1e-{surprise:.1f}, dispersion {phi:.1f})",
                )
        return best

    def plateau_share(self, count: int, expected: float) -> float:
        """What a bucket counts in the plateau window: at most `min_ratio` times its expected count (at least 1).

        A plateau is a rise that lasts, so a short spike, which the spike windows judge, cannot pass for one there.
        """
        floor = self.s.floor_rate * self.s.bucket / 60.0
        return min(float(count), max(1.0, self.s.min_ratio * max(expected, floor)))

    def window_sums(self) -> dict[int, tuple[float, float]]:
        """Observed and expected complaints over each window length that history already covers (plateau: capped)."""
        observed: list[float] = list(accumulate(reversed(self.counts)))
        expected = list(accumulate(reversed(self.expects)))
        sums = {n: (observed[n - 1], expected[n - 1]) for n in self._lengths() if n <= len(observed)}
        n = self._plateau_len()
        if n not in sums and n <= len(observed):  # a spike window of the same length keeps the sum whole
            sums[n] = (sum(self.capped), expected[n - 1])
        return sums

    def plateau_blind(self, sums: dict[int, tuple[float, float]]) -> bool:
        """Whether the plateau window cannot tell a plateau from this series' usual level changes (`window_sums`).

        kappa is the squared relative deviation of the hour's level beyond counting noise. The window is blind when
        that level noise outweighs the counting noise (kappa x mean >= 1, so the count test is the wrong model) and
        even a plateau of plateau_ratio stands fewer deviations above it than the threshold asks (normal
        approximation): it would then only fire on the series' usual level changes, and the level-shift signal,
        which measures them in the series' own units over hours, judges such series instead.
        """
        n = self._plateau_len()
        kappa, mean = self.kappa(n), sums.get(n, (0.0, 0.0))[1]
        return kappa * mean >= 1.0 and kappa * self._threshold_z ** 2 > (self.s.plateau_ratio - 1.0) ** 2

    def kappa(self, n: int) -> float:
        """Over-dispersion of an n-bucket window: its squared relative deviation beyond counting noise."""
        num, den = self.dispersion.get(n, (0.0, 0.0))
        return max(0.0, num / (den + 1.0))  # shrunk to Poisson where counts are small

    def phi(self, n: int, expected: float) -> float:
        """Variance over mean of an n-bucket window: 1 + kappa * mean (negative binomial), 1 for Poisson."""
        return 1.0 + self.kappa(n) * expected

    def learn(self, bucket: int, count: int, excluded: bool) -> None:
        """Feed a closed bucket to the baseline, the recent level and the dispersion, unless excluded."""
        if excluded and self.seasonal_known:  # without a baseline yet, an "episode" may just be the daily peak
            return
        s = self.s
        self.baseline.add(bucket * s.bucket, count)
        self.level_new.append((count, self.expects[-1]))
        if len(self.level_new) > self._plateau_len():
            old_x, old_e = self.level_new.popleft()
            self.level_x.append(old_x)
            self.level_e.append(old_e)
        floor = s.floor_rate * s.bucket / 60.0
        weight = 1.0 / max(1.0, 86400.0 / s.bucket)  # about a day of memory
        sums, self._sums = (self._sums if self._sums is not None else self.window_sums()), None
        for n, (observed, lam) in sums.items():
            excess = min(50.0 * max(lam, floor * n), (observed - lam) ** 2 - observed)  # one burst must not dominate
            num, den = self.dispersion.get(n, (0.0, 0.0))
            self.dispersion[n] = (num + weight * (excess - num), den + weight * (lam * lam - den))

    def pop_episode(self) -> tuple[int, str]:
        """End the open episode; its first bucket and severity."""
        episode = self.episode or {}
        self.episode = None
        return episode["start"], episode["severity"]

    def dump(self) -> dict[str, Any]:
        """JSON-able state."""
        return {
            "pending": [[b, c] for b, c in self.pending.items()],
            "counts": list(self.counts),
            "expects": list(self.expects),
            "baseline": self.baseline.dump(),
            "level_new": [list(r) for r in self.level_new],
            "level_x": list(self.level_x),
            "level_e": list(self.level_e),
            "dispersion": [[n, *v] for n, v in self.dispersion.items()],
            "authors": self.seen_authors,
            "texts": self.seen_texts,
            "episode": self.episode,
            "calm_since": self.calm_since,
            "peaks": [[n, p] for n, p in self.peaks.items()],
            "run_peak": [[n, p] for n, p in self.run_peak.items()],
            "shift": self.shift.dump(),
            "paged_at": self.paged_at,
        }

    def load(self, data: Mapping[str, Any]) -> None:
        """Restore from `dump()`."""
        self.pending = {int(b): int(c) for b, c in data["pending"]}
        self.counts.extend(int(x) for x in data["counts"])
        self.expects.extend(float(e) for e in data["expects"])
        self.capped.extend(self.plateau_share(c, e) for c, e in zip(self.counts, self.expects, strict=False))
        self.baseline.load(data["baseline"])
        self.level_new.extend((float(x), float(e)) for x, e in data["level_new"])
        self.level_x.extend(float(x) for x in data["level_x"])
        self.level_e.extend(float(e) for e in data["level_e"])
        self.dispersion = {int(n): (float(a), float(b)) for n, a, b in data["dispersion"]}
        self.seen_authors = {str(a): int(b) for a, b in data["authors"].items()}
        self.seen_texts = {str(t): int(b) for t, b in data["texts"].items()}
        self.episode = dict(data["episode"]) if data["episode"] else None
        self.calm_since = data["calm_since"]
        self.peaks = {int(n): [[float(b), float(v)] for b, v in p] for n, p in data["peaks"]}
        self.run_peak = {int(n): float(p) for n, p in data["run_peak"]}
        if "shift" in data:  # snapshots taken before the level-shift signal start it afresh
            self.shift.load(data["shift"])
            self.paged_at = data["paged_at"]


def minutes(seconds: float) -> str:
    """A window length as people say it: "5 min", "1.7 min" (a window ending in the open minute)."""
    return f"{round(seconds / 60, 1):g} min"


def severity_of(ratio: float, settings: DetectorSettings) -> str:
    """Severity of a burst from its ratio to the baseline."""
    if ratio >= settings.critical_ratio:
        return "critical"
    if ratio >= settings.major_ratio:
        return "major"
    return "minor"
