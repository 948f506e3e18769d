"""SQL for incidents: open, escalate, resolve, link conversations, log deliveries, keep detector state."""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from carebox.errors import NotFound
from carebox.models import Incident, IncidentDelivery
from carebox.store.engine import write_transaction
from carebox.store.ingest import (
    conversation_t,
    cursor_t,
    customer_t,
    mention_t,
    save_cursors,
)

incident_t: sa.Table = Incident.__table__  # type: ignore[attr-defined]
delivery_t: sa.Table = IncidentDelivery.__table__  # type: ignore[attr-defined]
DETECTOR_STATE = "outage-detector:state"


async def open_incidents(engine: AsyncEngine) -> list[dict[str, Any]]:
    """Incidents not yet resolved."""
    async with engine.connect() as conn:
        rows = await conn.execute(sa.select(incident_t).where(incident_t.c.state != "resolved"))
        return [dict(r._mapping) for r in rows]


async def open_incident(engine: AsyncEngine, values: dict[str, Any], link_since: datetime) -> tuple[int, int]:
    """Create an incident (or return the existing one with the same dedup key) and link the open
    conversations of its account (and cluster key) that began since `link_since`; (id, linked). An existing
    incident that was resolved (by hand, while the detector's episode went on) links nothing."""
    async with write_transaction(engine) as conn:
        found = (await conn.execute(sa.select(incident_t.c.id, incident_t.c.state)
                                    .where(incident_t.c.dedup_key == values["dedup_key"]))).first()
        if found is not None and found.state == "resolved":
            return int(found.id), 0
        incident_id = found.id if found is not None else (
            await conn.execute(incident_t.insert().values(**values).returning(incident_t.c.id))).scalar_one()
        match = [conversation_t.c.account == values["account"], conversation_t.c.status != "resolved",
                 conversation_t.c.incident_id.is_(None), conversation_t.c.last_message_at >= link_since]
        if values.get("cluster_key"):
            match.append(conversation_t.c.cluster_key == values["cluster_key"])
        else:
            match.append(conversation_t.c.category.in_(("outage", "complaint")))
        linked = (await conn.execute(conversation_t.update().where(*match).values(incident_id=incident_id))).rowcount
    return int(incident_id), int(linked or 0)


async def is_resolved(engine: AsyncEngine, incident_id: int) -> bool:
    """Whether the incident is resolved (or does not exist)."""
    async with engine.connect() as conn:
        state = (await conn.execute(sa.select(incident_t.c.state).where(incident_t.c.id == incident_id))).scalar()
        return state in (None, "resolved")


async def update_incident(engine: AsyncEngine, incident_id: int, **values: Any) -> None:
    """Change an incident's state, severity or counts."""
    async with write_transaction(engine) as conn:
        await conn.execute(incident_t.update().where(incident_t.c.id == incident_id).values(**values))


async def link_conversations(engine: AsyncEngine, incident_id: int, conversation_ids: Iterable[int]) -> int:
    """Attach conversations to an incident (or the one it was merged into) unless they already belong to one;
    a resolved incident gathers no more conversations."""
    ids = sorted(set(conversation_ids))
    if not ids:
        return 0
    async with write_transaction(engine) as conn:
        incident_id = await _surviving(conn, incident_id)
        if (await conn.execute(sa.select(incident_t.c.state).where(incident_t.c.id == incident_id))).scalar() == "resolved":
            return 0
        result = await conn.execute(conversation_t.update().where(
            conversation_t.c.id.in_(ids), conversation_t.c.incident_id.is_(None)).values(incident_id=incident_id))
        return int(result.rowcount or 0)


async def link_one(engine: AsyncEngine, incident_id: int, conversation_id: int) -> tuple[bool, int | None]:
    """Attach one conversation to an incident unless it belongs to one; (linked now, the incident it belongs to).
    NotFound when the conversation does not exist."""
    async with write_transaction(engine) as conn:
        await _require(conn, incident_id)
        changed = (await conn.execute(conversation_t.update().where(
            conversation_t.c.id == conversation_id, conversation_t.c.incident_id.is_(None))
            .values(incident_id=incident_id))).rowcount
        current = (await conn.execute(sa.select(conversation_t.c.incident_id, conversation_t.c.id)
                                      .where(conversation_t.c.id == conversation_id))).first()
        if current is None:
            raise NotFound(f"conversation {conversation_id}")
        return bool(changed), current[0]


