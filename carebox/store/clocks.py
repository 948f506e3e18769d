"""SQL for timed SLA events: running clocks, marking warnings and breaches at most once."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from carebox.models import CalendarVersion
from carebox.store.engine import write_transaction
from carebox.store.ingest import (
    clock_t,
    conversation_t,
    event_t,
    load_cursor,
    save_cursors,
)

calendar_version_t: sa.Table = CalendarVersion.__table__  # type: ignore[attr-defined]
# a cursor row, not a connector's: the last SLA event id the sweep read for late answers, kept across restarts
LATE_ANSWERS_READ = "sla-sweep:late-answers"


async def running(engine: AsyncEngine) -> list[dict[str, Any]]:
    """Every clock not yet fulfilled, with its conversation's status and assignee."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            sa.select(clock_t, conversation_t.c.status, conversation_t.c.assignee_id)
            .join(conversation_t, conversation_t.c.id == clock_t.c.conversation_id)
            .where(clock_t.c.fulfilled_at.is_(None), conversation_t.c.status != "resolved")
        )
        return [dict(r._mapping) for r in rows]


async def overdue(engine: AsyncEngine, now: datetime) -> list[tuple[int, str]]:
    """(clock id, "warn" | "breach") for instants passed without their event (the sweep's work)."""
    async with engine.connect() as conn:
        open_ = sa.and_(clock_t.c.fulfilled_at.is_(None), conversation_t.c.status == "open")
        joined = clock_t.join(conversation_t, conversation_t.c.id == clock_t.c.conversation_id)
        warn = await conn.execute(sa.select(clock_t.c.id).select_from(joined).where(
            open_, clock_t.c.warned_at.is_(None), clock_t.c.warn_at <= now, clock_t.c.breached_at.is_(None)))
        breach = await conn.execute(sa.select(clock_t.c.id).select_from(joined).where(
            open_, clock_t.c.breached_at.is_(None), clock_t.c.business_due <= now))
        return [(i, "warn") for (i,) in warn] + [(i, "breach") for (i,) in breach]


async def answered_late(engine: AsyncEngine, after_event: int) -> tuple[list[dict[str, Any]], int]:
    """Clocks answered after their due time that were running (not paused) and never breached, from the
    fulfil events logged after event id `after_event`: their breach job did not run in time (carebox was
    down, or the job was late). Returns them and the last event id read."""
    async with engine.connect() as conn:
        last = int((await conn.execute(sa.select(sa.func.coalesce(sa.func.max(event_t.c.id), 0)))).scalar_one())
        if last <= after_event:
            return [], after_event
        rows = await conn.execute(
            sa.select(clock_t, conversation_t.c.status, conversation_t.c.assignee_id)
            .join(event_t, event_t.c.clock_id == clock_t.c.id)
            .join(conversation_t, conversation_t.c.id == clock_t.c.conversation_id)
            .where(event_t.c.id > after_event, event_t.c.id <= last, event_t.c.kind == "fulfil",
                   event_t.c.at > event_t.c.business_due, clock_t.c.breached_at.is_(None),
                   clock_t.c.paused_at.is_(None), clock_t.c.fulfilled_at > clock_t.c.business_due))
        return [dict(r._mapping) for r in rows], last


async def late_answers_read(engine: AsyncEngine) -> int:
    """The last SLA event id a sweep read for late answers, as the last process left it (0: none yet)."""
    async with engine.connect() as conn:
        value = await load_cursor(conn, LATE_ANSWERS_READ)
    return int(value) if value else 0


async def save_late_answers_read(engine: AsyncEngine, event_id: int, now: datetime) -> None:
    """Remember the last SLA event id read for late answers, for the first sweep after a restart."""
    async with write_transaction(engine) as conn:
        await save_cursors(conn, {LATE_ANSWERS_READ: str(event_id)}, now)


async def load_for_update(conn: AsyncConnection, clock_id: int) -> dict[str, Any] | None:
    """A clock with its conversation's status, inside the caller's write transaction."""
    stmt = (sa.select(clock_t, conversation_t.c.status, conversation_t.c.assignee_id)
            .join(conversation_t, conversation_t.c.id == clock_t.c.conversation_id)
            .where(clock_t.c.id == clock_id))
    if conn.dialect.name == "postgresql":
        # a deposed leader's last job and the new leader's may overlap: the row lock makes the second
        # one see the first one's mark, so an SLA event is still recorded at most once
        stmt = stmt.with_for_update(of=clock_t)
    row = (await conn.execute(stmt)).first()
    return dict(row._mapping) if row else None


async def mark(conn: AsyncConnection, clock_id: int, values: dict[str, Any], event: dict[str, Any]) -> None:
    """Update a clock (when something changed on it) and log the event."""
    if values:
        await conn.execute(clock_t.update().where(clock_t.c.id == clock_id).values(**values))
    await conn.execute(event_t.insert().values(**event))


async def event_logged(conn: AsyncConnection, clock_id: int, kind: str, detail: str) -> bool:
    """Whether this exact event was already logged for the clock (escalation steps fire once)."""
    found = await conn.execute(sa.select(event_t.c.id).where(
        event_t.c.clock_id == clock_id, event_t.c.kind == kind, event_t.c.detail == detail).limit(1))
    return found.first() is not None


async def by_ids(engine: AsyncEngine, ids: list[int]) -> list[dict[str, Any]]:
    """These clocks (fulfilled ones too, so their jobs can be cancelled) with their conversation's status and assignee."""
    out: list[dict[str, Any]] = []
    async with engine.connect() as conn:
        for start in range(0, len(ids), 500):
            rows = await conn.execute(
                sa.select(clock_t, conversation_t.c.status, conversation_t.c.assignee_id)
                .join(conversation_t, conversation_t.c.id == clock_t.c.conversation_id)
                .where(clock_t.c.id.in_(ids[start:start + 500]))
            )
            out.extend(dict(r._mapping) for r in rows)
    return out


async def keep_calendar_versions(engine: AsyncEngine, definitions: Mapping[tuple[str, int], str], now: datetime) -> dict[tuple[str, int], str]:
    """Store the configured calendar versions not seen before; return every version ever stored."""
    async with write_transaction(engine) as conn:
        stored = {(r.name, r.version): r.definition for r in await conn.execute(sa.select(calendar_version_t))}
        fresh = [{"name": n, "version": v, "definition": d, "created_at": now}
                 for (n, v), d in definitions.items() if (n, v) not in stored]
        if fresh:
            await conn.execute(calendar_version_t.insert(), fresh)
    return {**stored, **{(f["name"], f["version"]): f["definition"] for f in fresh}}


async def rebase(engine: AsyncEngine, clock: Mapping[str, Any], update: Mapping[str, Any], event: Mapping[str, Any]) -> None:
    """Move a clock to a new calendar version and bring its conversation's due times along."""
    async with write_transaction(engine) as conn:
        await conn.execute(clock_t.update().where(clock_t.c.id == clock["id"]).values(**update))
        await conn.execute(event_t.insert().values(**event))
        live = sa.and_(clock_t.c.conversation_id == clock["conversation_id"], clock_t.c.fulfilled_at.is_(None),
                       clock_t.c.paused_at.is_(None))
        await conn.execute(conversation_t.update().where(conversation_t.c.id == clock["conversation_id"]).values(
            due_business=sa.select(sa.func.min(clock_t.c.business_due)).where(live).scalar_subquery(),
            due_wall=sa.select(sa.func.min(clock_t.c.wall_due)).where(live).scalar_subquery(),
        ))
