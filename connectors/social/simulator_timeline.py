"""The simulator's timeline: a daily and weekly rhythm, outage bursts, and the instant of item k.

The intensity (mentions per second) is piecewise constant on 5-minute buckets aligned on the epoch,
cut further at outage boundaries. Item k sits where the cumulative intensity reaches
`k - base + u_k` (u_k uniform in [0, 1) drawn from (seed, k)), so item k depends only on (seed, k)
and the timeline, items are in order, and any tail of the stream can be produced on its own.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from zoneinfo import ZoneInfo

from connectors.social.simulator_texts import CITIES

# Relative activity by local hour (0..23) and by weekday (Monday..Sunday): lunchtime and evening
# peaks, a quiet night, a slower weekend and the quietest Sunday.
HOURLY = (
    0.35,
    0.2,
    0.12,
    0.08,
    0.08,
    0.12,
    0.3,
    0.6,
    0.9,
    1.1,
    1.2,
    1.3,
    1.65,
    1.6,
    1.2,
    1.1,
    1.1,
    1.2,
    1.35,
    1.5,
    1.55,
    1.4,
    1.0,
    0.6,
)
WEEKDAY = (1.1, 1.05, 1.0, 1.0, 1.0, 0.85, 0.6)
_MEAN = sum(HOURLY) * sum(WEEKDAY) / 168
SERVICES = ("4G", "fibre", "app", "payment", "login")
BUCKET = 300.0
_NOISE_SIGMA = 0.3
_NOISE_MEAN = math.exp(_NOISE_SIGMA**2 / 2)
_SLOT_P = 0.75  # an outage slot holds a burst with this probability
_SHAPE = (0.6, 1.4, 1.2, 0.8)  # a burst's intensity by quarter: ramp up, peak, decay


def rng_for(seed: int, *parts: object) -> random.Random:
    """A random generator that depends only on the seed and the parts (stable across processes)."""
    return random.Random(f"{seed}:" + ":".join(map(str, parts)))


def units(seed: int, *parts: object) -> tuple[float, float]:
    """Two uniform numbers in [0, 1) that depend only on the seed and the parts; cheaper than rng_for."""
    digest = hashlib.blake2b(f"{seed}:{':'.join(map(str, parts))}".encode(), digest_size=16).digest()
    return int.from_bytes(digest[:8]) / 2**64, int.from_bytes(digest[8:]) / 2**64


@dataclass(frozen=True, slots=True)
class Outage:
    """One burst of complaints about one service, maybe in one city."""

    index: int
    start: datetime
    end: datetime
    service: str
    city: str | None
    extra_per_min: float

    def extra_at(self, ts: float) -> float:
        """Extra mentions per second at epoch second `ts`."""
        a, b = self.start.timestamp(), self.end.timestamp()
        if not a <= ts < b:
            return 0.0
        quarter = min(3, int((ts - a) * 4 / (b - a)))
        return self.extra_per_min / 60.0 * _SHAPE[quarter]

    def cuts(self) -> tuple[float, ...]:
        """Epoch seconds where the burst's intensity changes."""
        a, b = self.start.timestamp(), self.end.timestamp()
        return tuple(a + (b - a) * i / 4 for i in range(5))


def _normal(u1: float, u2: float) -> float:
    """A standard normal draw from two uniforms (Box-Muller)."""
    return math.sqrt(-2.0 * math.log(1.0 - u1)) * math.cos(2 * math.pi * u2)


@lru_cache(maxsize=4096)
def _weight(bucket: int, tz: str, rhythm: bool) -> float:
    if not rhythm:
        return 1.0
    local = datetime.fromtimestamp(bucket * BUCKET, ZoneInfo(tz))
    return HOURLY[local.hour] * WEEKDAY[local.weekday()] / _MEAN


