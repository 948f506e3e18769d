"""SQL for the incident SLA policy: switch an incident's conversations onto it and back, keeping clocks exact."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from carebox.errors import NotFound
from carebox.models import IncidentPolicyWindow, User
from carebox.store.actions import record_audit
from carebox.store.engine import write_transaction
from carebox.store.incidents import incident_t
from carebox.store.ingest import clock_t, conversation_t, event_t

CONVERSATION_FACTS = ("network", "account", "priority", "category", "language", "tags")
RECENT = timedelta(days=1)  # the tick keeps re-checking an incident this long after its policy ended
window_t: sa.Table = IncidentPolicyWindow.__table__  # type: ignore[attr-defined]
user_t: sa.Table = User.__table__  # type: ignore[attr-defined]


class PolicyClocks(Protocol):
    """What switching needs from the SLA engine (carebox.clocks.ClockBook)."""

    def moved(self, clock: Mapping[str, Any], policy_name: str, at: datetime, *,
              carried_s: float = 0.0) -> dict[str, Any] | None: ...

    def returned(self, clock: Mapping[str, Any], conversation: Mapping[str, Any], at: datetime) -> dict[str, Any]: ...


def _active() -> Any:
    """The incident's policy is in force: switched on, not switched back, incident not resolved."""
    return sa.and_(incident_t.c.policy.is_not(None), incident_t.c.policy_until.is_(None),
                   incident_t.c.state != "resolved")


async def switch_on(engine: AsyncEngine, incident_id: int, policy: str, at: datetime, by: int | None = None) -> bool:
    """Put an incident's conversations on `policy` from `at` (a new window, switched on by user `by`); False when
    it already is or is resolved."""
    async with write_transaction(engine) as conn:
        row = (await conn.execute(sa.select(incident_t).where(incident_t.c.id == incident_id))).first()
        if row is None:
            raise NotFound(f"incident {incident_id}")
        if row.state == "resolved" or (row.policy is not None and row.policy_until is None):
            return False
        await conn.execute(incident_t.update().where(incident_t.c.id == incident_id).values(
            policy=policy, policy_at=at, policy_until=None))
        await _open_window(conn, incident_id, policy, at, by)
        return True


async def switch_on_automatically(engine: AsyncEngine, incident_id: int, policy: str, at: datetime, reason: str) -> bool:
    """Put a new incident's conversations on `policy` because the configuration says so ([incidents] auto_policy),
    audited as done by the system; False when someone already switched it (on, or on and off) or it is resolved."""
    async with write_transaction(engine) as conn:
        switched = (await conn.execute(incident_t.update().where(
            incident_t.c.id == incident_id, incident_t.c.policy.is_(None), incident_t.c.state != "resolved")
            .values(policy=policy, policy_at=at, policy_until=None))).rowcount
        if switched:
            await _open_window(conn, incident_id, policy, at, None)
    if switched:
        await record_audit(engine, at, None, "incident.policy_on", incident_id=incident_id, policy=policy, by="system",
                           reason=reason)
    return bool(switched)


async def switch_off(engine: AsyncEngine, incident_id: int, at: datetime, by: int | None = None) -> bool:
    """End an incident's policy at `at` (by user `by`, or because it was resolved); False when none was in force."""
    async with write_transaction(engine) as conn:
        ended = bool((await conn.execute(incident_t.update().where(
            incident_t.c.id == incident_id, incident_t.c.policy.is_not(None), incident_t.c.policy_until.is_(None))
            .values(policy_until=at))).rowcount)
        if ended:
            await _close_window(conn, incident_id, at, by)
        return ended


async def end_window(engine: AsyncEngine, incident_id: int, at: datetime, by: int | None) -> None:
    """Record who ended the window of a policy that ended with its incident (resolved or merged by user `by`)."""
    async with write_transaction(engine) as conn:
        await _close_window(conn, incident_id, at, by)


