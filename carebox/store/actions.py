"""Writes from the inbox and admin paths: assignment, status, notes, users; each audited."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Protocol

import orjson
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from carebox.errors import NotFound
from carebox.ports import Status
from carebox.store.engine import write_transaction
from carebox.store.ingest import clock_t as slaclock
from carebox.store.queries import (
    audit,
    canned,
    conv,
    handling,
    note,
    profile,
    sla_event,
    token,
    user,
)


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


class StatusClocks(Protocol):
    """What a status change needs from the SLA engine (carebox.clocks.ClockBook)."""

    def pauses(self, conversation: Mapping[str, Any], status: str) -> bool: ...

    def resumed(self, clock: Mapping[str, Any], now: datetime) -> dict[str, Any]: ...


async def set_status(
    engine: AsyncEngine, conversation_id: int, status: Status, by_user_id: int | None, now: datetime,
    clocks: StatusClocks | None = None,
) -> list[dict[str, Any]]:
    """Open, set pending or resolve a conversation. Resolving stops its due times; a pausing status
    (pending, by default) pauses its running clocks, and reopening resumes them with the business time
    that was left. Returns the clocks whose due times changed (for the scheduler to re-arm)."""
    changed: list[dict[str, Any]] = []
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
        if clocks is not None:
            changed = await _pause_or_resume(c, before, status, now, clocks, values)
        await c.execute(conv.update().where(conv.c.id == conversation_id).values(**values))
        await _audit(c, now, by_user_id, "status", conversation_id, before=before["status"], after=status.value)
    return changed


async def _pause_or_resume(
    c: AsyncConnection, before: dict[str, Any], status: Status, now: datetime, clocks: StatusClocks,
    values: dict[str, Any],
) -> list[dict[str, Any]]:
    running = [dict(r._mapping) for r in await c.execute(sa.select(slaclock).where(
        slaclock.c.conversation_id == before["id"], slaclock.c.fulfilled_at.is_(None)))]
    pause = status is not Status.RESOLVED and clocks.pauses(before, status.value)
    changed = []
    for clock in running:
        if pause and clock["paused_at"] is None:
            update, kind = {"paused_at": now, "state": "paused"}, "pause"
        elif not pause and clock["paused_at"] is not None:
            update, kind = clocks.resumed(clock, now), "resume"
        else:
            continue
        await c.execute(slaclock.update().where(slaclock.c.id == clock["id"]).values(**update))
        clock.update(update)
        changed.append(clock)
        await c.execute(sla_event.insert().values(
            conversation_id=before["id"], clock_id=clock["id"], target=clock["target"], kind=kind, at=now,
            business_due=clock["business_due"], wall_due=clock["wall_due"], detail=f"status {status.value}",
        ))
    if status is not Status.RESOLVED:
        live = [k for k in running if k["paused_at"] is None]
        values["due_business"] = min((k["business_due"] for k in live), default=None)
        values["due_wall"] = min((k["wall_due"] for k in live), default=None)
    return changed


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


async def set_tags(engine: AsyncEngine, conversation_id: int, tags: list[str], by_user_id: int, now: datetime) -> None:
    """Replace a conversation's tags (trimmed, lower-case, unique, sorted)."""
    clean = sorted({t.strip().lower()[:40] for t in tags if t.strip()})
    async with write_transaction(engine) as c:
        before = await _require_conversation(c, conversation_id)
        await c.execute(conv.update().where(conv.c.id == conversation_id).values(tags=orjson.dumps(clean).decode()))
        await _audit(c, now, by_user_id, "tags", conversation_id, before=orjson.loads(before["tags"] or "[]"), after=clean)


async def apply_assignments(engine: AsyncEngine, plan: dict[int, int], now: datetime, by_user_id: int | None = None) -> int:
    """Assign conversations automatically (only those still unassigned); each change audited; returns how many."""
    done = 0
    async with write_transaction(engine) as c:
        for conversation_id, agent_id in plan.items():
            result = await c.execute(conv.update().where(conv.c.id == conversation_id, conv.c.assignee_id.is_(None))
                                     .values(assignee_id=agent_id))
            if result.rowcount:
                done += 1
                await _audit(c, now, by_user_id, "assign.auto", conversation_id, before=None, after=agent_id)
                await _upsert_profile(c, agent_id, last_assigned_at=now)
    return done


