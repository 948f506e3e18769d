"""Report facts: one row per conversation with every value a report reads, and additive cells per local day,
refreshed incrementally from append-only ids. SQLite only: PostgreSQL reports read conversations directly."""

from __future__ import annotations

import hashlib
import importlib.metadata
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from carebox import reports
from carebox.calendar import Calendar
from carebox.models import (
    AuditEvent,
    ConversationFact,
    Mention,
    ReportCell,
    ReportFactsState,
    ReportNextResponse,
    SlaClock,
    SlaEvent,
)
from carebox.store.engine import write_transaction
from carebox.store.report_measures import open_before
from carebox.store.report_sql import (
    conv,
    dimension,
    epoch_of,
    flag,
    is_open,
    local_of,
    user,
)

log = logging.getLogger(__name__)
FACTS_VERSION = 1  # bump when a fact's definition changes: every store rebuilds once
facts = ConversationFact.__table__  # type: ignore[attr-defined]
cells = ReportCell.__table__  # type: ignore[attr-defined]
state = ReportFactsState.__table__  # type: ignore[attr-defined]
nexts = ReportNextResponse.__table__  # type: ignore[attr-defined]
clock = SlaClock.__table__  # type: ignore[attr-defined]
CELL_DIMS = ("", *reports.DIMENSIONS, "how")  # "" = every conversation (value "")
DAY_INDEX = "ix_cf_day_wall_s"  # the one index that finds every row of a day (carebox.models)
BUILDING = "building:"  # fingerprint prefix while a rebuild runs
BUILD_TIMEOUT = timedelta(hours=1)  # a rebuild claimed longer ago than this was abandoned (crash): start again
REBUILD_CHUNK = 100_000  # conversation ids per write transaction of a rebuild
# incident links write no event: conversations whose link differs from their facts', each side read along its
# incident index (the CROSS JOIN keeps that side outer)
MOVED_INCIDENT_LINKS = (
    ("SELECT c.id FROM conversation AS c INDEXED BY ix_conversation_incident CROSS JOIN conversation_facts AS f "
     "ON f.conversation_id = c.id WHERE c.incident_id IS NOT NULL AND f.incident_id IS NOT c.incident_id"),
    ("SELECT f.conversation_id FROM conversation_facts AS f INDEXED BY ix_cf_incident CROSS JOIN conversation AS c "
     "ON c.id = f.conversation_id WHERE f.incident_id IS NOT NULL AND c.incident_id IS NOT f.incident_id"),
)


@dataclass(frozen=True, slots=True)
class FactRules:
    """The settings facts depend on; a change of fingerprint rebuilds them."""

    calendar: Calendar
    contract_policies: frozenset[str]
    expectation_s: float

    def fingerprint(self) -> str:
        """A stable digest of the rules (sets sorted: their order varies between processes)."""
        cal = self.calendar
        parts = (FACTS_VERSION, cal.name, cal.timezone, cal.weekly, cal.always_open, cal.holiday_country,
                 cal.holiday_subdivision, sorted(cal.closed_dates), sorted(cal.partial_days.items()), cal.version,
                 sorted(self.contract_policies), float(self.expectation_s), importlib.metadata.version("holidays"))
        return hashlib.sha256(repr(parts).encode()).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class Refreshed:
    """What a refresh did."""

    rebuilt: bool
    conversations: int  # facts rows written
    days: int  # local days whose cells were recomputed (-1: all)
    ready: bool = True  # False while another process rebuilds the facts


def supported(engine: AsyncEngine) -> bool:
    """Whether reports on this engine read facts (SQLite) rather than conversations."""
    return engine.dialect.name == "sqlite"