async def copy_windows(engine: AsyncEngine, source_id: int, target_id: int) -> None:
    """Give an incident split from another one the windows of its parent: its conversations lived through them."""
    columns = [c for c in window_t.c if c.name not in ("id", "incident_id")]
    async with write_transaction(engine) as conn:
        await conn.execute(window_t.insert().from_select(
            ["incident_id", *(c.name for c in columns)],
            sa.select(sa.literal(target_id), *columns).where(window_t.c.incident_id == source_id).order_by(window_t.c.id)))


async def _open_window(conn: AsyncConnection, incident_id: int, policy: str, at: datetime, by: int | None) -> None:
    await conn.execute(window_t.insert().values(incident_id=incident_id, policy=policy, started_at=at, on_user_id=by))


async def _close_window(conn: AsyncConnection, incident_id: int, at: datetime, by: int | None) -> None:
    await conn.execute(window_t.update().where(window_t.c.incident_id == incident_id, window_t.c.ended_at.is_(None))
                       .values(ended_at=at, off_user_id=by))


async def windows(engine: AsyncEngine, incident_ids: Iterable[int]) -> dict[int, list[dict[str, Any]]]:
    """Every window of each incident's SLA policy, oldest first: policy, started_at, ended_at (None: in force), and
    who switched it on and off (on_user_id, on_by, off_user_id, off_by; None: carebox). A window that ended with
    its incident ends when the incident's policy did."""
    ids = sorted(set(incident_ids))
    found: dict[int, list[dict[str, Any]]] = {i: [] for i in ids}
    if not ids:
        return found
    on, off = user_t.alias("on_user"), user_t.alias("off_user")
    query = (sa.select(window_t.c.incident_id, window_t.c.policy, window_t.c.started_at,
                       sa.func.coalesce(window_t.c.ended_at, incident_t.c.policy_until).label("ended_at"),
                       window_t.c.on_user_id, _name(on).label("on_by"), window_t.c.off_user_id, _name(off).label("off_by"))
             .join(incident_t, incident_t.c.id == window_t.c.incident_id)
             .outerjoin(on, on.c.id == window_t.c.on_user_id).outerjoin(off, off.c.id == window_t.c.off_user_id)
             .where(window_t.c.incident_id.in_(ids)).order_by(window_t.c.incident_id, window_t.c.started_at, window_t.c.id))
    async with engine.connect() as conn:
        for row in await conn.execute(query):
            found[row.incident_id].append({k: v for k, v in row._mapping.items() if k != "incident_id"})
    return found


def _name(user: sa.Table) -> Any:
    """How a user is named on the page: their display name, else their login."""
    return sa.func.coalesce(sa.func.nullif(user.c.display_name, ""), user.c.username)


async def reconcile(engine: AsyncEngine, book: PolicyClocks, name: str | None, now: datetime,
                    conversation_ids: Iterable[int] | None = None) -> list[dict[str, Any]]:
    """Move the running clocks of open conversations onto their incident's policy while it is in force, and
    back onto their own policy once it is not (incident resolved, policy switched off, conversation
    unlinked). `name` is the configured incident policy (how a moved clock is recognised). Clocks paused,
    answered or already breached stay as they are. Returns the changed clocks, for the scheduler."""
    ids = None if conversation_ids is None else sorted(set(conversation_ids))
    if ids == []:
        return []
    async with engine.connect() as reading:  # most ticks have nothing to move: no write lock for them
        if not await _candidates(reading, name, ids, now):
            return []
    async with write_transaction(engine) as conn:
        rows = await _candidates(conn, name, ids, now)
        changed, events = [], []
        for row in rows:
            clock = {c.name: row[c.name] for c in clock_t.c}
            if row["wanted"] is not None:
                update = book.moved(clock, row["wanted"], now)
                detail = f"incident #{row['incident_id']}: policy {clock['policy']} -> {row['wanted']}"
            else:
                update = book.returned(clock, {k: row[k] for k in CONVERSATION_FACTS}, now)
                detail = f"incident policy over: policy {clock['policy']} -> {update['policy']}"
                if update["policy"] == clock["policy"]:  # its own policy is the incident one: it stays as planned
                    update = {"policy": clock["policy"], "rebased_at": None, "business_due": clock["business_due"]}
            if update is None:
                continue
            events.append({"conversation_id": clock["conversation_id"], "clock_id": clock["id"],
                           "target": clock["target"], "kind": "policy", "at": now, "business_due": update["business_due"],
                           "wall_due": clock["wall_due"], "detail": detail})
            changed.append({**clock, **update, "status": "open", "assignee_id": row["assignee_id"]})
        await _write(conn, changed, events)
    return changed