class Timeline:
    """Where items fall in time for one (seed, start, rate) stream; pure, the clock is `start`."""

    def __init__(
        self,
        seed: int,
        start: datetime,
        rate_per_min: float,
        *,
        outage_every: float = 6 * 3600.0,
        timezone: str = "Europe/Paris",
        rhythm: bool = True,
        first_outage: float | None = None,
        outage_length: float | None = None,
    ) -> None:
        if start.tzinfo is None:
            raise ValueError("start must be timezone-aware")
        if rate_per_min <= 0:
            raise ValueError("rate_per_min must be positive")
        self.seed = seed
        self.start = start.astimezone(UTC)
        self.rate_per_min = rate_per_min
        self.outage_every = outage_every
        self.timezone = timezone
        self.rhythm = rhythm
        self._t0 = self.start.timestamp()
        self._slot = outage_every * _SLOT_P
        self._periodic = self._slot > 0 and not math.isinf(self._slot)
        # first_outage: slot 0 is a burst for sure, `first_outage` seconds after start (a demo shows one soon);
        # later slots follow it every outage_every*0.75 as usual (none when outage_every is 0)
        self.first_outage = first_outage
        self.outage_length = outage_length
        self._anchor = self._t0 + (first_outage or 0.0)
        self._bursts = self._periodic or first_outage is not None

    def _has_slot(self, slot: int) -> bool:
        """Whether outage slot `slot` exists at all (only slot 0 without periodic bursts)."""
        return self._bursts and (self._periodic or slot == 0)

    def outage(self, slot: int) -> Outage | None:
        """The burst of outage slot `slot` (slots of outage_every*0.75 from start), or None."""
        if not self._has_slot(slot):
            return None
        rng = rng_for(self.seed, "outage", slot)
        forced = slot == 0 and self.first_outage is not None
        if rng.random() >= _SLOT_P and not forced:
            return None
        duration = rng.uniform(10, 60) * 60
        if self.outage_length is not None:
            duration = self.outage_length
        offset = 0.0 if forced else rng.uniform(0, max(0.0, self._slot - duration))
        begin = self._anchor + slot * self._slot + offset
        city = rng.choice(CITIES) if rng.random() < 0.6 else None
        # fewer people are awake to complain about a night-time outage
        awake = math.sqrt(_weight(int(begin // BUCKET), self.timezone, self.rhythm))
        return Outage(
            index=slot,
            start=datetime.fromtimestamp(begin, UTC),
            end=datetime.fromtimestamp(begin + duration, UTC),
            service=rng.choice(SERVICES),
            city=city,
            extra_per_min=awake * (self.rate_per_min * rng.uniform(0.6, 1.6) + rng.uniform(0.3, 1.0)),
        )

    def outages(self, until: datetime) -> list[Outage]:
        """Every burst that starts before `until`."""
        if not self._bursts:
            return []
        end = until.timestamp()
        found, slot = [], 0
        while self._has_slot(slot) and self._anchor + slot * self._slot < end:
            burst = self.outage(slot)
            if burst is not None and burst.start.timestamp() < end:
                found.append(burst)
            slot += 1
        return found

    def base_rate(self, ts: float) -> float:
        """Mentions per second at epoch second `ts` without bursts (rhythm times bucket noise)."""
        bucket = int(ts // BUCKET)
        noise = math.exp(_NOISE_SIGMA * _normal(*units(self.seed, "noise", bucket))) / _NOISE_MEAN
        return self.rate_per_min / 60.0 * _weight(bucket, self.timezone, self.rhythm) * noise

    def segments(self) -> Iterator[tuple[float, float, float, tuple[Outage, ...]]]:
        """(from, to, mentions per second, active bursts) for consecutive pieces of time from start."""
        t = self._t0
        slot = 0
        pending: list[Outage] = []
        while True:
            bucket_end = (math.floor(t / BUCKET) + 1) * BUCKET
            base = self.base_rate(t)
            while self._has_slot(slot) and self._anchor + slot * self._slot < bucket_end:
                burst = self.outage(slot)
                slot += 1
                if burst is not None:
                    pending.append(burst)
            pending = [b for b in pending if b.end.timestamp() > t]
            cuts = sorted({c for b in pending for c in b.cuts() if t < c < bucket_end} | {bucket_end})
            for cut in cuts:
                mid = (t + cut) / 2
                active = tuple(b for b in pending if b.extra_at(mid) > 0)
                yield t, cut, base + sum(b.extra_at(mid) for b in active), active
                t = cut

    def positions(self, first: int, base: int = 0) -> Iterator[tuple[int, float, float, Outage | None]]:
        """(k, epoch second, chance it is a burst complaint, burst) for items first, first+1, ..."""
        segs = self.segments()
        t0, t1, lam, active = next(segs)
        lo, hi = 0.0, lam * (t1 - t0)
        k = first
        while True:
            x = (k - base) + units(self.seed, "u", k)[0]
            while x >= hi:
                t0, t1, lam, active = next(segs)
                lo, hi = hi, hi + lam * (t1 - t0)
            ts = t0 + (x - lo) / lam
            burst, share = None, 0.0
            if active:
                extras = [b.extra_at(ts) for b in active]
                share = sum(extras) / lam
                burst = active[extras.index(max(extras))]
            yield k, ts, share, burst
            k += 1
