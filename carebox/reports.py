"""Response-time reports over plain rows: percentiles, attainment, exposure, local time, heatmaps."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from carebox.calendar import DAY_S, Calendar, Window, day_windows

QUANTILES = (0.5, 0.9, 0.95)
DIMENSIONS = ("account", "network", "agent", "priority", "category", "language")
WEEK_S = 7 * DAY_S
_EPOCH = date(1970, 1, 1)
_MONDAY_SHIFT_S = 3 * DAY_S  # 1970-01-01 was a Thursday: shift so that Monday 00:00 is second 0 of the week


# --- percentiles ---------------------------------------------------------------------------------


def quantile_ranks(n: int, q: float) -> tuple[int, int]:
    """The two 1-based ranks that linear interpolation between closest ranks reads for quantile `q` of `n`."""
    lo = _floor_rank(n, q)
    return lo + 1, min(lo + 2, n)


def _floor_rank(n: int, q: float) -> int:
    num, den = quantile_fraction(q)
    return (n - 1) * num // den


def quantile_fraction(q: float) -> tuple[int, int]:
    """`q` as an exact fraction (0.95 -> (19, 20)), so SQL can compute ranks with integer arithmetic."""
    num, den = round(q * 1000), 1000
    g = math.gcd(num, den)
    return num // g, den // g


def percentile(sorted_values: Sequence[float], q: float) -> float | None:
    """Quantile `q` of ascending values, linear interpolation between closest ranks (x = (n-1)q)."""
    n = len(sorted_values)
    if n == 0:
        return None
    return interpolate(n, {r: sorted_values[r - 1] for r in quantile_ranks(n, q)}, q)


def interpolate(n: int, picks: Mapping[int, float], q: float) -> float | None:
    """Quantile `q` of `n` values from the values at the ranks `quantile_ranks` names (1-based)."""
    if n == 0:
        return None
    lo_rank, hi_rank = quantile_ranks(n, q)
    lo, hi = picks[lo_rank], picks[hi_rank]
    num, den = quantile_fraction(q)
    frac = (n - 1) * num / den - (lo_rank - 1)
    return lo + (hi - lo) * frac


@dataclass(frozen=True, slots=True)
class Summary:
    """count, mean, median, p90, p95 of one measure (seconds)."""

    count: int = 0
    mean: float | None = None
    p50: float | None = None
    p90: float | None = None
    p95: float | None = None


def summarize(values: Sequence[float]) -> Summary:
    """The Summary of plain values (the reference the SQL path is checked against)."""
    ordered = sorted(values)
    if not ordered:
        return Summary()
    return Summary(len(ordered), sum(ordered) / len(ordered), *(percentile(ordered, q) for q in QUANTILES))


def summary_from_picks(n: int, mean: float | None, picks: Mapping[int, float]) -> Summary:
    """A Summary from a count, a mean and the values at the interpolation ranks (as SQL returns them)."""
    if n == 0:
        return Summary()
    return Summary(n, mean, *(interpolate(n, picks, q) for q in QUANTILES))


def pct(part: float | None, whole: float | None) -> float | None:
    """100 * part / whole, None when there is nothing to divide."""
    if not whole:
        return None
    return 100.0 * (part or 0) / whole


# --- local time and service hours as plain numbers (what SQL needs) --------------------------------


@dataclass(frozen=True, slots=True)
class LocalTimePlan:
    """A calendar's local time and opening hours over a period, as integer arithmetic on epoch seconds.

    local = epoch + offset (offset from `offsets`); open when local's second of week falls in
    `weekly_open`, except on `special` local days (holidays, partial days and the day after them),
    which list their own open stretches in local epoch seconds.
    """

    timezone: str
    offsets: tuple[tuple[int, int], ...]  # (from epoch second, UTC offset seconds), ascending
    weekly_open: tuple[tuple[int, int], ...]  # [a, b) seconds from Monday 00:00 local
    special: tuple[tuple[int, tuple[tuple[int, int], ...]], ...]  # (local day number, open [a, b) local secs)
    always_open: bool = False

    def offset_at(self, epoch_s: int) -> int:
        """UTC offset in force at an epoch second."""
        found = self.offsets[0][1]
        for start, offset in self.offsets:
            if epoch_s >= start:
                found = offset
        return found


def _offset(tz: ZoneInfo, epoch_s: int) -> int:
    delta = datetime.fromtimestamp(epoch_s, UTC).astimezone(tz).utcoffset()
    return int(delta.total_seconds()) if delta else 0


def _transitions(tz: ZoneInfo, start: int, end: int) -> list[tuple[int, int]]:
    """(epoch second, offset) at `start` and at every offset change until `end` (daily scan, then bisect)."""
    out = [(start, _offset(tz, start))]
    t = start
    while t < end:
        nxt = min(t + DAY_S, end)
        if _offset(tz, nxt) != out[-1][1]:
            lo, hi = t, nxt  # offset(lo) is the old one, offset(hi) the new one
            while hi - lo > 1:
                mid = (lo + hi) // 2
                lo, hi = (mid, hi) if _offset(tz, mid) == out[-1][1] else (lo, mid)
            out.append((hi, _offset(tz, hi)))
        t = nxt
    return out


def _week_ranges(weekly: Sequence[tuple[Window, ...]]) -> tuple[tuple[int, int], ...]:
    """Weekly windows as merged [a, b) second-of-week ranges, a Sunday night window wrapping to Monday."""
    spans: list[tuple[int, int]] = []
    for day, windows in enumerate(weekly):
        for s, e in windows:
            a, b = day * DAY_S + s, day * DAY_S + e
            if b > WEEK_S:
                spans += [(a, WEEK_S), (0, b - WEEK_S)]
            else:
                spans.append((a, b))
    return _merge(spans)


def _merge(spans: list[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    merged: list[list[int]] = []
    for a, b in sorted(spans):
        if merged and a <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
    return tuple((a, b) for a, b in merged)


def _day_spans(cal: Calendar, day: date) -> list[tuple[int, int]]:
    """Open stretches (local epoch seconds) that belong to local `day`: its windows and the previous night's spill."""
    base = (day - _EPOCH).days * DAY_S
    spans = [(base + s, base + min(e, DAY_S)) for s, e in day_windows(cal, day)]
    spans += [(base, base + e - DAY_S) for _, e in day_windows(cal, day - timedelta(days=1)) if e > DAY_S]
    return spans


