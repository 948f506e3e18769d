"""Named read queries for the inbox, the conversation page, the CLI and the API."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from carebox.models import (
    AgentProfile,
    ApiToken,
    AuditEvent,
    CannedResponse,
    Conversation,
    Customer,
    DeadLetter,
    DeadLetterHandling,
    Identity,
    Mention,
    Note,
    SlaClock,
    SlaEvent,
    User,
)
from carebox.store.inbox import (  # noqa: F401 - the inbox's names stay reachable as queries.<name>
    DATED_VIEWS,
    UNRESOLVED,
    VIEWS,
    Accounts,
    Filters,
    InboxPage,
    _decode_cursor,
    _filters,
    _identity_handle,
    _page,
    _row_select,
    _view_filter,
    active_users,
    counts,
    encode_cursor,
    in_accounts,
    inbox,
    view_counts,
)
from carebox.store.reads import read

conv = Conversation.__table__  # type: ignore[attr-defined]
mention = Mention.__table__  # type: ignore[attr-defined]
customer = Customer.__table__  # type: ignore[attr-defined]
identity = Identity.__table__  # type: ignore[attr-defined]
user = User.__table__  # type: ignore[attr-defined]
note = Note.__table__  # type: ignore[attr-defined]
sla_event = SlaEvent.__table__  # type: ignore[attr-defined]
dead_letter = DeadLetter.__table__  # type: ignore[attr-defined]
audit = AuditEvent.__table__  # type: ignore[attr-defined]
clock = SlaClock.__table__  # type: ignore[attr-defined]
canned = CannedResponse.__table__  # type: ignore[attr-defined]
profile = AgentProfile.__table__  # type: ignore[attr-defined]
token = ApiToken.__table__  # type: ignore[attr-defined]
handling = DeadLetterHandling.__table__  # type: ignore[attr-defined]


async def conversation(engine: AsyncEngine, conversation_id: int, accounts: Accounts = None, *,
                       for_page: bool = False) -> dict[str, Any] | None:
    """A conversation with its thread, notes, SLA events, customer identities and other conversations;
    None when it does not exist or is on an account outside `accounts` (whose history is left out too).
    `for_page` adds what the page's composer and assignee menu need: "canned" responses (those in the
    conversation's language first) and the active "users"."""
    return await read(engine, _conversation, conversation_id, accounts, for_page)


def _conversation(c: sa.Connection, conversation_id: int, accounts: Accounts,
                  for_page: bool = False) -> dict[str, Any] | None:
    """The conversation page's rows, in one snapshot."""
    row = (c.execute(sa.select(conv).where(conv.c.id == conversation_id, *in_accounts(accounts)))).first()
    if row is None:
        return None
    out = dict(row._mapping)
    out["mentions"] = [
        dict(r._mapping)
        for r in c.execute(
            sa.select(mention, user.c.username.label("sent_by"))
            .outerjoin(user, user.c.id == mention.c.sent_by_user_id)
            .where(mention.c.conversation_id == conversation_id)
            .order_by(mention.c.created_at, mention.c.id)
        )
    ]
    out["notes"] = [
        dict(r._mapping)
        for r in c.execute(
            sa.select(note, user.c.username).join(user, user.c.id == note.c.user_id)
            .where(note.c.conversation_id == conversation_id).order_by(note.c.created_at)
        )
    ]
    out["sla_events"] = [
        dict(r._mapping)
        for r in c.execute(
            sa.select(sla_event).where(sla_event.c.conversation_id == conversation_id).order_by(sla_event.c.at, sla_event.c.id)
        )
    ]
    out["identities"] = [
        dict(r._mapping)
        for r in c.execute(sa.select(identity).where(identity.c.customer_id == out["customer_id"]))
        if accounts is None or any(r.network == n for n, _ in accounts)
    ]
    out["history"] = [
        dict(r._mapping)
        for r in c.execute(
            sa.select(conv.c.id, conv.c.network, conv.c.account, conv.c.status, conv.c.snippet,
                      conv.c.first_message_at, conv.c.message_count, user.c.username.label("assignee"))
            .outerjoin(user, user.c.id == conv.c.assignee_id)
            .where(conv.c.customer_id == out["customer_id"], conv.c.id != conversation_id, *in_accounts(accounts))
            .order_by(conv.c.first_message_at.desc()).limit(50)
        )
    ]
    agent = (c.execute(sa.select(user.c.username).where(user.c.id == out["assignee_id"]))).scalar()
    out["assignee"] = agent
    out["clocks"] = [dict(r._mapping) for r in c.execute(
        sa.select(clock).where(clock.c.conversation_id == conversation_id).order_by(clock.c.id))]
    out["audit"] = [dict(r._mapping) for r in c.execute(
        sa.select(audit, user.c.username).outerjoin(user, user.c.id == audit.c.user_id)
        .where(audit.c.conversation_id == conversation_id).order_by(audit.c.at.desc(), audit.c.id.desc()).limit(30))]
    out["timeline_agents"] = _agents_by_conversation(c, [h["id"] for h in out["history"]] + [conversation_id])
    out["tag_list"] = orjson.loads(out["tags"] or "[]")
    out["last_mention_id"] = max((m["id"] for m in out["mentions"]), default=0)
    if for_page:
        out["canned"], out["users"] = _canned(c, out["language"]), active_users(c)
    return out