def fact_select(plan: reports.LocalTimePlan, rules: FactRules, ids: sa.FromClause | None) -> sa.Select:
    """The facts rows of the conversations in `ids` (all when None), in conversation_facts column order."""
    epoch = epoch_of(conv.c.first_message_at, "sqlite")
    local = local_of(plan, epoch)
    day = local // reports.DAY_S
    done = clock.c.fulfilled_at.is_not(None)
    contract = conv.c.policy.in_(sorted(rules.contract_policies)) if rules.contract_policies else sa.false()
    resolved = conv.c.resolved_at.is_not(None)
    res_local = local_of(plan, epoch_of(conv.c.resolved_at, "sqlite"))
    nr = clock.alias("nr")
    nrt = (sa.select(nr.c.conversation_id, sa.func.count().label("n"), sa.func.sum(nr.c.wall_s).label("w"),
                     sa.func.sum(nr.c.business_s).label("b"))
           .where(nr.c.target == "next_response", nr.c.fulfilled_at.is_not(None)))
    if ids is not None:
        nrt = nrt.where(nr.c.conversation_id.in_(sa.select(ids.c.id)))
    nrt_q = nrt.group_by(nr.c.conversation_id).subquery("nrt")
    stmt = (
        sa.select(
            conv.c.id, conv.c.first_message_at, day, day - (day + 3) % 7,
            (local + 3 * reports.DAY_S) // 3600 % 168, flag(sa.not_(is_open(plan, local))),
            *[dimension(d) for d in reports.DIMENSIONS], conv.c.customer_id, conv.c.incident_id,
            flag(conv.c.incident_id.is_not(None)), flag(done),
            flag(sa.and_(contract, done, clock.c.fulfilled_at <= clock.c.business_due)),
            flag(sa.and_(contract, clock.c.fulfilled_at > clock.c.business_due)),
            flag(sa.and_(contract, ~done, clock.c.business_due.is_not(None))),
            flag(sa.and_(done, clock.c.wall_s <= rules.expectation_s)),
            sa.case((done, clock.c.wall_s), else_=None), sa.case((done, clock.c.business_s), else_=None),
            sa.case((sa.and_(contract, ~done), clock.c.business_due), else_=None),
            sa.case((done, None), else_=conv.c.first_message_at),
            conv.c.sentiment_open, conv.c.sentiment_last,
            sa.case((resolved, epoch_of(conv.c.resolved_at, "sqlite") - epoch), else_=None),
            sa.case((resolved, open_before(plan, res_local) - open_before(plan, local)), else_=None),
            sa.func.coalesce(nrt_q.c.n, 0), nrt_q.c.w, nrt_q.c.b,
        )
        .select_from(conv.outerjoin(clock, sa.and_(clock.c.conversation_id == conv.c.id, clock.c.target == "first_response"))
                     .outerjoin(user, user.c.id == conv.c.assignee_id)
                     .outerjoin(nrt_q, nrt_q.c.conversation_id == conv.c.id))
        .where(conv.c.first_message_at.is_not(None))
    )
    return stmt.where(conv.c.id.in_(sa.select(ids.c.id))) if ids is not None else stmt


FACT_COLUMNS = ("conversation_id", "first_at", "day", "week", "how", "off", *reports.DIMENSIONS, "customer_id",
                "incident_id", "inc", "answered", "met", "late", "open_contract", "within", "wall_s", "business_s",
                "pending_due", "unanswered_at", "sentiment_open", "sentiment_last", "resolution_s", "res_business_s",
                "nrt_n", "nrt_wall_sum", "nrt_business_sum")


