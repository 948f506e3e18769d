"""Saved views of the inbox: what each view holds, filters, account visibility, keyset pages and counts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from carebox.models import Conversation, Identity, User
from carebox.store.reads import read

conv = Conversation.__table__  # type: ignore[attr-defined]
identity = Identity.__table__  # type: ignore[attr-defined]
user = User.__table__  # type: ignore[attr-defined]

VIEWS = ("awaiting", "mine", "unassigned", "due_soon", "breached", "incident", "open", "pending", "resolved")
DATED_VIEWS = frozenset({"awaiting", "due_soon", "breached"})  # only rows with a due time: no undated segment
UNRESOLVED = ("open", "pending")


Accounts = frozenset[tuple[str, str]] | None  # (network, account) pairs a user may see; None: every account


def in_accounts(accounts: Accounts) -> list[Any]:
    """The WHERE terms keeping conversations of `accounts` (none when every account is visible)."""
    if accounts is None:
        return []
    return [sa.or_(sa.false(), *(sa.and_(conv.c.network == n, conv.c.account == a) for n, a in sorted(accounts)))]


@dataclass(frozen=True, slots=True)
class Filters:
    """Narrowing of a saved view; None means any."""

    network: str | None = None
    account: str | None = None
    language: str | None = None
    priority: str | None = None
    category: str | None = None
    tag: str | None = None
    assignee_id: int | None = None
    search: str | None = None
    accounts: Accounts = None  # what the user may see (their account visibility), not a choice of theirs


@dataclass(frozen=True, slots=True)
class InboxPage:
    rows: list[dict[str, Any]]
    counts: dict[str, int]
    has_more: bool
    next_cursor: str | None = None
    users: list[dict[str, Any]] | None = None  # the active users, when asked for (the assignee filter)


def active_users(c: sa.Connection) -> list[dict[str, Any]]:
    """Active users, by name (the assignee choices of the inbox and conversation pages)."""
    stmt = sa.select(user.c.id, user.c.username, user.c.display_name, user.c.role).where(
        user.c.active.is_(True)).order_by(user.c.username)
    return [dict(r._mapping) for r in c.execute(stmt)]


def _view_filter(view: str, user_id: int | None, now: datetime, due_soon_s: float) -> Any:
    open_ = conv.c.status == "open"
    if view == "awaiting":
        return sa.and_(open_, conv.c.due_business.is_not(None))
    if view == "mine":
        return sa.and_(conv.c.status.in_(UNRESOLVED), conv.c.assignee_id == user_id)
    if view == "unassigned":
        return sa.and_(open_, conv.c.assignee_id.is_(None))
    if view == "due_soon":
        return sa.and_(open_, conv.c.due_business >= now, conv.c.due_business < now + timedelta(seconds=due_soon_s))
    if view == "breached":
        return sa.and_(open_, conv.c.due_business < now)
    if view == "incident":  # the ids from the small incident index first: else SQLite walks every open row by due
        linked = conv.alias("linked")
        return conv.c.id.in_(sa.select(linked.c.id).where(linked.c.incident_id.is_not(None),
                                                           linked.c.status.in_(UNRESOLVED)))
    return conv.c.status == view  # open, pending, resolved


def _filters(f: Filters) -> list[Any]:
    out = [getattr(conv.c, name) == getattr(f, name)
           for name in ("network", "account", "language", "priority", "category") if getattr(f, name)]
    if f.tag:
        out.append(conv.c.tags.like('%' + orjson.dumps(f.tag).decode().replace("%", "").replace("_", "") + '%'))
    if f.assignee_id is not None:
        out.append(conv.c.assignee_id == f.assignee_id)
    if f.search:
        out.append(conv.c.snippet.like("%" + f.search.replace("%", "").replace("_", "") + "%"))
    return out + in_accounts(f.accounts)


def _identity_handle() -> Any:
    return (
        sa.select(identity.c.handle)
        .where(identity.c.customer_id == conv.c.customer_id, identity.c.network == conv.c.network)
        .limit(1)
        .scalar_subquery()
    )


def _row_select() -> Any:
    return sa.select(conv, _identity_handle().label("customer_handle"), user.c.username.label("assignee")).outerjoin(
        user, user.c.id == conv.c.assignee_id)


def encode_cursor(row: dict[str, Any], view: str) -> str:
    """An opaque keyset position after `row` in `view`'s order."""
    if view == "resolved":
        return f"r|{row['resolved_at'].isoformat() if row['resolved_at'] else ''}|{row['id']}"
    if row["due_business"] is None:
        return f"b||{row['id']}"
    return f"a|{row['due_business'].isoformat()}|{row['id']}"