async def can_see(engine: AsyncEngine, conversation_id: int, accounts: Accounts) -> bool:
    """Whether the conversation exists on one of `accounts` (None: whether it exists)."""
    def run(c: sa.Connection) -> bool:
        found = c.execute(sa.select(conv.c.id).where(conv.c.id == conversation_id, *in_accounts(accounts)))
        return found.first() is not None
    return await read(engine, run)


async def accounts_of(engine: AsyncEngine, ids: list[int]) -> dict[int, tuple[str, str]]:
    """conversation id -> (network, account)."""
    async with engine.connect() as c:
        rows = await c.execute(sa.select(conv.c.id, conv.c.network, conv.c.account).where(conv.c.id.in_(ids)))
        return {cid: (network, account) for cid, network, account in rows}


async def known_accounts(engine: AsyncEngine) -> list[tuple[str, str]]:
    """Every (network, account) that has conversations (an index scan of the thread index)."""
    async with engine.connect() as c:
        rows = await c.execute(sa.select(conv.c.network, conv.c.account).distinct().order_by(conv.c.network, conv.c.account))
        return [(n, a) for n, a in rows]


def _agents_by_conversation(c: sa.Connection, ids: list[int]) -> dict[int, list[str]]:
    """Every agent who answered in each conversation (the history survives reassignment)."""
    rows = c.execute(
        sa.select(mention.c.conversation_id, user.c.username).distinct()
        .join(user, user.c.id == mention.c.sent_by_user_id).where(mention.c.conversation_id.in_(ids)))
    out: dict[int, list[str]] = {}
    for cid, name in rows:
        out.setdefault(cid, []).append(name)
    return out


async def activity_since(engine: AsyncEngine, conversation_id: int, after_mention_id: int, user_id: int) -> list[dict[str, Any]]:
    """Customer messages and other agents' replies that arrived after the page the agent is answering from."""
    async with engine.connect() as c:
        rows = await c.execute(
            sa.select(mention.c.id, mention.c.direction, mention.c.text, mention.c.created_at, user.c.username.label("sent_by"))
            .outerjoin(user, user.c.id == mention.c.sent_by_user_id)
            .where(mention.c.conversation_id == conversation_id, mention.c.id > after_mention_id,
                   sa.or_(mention.c.direction == "in", mention.c.sent_by_user_id.is_(None),
                          mention.c.sent_by_user_id != user_id))
            .order_by(mention.c.id))
        return [dict(r._mapping) for r in rows]


async def canned_responses(engine: AsyncEngine, language: str | None = None) -> list[dict[str, Any]]:
    """Canned responses, those in `language` first."""
    return await read(engine, _canned, language)


def _canned(c: sa.Connection, language: str | None) -> list[dict[str, Any]]:
    rows = [dict(r._mapping) for r in c.execute(sa.select(canned).order_by(canned.c.title, canned.c.language))]
    return sorted(rows, key=lambda r: r["language"] != language) if language else rows


async def agent_profiles(engine: AsyncEngine) -> list[dict[str, Any]]:
    """Active agents with their assignment profile (defaults when none) and open load."""
    load = (sa.select(sa.func.count()).select_from(conv)
            .where(conv.c.assignee_id == user.c.id, conv.c.status.in_(UNRESOLVED)).scalar_subquery())
    async with engine.connect() as c:
        rows = await c.execute(
            sa.select(user.c.id, user.c.username, user.c.display_name, user.c.role, user.c.language.label("ui_language"),
                      user.c.accounts, profile.c.available, profile.c.capacity, profile.c.languages, profile.c.skills,
                      profile.c.last_seen_at, profile.c.last_assigned_at, load.label("load"))
            .outerjoin(profile, profile.c.user_id == user.c.id).where(user.c.active.is_(True)).order_by(user.c.username))
        return [dict(r._mapping) for r in rows]


