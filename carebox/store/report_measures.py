"""Report measures beyond first response: resolution time and next-response time, on both clocks, in SQL."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from carebox import reports
from carebox.models import SlaClock
from carebox.reports import LocalTimePlan

clock = SlaClock.__table__  # type: ignore[attr-defined]
NEXT = "next_response"
# measure name -> (wall column, business column) of its source rows
MEASURES = {"resolution": ("resolution_s", "res_business_s"), "nrt": ("wall_s", "business_s")}


def _clamp(value: Any, a: int, b: int) -> Any:
    """Seconds of [a, b) before `value`: 0 before a, b - a after b."""
    return sa.case((value <= a, 0), (value >= b, b - a), else_=value - a)


def _weekly_open_before(plan: LocalTimePlan, local: Any) -> Any:
    """Open seconds by the weekly hours from local second 0 (a Thursday) to `local`."""
    shift = local + 3 * reports.DAY_S
    per_week = sum(b - a for a, b in plan.weekly_open)
    sow = shift % reports.WEEK_S
    return (shift // reports.WEEK_S) * per_week + sum((_clamp(sow, a, b) for a, b in plan.weekly_open), sa.literal(0))


def _weekly_open_before_py(plan: LocalTimePlan, local: int) -> int:
    shift = local + 3 * reports.DAY_S
    sow = shift % reports.WEEK_S
    per_week = sum(b - a for a, b in plan.weekly_open)
    return (shift // reports.WEEK_S) * per_week + sum(min(max(sow - a, 0), b - a) for a, b in plan.weekly_open)


def _weekly_spans(plan: LocalTimePlan, day: int) -> tuple[tuple[int, int], ...]:
    """The open stretches (local epoch seconds) the weekly hours give local `day`."""
    base = day * reports.DAY_S
    monday = base - (day + 3) % 7 * reports.DAY_S
    spans = [(max(monday + a, base), min(monday + b, base + reports.DAY_S)) for a, b in plan.weekly_open]
    return tuple((a, b) for a, b in spans if a < b)


def open_before(plan: LocalTimePlan, local: Any) -> Any:
    """Service-hours seconds from local second 0 to `local`: weekly hours, corrected on the plan's special days
    (holidays, partial days). The business time between two instants is the difference of their values."""
    if plan.always_open:
        return local
    weekly = _weekly_open_before(plan, local)
    if not plan.special:
        return weekly
    # inside a special day: the value at its midnight plus its own open stretches; after it: the weekly value
    # plus the corrections of the special days before (newest first, so recent instants match early)
    inside: list[tuple[Any, Any]] = []
    after: list[tuple[Any, Any]] = []
    cumulated = 0
    for day, spans in plan.special:
        start, end = day * reports.DAY_S, (day + 1) * reports.DAY_S
        if spans == _weekly_spans(plan, day):
            continue  # a day after a holiday that keeps its usual hours: nothing to correct
        w_start, w_end = _weekly_open_before_py(plan, start), _weekly_open_before_py(plan, end)
        value = w_start + cumulated
        inside.append((sa.and_(local > start, local < end),
                       sum((_clamp(local, a, b) for a, b in spans), sa.literal(value)) if spans else value))
        cumulated += sum(b - a for a, b in spans) - (w_end - w_start)
        after.append((local >= end, cumulated))
    if not inside:
        return weekly
    correction = sa.case(*reversed(after), else_=0)
    return sa.case(*reversed(inside), else_=weekly + correction)


Grouped = dict[Any, tuple[dict[str, Any], dict[int, float], dict[int, float]]]


async def add_measures(conn: AsyncConnection, b: Any, key_name: str | None, out: Grouped) -> None:
    """Add resolution and next-response figures (counts, means, percentile picks) to each group of `out`."""
    nrt = (sa.select(b.c[key_name].label("k") if key_name else sa.literal("").label("k"),
                     clock.c.wall_s, clock.c.business_s)
           .select_from(b).join(clock, sa.and_(clock.c.conversation_id == b.c.id, clock.c.target == NEXT))
           .where(clock.c.fulfilled_at.is_not(None)).subquery("nr"))
    res_cols = ("resolution_s", "res_business_s")
    res = (sa.select(b.c[key_name].label("k") if key_name else sa.literal("").label("k"), *[b.c[c] for c in res_cols])
           .select_from(b).where(b.c.resolution_s.is_not(None)).subquery("rs"))
    for name, source in (("resolution", res), ("nrt", nrt)):
        wall, business = MEASURES[name]
        await _measure(conn, source, name, (wall, business), out)


async def _measure(conn: AsyncConnection, src: Any, name: str, cols: tuple[str, str], out: Grouped) -> None:
    """Count, mean and the interpolation picks of two columns of `src` (k, wall, business) per k."""
    stats = sa.select(src.c.k, sa.func.count().label("n"),
                      *[sa.func.avg(src.c[c]).label(f"mean_{i}") for i, c in enumerate(cols)]).group_by(src.c.k)
    found = {}
    for row in await conn.execute(stats):
        if row.k in out:
            found[row.k] = row.n
            agg = out[row.k][0]
            agg[f"{name}_n"] = row.n
            agg[f"{name}_wall_mean"], agg[f"{name}_business_mean"] = row.mean_0, row.mean_1
            agg[f"{name}_wall_picks"], agg[f"{name}_business_picks"] = {}, {}
    if not found:
        return
    ranks = sorted({r for n in found.values() for q in reports.QUANTILES for r in reports.quantile_ranks(n, q)})
    numbered = [sa.func.row_number().over(partition_by=src.c.k, order_by=src.c[c]).label(f"r{i}")
                for i, c in enumerate(cols)]
    ranked = sa.select(src.c.k, *[src.c[c] for c in cols], *numbered).subquery("ranked")
    stmt = sa.select(ranked).where(sa.or_(ranked.c.r0.in_(ranks), ranked.c.r1.in_(ranks)))
    for row in await conn.execute(stmt):
        if row.k not in found:
            continue
        wanted = {r for q in reports.QUANTILES for r in reports.quantile_ranks(found[row.k], q)}
        agg = out[row.k][0]
        for i, (side, col) in enumerate((("wall", cols[0]), ("business", cols[1]))):
            rank = row._mapping[f"r{i}"]
            if rank in wanted:
                agg[f"{name}_{side}_picks"][rank] = row._mapping[col]
