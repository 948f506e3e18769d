"""Named read queries for the inbox, the conversation page, the CLI and the API."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from carebox.models import AuditEvent, Conversation, Customer, DeadLetter, Identity, Mention, Note, SlaEvent, User

conv = Conversation.__table__  # type: ignore[attr-defined]
mention = Mention.__table__  # type: ignore[attr-defined]
customer = Customer.__table__  # type: ignore[attr-defined]
identity = Identity.__table__  # type: ignore[attr-defined]
user = User.__table__  # type: ignore[attr-defined]
note = Note.__table__  # type: ignore[attr-defined]
sla_event = SlaEvent.__table__  # type: ignore[attr-defined]
dead_letter = DeadLetter.__table__  # type: ignore[attr-defined]
audit = AuditEvent.__table__  # type: ignore[attr-defined]

VIEWS = ("awaiting", "mine", "unassigned", "open", "pending", "resolved")


@dataclass(frozen=True, slots=True)
class InboxPage:
    rows: list[dict[str, Any]]
    counts: dict[str, int]
    has_more: bool


def _view_filter(view: str, user_id: int | None) -> Any:
    open_ = conv.c.status == "open"
    return {
        "awaiting": sa.and_(open_, conv.c.due_business.is_not(None)),
        "mine": sa.and_(conv.c.status != "resolved", conv.c.assignee_id == user_id),
        "unassigned": sa.and_(open_, conv.c.assignee_id.is_(None)),
        "open": open_,
        "pending": conv.c.status == "pending",
        "resolved": conv.c.status == "resolved",
    }[view]


def _identity_handle() -> Any:
    return (
        sa.select(identity.c.handle)
        .where(identity.c.customer_id == conv.c.customer_id, identity.c.network == conv.c.network)
        .limit(1)
        .scalar_subquery()
    )


async def inbox(engine: AsyncEngine, view: str, user_id: int | None, *, limit: int = 50, offset: int = 0) -> InboxPage:
    """One page of a saved view, soonest business due first, with the count of every view."""
    order = (
        [conv.c.resolved_at.desc()]
        if view == "resolved"
        else [conv.c.due_business.is_(None), conv.c.due_business, conv.c.last_message_at.desc()]
    )
    stmt = (
        sa.select(
            conv, _identity_handle().label("customer_handle"), user.c.username.label("assignee"),
        )
        .outerjoin(user, user.c.id == conv.c.assignee_id)
        .where(_view_filter(view, user_id))
        .order_by(*order)
        .limit(limit + 1)
        .offset(offset)
    )
    counts_stmt = sa.select(*[sa.func.count().filter(_view_filter(v, user_id)).label(v) for v in VIEWS])
    async with engine.connect() as c:
        rows = [dict(r._mapping) for r in await c.execute(stmt)]
        counts = dict((await c.execute(counts_stmt)).one()._mapping)
    return InboxPage(rows=rows[:limit], counts=counts, has_more=len(rows) > limit)


async def conversation(engine: AsyncEngine, conversation_id: int) -> dict[str, Any] | None:
    """A conversation with its thread, notes, SLA events, customer identities and other conversations."""
    async with engine.connect() as c:
        row = (await c.execute(sa.select(conv).where(conv.c.id == conversation_id))).first()
        if row is None:
            return None
        out = dict(row._mapping)
        out["mentions"] = [
            dict(r._mapping)
            for r in await c.execute(
                sa.select(mention, user.c.username.label("sent_by"))
                .outerjoin(user, user.c.id == mention.c.sent_by_user_id)
                .where(mention.c.conversation_id == conversation_id)
                .order_by(mention.c.created_at, mention.c.id)
            )
        ]
        out["notes"] = [
            dict(r._mapping)
            for r in await c.execute(
                sa.select(note, user.c.username).join(user, user.c.id == note.c.user_id)
                .where(note.c.conversation_id == conversation_id).order_by(note.c.created_at)
            )
        ]
        out["sla_events"] = [
            dict(r._mapping)
            for r in await c.execute(
                sa.select(sla_event).where(sla_event.c.conversation_id == conversation_id).order_by(sla_event.c.at, sla_event.c.id)
            )
        ]
        out["identities"] = [
            dict(r._mapping)
            for r in await c.execute(sa.select(identity).where(identity.c.customer_id == out["customer_id"]))
        ]
        out["history"] = [
            dict(r._mapping)
            for r in await c.execute(
                sa.select(conv.c.id, conv.c.network, conv.c.account, conv.c.status, conv.c.snippet,
                          conv.c.first_message_at, conv.c.message_count, user.c.username.label("assignee"))
                .outerjoin(user, user.c.id == conv.c.assignee_id)
                .where(conv.c.customer_id == out["customer_id"], conv.c.id != conversation_id)
                .order_by(conv.c.first_message_at.desc()).limit(50)
            )
        ]
        agent = (await c.execute(sa.select(user.c.username).where(user.c.id == out["assignee_id"]))).scalar()
        out["assignee"] = agent
    return out


async def stats(engine: AsyncEngine) -> dict[str, int]:
    """Counts for `carebox stats`."""
    async with engine.connect() as c:
        return {
            "mentions": (await c.execute(sa.select(sa.func.count()).select_from(mention))).scalar_one(),
            "conversations": (await c.execute(sa.select(sa.func.count()).select_from(conv))).scalar_one(),
            "open_conversations": (
                await c.execute(sa.select(sa.func.count()).select_from(conv).where(conv.c.status != "resolved"))
            ).scalar_one(),
            "customers": (await c.execute(sa.select(sa.func.count()).select_from(customer))).scalar_one(),
            "dead_letters": (await c.execute(sa.select(sa.func.count()).select_from(dead_letter))).scalar_one(),
        }


async def users(engine: AsyncEngine) -> list[dict[str, Any]]:
    """Active users, by name."""
    async with engine.connect() as c:
        rows = await c.execute(
            sa.select(user.c.id, user.c.username, user.c.display_name, user.c.role)
            .where(user.c.active.is_(True)).order_by(user.c.username)
        )
        return [dict(r._mapping) for r in rows]


async def user_by_name(engine: AsyncEngine, username: str) -> dict[str, Any] | None:
    """A user row by login name."""
    async with engine.connect() as c:
        row = (await c.execute(sa.select(user).where(user.c.username == username))).first()
        return dict(row._mapping) if row else None


async def user_by_id(engine: AsyncEngine, user_id: int) -> dict[str, Any] | None:
    """A user row by id."""
    async with engine.connect() as c:
        row = (await c.execute(sa.select(user).where(user.c.id == user_id))).first()
        return dict(row._mapping) if row else None


async def reply_target(engine: AsyncEngine, conversation_id: int) -> dict[str, Any] | None:
    """What a reply needs: the conversation, and its latest customer mention to answer."""
    async with engine.connect() as c:
        row = (await c.execute(sa.select(conv).where(conv.c.id == conversation_id))).first()
        if row is None:
            return None
        last = (
            await c.execute(
                sa.select(mention).where(mention.c.conversation_id == conversation_id, mention.c.direction == "in")
                .order_by(mention.c.created_at.desc(), mention.c.id.desc()).limit(1)
            )
        ).first()
    return {"conversation": dict(row._mapping), "last_inbound": dict(last._mapping) if last else None}


def as_of(value: datetime | None) -> str:
    """ISO 8601 text for JSON output."""
    return value.isoformat() if value else ""
