"""Streaming outage detection: complaint bursts per account and cluster key, as episodes.

Causal and pure: every instant is an argument, and a bucket is judged once, when `tick` closes it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from carebox.duration import parse_duration
from carebox.errors import ConfigError
from carebox.outage_rate import RateSignal
from carebox.outage_series import (
    DetectorSettings,
    Series,
    Verdict,
    minutes,
    severity_of,
)

__all__ = [
    "ACCOUNT_WIDE",
    "COUNTED_CATEGORIES",
    "SEVERITIES",
    "Detector",
    "DetectorSettings",
    "EpisodeEvent",
    "detect_series",
    "parse_settings",
]

log = logging.getLogger(__name__)

COUNTED_CATEGORIES = frozenset({"outage", "complaint"})
SEVERITIES = ("minor", "major", "critical")
ACCOUNT_WIDE = "*"  # the key of the series that counts every complaint of an account
SNAPSHOT_VERSION = 1


@dataclass(frozen=True, slots=True)
class EpisodeEvent:
    """An episode opened, escalated or resolved for one account and key (key None: account-wide)."""

    kind: str  # "opened" | "escalated" | "resolved"
    account: str
    key: str | None
    at: datetime  # end of the bucket that decided it, or the tick inside a bucket still open
    bucket_start: datetime
    started_at: datetime  # start of the episode's first significant bucket
    severity: str
    count: int  # complaints in the deciding window
    baseline: float  # expected complaints in that window
    window: float  # seconds
    surprise: float  # -log10 of the tail probability
    reason: str


_FLOATS = ("level_limit", "bucket", "plateau_ratio", "min_ratio", "threshold", "floor_rate", "corroborate_threshold",
           "escalate_factor", "major_ratio", "critical_ratio", "rate_budget",
           "shift_z")
_DURATIONS = ("bucket", "plateau_window", "level_window", "dedup_window", "calm", "max_exclusion", "warmup",
              "peak_memory", "escalate_hold", "shift_window")
_INTS = ("min_count", "corroborate_min", "history_days", "min_history_days", "peak_allowance")


def parse_settings(raw: Mapping[str, Any]) -> DetectorSettings:
    """DetectorSettings from the loaded [outage] table ({} gives the defaults); ConfigError on bad values."""
    known = set(_FLOATS) | set(_DURATIONS) | set(_INTS) | {"windows", "peaks_in_episodes", "episode_peak_share"}
    values: dict[str, Any] = {}
    for name, value in raw.items():
        key = f"outage.{name}"
        if name not in known:
            raise ConfigError(key, "one of " + ", ".join(sorted(known)))
        if name == "peaks_in_episodes":
            if not isinstance(value, bool):
                raise ConfigError(key, "true or false")
            values[name] = value
        elif name == "episode_peak_share":
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
                raise ConfigError(key, "a number from 0 to 1")
            values[name] = float(value)
        elif name == "windows":
            if not isinstance(value, list) or not value:
                raise ConfigError(key, 'a non-empty list of durations such as ["1m", "5m"]')
            values[name] = tuple(sorted(_positive(parse_duration(v, key), key) for v in value))
        elif name in _DURATIONS:
            values[name] = _positive(parse_duration(value, key), key)
        elif name in _INTS:
            if isinstance(value, bool) or not isinstance(value, int) or value < (0 if name == "peak_allowance" else 1):
                raise ConfigError(key, "a positive integer")
            values[name] = value
        else:
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ConfigError(key, "a number")
            values[name] = _positive(float(value), key)
    settings = DetectorSettings(**values)
    if settings.min_history_days > settings.history_days:
        raise ConfigError("outage.min_history_days", "at most outage.history_days")
    return settings


def _positive(value: float, key: str) -> float:
    """The value when above zero; ConfigError otherwise."""
    if not value > 0:
        raise ConfigError(key, "a value above zero")
    return value


class Detector:
    """Streaming complaint-burst detector over every account and cluster key it has seen."""

    def __init__(self, settings: DetectorSettings | None = None) -> None:
        self.settings = settings or DetectorSettings()
        self._series: dict[tuple[str, str], Series] = {}
        self._since: dict[str, int] = {}  # first bucket seen per account, for the warm-up
        self._closed: int | None = None  # last bucket judged
        self._rate = RateSignal(self.settings)  # decides at each complaint, between ticks

    def observe(self, *, account: str, cluster_key: str | None, author: str, text: str, at: datetime,
                category: str, is_repost: bool = False) -> bool:
        """Count one triaged mention: outage and complaint only, once per author and text per dedup window.

        True when the rate signal fired on it: `tick` opens that episode, so tick soon (the watcher does).
        """
        if is_repost or str(category) not in COUNTED_CATEGORIES:
            return False
        bucket, fired = self._bucket_of(at), False
        keys = (ACCOUNT_WIDE, cluster_key) if cluster_key else (ACCOUNT_WIDE,)
        for key in keys:
            series = self._get(account, key, bucket)
            if series.admit(bucket, author, text):
                series.pending[bucket] = series.pending.get(bucket, 0) + 1
                fired |= key != ACCOUNT_WIDE and self._rate.feed(
                    (account, key), series, self._series[(account, ACCOUNT_WIDE)], _epoch(at), bucket, self._since[account])
        return fired

    def observe_count(self, *, account: str, key: str | None, bucket_start: datetime, count: int) -> None:
        """Add an already-counted number of complaints to one bucket (replays, NAB series); no dedup."""
        bucket = self._bucket_of(bucket_start)
        series = self._get(account, key or ACCOUNT_WIDE, bucket)
        series.pending[bucket] = series.pending.get(bucket, 0) + int(count)

    def tick(self, now: datetime) -> list[EpisodeEvent]:
        """Judge every bucket that ended at or before `now`, then look at the open one; the episode events, in order.

        A burst already significant in the bucket still open at `now` opens (or escalates) its episode at `now`
        instead of at the end of that bucket; the bucket itself is judged, and learned from, only when it ends.
        """
        last = int(_epoch(now) // self.settings.bucket) - 1
        if self._closed is None:
            firsts = [min(s.pending) for s in self._series.values() if s.pending]
            self._closed = min(firsts + [last + 1]) - 1
        horizon = round(self.settings.history_days * 86400 / self.settings.bucket)
        self._closed = max(self._closed, last - horizon)  # after a long stop, skip what history would forget
        events: list[EpisodeEvent] = []
        for d in self._rate.take():  # decided at a complaint since the last tick: opened at that complaint
            series = self._series[(d.account, d.key)]
            if series.episode is None and _step(series, d.verdict, d.bucket, self.settings) == "opened":
                events.append(replace(_event("opened", d.account, d.key, d.bucket, series, d.verdict, self.settings),
                                      at=datetime.fromtimestamp(d.at, UTC)))
        while self._closed < last:
            self._closed += 1
            events.extend(self._close(self._closed))
        share = _epoch(now) / self.settings.bucket - (last + 1)
        if share > 0.0:
            events.extend(self._peek(last + 1, share, now))
        return events

    def episodes(self) -> list[tuple[str, str | None, str]]:
        """(account, key, severity) of every open episode."""
        return [(a, None if k == ACCOUNT_WIDE else k, s.episode["severity"])
                for (a, k), s in sorted(self._series.items()) if s.episode]

    def recent(self, account: str, key: str | None) -> list[list[float]]:
        """[bucket start (epoch seconds), complaints counted, complaints expected] for the closed buckets still
        held for one series, oldest first (an incident chart's bars and baseline); [] when there are none."""
        series = self._series.get((account, key or ACCOUNT_WIDE))
        if series is None or self._closed is None:
            return []
        counts, expects = list(series.counts), list(series.expects)
        n, size = min(len(counts), len(expects)), self.settings.bucket
        return [[(self._closed - n + 1 + i) * size, counts[len(counts) - n + i], round(expects[len(expects) - n + i], 4)]
                for i in range(n)]

    def snapshot(self) -> dict[str, Any]:
        """JSON-able state, for persistence across restarts."""
        return {
            "version": SNAPSHOT_VERSION,
            "closed": self._closed,
            "since": dict(self._since),
            "series": [[a, k, s.dump()] for (a, k), s in self._series.items()],
            "rate": self._rate.dump(),
        }

    def restore(self, data: Mapping[str, Any]) -> None:
        """Replace the state with one taken by `snapshot()`."""
        if data.get("version") != SNAPSHOT_VERSION:
            raise ValueError(f"outage snapshot version {data.get('version')!r} is not {SNAPSHOT_VERSION}")
        self._closed = data["closed"]
        self._since = {str(a): int(b) for a, b in data["since"].items()}
        self._series = {}
        for account, key, state in data["series"]:
            series = Series(self.settings)
            series.load(state)
            self._series[(account, key)] = series
        self._rate = RateSignal(self.settings)
        self._rate.load(data.get("rate"))

    def _bucket_of(self, at: datetime) -> int:
        """Index of the bucket holding `at`; a late mention goes to the first bucket still open."""
        bucket = int(_epoch(at) // self.settings.bucket)
        if self._closed is not None and bucket <= self._closed:
            bucket = self._closed + 1
        return bucket

    def _get(self, account: str, key: str, bucket: int) -> Series:
        """The series of that account and key, created on first use."""
        series = self._series.get((account, key))
        if series is None:
            series = self._series[(account, key)] = Series(self.settings)
            self._since.setdefault(account, bucket)
        return series

    def _close(self, bucket: int) -> list[EpisodeEvent]:
        """Judge one bucket across all series, corroborate within accounts, and run the episode rules."""
        s = self.settings
        verdicts: dict[tuple[str, str], Verdict] = {}
        for ident, series in self._series.items():
            verdicts[ident] = series.judge(bucket, series.pending.pop(bucket, 0))
        verdicts = _corroborate(verdicts, s.corroborate_min)
        events: list[EpisodeEvent] = []
        warm = max(1, round(s.warmup / s.bucket))
        for (account, key), series in self._series.items():
            verdict = verdicts[(account, key)]
            if bucket - self._since.get(account, bucket) < warm:
                verdict = replace(verdict, significant=False)
            event = _step(series, verdict, bucket, s)
            if event is not None:
                events.append(_event(event, account, key, bucket, series, verdict, s))
            episode = series.episode
            excluded = episode is not None and (bucket - episode["start"]) * s.bucket < s.max_exclusion
            series.learn(bucket, series.counts[-1], excluded)
            if bucket % 60 == 0:
                series.prune(bucket)
        return events

    def _peek(self, bucket: int, share: float, now: datetime) -> list[EpisodeEvent]:
        """Open or escalate episodes on what the still-open bucket already holds, without judging it.

        Waiting for the bucket to close would delay an alert by up to a bucket (more when ticks are not aligned
        to bucket ends); the bucket is still judged in full, and learned from, when it closes.
        """
        s = self.settings
        warm = max(1, round(s.warmup / s.bucket))
        events: list[EpisodeEvent] = []
        for (account, key), series in self._series.items():
            count = series.pending.get(bucket, 0)
            if count == 0 or bucket - self._since.get(account, bucket) < warm:
                continue
            verdict = series.peek(bucket, count, share)
            if verdict is None:
                continue
            kind = _step(series, verdict, bucket, s)
            if kind is not None:
                events.append(replace(_event(kind, account, key, bucket, series, verdict, s), at=now))
        return events


def detect_series(timestamps: Sequence[datetime], values: Sequence[float], bucket_seconds: float = 300.0,
                  settings: DetectorSettings | None = None) -> list[list[EpisodeEvent]]:
    """Run the production detector over one pre-bucketed count series; the events decided at each row."""
    tuned = replace(settings or DetectorSettings(), bucket=float(bucket_seconds))
    detector = Detector(tuned)
    out: list[list[EpisodeEvent]] = []
    for at, value in zip(timestamps, values, strict=True):
        detector.observe_count(account="series", key=None, bucket_start=at, count=round(value))
        out.append(detector.tick(datetime.fromtimestamp(_epoch(at) + bucket_seconds, UTC)))
    return out


def _corroborate(verdicts: dict[tuple[str, str], Verdict], minimum: int) -> dict[tuple[str, str], Verdict]:
    """Make suspicious cluster buckets significant when enough clusters of the same account rise together."""
    rising: dict[str, list[str]] = {}
    for (account, key), v in verdicts.items():
        if key != ACCOUNT_WIDE and v.suspicious:
            rising.setdefault(account, []).append(key)
    out = dict(verdicts)
    for account, keys in rising.items():
        if len(keys) < minimum:
            continue
        for key in keys:
            v = out[(account, key)]
            if not v.significant:
                others = ", ".join(k for k in sorted(keys) if k != key)
                out[(account, key)] = replace(v, significant=True, reason=f"{v.reason}; corroborated by {others}")
    return out


def _step(series: Series, v: Verdict, bucket: int, s: DetectorSettings) -> str | None:
    """Advance the episode of one series by one bucket; the event kind it produces, if any."""
    episode = series.episode
    excess = (v.count - v.expected) / (v.window / s.bucket)  # per bucket, also over a part of a bucket
    if v.significant:
        series.calm_since = None
        severity = severity_of(v.ratio, s)
        if episode is None:
            series.episode = {"start": bucket, "severity": severity, "excess": excess, "alerted": bucket}
            return "opened"
        worse = SEVERITIES.index(severity) > SEVERITIES.index(episode["severity"])
        # within escalate_hold of the last alert a growing burst is its own ramp-up, already paged: the escalation
        # waits, and is sent only if the burst is still above what was last paged once the hold is over
        held = (bucket - episode.get("alerted", episode["start"])) * s.bucket < s.escalate_hold
        if not held and (worse or excess >= s.escalate_factor * episode["excess"]):
            episode["alerted"] = bucket
            episode["severity"] = max(severity, episode["severity"], key=SEVERITIES.index)
            episode["excess"] = max(excess, episode["excess"])
            return "escalated"
        return None
    if episode is None:
        return None
    if series.calm_since is None:
        series.calm_since = bucket
    if (bucket - series.calm_since + 1) * s.bucket >= s.calm:
        series.calm_since = None
        return "resolved"
    return None


def _event(kind: str, account: str, key: str, bucket: int, series: Series, v: Verdict,
           s: DetectorSettings) -> EpisodeEvent:
    """The boundary event for a step, logged once."""
    episode = series.episode or {}
    if kind == "resolved":
        start, severity = series.pop_episode()
    else:
        start, severity = episode["start"], episode["severity"]
    event = EpisodeEvent(
        kind=kind, account=account, key=None if key == ACCOUNT_WIDE else key,
        at=_at(bucket + 1, s), bucket_start=_at(bucket, s), started_at=_at(start, s), severity=severity,
        count=v.count, baseline=round(v.expected, 3), window=v.window, surprise=round(v.surprise, 2),
        reason=v.reason if kind != "resolved" else f"calm for {minutes(s.calm)}",
    )
    log.info("outage episode %s: account=%s key=%s severity=%s %s", kind, account, key, severity, event.reason)
    return event


def _at(bucket: int, s: DetectorSettings) -> datetime:
    """Start instant of a bucket."""
    return datetime.fromtimestamp(bucket * s.bucket, UTC)


def _epoch(at: datetime) -> float:
    """Seconds since the epoch; naive instants are taken as UTC."""
    return (at if at.tzinfo else at.replace(tzinfo=UTC)).timestamp()