def cell_sums(src: sa.FromClause) -> list[sa.ColumnElement]:
    """The additive sums of report_cells over rows of conversation_facts (or any select with its columns)."""
    f = src.c
    return [
        sa.func.count().label("conversations"), sa.func.sum(f.answered).label("answered"),
        sa.func.count(f.wall_s).label("n_wall"), sa.func.sum(f.wall_s).label("wall_sum"),
        sa.func.count(f.business_s).label("n_business"), sa.func.sum(f.business_s).label("business_sum"),
        sa.func.sum(f.met).label("met"), sa.func.sum(f.late).label("late"),
        sa.func.sum(f.open_contract).label("open_contract"), sa.func.sum(f.within).label("within"),
        sa.func.sum(f.off).label("off"), sa.func.sum(f.off * f.answered).label("off_answered"),
        sa.func.sum(sa.case((f.off == 1, f.wall_s), else_=None)).label("off_wait"),
        sa.func.sum(f.wall_s - f.business_s).label("wait_outside"),
        sa.func.count(f.sentiment_open).label("sent_open_n"), sa.func.sum(f.sentiment_open).label("sent_open_sum"),
        sa.func.count(f.sentiment_last).label("sent_last_n"), sa.func.sum(f.sentiment_last).label("sent_last_sum"),
        sa.func.count(f.resolution_s).label("resolved"), sa.func.sum(f.resolution_s).label("resolution_sum"),
        sa.func.count(f.res_business_s).label("res_business_n"), sa.func.sum(f.res_business_s).label("res_business_sum"),
        sa.func.sum(f.nrt_n).label("nrt_n"), sa.func.sum(f.nrt_wall_sum).label("nrt_wall_sum"),
        sa.func.sum(f.nrt_business_sum).label("nrt_business_sum"),
        sa.func.min(f.network).label("net_min"), sa.func.max(f.network).label("net_max"),
    ]


SUM_COLUMNS = tuple(c.name for c in cell_sums(facts))


def _apply_fresh_sql() -> tuple[str, ...]:
    """The statements of _apply_fresh. Each pairs the few fresh rows with their facts rows fresh side first (the
    CROSS JOIN keeps the temporary table outer: an UPDATE ... FROM would let the planner walk every fact)."""
    indexed = sorted({c.name for i in facts.indexes for c in i.columns} - {"conversation_id"})
    columns = FACT_COLUMNS[1:]
    plain = [n for n in columns if n not in indexed]
    pairs = "report_fresh AS r CROSS JOIN conversation_facts AS f ON f.conversation_id = r.conversation_id"

    def differs(names: list[str] | tuple[str, ...]) -> str:
        return " OR ".join(f"f.{n} IS NOT r.{n}" for n in names)

    def update(names: list[str]) -> str:
        target = names[0] if len(names) == 1 else f"({', '.join(names)})"
        return (f"UPDATE conversation_facts SET {target} = (SELECT {', '.join(names)} FROM report_fresh AS r "
                f"WHERE r.conversation_id = conversation_facts.conversation_id) WHERE conversation_id IN "
                f"(SELECT r.conversation_id FROM {pairs} WHERE {differs(names)})")

    days = ("INSERT OR IGNORE INTO report_touched (day) SELECT f.day FROM report_dirty AS d "
            "CROSS JOIN conversation_facts AS f ON f.conversation_id = d.id")
    every = ", ".join(FACT_COLUMNS)
    return (
        f"DELETE FROM report_dirty WHERE id IN (SELECT r.conversation_id FROM {pairs} WHERE NOT ({differs(columns)}))",
        "DELETE FROM report_fresh WHERE conversation_id NOT IN (SELECT id FROM report_dirty)",
        days,  # the days they were on
        ("DELETE FROM conversation_facts WHERE conversation_id IN (SELECT id FROM report_dirty) "
         "AND conversation_id NOT IN (SELECT conversation_id FROM report_fresh)"),
        update(plain), *[update([n]) for n in indexed],
        (f"INSERT INTO conversation_facts ({every}) SELECT {every} FROM report_fresh AS r "
         "WHERE NOT EXISTS (SELECT 1 FROM conversation_facts AS f WHERE f.conversation_id = r.conversation_id)"),
        days,  # the days they are on
    )


APPLY_FRESH = _apply_fresh_sql()


