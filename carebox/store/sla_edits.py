"""SQL for calendars and policies saved from the web: each save a new version, with who and when."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from carebox.errors import CareboxError
from carebox.models import AuditEvent, CalendarVersion, SlaEdit, User
from carebox.store.engine import write_transaction

edit_t: sa.Table = SlaEdit.__table__  # type: ignore[attr-defined]
calendar_version_t: sa.Table = CalendarVersion.__table__  # type: ignore[attr-defined]
audit_t: sa.Table = AuditEvent.__table__  # type: ignore[attr-defined]
user_t: sa.Table = User.__table__  # type: ignore[attr-defined]


class EditConflict(CareboxError):
    """Someone saved the same calendar or policy since the form was loaded."""


async def latest(engine: AsyncEngine) -> list[dict[str, Any]]:
    """The version in force of every calendar and policy saved from the web, with its author's name."""
    newest = sa.select(sa.func.max(edit_t.c.id)).group_by(edit_t.c.kind, edit_t.c.name).scalar_subquery()
    stmt = (sa.select(edit_t, user_t.c.username).outerjoin(user_t, user_t.c.id == edit_t.c.created_by)
            .where(edit_t.c.id.in_(newest)).order_by(edit_t.c.id))
    async with engine.connect() as conn:
        rows = [dict(r._mapping) for r in await conn.execute(stmt)]
    for row in rows:
        row["definition"] = orjson.loads(row["definition"])
    return rows


async def last_id(engine: AsyncEngine) -> int:
    """The id of the newest save (0 when nothing was saved): a cheap "did anything change" check."""
    async with engine.connect() as conn:
        return int((await conn.execute(sa.select(sa.func.coalesce(sa.func.max(edit_t.c.id), 0)))).scalar_one())


async def history(engine: AsyncEngine, kind: str, name: str, limit: int = 20) -> list[dict[str, Any]]:
    """The latest saves of one calendar or policy, newest first."""
    stmt = (sa.select(edit_t.c.version, edit_t.c.created_at, user_t.c.username)
            .outerjoin(user_t, user_t.c.id == edit_t.c.created_by)
            .where(edit_t.c.kind == kind, edit_t.c.name == name).order_by(edit_t.c.id.desc()).limit(limit))
    async with engine.connect() as conn:
        return [dict(r._mapping) for r in await conn.execute(stmt)]


async def next_calendar_version(engine: AsyncEngine, name: str, configured: int) -> int:
    """A version number no earlier version of this calendar used (kept, saved or configured)."""
    async with engine.connect() as conn:
        kept = (await conn.execute(sa.select(sa.func.max(calendar_version_t.c.version))
                                   .where(calendar_version_t.c.name == name))).scalar()
        saved = (await conn.execute(sa.select(sa.func.max(edit_t.c.version))
                                    .where(edit_t.c.kind == "calendar", edit_t.c.name == name))).scalar()
    return max(configured, kept or 0, saved or 0) + 1


async def save(
    engine: AsyncEngine, kind: str, name: str, table: Mapping[str, Any], *, version: int, edited_version: int,
    user_id: int | None, now: datetime, calendar_definition: str | None = None,
) -> None:
    """Store a new version (and, for a calendar, keep its definition for rebasing) with an audit event.
    EditConflict when another save came first: the form was built on `edited_version`, no longer current."""
    try:
        async with write_transaction(engine) as conn:
            current = (await conn.execute(sa.select(sa.func.max(edit_t.c.version))
                                          .where(edit_t.c.kind == kind, edit_t.c.name == name))).scalar()
            if current is not None and current != edited_version:
                raise EditConflict(f"{kind} {name} is at version {current}, the form edited version {edited_version}")
            await conn.execute(edit_t.insert().values(
                kind=kind, name=name, version=version, definition=orjson.dumps(dict(table)).decode(),
                created_by=user_id, created_at=now))
            if calendar_definition is not None:
                await conn.execute(calendar_version_t.insert().values(
                    name=name, version=version, definition=calendar_definition, created_at=now))
            await conn.execute(audit_t.insert().values(
                at=now, user_id=user_id, action=f"{kind}.edit", conversation_id=None,
                detail=orjson.dumps({"name": name, "version": version, "after": dict(table)}).decode()))
    except IntegrityError as err:  # the same version saved at the same moment by another process
        raise EditConflict(f"{kind} {name} version {version} was saved meanwhile") from err


async def rebase_many(engine: AsyncEngine, moves: list[tuple[Mapping[str, Any], Mapping[str, Any], Mapping[str, Any]]]) -> None:
    """Move clocks to a new calendar version, log their events and bring their conversations' due times along:
    (clock, update, event) triples, written in one transaction with three batched statements."""
    from carebox.store.ingest import clock_t, conversation_t, event_t

    if not moves:
        return
    clock_rows = [{"_id": c["id"], "_version": u["calendar_version"], "_due": u.get("business_due", c["business_due"]),
                   "_warn": u.get("warn_at", c.get("warn_at"))} for c, u, _e in moves]
    live = sa.and_(clock_t.c.conversation_id == sa.bindparam("_conv"), clock_t.c.fulfilled_at.is_(None),
                   clock_t.c.paused_at.is_(None))
    async with write_transaction(engine) as conn:
        await conn.execute(clock_t.update().where(clock_t.c.id == sa.bindparam("_id")).values(
            calendar_version=sa.bindparam("_version"), business_due=sa.bindparam("_due"),
            warn_at=sa.bindparam("_warn")), clock_rows)
        await conn.execute(event_t.insert(), [dict(e) for _c, _u, e in moves])
        await conn.execute(conversation_t.update().where(conversation_t.c.id == sa.bindparam("_conv")).values(
            due_business=sa.select(sa.func.min(clock_t.c.business_due)).where(live).scalar_subquery(),
            due_wall=sa.select(sa.func.min(clock_t.c.wall_due)).where(live).scalar_subquery(),
        ), [{"_conv": cid} for cid in sorted({c["conversation_id"] for c, _u, _e in moves})])
