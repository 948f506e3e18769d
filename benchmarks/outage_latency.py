"""Time to alert and false alerts of the outage detector on four weeks of simulated complaint traffic.

    python -m benchmarks.outage_latency [--weeks 4] [--seed 1] [--per-case 5] [--tick 30] [--seeds 4 --jobs 2]
    python -m benchmarks.outage_latency --ideal     # the statistical bound (calibrated Poisson CUSUM), no detector
    python -m benchmarks.outage_latency --rate-calibrate   # the rate signal's false alarms per complaint against h

Each account has three clusters with a daily and weekly rhythm (Poisson counts per minute, seeded); its first
cluster receives 30-minute outages at 3x, 5x and 10x its usual rate, after a first week of calm history.
Each complaint goes in through `Detector.observe` at a random instant of its slice, in time order, as production
feeds it (`--feed counts`: one `observe_count` per cluster and slice instead, which the rate signal never sees), and
the detector is ticked every minute (or every --tick seconds), and at once after a complaint on which the rate
signal fired (as the watcher does), with its default settings. Reports the median minutes from outage start
to the first alert (an episode opened or escalated on that cluster or account-wide) per baseline and factor,
pooled over --seeds simulations, and the alerts opened outside any outage per account per week.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import random
import statistics
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from benchmarks.nab import settings_overrides
from carebox.outage import Detector, DetectorSettings, EpisodeEvent, parse_settings
from carebox.outage_rate import STEP

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
             tick: float = 60.0, feed: str = "complaints") -> tuple[list[Outage], list[tuple[str, EpisodeEvent]]]:
    """Run the detector over the simulated traffic of every account; the outages and all events.

    Complaints are drawn per `tick` seconds (a divisor of 60) and the detector is ticked at the end of each slice:
    60 judges every minute when it closes; less also lets it alert on the minute still in progress. With `feed`
    "complaints", each complaint goes through `Detector.observe` at a random instant of its slice, in time order,
    and a complaint on which the rate signal fires is followed by a tick at its instant (as the watcher does);
    with "counts", each slice's count goes through `observe_count` (no rate signal).
    """
    rng = random.Random(seed)
    accounts = {f"brand{i}": base for i, base in enumerate(BASELINES)}
    outages = {a: plan_outages(rng, a, weeks, per_case) for a in accounts}
    detector = Detector(settings)
    events: list[tuple[str, EpisodeEvent]] = []
    slices = max(1, round(60.0 / tick))
    width = 60.0 / slices
    for minute in range(weeks * 7 * 1440):
        shape = rhythm(minute)
        for part in range(slices):
            lo = minute * 60.0 + part * width
            at = START + timedelta(seconds=lo)
            drawn: list[tuple[float, str, str]] = []
            for account, base in accounts.items():
                extra = sum((o.factor - 1.0) * outage_share(o, lo, width) for o in outages[account]
                            if o.start - 60 <= lo <= o.start + OUTAGE_MINUTES * 60.0)
                for key, share in CLUSTERS.items():
                    rate = base * share * shape * (1.0 + (extra if key == "c0" else 0.0)) / slices
                    count = poisson(rng, rate)
                    if count and feed == "counts":
                        detector.observe_count(account=account, key=key, bucket_start=at, count=count)
                        detector.observe_count(account=account, key=None, bucket_start=at, count=count)
                    elif count:
                        drawn.extend((lo + rng.random() * width, account, key) for _ in range(count))
            for n, (second, account, key) in enumerate(sorted(drawn)):
                when, who = START + timedelta(seconds=second), f"{minute}.{part}.{n}"  # every complaint a new author
                if detector.observe(account=account, cluster_key=key, author=who, text=who, at=when, category="complaint"):
                    events.extend((e.account, e) for e in detector.tick(when))
            events.extend((e.account, e) for e in detector.tick(at + timedelta(seconds=width)))
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


def cusum_excursions(rate: float, factor: float, weeks: float, step: float,
                     rng: random.Random) -> list[tuple[float, float]]:
    """(start minute, highest value seen by a decision) of each excursion above 0 of a Poisson CUSUM on calm traffic.

    The CUSUM knows the rate and the step: +ln(factor) at each complaint, -(factor - 1) x rate per minute, floored at
    0. `step` is the minutes between decisions, 0 for a decision at every complaint arrival.
    """
    up, drift, end = math.log(factor), (factor - 1.0) * rate, weeks * 10080.0
    t, value, out = 0.0, 0.0, []
    start: float | None = None
    peak = 0.0
    while t < end:
        gap = rng.expovariate(rate)
        if start is not None:
            zero_at = t + value / drift
            if step:
                k = math.floor(t / step) + 1
                while k * step <= min(t + gap, zero_at):
                    peak = max(peak, value - drift * (k * step - t))
                    k += 1
            if zero_at <= t + gap:
                out.append((start, peak))
                start = None
        value = (value - drift * gap if start is not None else 0.0) + up
        t += gap
        if start is None:
            start, peak = t, 0.0
        if not step:
            peak = max(peak, value)
    return out


def false_alarms_per_week(excursions: list[tuple[float, float]], limit: float, weeks: float) -> float:
    """Alarms per week at threshold `limit` (restarted at 0 after each), those within an hour of the last one merged."""
    count, last = 0, -math.inf
    for start, peak in excursions:
        if peak >= limit and start - last > 60.0:
            count, last = count + 1, start
    return count / weeks


def cusum_threshold(rate: float, factor: float, budget: float, step: float, weeks: float, seed: int) -> float:
    """The lowest CUSUM threshold whose simulated false alarms per week stay within `budget`."""
    excursions = cusum_excursions(rate, factor, weeks, step, random.Random(seed))
    low, high = 0.0, 40.0
    for _ in range(40):
        mid = (low + high) / 2
        low, high = (mid, high) if false_alarms_per_week(excursions, mid, weeks) > budget else (low, mid)
    return high


def cusum_delay(rate: float, factor: float, limit: float, step: float, rng: random.Random,
                rhythmic: bool = False) -> float:
    """Minutes from a step's start to the CUSUM's alarm: two calm hours first, decisions at a random phase."""
    if rhythmic:
        rate *= rhythm(rng.randrange(7 * 1440, 28 * 1440))
    up, drift = math.log(factor), (factor - 1.0) * rate
    t, value = -120.0, 0.0
    while True:  # the state at the outage start, given no alarm before it
        gap = rng.expovariate(rate)
        if t + gap >= 0.0:
            value, t = max(0.0, value + drift * t), 0.0
            break
        t += gap
        value = max(0.0, value - drift * gap) + up
        value = 0.0 if value >= limit else value
    decision = rng.random() * step
    while True:
        gap = rng.expovariate(rate * factor)
        while step and decision <= t + gap:
            if value - drift * (decision - t) >= limit:
                return decision
            decision += step
        value = max(0.0, value - drift * gap) + up
        t += gap
        if not step and value >= limit:
            return t


def print_ideal(seed: int, weeks: float, trials: int) -> None:
    """The bound: how fast a CUSUM that knows the baseline and the step alerts within a false-alarm budget."""
    print(f"ideal Poisson CUSUM for a 5x step (threshold calibrated on {weeks:g} simulated calm weeks per cell), "
          f"median minutes from outage start to alert over {trials} outages:")
    rows = [(0.25, step, False) for step in (0.0, 10 / 60, 0.5, 1.0)] + [(0.25, 0.0, True), (0.25, 0.5, True)]
    rows += [(1.0, 0.0, False), (1.0, 0.5, False), (1.0, 0.0, True), (1.0, 0.5, True)]
    for budget, step, rhythmic in rows:
        cells = []
        for rate in (1.0, 2.0, 5.0):
            limit = cusum_threshold(rate, 5.0, budget, step, weeks, seed)
            rng = random.Random(seed + 1)
            median = statistics.median(cusum_delay(rate, 5.0, limit, step, rng, rhythmic) for _ in range(trials))
            cells.append(f"{rate:g}/min {median:.2f} (h {limit:.2f})")
        who = "the account's 4 series share 1/week" if budget < 1.0 else "all of the account's 1/week on one series"
        decided = f"every {step * 60:g} s" if step else "at every complaint"
        rate_is = "daily and weekly rhythm (weekly mean)" if rhythmic else "constant rate"
        print(f"  {budget:g}/week/series ({who}), decided {decided}, {rate_is}: " + ", ".join(cells), flush=True)


def print_rate_calibration(seed: int, weeks: float) -> None:
    """How often the rate signal's CUSUM crosses h on calm Poisson traffic, per complaint, against exp(-h)."""
    print(f"rate signal CUSUM (step x{STEP:g}) on calm Poisson traffic, {weeks:g} weeks at 1/min and at 5/min:")
    for rate in (1.0, 5.0):
        excursions = cusum_excursions(rate, STEP, weeks / rate, 0.0, random.Random(seed))
        complaints = rate * 10080.0 * weeks / rate
        for h in range(6, 12):
            alarms = false_alarms_per_week(excursions, float(h), weeks / rate) * weeks / rate
            print(f"  {rate:g}/min h={h}: {alarms:.0f} alarms in {complaints:.0f} complaints = "
                  f"{alarms / complaints * math.exp(h):.2f} x exp(-h)", flush=True)