async def _upsert_profile(c: AsyncConnection, user_id: int, **values: Any) -> None:
    exists = (await c.execute(sa.select(profile.c.user_id).where(profile.c.user_id == user_id))).first()
    if exists:
        await c.execute(profile.update().where(profile.c.user_id == user_id).values(**values))
    else:
        await c.execute(profile.insert().values(user_id=user_id, **{"available": False, "capacity": 10, "languages": "[]",
                                                                   "skills": "[]", **values}))


async def set_profile(engine: AsyncEngine, user_id: int, by_user_id: int, now: datetime, **values: Any) -> None:
    """Change an agent's availability, capacity, languages or skills (lists stored as JSON)."""
    for key in ("languages", "skills"):
        if key in values:
            values[key] = orjson.dumps(sorted(set(values[key]))).decode()
    async with write_transaction(engine) as c:
        await _upsert_profile(c, user_id, **values)
        await _audit(c, now, by_user_id, "profile", None, target_user=user_id, **values)


async def touch_presence(engine: AsyncEngine, user_id: int, now: datetime) -> None:
    """Record that an agent was seen (not audited: it happens on every page)."""
    async with write_transaction(engine) as c:
        await _upsert_profile(c, user_id, last_seen_at=now)


async def update_user(engine: AsyncEngine, user_id: int, by_user_id: int | None, now: datetime, **values: Any) -> None:
    """Change a user's role, activity, language or time zone."""
    async with write_transaction(engine) as c:
        if (await c.execute(sa.select(user.c.id).where(user.c.id == user_id))).first() is None:
            raise NotFound(f"user {user_id}")
        await c.execute(user.update().where(user.c.id == user_id).values(**values))
        await _audit(c, now, by_user_id, "user.update", None, target_user=user_id, **values)


async def add_canned(engine: AsyncEngine, title: str, language: str, body: str, by_user_id: int, now: datetime) -> int:
    """A new canned response; returns its id."""
    async with write_transaction(engine) as c:
        new_id = (await c.execute(canned.insert().values(title=title, language=language, body=body, created_by=by_user_id,
                                                         created_at=now).returning(canned.c.id))).scalar_one()
        await _audit(c, now, by_user_id, "canned.add", None, id=new_id, title=title)
        return int(new_id)


async def delete_canned(engine: AsyncEngine, canned_id: int, by_user_id: int, now: datetime) -> None:
    """Remove a canned response."""
    async with write_transaction(engine) as c:
        await c.execute(canned.delete().where(canned.c.id == canned_id))
        await _audit(c, now, by_user_id, "canned.delete", None, id=canned_id)


async def add_token(engine: AsyncEngine, user_id: int, name: str, token_hash: str, now: datetime) -> int:
    """Store the hash of a new API token."""
    async with write_transaction(engine) as c:
        new_id = (await c.execute(token.insert().values(user_id=user_id, name=name, token_hash=token_hash, created_at=now)
                                  .returning(token.c.id))).scalar_one()
        await _audit(c, now, user_id, "token.add", None, id=new_id, name=name)
        return int(new_id)


async def revoke_token(engine: AsyncEngine, token_id: int, user_id: int, now: datetime) -> None:
    """Revoke one of the user's API tokens."""
    async with write_transaction(engine) as c:
        await c.execute(token.update().where(token.c.id == token_id, token.c.user_id == user_id).values(revoked_at=now))
        await _audit(c, now, user_id, "token.revoke", None, id=token_id)


async def handle_dead_letter(engine: AsyncEngine, dead_letter_id: int, outcome: str, by_user_id: int, now: datetime) -> None:
    """Record that a dead letter was requeued or marked handled."""
    async with write_transaction(engine) as c:
        await c.execute(handling.delete().where(handling.c.dead_letter_id == dead_letter_id))
        await c.execute(handling.insert().values(dead_letter_id=dead_letter_id, outcome=outcome, user_id=by_user_id, at=now))
        await _audit(c, now, by_user_id, f"deadletter.{outcome}", None, id=dead_letter_id)


async def release(engine: AsyncEngine, conversation_ids: list[int], now: datetime, reason: str) -> None:
    """Unassign conversations (their agent went offline), each change audited."""
    async with write_transaction(engine) as c:
        for conversation_id in conversation_ids:
            before = (await c.execute(sa.select(conv.c.assignee_id).where(conv.c.id == conversation_id))).scalar()
            await c.execute(conv.update().where(conv.c.id == conversation_id).values(assignee_id=None))
            await _audit(c, now, None, "assign.release", conversation_id, before=before, after=None, reason=reason)