async def waiting_work(engine: AsyncEngine, limit: int) -> list[dict[str, Any]]:
    """Unassigned open conversations, most urgent first (for automatic assignment)."""
    async with engine.connect() as c:
        rows = await c.execute(
            sa.select(conv.c.id, conv.c.network, conv.c.account, conv.c.language, conv.c.category, conv.c.tags)
            .where(conv.c.status == "open", conv.c.assignee_id.is_(None))
            .order_by(conv.c.due_business.is_(None), conv.c.due_business, conv.c.id).limit(limit))
        return [dict(r._mapping) for r in rows]


async def all_users(engine: AsyncEngine) -> list[dict[str, Any]]:
    """Every user, active or not, for the admin page."""
    async with engine.connect() as c:
        rows = await c.execute(sa.select(user.c.id, user.c.username, user.c.display_name, user.c.role, user.c.language,
                                         user.c.timezone, user.c.active, user.c.accounts).order_by(user.c.username))
        return [dict(r._mapping) for r in rows]


async def dead_letters(engine: AsyncEngine, *, limit: int = 100) -> list[dict[str, Any]]:
    """Latest dead letters with what was done about them."""
    async with engine.connect() as c:
        rows = await c.execute(
            sa.select(dead_letter, handling.c.outcome, handling.c.at.label("handled_at"))
            .outerjoin(handling, handling.c.dead_letter_id == dead_letter.c.id)
            .order_by(dead_letter.c.id.desc()).limit(limit))
        return [dict(r._mapping) for r in rows]


async def dead_letter_by_id(engine: AsyncEngine, dead_letter_id: int) -> dict[str, Any] | None:
    """One dead letter with its handling."""
    async with engine.connect() as c:
        row = (await c.execute(
            sa.select(dead_letter, handling.c.outcome, handling.c.at.label("handled_at"))
            .outerjoin(handling, handling.c.dead_letter_id == dead_letter.c.id)
            .where(dead_letter.c.id == dead_letter_id))).first()
        return dict(row._mapping) if row else None


async def user_by_token_hash(engine: AsyncEngine, token_hash: str) -> dict[str, Any] | None:
    """The active user owning a live API token."""
    async with engine.connect() as c:
        row = (await c.execute(
            sa.select(user).join(token, token.c.user_id == user.c.id)
            .where(token.c.token_hash == token_hash, token.c.revoked_at.is_(None), user.c.active.is_(True)))).first()
        return dict(row._mapping) if row else None


async def api_tokens(engine: AsyncEngine, user_id: int) -> list[dict[str, Any]]:
    """A user's API tokens (never the secret)."""
    async with engine.connect() as c:
        rows = await c.execute(sa.select(token.c.id, token.c.name, token.c.created_at, token.c.last_used_at,
                                         token.c.revoked_at).where(token.c.user_id == user_id).order_by(token.c.id))
        return [dict(r._mapping) for r in rows]


async def mentions_of(engine: AsyncEngine, conversation_id: int) -> list[dict[str, Any]]:
    """The thread of a conversation, oldest first (for the API)."""
    async with engine.connect() as c:
        rows = await c.execute(sa.select(mention.c.id, mention.c.network, mention.c.external_id, mention.c.direction,
                                         mention.c.author_handle, mention.c.text, mention.c.created_at, mention.c.public,
                                         mention.c.language, mention.c.category, mention.c.priority, mention.c.url)
                               .where(mention.c.conversation_id == conversation_id).order_by(mention.c.created_at, mention.c.id))
        return [dict(r._mapping) for r in rows]


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
    return await read(engine, active_users)


async def user_by_name(engine: AsyncEngine, username: str) -> dict[str, Any] | None:
    """A user row by login name."""
    async with engine.connect() as c:
        row = (await c.execute(sa.select(user).where(user.c.username == username))).first()
        return dict(row._mapping) if row else None


async def user_by_id(engine: AsyncEngine, user_id: int) -> dict[str, Any] | None:
    """A user row by id."""
    def run(c: sa.Connection) -> dict[str, Any] | None:
        row = c.execute(sa.select(user).where(user.c.id == user_id)).first()
        return dict(row._mapping) if row else None
    return await read(engine, run)


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


async def assignees(engine: AsyncEngine, ids: list[int]) -> dict[int, int | None]:
    """conversation id -> assignee id."""
    async with engine.connect() as c:
        rows = await c.execute(sa.select(conv.c.id, conv.c.assignee_id).where(conv.c.id.in_(ids)))
        return {cid: aid for cid, aid in rows}


async def open_assignments(engine: AsyncEngine, agent_ids: list[int]) -> dict[int, int]:
    """conversation id -> assignee for the open conversations of these agents."""
    async with engine.connect() as c:
        rows = await c.execute(sa.select(conv.c.id, conv.c.assignee_id)
                               .where(conv.c.status == "open", conv.c.assignee_id.in_(agent_ids)))
        return {cid: aid for cid, aid in rows}