def local_plan(cal: Calendar, since: datetime, until: datetime) -> LocalTimePlan:
    """The LocalTimePlan of `cal` over [since, until] (a day of margin each side)."""
    tz = ZoneInfo(cal.timezone)
    start, end = int(since.timestamp()) - DAY_S, int(until.timestamp()) + DAY_S
    offsets = tuple(_transitions(tz, start, end))
    if cal.always_open:
        return LocalTimePlan(cal.timezone, offsets, ((0, WEEK_S),), (), True)
    special: list[tuple[int, tuple[tuple[int, int], ...]]] = []
    day = datetime.fromtimestamp(start, tz).date()
    last = datetime.fromtimestamp(end, tz).date()
    while day <= last:
        prev = day - timedelta(days=1)
        if day_windows(cal, day) != cal.weekly[day.weekday()] or day_windows(cal, prev) != cal.weekly[prev.weekday()]:
            special.append(((day - _EPOCH).days, _merge(_day_spans(cal, day))))
        day += timedelta(days=1)
    return LocalTimePlan(cal.timezone, offsets, _week_ranges(cal.weekly), tuple(special))


def local_seconds(plan: LocalTimePlan, at: datetime) -> int:
    """Local wall time of `at` as seconds since 1970-01-01 00:00 local."""
    epoch = math.floor(at.timestamp())
    return epoch + plan.offset_at(epoch)