def dim_value(src: sa.FromClause, dim: str) -> sa.ColumnElement:
    """The value of a cell dimension over facts rows, as text ("" for all)."""
    return sa.literal("") if dim == "" else sa.cast(src.c[dim], sa.String) if dim == "how" else src.c[dim]


def _like_facts(name: str) -> sa.Table:
    """A temporary table with the columns of conversation_facts (no index but the key)."""
    return sa.Table(name, sa.MetaData(), *[sa.Column(c.name, c.type, primary_key=c.primary_key) for c in facts.columns],
                    prefixes=["TEMPORARY"])


async def _write_cells(conn: AsyncConnection, touched: sa.Table | None, dims: tuple[str, ...] = CELL_DIMS) -> None:
    """Recompute the cells of `dims` over the facts rows on the local days in `touched` (all days when None). The
    rows of those days are copied once (along the day index) and every dimension sums the copy."""
    gone = cells.delete().where(cells.c.dim.in_(dims))
    src = facts
    if touched is not None:
        await conn.execute(gone.where(cells.c.day.in_(sa.select(touched.c.day))))
        src = _like_facts("report_day_rows")
        await conn.run_sync(lambda c: src.create(c, checkfirst=True))
        await conn.execute(src.delete())
        await conn.exec_driver_sql(f"INSERT INTO report_day_rows SELECT * FROM conversation_facts INDEXED BY {DAY_INDEX} "
                                   f"WHERE day IN (SELECT day FROM {touched.name})")
    else:
        await conn.execute(gone)
    for dim in dims:
        value = dim_value(src, dim)
        stmt = (sa.select(sa.literal(dim), value, src.c.day, src.c.inc, *cell_sums(src))
                .group_by(value, src.c.day, src.c.inc))
        await conn.execute(cells.insert().from_select(["dim", "value", "day", "inc", *SUM_COLUMNS], stmt))


async def _write_facts(conn: AsyncConnection, rules: FactRules, ids: sa.FromClause | None,
                       id_range: tuple[int, int] | None = None, into: sa.Table = facts) -> int:
    """Insert the facts of `ids`, or of the ids in `id_range` ([lo, hi)), or of all conversations into `into`
    (conversation_facts or a table like it), and their fulfilled next-response clocks; the count written."""
    if id_range is not None:
        chunk = sa.select(conv.c.id.label("id")).where(conv.c.id >= id_range[0], conv.c.id < id_range[1]).subquery("chunk")
        ids = chunk
    span = sa.select(sa.func.min(conv.c.first_message_at), sa.func.max(conv.c.first_message_at),
                     sa.func.max(conv.c.resolved_at), sa.func.count()).where(conv.c.first_message_at.is_not(None))
    if ids is not None:
        span = span.where(conv.c.id.in_(sa.select(ids.c.id)))
    lo, hi, resolved, count = (await conn.execute(span)).one()
    if not count:
        return 0
    plan = reports.local_plan(rules.calendar, lo, max(hi, resolved or hi))
    await conn.execute(into.insert().from_select(list(FACT_COLUMNS), fact_select(plan, rules, ids)))
    nr = (sa.select(clock.c.id, clock.c.conversation_id, clock.c.wall_s, clock.c.business_s)
          .join(into, into.c.conversation_id == clock.c.conversation_id)  # conversations with facts only
          .where(clock.c.target == "next_response", clock.c.fulfilled_at.is_not(None)))
    if ids is not None:
        nr = nr.where(clock.c.conversation_id.in_(sa.select(ids.c.id)))
    await conn.execute(nexts.insert().from_select(["clock_id", "conversation_id", "wall_s", "business_s"], nr))
    return int(count)


async def _watermarks(conn: AsyncConnection) -> dict[str, int]:
    """The newest ids of the append-only tables and the number of conversations."""
    row = (await conn.execute(sa.select(
        sa.select(sa.func.coalesce(sa.func.max(conv.c.id), 0)).scalar_subquery(),
        *[sa.select(sa.func.coalesce(sa.func.max(t.id), 0)).scalar_subquery() for t in (Mention, SlaEvent, AuditEvent)],
        sa.select(sa.func.count()).select_from(conv).scalar_subquery(),
    ))).one()
    return dict(zip(("conversation_wm", "mention_wm", "slaevent_wm", "auditevent_wm", "conversations"), row, strict=True))


