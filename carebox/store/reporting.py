"""Report queries: every figure aggregated in SQL; Python only interpolates the few rows SQL picks."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import partial
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from carebox import reports, reports_config
from carebox.models import Conversation, SlaClock, User
from carebox.reports import LocalTimePlan
from carebox.store import report_cells, report_facts
from carebox.store.report_csv import CSV_COLUMNS  # noqa: F401 (re-exported: the CSV export's header)
from carebox.store.report_csv import csv_row as _csv_row
from carebox.store.report_measures import add_measures, open_before
from carebox.store.report_sql import UNASSIGNED, dimension  # noqa: F401 (UNASSIGNED is re-exported)
from carebox.store.report_sql import epoch_of as _epoch
from carebox.store.report_sql import flag as _flag
from carebox.store.report_sql import is_open as _open
from carebox.store.report_sql import local_of as _local

conv = Conversation.__table__  # type: ignore[attr-defined]
clock = SlaClock.__table__  # type: ignore[attr-defined]
user = User.__table__  # type: ignore[attr-defined]
FIRST = "first_response"
DRILL_METRICS = ("all", "answered", "unanswered", "met", "breached", "late", "off_hours", "incident", "resolved")


@dataclass(frozen=True, slots=True)
class Scope:
    """Which conversations a report covers and the rules its figures follow."""

    now: datetime
    since: datetime | None = None
    until: datetime | None = None
    exclude_incidents: bool = False
    contract_policies: frozenset[str] = frozenset()
    expectation_s: float = 3600.0
    plan: LocalTimePlan | None = None
    where: Mapping[str, str] = field(default_factory=dict)  # dimension -> value, for drill-downs


def base_select(scope: Scope, dialect: str) -> Any:
    """One row per conversation in scope with every per-conversation fact the report aggregates."""
    plan = scope.plan or reports.LocalTimePlan("UTC", ((0, 0),), ((0, reports.WEEK_S),), (), True)
    epoch = _epoch(conv.c.first_message_at, dialect)
    contract = conv.c.policy.in_(sorted(scope.contract_policies)) if scope.contract_policies else sa.false()
    done = clock.c.fulfilled_at.is_not(None)
    late_since = scope.now - timedelta(seconds=scope.expectation_s)
    cols = [
        conv.c.id, conv.c.network, conv.c.customer_id, conv.c.incident_id,
        *[dimension(d).label(f"d_{d}") for d in reports.DIMENSIONS],
        sa.case((done, clock.c.wall_s), else_=None).label("wall_s"),
        sa.case((done, clock.c.business_s), else_=None).label("business_s"),
        _flag(done).label("answered"),
        _flag(sa.and_(contract, done, clock.c.fulfilled_at <= clock.c.business_due)).label("met"),
        _flag(sa.and_(contract, sa.or_(clock.c.fulfilled_at > clock.c.business_due,
                                       sa.and_(~done, clock.c.business_due <= scope.now)))).label("breached"),
        _flag(sa.and_(done, clock.c.wall_s <= scope.expectation_s)).label("within"),
        _flag(sa.or_(done, conv.c.first_message_at <= late_since)).label("decided"),
        _flag(conv.c.incident_id.is_not(None)).label("incident"),
        conv.c.sentiment_open, conv.c.sentiment_last,
        sa.case((conv.c.resolved_at.is_not(None), _epoch(conv.c.resolved_at, dialect) - epoch), else_=None).label("resolution_s"),
        _local(plan, epoch).label("local"),
        sa.case((conv.c.resolved_at.is_not(None), _local(plan, _epoch(conv.c.resolved_at, dialect))),
                else_=None).label("res_local"),
    ]
    stmt = (
        sa.select(*cols)
        .select_from(conv.outerjoin(clock, sa.and_(clock.c.conversation_id == conv.c.id, clock.c.target == FIRST))
                     .outerjoin(user, user.c.id == conv.c.assignee_id))
        .where(conv.c.first_message_at.is_not(None))
    )
    if scope.since is not None:
        stmt = stmt.where(conv.c.first_message_at >= scope.since)
    if scope.until is not None:
        stmt = stmt.where(conv.c.first_message_at < scope.until)
    if scope.exclude_incidents:
        stmt = stmt.where(conv.c.incident_id.is_(None))
    for name, value in scope.where.items():
        stmt = stmt.where(dimension(name) == value)
    return stmt


def derived(rows: Any, plan: LocalTimePlan) -> Any:
    """The base rows with what local time gives: off-hours arrival, hour of week, local day and week."""
    local = rows.c.local
    day = local // 86400
    return sa.select(
        rows, _flag(sa.not_(_open(plan, local))).label("off"), ((local + 3 * 86400) // 3600 % 168).label("how"),
        day.label("day"), (day - (day + 3) % 7).label("week"),
        sa.case((rows.c.res_local.is_not(None), open_before(plan, rows.c.res_local) - open_before(plan, local)),
                else_=None).label("res_business_s"),
    ).subquery("b")


async def materialize(conn: AsyncConnection, scope: Scope, dialect: str) -> Any:
    """The report rows written to a temporary table in two passes (local time is computed once per row),
    so that every breakdown reads plain columns of a narrow table."""
    assert scope.plan is not None
    tag = secrets.token_hex(4)
    first = sa.CreateTableAs(base_select(scope, dialect), f"report_base_{tag}", temporary=True)
    await conn.execute(first)
    second = sa.CreateTableAs(sa.select(derived(first.table, scope.plan)), f"report_rows_{tag}", temporary=True)
    await conn.execute(second)
    await conn.execute(sa.text(f"DROP TABLE {first.table.name}"))
    return second.table


def _aggregates(b: Any, customers: bool = True) -> list[Any]:
    off = b.c.off == 1
    distinct = sa.func.count(sa.distinct(b.c.customer_id)) if customers else sa.null()
    return [
        sa.func.count().label("conversations"), sa.func.sum(b.c.answered).label("answered"),
        sa.case((sa.func.min(b.c.network) == sa.func.max(b.c.network), sa.func.min(b.c.network)),
                else_="several").label("network"),
        sa.func.count(b.c.wall_s).label("n_wall"), sa.func.avg(b.c.wall_s).label("wall_mean"),
        sa.func.count(b.c.business_s).label("n_business"), sa.func.avg(b.c.business_s).label("business_mean"),
        sa.func.sum(b.c.met).label("sla_met"), sa.func.sum(b.c.breached).label("sla_breached"),
        sa.func.sum(b.c.within).label("within_exp"), sa.func.sum(b.c.decided).label("exp_decided"),
        sa.func.sum(b.c.off).label("off_arrivals"),
        sa.func.sum(sa.case((sa.and_(off, b.c.answered == 1), 1), else_=0)).label("off_answered"),
        sa.func.sum(sa.case((off, b.c.wall_s), else_=None)).label("off_wait_s"),
        sa.func.sum(b.c.wall_s).label("wait_total_s"),
        sa.func.sum(b.c.wall_s - b.c.business_s).label("wait_outside_s"),
        distinct.label("customers"),  # a sort of its own: only where a figure shows it
        sa.func.avg(b.c.sentiment_open).label("sentiment_open"),
        sa.func.avg(b.c.sentiment_last).label("sentiment_close"),
        sa.func.count(b.c.resolution_s).label("resolved"), sa.func.avg(b.c.resolution_s).label("resolution_mean"),
        sa.func.sum(b.c.incident).label("in_incident"),
    ]


def _picks_stmt(b: Any, key: Any, clocks: tuple[str, ...], ranks: set[int]) -> Any:
    """The rows at the ranks linear interpolation reads (`ranks`, a superset over groups): a handful per group."""
    part = [key] if key is not None else []
    cols = [sa.func.row_number().over(partition_by=part, order_by=b.c[c]).label(f"r_{c}") for c in clocks]
    ranked = (sa.select((key if key is not None else sa.literal("")).label("k"), *[b.c[c] for c in clocks], *cols)
              .where(b.c.wall_s.is_not(None)).subquery("r"))
    return sa.select(ranked).where(sa.or_(*[ranked.c[f"r_{c}"].in_(sorted(ranks)) for c in clocks]))


Grouped = dict[Any, tuple[dict[str, Any], dict[int, float], dict[int, float]]]


async def _grouped(conn: AsyncConnection, b: Any, key_name: str | None, *,
                   clocks: tuple[str, ...] = ("wall_s", "business_s"),
                   quantiles: tuple[float, ...] = reports.QUANTILES, customers: bool = True,
                   measures: bool = False) -> Grouped:
    """Aggregates and percentile picks per value of b.<key_name> (one group "" when None); with `measures`,
    resolution and next-response figures too."""
    key = b.c[key_name] if key_name else None
    stmt = sa.select(*([key.label("k")] if key is not None else [sa.literal("").label("k")]), *_aggregates(b, customers))
    if key is not None:
        stmt = stmt.group_by(key)
    out: Grouped = {}
    for row in await conn.execute(stmt):
        agg = dict(row._mapping)
        if agg["conversations"]:
            out[agg.pop("k")] = (agg, {}, {})
    if measures:
        await add_measures(conn, b, key_name, out)
    wanted = {k: {r for q in quantiles for r in reports.quantile_ranks(e[0]["n_wall"], q)}
              for k, e in out.items() if e[0]["n_wall"]}
    if not wanted:
        return out
    for row in await conn.execute(_picks_stmt(b, key, clocks, set().union(*wanted.values()))):
        m = row._mapping
        ranks = wanted.get(m["k"], set())
        if m["r_wall_s"] in ranks:
            out[m["k"]][1][m["r_wall_s"]] = m["wall_s"]
        if "business_s" in clocks and m["r_business_s"] in ranks:
            out[m["k"]][2][m["r_business_s"]] = m["business_s"]
    return out


def _fig(key: Any, entry: tuple[dict[str, Any], dict[int, float], dict[int, float]]) -> reports.Figures:
    return reports.figures(str(key), *entry)


def _median(entry: tuple[dict[str, Any], dict[int, float], dict[int, float]], picks: dict[int, float]) -> float | None:
    n = entry[0]["n_wall"] or 0
    return reports.interpolate(n, picks, 0.5) if n and picks else None


def _trend(grouped: Grouped) -> tuple[reports.TrendPoint, ...]:
    points = []
    for day, entry in sorted(grouped.items()):
        agg, wall, business = entry
        met, breached = agg["sla_met"] or 0, agg["sla_breached"] or 0
        points.append(reports.TrendPoint(
            reports.local_day(int(day)), agg["conversations"], agg["answered"] or 0, _median(entry, wall),
            _median(entry, business) if business else None, reports.pct(met, met + breached), agg["in_incident"] or 0))
    return tuple(points)


async def build_report(engine: AsyncEngine, scope: Scope, settings: reports_config.ReportSettings, by: str = "account") -> reports.Report:
    """The whole report: totals, the `by` breakdown, per account, daily and weekly trends, heatmap. On SQLite
    it reads the report facts and cells (refreshed first); elsewhere, and for drill-down scopes, conversations."""
    if by not in reports.DIMENSIONS:
        raise ValueError(f"unknown breakdown {by!r}")
    if report_facts.supported(engine) and not scope.where:
        report = await _report_from_facts(engine, scope, settings, by)
        if report is not None:
            return report
    return await build_report_direct(engine, scope, settings, by)


async def build_report_direct(engine: AsyncEngine, scope: Scope, settings: reports_config.ReportSettings,
                              by: str = "account") -> reports.Report:
    """The whole report computed from the conversations themselves (PostgreSQL; the reference in tests)."""
    async with engine.connect() as conn:
        scope = await _with_plan(conn, scope, settings)
        assert scope.plan is not None
        b = await materialize(conn, scope, engine.dialect.name)
        totals = (await _grouped(conn, b, None, measures=True)).get("")
        groups = await _grouped(conn, b, f"d_{by}", measures=True)
        accounts = groups if by == "account" else await _grouped(conn, b, "d_account", measures=True)
        daily = await _grouped(conn, b, "day", quantiles=(0.5,), customers=False)
        weekly = await _grouped(conn, b, "week", quantiles=(0.5,), customers=False)
        heat = await heatmap_cells(conn, b)
    return _assemble(scope, by, totals, groups, accounts, daily, weekly, heat)


def _assemble(scope: Scope, by: str, totals: Any, groups: Grouped, accounts: Grouped, daily: Grouped,
              weekly: Grouped, heat: dict[int, dict[str, Any]]) -> reports.Report:
    empty = reports.figures("", {}, {}, {})
    assert scope.plan is not None
    return reports.Report(
        since=scope.since, until=scope.until, generated_at=scope.now, timezone=scope.plan.timezone,
        customer_expectation_s=scope.expectation_s, incidents_excluded=scope.exclude_incidents, by=by,
        totals=_fig("", totals) if totals else empty,
        groups=tuple(_fig(k, e) for k, e in sorted(groups.items(), key=lambda kv: (-kv[1][0]["conversations"], str(kv[0])))),
        by_account=tuple(_fig(k, e) for k, e in sorted(accounts.items(), key=lambda kv: (-kv[1][0]["conversations"], str(kv[0])))),
        daily=_trend(daily), weekly=_trend(weekly), heatmap=reports.heatmap(heat, scope.plan),
    )


def fact_rules(scope: Scope, settings: reports_config.ReportSettings) -> report_facts.FactRules:
    """The rules the facts of a report follow (their fingerprint decides a rebuild)."""
    return report_facts.FactRules(settings.calendar, scope.contract_policies, scope.expectation_s)


async def _facts_scope(engine: AsyncEngine, scope: Scope, settings: reports_config.ReportSettings) -> tuple[Scope, report_cells.Window] | None:
    """Refresh the facts, then the scope with a plan around its edges and the period's filters (None while
    another process rebuilds the facts)."""
    if not (await report_facts.refresh(engine, fact_rules(scope, settings), scope.now)).ready:
        return None
    plan = reports.local_plan(settings.calendar, scope.since or scope.now, scope.until or scope.now)
    return replace(scope, plan=plan), report_cells.Window.of(scope.since, scope.until, scope.exclude_incidents, plan)


async def _report_from_facts(engine: AsyncEngine, scope: Scope, settings: reports_config.ReportSettings,
                             by: str) -> reports.Report | None:
    ready = await _facts_scope(engine, scope, settings)
    if ready is None:
        return None
    scope, window = ready

    def read(conn: sa.Connection) -> reports.Report:
        group = partial(report_cells.grouped, conn, w=window, now=scope.now, expectation_s=scope.expectation_s)
        groups = group(by, measures=True)
        return _assemble(
            scope, by, group(None, measures=True).get(""), groups,
            groups if by == "account" else group("account", measures=True),
            group("day", quantiles=(0.5,), customers=False), group("week", quantiles=(0.5,), customers=False),
            _heat(group("how", clocks=("wall_s",), quantiles=(0.5,), customers=False)))

    async with engine.connect() as conn:
        return await conn.run_sync(read)


def _heat(grouped: Grouped) -> dict[int, dict[str, Any]]:
    return {int(how): {**entry[0], "frt_wall_p50_s": _median(entry, entry[1])} for how, entry in grouped.items()}


async def heatmap_cells(conn: AsyncConnection, b: Any) -> dict[int, dict[str, Any]]:
    """Per local hour of week: volume, SLA met/breached, median wall-clock first response."""
    return _heat(await _grouped(conn, b, "how", clocks=("wall_s",), quantiles=(0.5,), customers=False))


async def heatmap(engine: AsyncEngine, scope: Scope, settings: reports_config.ReportSettings) -> tuple[reports.HeatCell, ...]:
    """The hour-of-week heatmap alone."""
    ready = await _facts_scope(engine, scope, settings) if report_facts.supported(engine) and not scope.where else None
    if ready is not None:
        fscope, window = ready
        async with engine.connect() as conn:
            grouped = await conn.run_sync(lambda c: report_cells.grouped(
                c, "how", window, fscope.now, fscope.expectation_s, clocks=("wall_s",), quantiles=(0.5,), customers=False))
        assert fscope.plan is not None
        return reports.heatmap(_heat(grouped), fscope.plan)
    async with engine.connect() as conn:
        scope = await _with_plan(conn, scope, settings)
        assert scope.plan is not None
        b = await materialize(conn, scope, engine.dialect.name)
        return reports.heatmap(await heatmap_cells(conn, b), scope.plan)


async def _with_plan(conn: AsyncConnection, scope: Scope, settings: reports_config.ReportSettings) -> Scope:
    """The scope with the local-time plan of the report calendar over the period the data covers."""
    if scope.plan is not None:
        return scope
    since, until = scope.since, scope.until
    if since is None or until is None:
        lo, hi = (await conn.execute(sa.select(sa.func.min(conv.c.first_message_at), sa.func.max(conv.c.first_message_at)))).one()
        since = since or lo or scope.now
        until = until or hi or scope.now
    until = max(until, scope.now)  # resolutions of the period's conversations may come after it
    return replace(scope, plan=reports.local_plan(settings.calendar, since, until))


# --- rows: drill-down, CSV, what-if ---------------------------------------------------------------


def _row_stmt(b: Any, metric: str, extra: Mapping[str, int]) -> Any:
    cond = {
        "all": sa.true(), "answered": b.c.answered == 1, "unanswered": b.c.answered == 0, "met": b.c.met == 1,
        "breached": b.c.breached == 1, "late": sa.and_(b.c.decided == 1, b.c.within == 0), "off_hours": b.c.off == 1,
        "incident": b.c.incident == 1, "resolved": b.c.resolution_s.is_not(None),
    }[metric]
    stmt = sa.select(b).where(cond)
    for name, value in extra.items():  # day, week or how, from a trend point or a heatmap cell
        stmt = stmt.where(b.c[name] == value)
    return stmt


async def drill(engine: AsyncEngine, scope: Scope, settings: reports_config.ReportSettings, metric: str = "all",
                extra: Mapping[str, int] | None = None, limit: int = 200) -> list[dict[str, Any]]:
    """The conversations behind one figure, slowest first response first (unanswered on top)."""
    if metric not in DRILL_METRICS:
        raise ValueError(f"unknown metric {metric!r}")
    async with engine.connect() as conn:
        scope = await _with_plan(conn, scope, settings)
        assert scope.plan is not None
        b = derived(base_select(scope, engine.dialect.name).subquery("rows"), scope.plan)
        inner = _row_stmt(b, metric, extra or {}).subquery("d")
        stmt = (sa.select(inner, conv.c.first_message_at, conv.c.first_response_at, conv.c.snippet, conv.c.status)
                .join(conv, conv.c.id == inner.c.id)
                .order_by(inner.c.wall_s.is_not(None), inner.c.wall_s.desc(), inner.c.id).limit(limit))
        return [dict(r._mapping) for r in await conn.execute(stmt)]


async def conversation_rows(engine: AsyncEngine, scope: Scope, settings: reports_config.ReportSettings) -> AsyncIterator[dict[str, Any]]:
    """One row per conversation with every clock value, streamed from the server in first-message order."""
    async with engine.connect() as conn:
        scope = await _with_plan(conn, scope, settings)
        assert scope.plan is not None
        b = derived(base_select(scope, engine.dialect.name).subquery("rows"), scope.plan)
        nr = clock.alias("nr")
        nrt = (sa.select(nr.c.conversation_id, sa.func.count().label("next_responses"),
                         sa.func.max(nr.c.wall_s).label("nrt_wall_max_s"),
                         sa.func.max(nr.c.business_s).label("nrt_business_max_s"))
               .where(nr.c.target == "next_response", nr.c.fulfilled_at.is_not(None))
               .group_by(nr.c.conversation_id).subquery("nrt"))
        stmt = (
            sa.select(b, conv.c.status, conv.c.policy, clock.c.calendar, conv.c.first_message_at,
                      clock.c.fulfilled_at, conv.c.resolved_at, clock.c.business_due, clock.c.wall_due,
                      nrt.c.next_responses, nrt.c.nrt_wall_max_s, nrt.c.nrt_business_max_s)
            .join(conv, conv.c.id == b.c.id)
            .outerjoin(clock, sa.and_(clock.c.conversation_id == b.c.id, clock.c.target == FIRST))
            .outerjoin(nrt, nrt.c.conversation_id == b.c.id)
            .order_by(conv.c.first_message_at, b.c.id)
        )
        result = await conn.stream(stmt)
        async for r in result:
            yield _csv_row(dict(r._mapping))


async def response_pairs(engine: AsyncEngine, scope: Scope) -> list[tuple[datetime, datetime | None]]:
    """(first message, first response or None) of every contract conversation in scope, for what-if."""
    stmt = (sa.select(conv.c.first_message_at, conv.c.first_response_at)
            .select_from(conv.outerjoin(user, user.c.id == conv.c.assignee_id))
            .where(conv.c.first_message_at.is_not(None), conv.c.policy.in_(sorted(scope.contract_policies))))
    if scope.since is not None:
        stmt = stmt.where(conv.c.first_message_at >= scope.since)
    if scope.until is not None:
        stmt = stmt.where(conv.c.first_message_at < scope.until)
    if scope.exclude_incidents:
        stmt = stmt.where(conv.c.incident_id.is_(None))
    for name, value in scope.where.items():
        stmt = stmt.where(dimension(name) == value)
    async with engine.connect() as conn:
        return [(r[0], r[1]) for r in await conn.execute(stmt)]


def make_scope(settings: reports_config.ReportSettings, now: datetime, *, since: datetime | None = None,
               until: datetime | None = None, exclude_incidents: bool | None = None,
               where: Mapping[str, str] | None = None) -> Scope:
    """A Scope from the report settings and a request's period and filters."""
    return Scope(
        now=now, since=since, until=until,
        exclude_incidents=settings.exclude_incidents if exclude_incidents is None else exclude_incidents,
        contract_policies=settings.contract_policies, expectation_s=settings.customer_expectation_s,
        where=dict(where or {}),
    )