def plan_is_open(plan: LocalTimePlan, at: datetime) -> bool:
    """Whether `at` is within service hours by the plan (the rule the SQL expression encodes)."""
    if plan.always_open:
        return True
    local = local_seconds(plan, at)
    special = dict(plan.special).get(local // DAY_S)
    if special is not None:
        return any(a <= local < b for a, b in special)
    sow = (local + _MONDAY_SHIFT_S) % WEEK_S
    return any(a <= sow < b for a, b in plan.weekly_open)


def hour_of_week(plan: LocalTimePlan, at: datetime) -> int:
    """0 = Monday 00:00-01:00 local ... 167 = Sunday 23:00-24:00 local."""
    return (local_seconds(plan, at) + _MONDAY_SHIFT_S) // 3600 % 168


def local_day(day_number: int) -> date:
    """The date of a local day number (days since 1970-01-01)."""
    return _EPOCH + timedelta(days=day_number)


def day_number(day: date) -> int:
    """The local day number of a date (days since 1970-01-01)."""
    return (day - _EPOCH).days


def week_start(day_number: int) -> int:
    """The local day number of the Monday starting the week of `day_number`."""
    return day_number - (day_number + 3) % 7


# --- report shapes -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Figures:
    """Every figure of one group of conversations (or of all of them)."""

    key: str
    network: str
    conversations: int
    answered: int
    frt_wall: Summary
    frt_business: Summary
    sla_met: int
    sla_breached: int
    sla_attainment_pct: float | None
    within_expectation: int
    expectation_decided: int
    within_1h_wall_pct: float | None
    off_hours_arrivals: int
    off_hours_arrival_pct: float | None
    off_hours_wait_mean_s: float | None
    off_hours_wait_share_pct: float | None
    customers: int
    repeat_contacts: int
    sentiment_open: float | None
    sentiment_close: float | None
    resolved: int
    resolution_wall: Summary
    in_incident: int
    resolution_business: Summary = Summary()
    nrt_wall: Summary = Summary()
    nrt_business: Summary = Summary()


def figures(key: str, agg: Mapping[str, Any], wall_picks: Mapping[int, float],
            business_picks: Mapping[int, float]) -> Figures:
    """Figures from one aggregate row (sums and counts from SQL) and the percentile picks."""
    n_w, n_b = agg.get("n_wall") or 0, agg.get("n_business") or 0
    met, breached = agg.get("sla_met") or 0, agg.get("sla_breached") or 0
    within, decided = agg.get("within_exp") or 0, agg.get("exp_decided") or 0
    conversations = agg.get("conversations") or 0
    off = agg.get("off_arrivals") or 0
    off_answered = agg.get("off_answered") or 0
    wait_total = agg.get("wait_total_s") or 0.0
    resolved = agg.get("resolved") or 0
    return Figures(
        key=key, network=str(agg.get("network") or ""), conversations=conversations,
        answered=agg.get("answered") or 0,
        frt_wall=summary_from_picks(n_w, agg.get("wall_mean"), wall_picks),
        frt_business=summary_from_picks(n_b, agg.get("business_mean"), business_picks),
        sla_met=met, sla_breached=breached, sla_attainment_pct=pct(met, met + breached),
        within_expectation=within, expectation_decided=decided, within_1h_wall_pct=pct(within, decided),
        off_hours_arrivals=off, off_hours_arrival_pct=pct(off, conversations),
        off_hours_wait_mean_s=(agg.get("off_wait_s") or 0.0) / off_answered if off_answered else None,
        off_hours_wait_share_pct=pct(agg.get("wait_outside_s") or 0.0, wait_total),
        customers=agg.get("customers") or 0,
        repeat_contacts=conversations - (agg.get("customers") or 0),
        sentiment_open=agg.get("sentiment_open"), sentiment_close=agg.get("sentiment_close"),
        resolved=resolved,
        resolution_wall=_measure(agg, "resolution", "wall") or (
            Summary(resolved, agg.get("resolution_mean")) if resolved else Summary()),
        in_incident=agg.get("in_incident") or 0,
        resolution_business=_measure(agg, "resolution", "business") or Summary(),
        nrt_wall=_measure(agg, "nrt", "wall") or Summary(), nrt_business=_measure(agg, "nrt", "business") or Summary(),
    )


def _measure(agg: Mapping[str, Any], name: str, side: str) -> Summary | None:
    """The Summary of a resolution or next-response clock from its count, mean and picks (None when not asked)."""
    picks = agg.get(f"{name}_{side}_picks")
    if picks is None:
        return None
    return summary_from_picks(agg.get(f"{name}_n") or 0, agg.get(f"{name}_{side}_mean"), picks)


@dataclass(frozen=True, slots=True)
class TrendPoint:
    """One day or week: volume, answers, median first response on both clocks, attainment."""

    start: date
    conversations: int
    answered: int
    frt_wall_p50_s: float | None
    frt_business_p50_s: float | None
    sla_attainment_pct: float | None
    in_incident: int


@dataclass(frozen=True, slots=True)
class HeatCell:
    """One hour of the week, local to the report calendar."""

    hour_of_week: int
    conversations: int
    frt_wall_p50_s: float | None
    breach_rate_pct: float | None
    open: bool


@dataclass(frozen=True, slots=True)
class Report:
    """A whole report: period, totals, the chosen breakdown, per account, trends, heatmap."""

    since: datetime | None
    until: datetime | None
    generated_at: datetime
    timezone: str
    customer_expectation_s: float
    incidents_excluded: bool
    by: str
    totals: Figures
    groups: tuple[Figures, ...]
    by_account: tuple[Figures, ...]
    daily: tuple[TrendPoint, ...]
    weekly: tuple[TrendPoint, ...]
    heatmap: tuple[HeatCell, ...]
    extra: Mapping[str, Any] = field(default_factory=dict)


def heatmap(cells: Mapping[int, Mapping[str, Any]], plan: LocalTimePlan) -> tuple[HeatCell, ...]:
    """All 168 hours of the week, empty hours included, each marked open or closed by the weekly hours."""
    out = []
    for how in range(168):
        c = cells.get(how, {})
        n = c.get("conversations") or 0
        decided = (c.get("sla_met") or 0) + (c.get("sla_breached") or 0)
        mid = how * 3600 + 1800
        is_open = plan.always_open or any(a <= mid < b for a, b in plan.weekly_open)
        out.append(HeatCell(how, n, c.get("frt_wall_p50_s"), pct(c.get("sla_breached"), decided), is_open))
    return tuple(out)


def figures_row(f: Figures) -> dict[str, Any]:
    """The flat JSON object of one group (the keys `carebox report --format json` promises)."""
    return {
        "account": f.key, "network": f.network, "conversations": f.conversations,
        "answered": f.answered,
        "frt_wall_mean_s": f.frt_wall.mean, "frt_wall_p50_s": f.frt_wall.p50, "frt_wall_p90_s": f.frt_wall.p90,
        "frt_wall_p95_s": f.frt_wall.p95, "frt_business_mean_s": f.frt_business.mean,
        "frt_business_p50_s": f.frt_business.p50, "frt_business_p90_s": f.frt_business.p90,
        "frt_business_p95_s": f.frt_business.p95, "sla_met": f.sla_met, "sla_breached": f.sla_breached,
        "sla_attainment_pct": f.sla_attainment_pct, "within_1h_wall_pct": f.within_1h_wall_pct,
        "off_hours_arrivals": f.off_hours_arrivals, "off_hours_arrival_pct": f.off_hours_arrival_pct,
        "off_hours_wait_mean_s": f.off_hours_wait_mean_s, "off_hours_wait_share_pct": f.off_hours_wait_share_pct,
        "customers": f.customers, "repeat_contacts": f.repeat_contacts,
        "sentiment_open": f.sentiment_open, "sentiment_close": f.sentiment_close,
        "resolved": f.resolved, **_summary_keys("resolution_wall", f.resolution_wall),
        **_summary_keys("resolution_business", f.resolution_business),
        "next_responses": f.nrt_wall.count, **_summary_keys("nrt_wall", f.nrt_wall),
        **_summary_keys("nrt_business", f.nrt_business), "in_incident": f.in_incident,
    }


def _summary_keys(prefix: str, s: Summary) -> dict[str, float | None]:
    """`{prefix}_mean_s`, `{prefix}_p50_s`, `_p90_s`, `_p95_s`."""
    return {f"{prefix}_mean_s": s.mean, f"{prefix}_p50_s": s.p50, f"{prefix}_p90_s": s.p90, f"{prefix}_p95_s": s.p95}


def to_json(report: Report) -> dict[str, Any]:
    """The report as plain JSON types."""
    def group_row(f: Figures) -> dict[str, Any]:
        row = figures_row(f)
        row[report.by] = row.pop("account")
        return row

    totals = figures_row(report.totals)
    totals.pop("account", None)
    return {
        "since": report.since.isoformat() if report.since else None,
        "until": report.until.isoformat() if report.until else None,
        "generated_at": report.generated_at.isoformat(), "timezone": report.timezone,
        "customer_expectation_s": report.customer_expectation_s, "incidents_excluded": report.incidents_excluded,
        "by": report.by, "totals": totals,
        "groups": [group_row(f) for f in report.groups],
        "by_account": [figures_row(f) for f in report.by_account],
        "daily": [{**asdict(p), "start": p.start.isoformat()} for p in report.daily],
        "weekly": [{**asdict(p), "start": p.start.isoformat()} for p in report.weekly],
        "heatmap": [asdict(c) for c in report.heatmap],
        **dict(report.extra),
    }