async def _write(conn: AsyncConnection, changed: list[dict[str, Any]], events: list[dict[str, Any]]) -> None:
    """The moved clocks, their events, and their conversations' policy and due times, in a few statements."""
    if not changed:
        return
    columns = ("policy", "calendar", "calendar_version", "rebased_at", "carried_s", "business_due", "warn_at")
    await conn.execute(clock_t.update().where(clock_t.c.id == sa.bindparam("_id")).values(
        {c: sa.bindparam(f"_{c}") for c in columns}),
        [{"_id": k["id"], **{f"_{c}": k.get(c) for c in columns}} for k in changed])
    await conn.execute(event_t.insert(), events)
    by_policy: dict[str, set[int]] = {}
    for clock in changed:
        by_policy.setdefault(clock["policy"], set()).add(clock["conversation_id"])
    live = sa.and_(clock_t.c.conversation_id == conversation_t.c.id, clock_t.c.fulfilled_at.is_(None),
                   clock_t.c.paused_at.is_(None))
    for policy, ids in by_policy.items():
        for start in range(0, len(ids), 500):
            await conn.execute(conversation_t.update().where(conversation_t.c.id.in_(sorted(ids)[start:start + 500]))
                               .values(policy=policy,
                                       due_business=sa.select(sa.func.min(clock_t.c.business_due)).where(live)
                                       .scalar_subquery(),
                                       due_wall=sa.select(sa.func.min(clock_t.c.wall_due)).where(live).scalar_subquery()))


async def _candidates(conn: AsyncConnection, name: str | None, ids: list[int] | None,
                      now: datetime) -> list[dict[str, Any]]:
    """Running clocks that may need moving, with the policy they should be on (None: their own). Without
    `ids` (the watcher's tick) only conversations of incidents whose policy is in force or ended within
    RECENT are looked at: the incident table is small, the clock table is not."""
    active = _active()
    wanted = sa.case((active, incident_t.c.policy), else_=None).label("wanted")
    query = (sa.select(clock_t, wanted, conversation_t.c.incident_id, conversation_t.c.assignee_id,
                       *(conversation_t.c[k] for k in CONVERSATION_FACTS))
             .join(conversation_t, conversation_t.c.id == clock_t.c.conversation_id)
             .outerjoin(incident_t, incident_t.c.id == conversation_t.c.incident_id)
             .where(conversation_t.c.status == "open", clock_t.c.fulfilled_at.is_(None),
                    clock_t.c.paused_at.is_(None), clock_t.c.breached_at.is_(None)))
    on_incident_policy = sa.and_(clock_t.c.policy == name, clock_t.c.rebased_at.is_not(None)) if name else sa.false()
    query = query.where(sa.or_(sa.and_(active, clock_t.c.policy != incident_t.c.policy),
                               sa.and_(sa.or_(incident_t.c.id.is_(None), ~active), on_incident_policy)))
    if ids is not None:
        query = query.where(conversation_t.c.id.in_(ids))
    else:
        recent = now - RECENT
        query = query.where(incident_t.c.policy.is_not(None), sa.or_(
            active, incident_t.c.policy_until >= recent, incident_t.c.resolved_at >= recent))
    return [dict(r._mapping) for r in await conn.execute(query.order_by(clock_t.c.id))]


async def conversations_of(engine: AsyncEngine, incident_id: int) -> list[int]:
    """The ids of the conversations linked to an incident."""
    async with engine.connect() as conn:
        return [r[0] for r in await conn.execute(
            sa.select(conversation_t.c.id).where(conversation_t.c.incident_id == incident_id))]