def _decode_cursor(cursor: str) -> tuple[str, datetime | None, int]:
    try:
        segment, at, ident = cursor.split("|")
        return segment, datetime.fromisoformat(at) if at else None, int(ident)
    except ValueError:
        raise ValueError("bad cursor") from None


def _page(c: sa.Connection, where: list[Any], view: str, cursor: str | None, limit: int) -> list[dict[str, Any]]:
    """Keyset pages: due conversations by (due, id), then undated ones by id; resolved by (resolved_at, id) desc."""
    seg, at, ident = _decode_cursor(cursor) if cursor else ("r" if view == "resolved" else "a", None, 0)
    if view == "resolved":
        keyset = [] if at is None else [conv.c.resolved_at <= at, sa.not_(sa.and_(conv.c.resolved_at == at, conv.c.id >= ident))]
        stmt = _row_select().where(*where, *keyset).order_by(conv.c.resolved_at.desc(), conv.c.id.desc())
        return [dict(r._mapping) for r in c.execute(stmt.limit(limit + 1))]
    rows: list[dict[str, Any]] = []
    if seg == "a":
        keyset = [conv.c.due_business.is_not(None)]
        if at is not None:
            keyset += [conv.c.due_business >= at, sa.not_(sa.and_(conv.c.due_business == at, conv.c.id <= ident))]
        stmt = _row_select().where(*where, *keyset).order_by(conv.c.due_business, conv.c.id).limit(limit + 1)
        rows = [dict(r._mapping) for r in c.execute(stmt)]
        ident = 0
    if len(rows) <= limit and view not in DATED_VIEWS:
        stmt = (_row_select().where(*where, conv.c.due_business.is_(None), conv.c.id > ident)
                .order_by(conv.c.id).limit(limit + 1 - len(rows)))
        rows += [dict(r._mapping) for r in c.execute(stmt)]
    return rows


async def inbox(
    engine: AsyncEngine, view: str, user_id: int | None, *, now: datetime, limit: int = 50, cursor: str | None = None,
    filters: Filters = Filters(), due_soon_s: float = 3600.0, with_counts: bool | tuple[str, ...] = True,
    with_users: bool = False,
) -> InboxPage:
    """One keyset page of a saved view, soonest business due first, with the count of every view (or of the
    views named in `with_counts`) and the active users when asked, read in one snapshot."""
    where = [_view_filter(view, user_id, now, due_soon_s), *_filters(filters)]
    counted = VIEWS if with_counts is True else with_counts or ()

    def run(c: sa.Connection) -> tuple[list[dict[str, Any]], dict[str, int], list[dict[str, Any]] | None]:
        return (_page(c, where, view, cursor, limit), view_counts(c, user_id, now, filters, due_soon_s, counted),
                active_users(c) if with_users else None)

    if cursor:
        _decode_cursor(cursor)  # a bad cursor is a ValueError here, before any query
    rows, counts, users = await read(engine, run)
    more = len(rows) > limit
    rows = rows[:limit]
    return InboxPage(rows, counts, more, encode_cursor(rows[-1], view) if more and rows else None, users)


def view_counts(c: sa.Connection, user_id: int | None, now: datetime, filters: Filters, due_soon_s: float,
                      views: tuple[str, ...] = VIEWS) -> dict[str, int]:
    """How many conversations each saved view holds (one indexed count per view)."""
    extra = _filters(filters)
    out = {}
    for v in views:
        where = (sa.and_(conv.c.incident_id.is_not(None), conv.c.status.in_(UNRESOLVED)) if v == "incident"
                 else _view_filter(v, user_id, now, due_soon_s))  # a count walks the incident index as it is
        stmt = sa.select(sa.func.count()).select_from(conv).where(where, *extra)
        out[v] = c.execute(stmt).scalar_one()
    return out


async def counts(engine: AsyncEngine, user_id: int | None, now: datetime, filters: Filters, due_soon_s: float,
                 views: tuple[str, ...] = VIEWS) -> dict[str, int]:
    """view_counts in a read snapshot of its own."""
    return await read(engine, view_counts, user_id, now, filters, due_soon_s, views)