async def _rebuild(engine: AsyncEngine, rules: FactRules, top: int) -> int:
    """Facts and cells from scratch, in steps that each hold the write lock briefly (ingest goes on in between):
    facts by chunks of ids up to `top` (indexes dropped meanwhile), then each index, then the cells of each
    dimension. The caller has claimed the build and emptied the tables."""
    written = 0
    for lo in range(0, top + 1, REBUILD_CHUNK):
        async with write_transaction(engine) as conn:
            written += await _write_facts(conn, rules, None, (lo, lo + REBUILD_CHUNK))
    for index in sorted(facts.indexes, key=lambda i: i.name):
        async with write_transaction(engine) as conn:
            # A pooled connection may still hold the schema from before the claim dropped the indexes: SQLite
            # checks DDL names against its cached schema, so read the catalogue first to make it reload.
            await conn.exec_driver_sql("SELECT count(*) FROM sqlite_master")
            cache = (await conn.exec_driver_sql("PRAGMA cache_size")).scalar_one()
            await conn.exec_driver_sql("PRAGMA cache_size = -262144")  # 256 MiB: the index sort stays in memory
            try:
                await conn.execute(sa.schema.CreateIndex(index))
            finally:
                await conn.exec_driver_sql(f"PRAGMA cache_size = {int(cache)}")
    for dim in CELL_DIMS:
        async with write_transaction(engine) as conn:
            await _write_cells(conn, None, (dim,))
    return written


async def _claim_rebuild(conn: AsyncConnection, old: Any, new: dict[str, int], fingerprint: str, now: datetime) -> None:
    """Mark the facts as being rebuilt (other processes read conversations meanwhile), empty them and drop
    their indexes; the watermarks are those at the start, so that the catch-up after the build sees every change
    made during it."""
    values = {**new, "fingerprint": BUILDING + fingerprint, "refreshed_at": now}
    if old is None:
        await conn.execute(state.insert().values(id=1, **values))
    else:
        await conn.execute(state.update().where(state.c.id == 1).values(**values))
    for t in (facts, cells, nexts):
        await conn.execute(t.delete())
    for index in sorted(facts.indexes, key=lambda i: i.name):
        await conn.execute(sa.schema.DropIndex(index, if_exists=True))


async def _dirty_ids(conn: AsyncConnection, old: dict[str, int], new: dict[str, int]) -> sa.Table:
    """A temporary table of the conversations touched since the watermarks `old` (ids up to `new`)."""
    dirty = sa.Table("report_dirty", sa.MetaData(), sa.Column("id", sa.BigInteger, primary_key=True), prefixes=["TEMPORARY"])
    await conn.run_sync(lambda c: dirty.create(c, checkfirst=True))
    await conn.execute(dirty.delete())
    sources = [sa.select(conv.c.id).where(conv.c.id > old["conversation_wm"], conv.c.id <= new["conversation_wm"])]
    for model, key in ((Mention, "mention_wm"), (SlaEvent, "slaevent_wm"), (AuditEvent, "auditevent_wm")):
        t = model.__table__  # type: ignore[attr-defined]
        sources.append(sa.select(t.c.conversation_id).where(t.c.id > old[key], t.c.id <= new[key],
                                                            t.c.conversation_id.is_not(None)))
    if new["conversations"] != old["conversations"] + new["conversation_wm"] - old["conversation_wm"]:
        # conversations were deleted (retention): their facts go
        sources.append(sa.select(facts.c.conversation_id).where(facts.c.conversation_id.not_in(sa.select(conv.c.id))))
    await conn.execute(sa.insert(dirty).prefix_with("OR IGNORE").from_select(["id"], sa.union(*sources)))
    for moved in MOVED_INCIDENT_LINKS:
        await conn.exec_driver_sql(f"INSERT OR IGNORE INTO report_dirty (id) {moved}")
    return dirty