async def _surviving(conn: Any, incident_id: int) -> int:
    """The incident that now stands for `incident_id`: itself, or the end of its merged-into chain."""
    seen = {incident_id}
    while True:
        into = (await conn.execute(sa.select(incident_t.c.merged_into_id).where(incident_t.c.id == incident_id))).scalar()
        if into is None or into in seen:
            return incident_id
        seen.add(into)
        incident_id = into


async def log_deliveries(engine: AsyncEngine, rows: list[dict[str, Any]]) -> None:
    """Append delivery attempts to the incident's log."""
    if rows:
        async with write_transaction(engine) as conn:
            await conn.execute(delivery_t.insert(), rows)


async def paged(engine: AsyncEngine, incident_ids: Iterable[int]) -> set[int]:
    """The incidents whose trigger some receiver has acknowledged (a successful delivery)."""
    ids = sorted(set(incident_ids))
    if not ids:
        return set()
    async with engine.connect() as conn:
        rows = await conn.execute(sa.select(delivery_t.c.incident_id).where(
            delivery_t.c.incident_id.in_(ids), delivery_t.c.action == "trigger", delivery_t.c.outcome == "ok"))
        return {r[0] for r in rows}


def _unresolved_first_then_latest() -> tuple[Any, ...]:
    """The incident list's order: unresolved first, then the most recent."""
    return (sa.case((incident_t.c.state == "resolved", 1), else_=0), incident_t.c.started_at.desc(),
            incident_t.c.id.desc())


async def last_delivered(engine: AsyncEngine, limit: int) -> list[tuple[dict[str, Any], dict[str, str]]]:
    """Of the `limit` incidents `list_incidents` shows first, those some receiver took a delivery of, in that order,
    each with {receiver: action of its latest successful delivery}; one query, whatever the number of incidents."""
    recent = sa.select(incident_t.c.id).order_by(*_unresolved_first_then_latest()).limit(limit).subquery()
    latest = sa.func.row_number().over(partition_by=(delivery_t.c.incident_id, delivery_t.c.receiver),
                                       order_by=(delivery_t.c.at.desc(), delivery_t.c.id.desc()))
    ok = (sa.select(delivery_t.c.incident_id, delivery_t.c.receiver, delivery_t.c.action, latest.label("nth"))
          .where(delivery_t.c.outcome == "ok", delivery_t.c.incident_id.in_(sa.select(recent.c.id))).subquery())
    query = (sa.select(incident_t, ok.c.receiver.label("told_receiver"), ok.c.action.label("told_action"))
             .join(ok, ok.c.incident_id == incident_t.c.id).where(ok.c.nth == 1)
             .order_by(*_unresolved_first_then_latest(), ok.c.receiver))
    out: dict[int, tuple[dict[str, Any], dict[str, str]]] = {}
    async with engine.connect() as conn:
        for r in await conn.execute(query):
            row = dict(r._mapping)
            receiver, action = row.pop("told_receiver"), row.pop("told_action")
            out.setdefault(row["id"], (row, {}))[1][receiver] = action
    return list(out.values())


async def load_detector_state(engine: AsyncEngine) -> str | None:
    """The detector's last saved state (JSON), if any."""
    async with engine.connect() as conn:
        return (await conn.execute(sa.select(cursor_t.c.value).where(cursor_t.c.connector == DETECTOR_STATE))).scalar()


async def save_detector_state(engine: AsyncEngine, state: str, now: datetime) -> None:
    """Persist the detector's state so a restart keeps its baseline and open episodes."""
    async with write_transaction(engine) as conn:
        await save_cursors(conn, {DETECTOR_STATE: state}, now)


# --- the incident pages: list, one incident, and what a manager does to it -------------------------------

MANUAL_LINK_LOOKBACK = timedelta(hours=1)
LINKED_COLUMNS = ("id", "network", "account", "source", "status", "language", "category", "cluster_key", "snippet",
                  "customer_id", "last_message_at", "last_outbound_at", "first_response_at", "message_count")