def run_seed(job: tuple[int, int, int, DetectorSettings, float, str]) -> tuple[dict[tuple[float, float], list[float]],
                                                                             dict[str, float]]:
    """Latencies per case and false alerts per account per week of one seed's simulation."""
    weeks, seed, per_case, settings, tick, feed = job
    outages, events = simulate(weeks, seed, per_case, settings, tick, feed)
    return latencies(outages, events), false_alerts(outages, events, weeks)


def main(argv: list[str] | None = None) -> int:
    """Simulate, detect and print the latency table and the false-alert rates."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weeks", type=int, default=4)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--seeds", type=int, default=1,
                        help="simulations pooled, seeds SEED..SEED+SEEDS-1 (5 outages a cell per seed is noisy)")
    parser.add_argument("--jobs", type=int, default=1, help="seeds simulated at once (processes)")
    parser.add_argument("--per-case", type=int, default=5, help="outages per factor and account")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override an [outage] setting (exploration only; the benchmark is the default)")
    parser.add_argument("--tick", type=float, default=60.0,
                        help="seconds between detector ticks, a divisor of 60 (60: judge each minute when it closes)")
    parser.add_argument("--ideal", action="store_true", help="print the ideal detector's latency bound and stop")
    parser.add_argument("--ideal-weeks", type=float, default=60.0, help="calm weeks simulated per --ideal cell")
    parser.add_argument("--ideal-trials", type=int, default=1000, help="outages per --ideal cell")
    parser.add_argument("--feed", choices=("complaints", "counts"), default="complaints",
                        help="complaints: each through Detector.observe at its instant (production; the rate signal "
                             "decides at each); counts: one observe_count per cluster and slice (no rate signal)")
    parser.add_argument("--rate-calibrate", action="store_true",
                        help="print how often the rate signal's CUSUM crosses h on calm traffic, and stop")
    args = parser.parse_args(argv)
    if args.ideal:
        print_ideal(args.seed, args.ideal_weeks, args.ideal_trials)
        return 0
    if args.rate_calibrate:
        print_rate_calibration(args.seed, 300.0)
        return 0
    started = time.perf_counter()
    settings = parse_settings(settings_overrides(args.set))
    if args.tick <= 0 or 60.0 % args.tick:
        parser.error("--tick must divide 60 seconds")
    if args.seeds < 1 or args.jobs < 1:
        parser.error("--seeds and --jobs must be at least 1")
    jobs = [(args.weeks, seed, args.per_case, settings, args.tick, args.feed)
            for seed in range(args.seed, args.seed + args.seeds)]
    if args.jobs > 1:
        with multiprocessing.Pool(min(args.jobs, len(jobs))) as pool:
            runs = pool.map(run_seed, jobs)
    else:
        runs = [run_seed(job) for job in jobs]
    elapsed = time.perf_counter() - started
    table: dict[tuple[float, float], list[float]] = {}
    for found, _ in runs:
        for case, values in found.items():
            table.setdefault(case, []).extend(values)
    seeds = f"seed {args.seed}" if args.seeds == 1 else f"seeds {args.seed}..{args.seed + args.seeds - 1} pooled"
    print(f"{args.weeks} weeks, {len(BASELINES)} accounts x {len(CLUSTERS)} clusters, {seeds}, "
          f"{args.seeds * len(BASELINES) * len(FACTORS) * args.per_case} outages of {OUTAGE_MINUTES} min; "
          f"tick {args.tick:g}s; feed {args.feed}; simulated in {elapsed:.0f}s; overrides: {args.set or 'none'}")
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
    for i, (_, rates) in enumerate(runs):
        print(f"false alerts per account per week (weeks 2..{args.weeks}, seed {args.seed + i}): "
              + ", ".join(f"{a} ({BASELINES[k]:g}/min) {r:.2f}" for k, (a, r) in enumerate(rates.items())))
    pooled = [r for _, rates in runs for r in rates.values()]
    print(f"false alerts per account per week: mean {statistics.mean(pooled):.2f}, max {max(pooled):.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
