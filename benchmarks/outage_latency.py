"""Time to alert and false alerts of the outage detector on four weeks of simulated complaint traffic.

    python -m benchmarks.outage_latency [--weeks 4] [--seed 1] [--per-case 8]
    python -m benchmarks.outage_latency --ideal     # the statistical bound, no detector

Each account has three clusters with a daily and weekly rhythm (Poisson counts per minute, seeded); its first
cluster receives 30-minute outages at 3x, 5x and 10x its usual rate, after a first week of calm history.
Counts go in through `Detector.observe_count` (one call per cluster and minute) and the detector is ticked
every minute, with its default settings. Reports the median minutes from outage start to the first alert
(an episode opened or escalated on that cluster or account-wide) per baseline and factor, and the alerts
opened outside any outage per account per week.
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from benchmarks.nab import settings_overrides
from carebox.outage import Detector, DetectorSettings, EpisodeEvent, parse_settings

START = datetime(2026, 1, 5, tzinfo=UTC)  # a Monday
BASELINES = (0.2, 0.5, 1.0, 2.0, 5.0, 20.0)  # complaints per minute, weekly mean of the outage cluster
FACTORS = (3.0, 5.0, 10.0)
OUTAGE_MINUTES = 30
CLUSTERS = {"c0": 1.0, "c1": 1.0, "c2": 0.5}  # share of the account's baseline
ALERTS = frozenset({"opened", "escalated"})


@dataclass(frozen=True, slots=True)
class Outage:
    """One injected outage: account, start offset in seconds from START, factor."""

    account: str
    start: float
    factor: float


def rhythm(minute: int) -> float:
    """Daily and weekly shape of complaint traffic, mean about 1: quiet nights, quieter weekends."""
    hour = (minute % 1440) / 60.0
    daily = 1.0 + 0.8 * math.sin(2 * math.pi * (hour - 9.0) / 24.0)
    weekend = 0.6 if (minute // 1440) % 7 >= 5 else 1.0
    return daily * weekend / (5 / 7 + 0.6 * 2 / 7)


def poisson(rng: random.Random, lam: float) -> int:
    """A Poisson draw: Knuth for small means, a rounded normal beyond 30."""
    if lam <= 0.0:
        return 0
    if lam > 30.0:
        return max(0, round(rng.gauss(lam, math.sqrt(lam))))
    limit, k, p = math.exp(-lam), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


def plan_outages(rng: random.Random, account: str, weeks: int, per_case: int) -> list[Outage]:
    """Outages after the first week, at least 8 hours apart, `per_case` for each factor, in random order."""
    factors = [f for f in FACTORS for _ in range(per_case)]
    rng.shuffle(factors)
    first, last = 7 * 1440, weeks * 7 * 1440 - OUTAGE_MINUTES - 120
    gap = (last - first) // max(1, len(factors))
    if gap < 8 * 60:
        raise SystemExit("too many outages for the simulated weeks; lower --per-case")
    return [Outage(account, 60.0 * (first + i * gap + rng.randrange(gap - 8 * 60 + 1)) + rng.uniform(0, 60), f)
            for i, f in enumerate(factors)]


def outage_share(outage: Outage, start: float, seconds: float = 60.0) -> float:
    """Fraction of the interval [start, start + seconds) (seconds from START) covered by the outage."""
    lo, hi = outage.start, outage.start + OUTAGE_MINUTES * 60.0
    return max(0.0, min(hi, start + seconds) - max(lo, start)) / seconds


def simulate(weeks: int, seed: int, per_case: int, settings: DetectorSettings | None = None,
             tick: float = 60.0) -> tuple[list[Outage], list[tuple[str, EpisodeEvent]]]:
    """Run the detector over the simulated traffic of every account; the outages and all events.

    Complaints are drawn per `tick` seconds (a divisor of 60) and the detector is ticked at the end of each slice:
    60 judges every minute when it closes; less also lets it alert on the minute still in progress.
    """
    rng = random.Random(seed)
    accounts = {f"brand{i}": base for i, base in enumerate(BASELINES)}
    outages = {a: plan_outages(rng, a, weeks, per_case) for a in accounts}
    detector = Detector(settings)
    events: list[tuple[str, EpisodeEvent]] = []
    slices = max(1, round(60.0 / tick))
    for minute in range(weeks * 7 * 1440):
        shape = rhythm(minute)
        for part in range(slices):
            lo = minute * 60.0 + part * 60.0 / slices
            at = START + timedelta(seconds=lo)
            for account, base in accounts.items():
                extra = sum((o.factor - 1.0) * outage_share(o, lo, 60.0 / slices) for o in outages[account]
                            if o.start - 60 <= lo <= o.start + OUTAGE_MINUTES * 60.0)
                for key, share in CLUSTERS.items():
                    rate = base * share * shape * (1.0 + (extra if key == "c0" else 0.0)) / slices
                    count = poisson(rng, rate)
                    if count:
                        detector.observe_count(account=account, key=key, bucket_start=at, count=count)
                        detector.observe_count(account=account, key=None, bucket_start=at, count=count)
            events.extend((e.account, e) for e in detector.tick(at + timedelta(seconds=60.0 / slices)))
    return [o for a in accounts for o in outages[a]], events


def latencies(outages: list[Outage], events: list[tuple[str, EpisodeEvent]]) -> dict[tuple[float, float], list[float]]:
    """Minutes from each outage start to its first alert on c0 or account-wide (inf when missed)."""
    base_of = {f"brand{i}": base for i, base in enumerate(BASELINES)}
    out: dict[tuple[float, float], list[float]] = {}
    for o in outages:
        lo, hi = START + timedelta(seconds=o.start), START + timedelta(seconds=o.start + 60 * (OUTAGE_MINUTES + 15))
        hits = [(e.at - lo).total_seconds() / 60 for a, e in events
                if a == o.account and e.kind in ALERTS and e.key in ("c0", None) and lo < e.at <= hi]
        out.setdefault((base_of[o.account], o.factor), []).append(min(hits) if hits else math.inf)
    return out


def false_alerts(outages: list[Outage], events: list[tuple[str, EpisodeEvent]], weeks: int) -> dict[str, float]:
    """Episodes opened outside [outage start - 5 min, end + 1 h] per account per week, first week left out."""
    counts: dict[str, int] = {f"brand{i}": 0 for i in range(len(BASELINES))}
    for account, e in events:
        if e.kind != "opened" or e.at < START + timedelta(days=7):
            continue
        near = any(START + timedelta(seconds=o.start - 300) <= e.at <= START + timedelta(
            seconds=o.start + 60 * (OUTAGE_MINUTES + 60)) for o in outages if o.account == account)
        counts[account] += 0 if near else 1
    return {a: c / max(1, weeks - 1) for a, c in counts.items()}


def ideal_latency(rate: float, factor: float, false_alarm_minutes: float, trials: int, seed: int,
                  tick: float = 60.0, rhythmic: bool = False) -> float:
    """Median minutes to alert of an ideal Poisson CUSUM for this step, knowing the rate, decided every `tick` s.

    `rhythmic`: the rate is `rate` times the simulated daily and weekly rhythm at a random minute of weeks 2 to 4
    (where the benchmark's outages fall), instead of constant.
    """
    rng = random.Random(seed)
    slices = max(1, round(60.0 / tick))
    # CUSUM: the mean run to a false alarm is at least e^limit steps (Lorden), here slices of a minute
    limit, step = math.log(false_alarm_minutes * slices), math.log(factor)
    found = []
    for _ in range(trials):
        lam = rate * (rhythm(rng.randrange(7 * 1440, 28 * 1440)) if rhythmic else 1.0) / slices
        start = rng.random()  # the outage starts this far into its first minute
        total, k = 0.0, math.floor(start * slices)  # k: the slice being counted
        while total < limit:
            share = min(1.0, (k + 1) - start * slices)  # of this slice inside the outage
            count = poisson(rng, lam * (1.0 + (factor - 1.0) * share))
            total = max(0.0, total + count * step - (factor - 1.0) * lam)
            k += 1
        found.append(k / slices - start)
    return statistics.median(found)


def print_ideal(seed: int) -> None:
    """The bound: how fast a detector that knows the baseline and the step can alert at a false-alarm rate."""
    print("ideal Poisson CUSUM for a 5x step, median minutes from outage start to alert:")
    rates = (1.0, 2.0, 5.0, 20.0)
    for weeks, tick, rhythmic in ((4, 60.0, False), (1, 60.0, False), (4, 10.0, False), (4, 60.0, True),
                                  (4, 10.0, True)):
        cells = [f"{r:g}/min {ideal_latency(r, 5.0, weeks * 7 * 1440, 3000, seed, tick, rhythmic):.2f}"
                 for r in rates]
        what = "rate with the daily and weekly rhythm" if rhythmic else "constant rate"
        print(f"  one false alarm per {weeks} week(s) per series, decided every {tick:g} s, {what}: "
              + ", ".join(cells))


def main(argv: list[str] | None = None) -> int:
    """Simulate, detect and print the latency table and the false-alert rates."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weeks", type=int, default=4)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--per-case", type=int, default=5, help="outages per factor and account")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override an [outage] setting (exploration only; the benchmark is the default)")
    parser.add_argument("--tick", type=float, default=60.0,
                        help="seconds between detector ticks, a divisor of 60 (60: judge each minute when it closes)")
    parser.add_argument("--ideal", action="store_true", help="print the ideal detector's latency bound and stop")
    args = parser.parse_args(argv)
    if args.ideal:
        print_ideal(args.seed)
        return 0
    started = time.perf_counter()
    settings = parse_settings(settings_overrides(args.set))
    if args.tick <= 0 or 60.0 % args.tick:
        parser.error("--tick must divide 60 seconds")
    outages, events = simulate(args.weeks, args.seed, args.per_case, settings, args.tick)
    elapsed = time.perf_counter() - started
    table = latencies(outages, events)
    print(f"{args.weeks} weeks, {len(BASELINES)} accounts x {len(CLUSTERS)} clusters, seed {args.seed}, "
          f"{len(outages)} outages of {OUTAGE_MINUTES} min; tick {args.tick:g}s; simulated in {elapsed:.0f}s; "
          f"overrides: {args.set or 'none'}")
    print("median minutes from outage start to alert (detected/total):")
    print("baseline/min " + "".join(f"{f:>14g}x" for f in FACTORS))
    for base in BASELINES:
        cells = []
        for f in FACTORS:
            values = table[(base, f)]
            found = [v for v in values if math.isfinite(v)]
            median = statistics.median(values) if len(found) * 2 > len(values) else math.inf
            cells.append(f"{median:>8.1f} ({len(found)}/{len(values)})")
        print(f"{base:>12g} " + "".join(f"{c:>15}" for c in cells))
    rates = false_alerts(outages, events, args.weeks)
    print(f"false alerts per account per week (weeks 2..{args.weeks}): "
          + ", ".join(f"{a} ({BASELINES[i]:g}/min) {r:.2f}" for i, (a, r) in enumerate(rates.items())))
    print(f"mean {statistics.mean(rates.values()):.2f}, max {max(rates.values()):.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