async def list_incidents(engine: AsyncEngine, limit: int = 100, accounts: Iterable[str] | None = None) -> list[dict[str, Any]]:
    """Unresolved incidents first, then the most recent, of `accounts` (None: all); with linked and delivery counts."""
    linked = (sa.select(sa.func.count()).select_from(conversation_t)
              .where(conversation_t.c.incident_id == incident_t.c.id).scalar_subquery())

    def deliveries(outcome: str) -> Any:
        return (sa.select(sa.func.count()).select_from(delivery_t)
                .where(delivery_t.c.incident_id == incident_t.c.id, delivery_t.c.outcome == outcome).scalar_subquery())

    query = (sa.select(incident_t, linked.label("linked"), deliveries("ok").label("delivered"),
                       deliveries("failed").label("failed"))
             .order_by(*_unresolved_first_then_latest())
             .limit(limit))
    if accounts is not None:
        query = query.where(incident_t.c.account.in_(sorted(set(accounts))))
    async with engine.connect() as conn:
        return [dict(r._mapping) for r in await conn.execute(query)]


async def incident(engine: AsyncEngine, incident_id: int) -> dict[str, Any] | None:
    """One incident with its linked conversations (and their customer) and its whole delivery log."""
    async with engine.connect() as conn:
        row = (await conn.execute(sa.select(incident_t).where(incident_t.c.id == incident_id))).first()
        if row is None:
            return None
        convs = await conn.execute(
            sa.select(*(conversation_t.c[name] for name in LINKED_COLUMNS), customer_t.c.display_name.label("customer"))
            .join(customer_t, customer_t.c.id == conversation_t.c.customer_id, isouter=True)
            .where(conversation_t.c.incident_id == incident_id).order_by(conversation_t.c.id))
        log_rows = await conn.execute(sa.select(delivery_t).where(delivery_t.c.incident_id == incident_id)
                                      .order_by(delivery_t.c.at, delivery_t.c.id))
        return {**row._mapping, "conversations": [dict(r._mapping) for r in convs],
                "deliveries": [dict(r._mapping) for r in log_rows]}


async def complaint_times(engine: AsyncEngine, incident_id: int, since: datetime, until: datetime) -> list[datetime]:
    """When the linked conversations' customers wrote, between `since` and `until`."""
    query = (sa.select(mention_t.c.created_at).join(conversation_t, conversation_t.c.id == mention_t.c.conversation_id)
             .where(conversation_t.c.incident_id == incident_id, mention_t.c.direction == "in",
                    mention_t.c.created_at >= since, mention_t.c.created_at <= until)
             .order_by(mention_t.c.created_at))
    async with engine.connect() as conn:
        return [r[0] for r in await conn.execute(query)]


async def _require(conn: Any, incident_id: int) -> dict[str, Any]:
    row = (await conn.execute(sa.select(incident_t).where(incident_t.c.id == incident_id))).first()
    if row is None:
        raise NotFound(f"incident {incident_id}")
    return dict(row._mapping)


async def acknowledge(engine: AsyncEngine, incident_id: int, now: datetime) -> bool:
    """Mark an open incident acknowledged; False when it was not open."""
    async with write_transaction(engine) as conn:
        if (await _require(conn, incident_id))["state"] != "open":
            return False
        await conn.execute(incident_t.update().where(incident_t.c.id == incident_id)
                           .values(state="acknowledged", acknowledged_at=now))
        return True


async def resolve(engine: AsyncEngine, incident_id: int, now: datetime) -> bool:
    """Mark an incident resolved; False when it already was."""
    async with write_transaction(engine) as conn:
        if (await _require(conn, incident_id))["state"] == "resolved":
            return False
        await conn.execute(incident_t.update().where(incident_t.c.id == incident_id)
                           .values(state="resolved", resolved_at=now))
        await _end_policy(conn, incident_id, now)
        return True


async def _end_policy(conn: Any, incident_id: int, now: datetime) -> None:
    """A resolved (or merged) incident's SLA policy ends with it: its conversations go back to their own."""
    await conn.execute(incident_t.update().where(
        incident_t.c.id == incident_id, incident_t.c.policy.is_not(None), incident_t.c.policy_until.is_(None))
        .values(policy_until=now))


async def open_by_hand(engine: AsyncEngine, account: str, cluster_key: str | None, title: str,
                       now: datetime) -> tuple[int, int]:
    """Open an incident by hand, linking the matching open conversations of the last hour; (id, linked)."""
    values = {"account": account, "cluster_key": cluster_key, "title": title, "state": "open", "severity": "warning",
              "source": "manual", "started_at": now, "detected_at": now, "reason": "opened by hand", "series": "[]",
              "dedup_key": f"carebox/{account}/{cluster_key or '*'}/{now:%Y%m%dT%H%M%S}/manual-{secrets.token_hex(4)}"}
    return await open_incident(engine, values, now - MANUAL_LINK_LOOKBACK)


