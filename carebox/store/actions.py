"""Writes from the inbox and admin paths: assignment, status, notes, users; each audited."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from carebox.errors import NotFound
from carebox.ports import Status
from carebox.store.engine import write_transaction
from carebox.store.queries import audit, conv, note, sla_event, user



async def _audit(c: AsyncConnection, now: datetime, user_id: int | None, action: str, conversation_id: int | None, **detail: Any) -> None:
    await c.execute(audit.insert().values(
        at=now, user_id=user_id, action=action, conversation_id=conversation_id,
        detail=orjson.dumps(detail, default=str).decode(),
    ))


async def _require_conversation(c: AsyncConnection, conversation_id: int) -> dict[str, Any]:
    row = (await c.execute(sa.select(conv).where(conv.c.id == conversation_id))).first()
    if row is None:
        raise NotFound(f"conversation {conversation_id}")
    return dict(row._mapping)


async def assign(engine: AsyncEngine, conversation_id: int, assignee_id: int | None, by_user_id: int | None, now: datetime) -> None:
    """Assign a conversation to a user (None: unassign)."""
    async with write_transaction(engine) as c:
        before = await _require_conversation(c, conversation_id)
        if assignee_id is not None:
            if (await c.execute(sa.select(user.c.id).where(user.c.id == assignee_id))).first() is None:
                raise NotFound(f"user {assignee_id}")
        await c.execute(conv.update().where(conv.c.id == conversation_id).values(assignee_id=assignee_id))
        await _audit(c, now, by_user_id, "assign", conversation_id, before=before["assignee_id"], after=assignee_id)


async def set_status(engine: AsyncEngine, conversation_id: int, status: Status, by_user_id: int | None, now: datetime) -> None:
    """Open, set pending or resolve a conversation; resolving stops its due times."""
    async with write_transaction(engine) as c:
        before = await _require_conversation(c, conversation_id)
        values: dict[str, Any] = {"status": status.value}
        if status is Status.RESOLVED:
            values.update(resolved_at=now, due_business=None, due_wall=None)
            await c.execute(sla_event.insert().values(
                conversation_id=conversation_id, target="conversation", kind="resolve", at=now, detail="resolved by agent",
            ))
        else:
            values["resolved_at"] = None
        await c.execute(conv.update().where(conv.c.id == conversation_id).values(**values))
        await _audit(c, now, by_user_id, "status", conversation_id, before=before["status"], after=status.value)


async def add_note(engine: AsyncEngine, conversation_id: int, user_id: int, text: str, now: datetime) -> None:
    """An internal note; never counts as a response."""
    async with write_transaction(engine) as c:
        await _require_conversation(c, conversation_id)
        await c.execute(note.insert().values(conversation_id=conversation_id, user_id=user_id, text=text, created_at=now))
        await _audit(c, now, user_id, "note", conversation_id)


async def add_user(engine: AsyncEngine, username: str, password_hash: str, role: str, now: datetime, display_name: str = "") -> int:
    """Create a user, or update the password and role of an existing one; returns its id."""
    async with write_transaction(engine) as c:
        existing = (await c.execute(sa.select(user.c.id).where(user.c.username == username))).scalar()
        if existing is not None:
            await c.execute(user.update().where(user.c.id == existing).values(password_hash=password_hash, role=role, active=True))
            await _audit(c, now, None, "user.update", None, username=username, role=role)
            return int(existing)
        new_id = (await c.execute(user.insert().values(
            username=username, display_name=display_name or username, password_hash=password_hash, role=role,
            created_at=now,
        ).returning(user.c.id))).scalar_one()
        await _audit(c, now, None, "user.add", None, username=username, role=role)
        return int(new_id)


async def record_audit(engine: AsyncEngine, now: datetime, user_id: int | None, action: str, conversation_id: int | None = None, **detail: Any) -> None:
    """Append an audit event on its own."""
    async with write_transaction(engine) as c:
        await _audit(c, now, user_id, action, conversation_id, **detail)