async def _refresh_dirty(conn: AsyncConnection, rules: FactRules, dirty: sa.Table) -> tuple[int, int]:
    """Rewrite the facts of the dirty conversations and the cells of every local day they were or are on."""
    touched = sa.Table("report_touched", sa.MetaData(), sa.Column("day", sa.Integer, primary_key=True), prefixes=["TEMPORARY"])
    fresh = _like_facts("report_fresh")
    for t in (touched, fresh):
        await conn.run_sync(lambda c, t=t: t.create(c, checkfirst=True))
        await conn.execute(t.delete())
    await conn.execute(nexts.delete().where(nexts.c.conversation_id.in_(sa.select(dirty.c.id))))
    written = await _write_facts(conn, rules, dirty, into=fresh)
    await _apply_fresh(conn)
    n_days = (await conn.execute(sa.select(sa.func.count()).select_from(touched))).scalar_one()
    if n_days:
        await _write_cells(conn, touched)
    return written, int(n_days)


async def _apply_fresh(conn: AsyncConnection) -> None:
    """Make conversation_facts hold the report_fresh rows of the report_dirty conversations, writing only what
    differs: an unchanged row is left alone, a changed one is updated a column at a time (an index is written only
    when one of its columns changed), so a mention on an old conversation costs no index write; report_touched
    gets the local days of every row removed, changed or added."""
    for sql in APPLY_FRESH:
        await conn.exec_driver_sql(sql)


async def refresh(engine: AsyncEngine, rules: FactRules, now: datetime, *, rebuild: bool = False) -> Refreshed:
    """Bring facts and cells up to date: incrementally from the watermarks (one write transaction: readers see
    the old facts or the new ones), or from scratch when the rules' fingerprint changed (or `rebuild`). While
    another process rebuilds them, `ready` is False: read conversations instead."""
    fingerprint = rules.fingerprint()
    async with write_transaction(engine) as conn:
        old = (await conn.execute(sa.select(state).where(state.c.id == 1))).mappings().one_or_none()
        new = await _watermarks(conn)
        current = old is not None and not rebuild and old["fingerprint"] == fingerprint
        if current and all(old[k] == v for k, v in new.items()) and not await _incident_links_moved(conn):
            return Refreshed(False, 0, 0)
        if current:
            dirty = await _dirty_ids(conn, dict(old), new)
            written, days = await _refresh_dirty(conn, rules, dirty)
            await conn.execute(state.update().where(state.c.id == 1).values(**new, refreshed_at=now))
            return Refreshed(False, written, days)
        if (old is not None and not rebuild and old["fingerprint"].startswith(BUILDING)
                and old["refreshed_at"] > now - BUILD_TIMEOUT):
            return Refreshed(False, 0, 0, ready=False)  # another process is building them
        await _claim_rebuild(conn, old, new, fingerprint, now)
    written = await _rebuild(engine, rules, new["conversation_wm"])
    async with write_transaction(engine) as conn:
        await conn.exec_driver_sql("ANALYZE conversation_facts")
        await conn.execute(state.update().where(state.c.id == 1).values(fingerprint=fingerprint))
    log.info("report facts rebuilt: %d conversations", written)
    await refresh(engine, rules, now)  # what changed during the build
    return Refreshed(True, written, -1)


async def _incident_links_moved(conn: AsyncConnection) -> bool:
    """Whether a conversation was linked to or unlinked from an incident since the facts were written."""
    found = " UNION ALL ".join(f"SELECT EXISTS ({moved})" for moved in MOVED_INCIDENT_LINKS)
    return any(r[0] for r in await conn.exec_driver_sql(found))