async def merge(engine: AsyncEngine, source_id: int, target_id: int, now: datetime) -> int:
    """Move the source's conversations to the target; the source is resolved as merged. How many moved."""
    if source_id == target_id:
        raise ValueError("an incident cannot be merged into itself")
    async with write_transaction(engine) as conn:
        source, target = await _require(conn, source_id), await _require(conn, target_id)
        if source["merged_into_id"] is not None:
            raise ValueError(f"incident {source_id} was already merged into incident {source['merged_into_id']}")
        if target["merged_into_id"] is not None:
            raise ValueError(f"incident {target_id} was merged into incident {target['merged_into_id']}")
        moved = (await conn.execute(conversation_t.update().where(conversation_t.c.incident_id == source_id)
                                    .values(incident_id=target_id))).rowcount
        await conn.execute(incident_t.update().where(incident_t.c.id == source_id).values(
            merged_into_id=target_id, state="resolved", resolved_at=source["resolved_at"] or now))
        await _end_policy(conn, source_id, now)
        return int(moved or 0)


async def unlink(engine: AsyncEngine, incident_id: int, conversation_id: int) -> bool:
    """Detach one conversation from an incident (a split); False when it was not linked to it."""
    async with write_transaction(engine) as conn:
        await _require(conn, incident_id)
        result = await conn.execute(conversation_t.update().where(
            conversation_t.c.id == conversation_id, conversation_t.c.incident_id == incident_id).values(incident_id=None))
        return bool(result.rowcount)


async def split(engine: AsyncEngine, incident_id: int, conversation_ids: Iterable[int], title: str,
                now: datetime) -> tuple[int, int]:
    """Move chosen linked conversations to a new incident (same account and cluster, same SLA policy in force),
    opened by hand; its window starts at the first message of the moved conversations. (new id, moved)."""
    ids = sorted(set(conversation_ids))
    async with write_transaction(engine) as conn:
        source = await _require(conn, incident_id)
        if source["merged_into_id"] is not None:
            raise ValueError(f"incident {incident_id} was merged into incident {source['merged_into_id']}")
        mine = conversation_t.c.incident_id == incident_id
        linked = [r[0] for r in await conn.execute(sa.select(conversation_t.c.id).where(mine, conversation_t.c.id.in_(ids)))]
        if not linked:
            raise ValueError("choose at least one conversation linked to this incident")
        if len(linked) == (await conn.execute(sa.select(sa.func.count()).select_from(conversation_t).where(mine))).scalar():
            raise ValueError("a split must leave at least one conversation on this incident")
        first = (await conn.execute(sa.select(sa.func.min(conversation_t.c.first_message_at))
                                    .where(conversation_t.c.id.in_(linked)))).scalar()
        started = max(first or source["started_at"], source["started_at"] - MANUAL_LINK_LOOKBACK)
        values = {k: source[k] for k in ("account", "cluster_key", "severity", "policy", "policy_at", "policy_until")}
        values.update(title=title, state="resolved" if source["state"] == "resolved" else "open", source="split",
                      started_at=min(started, now), detected_at=now, resolved_at=source["resolved_at"], reason=
                      f"split from incident #{incident_id}", series="[]", split_from_id=incident_id,
                      dedup_key=f"{source['dedup_key']}/split-{now:%Y%m%dT%H%M%S}-{secrets.token_hex(4)}")
        new_id = (await conn.execute(incident_t.insert().values(**values).returning(incident_t.c.id))).scalar_one()
        await conn.execute(conversation_t.update().where(conversation_t.c.id.in_(linked)).values(incident_id=new_id))
        return int(new_id), len(linked)


async def save_series(engine: AsyncEngine, series: dict[int, str]) -> None:
    """Store each incident's detector series (JSON [[bucket start, counted, expected], ...]) for its chart."""
    if series:
        async with write_transaction(engine) as conn:
            for incident_id, text in series.items():
                await conn.execute(incident_t.update().where(incident_t.c.id == incident_id).values(series=text))
