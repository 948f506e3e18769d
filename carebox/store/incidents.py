"""SQL for incidents: open, escalate, resolve, link conversations, log deliveries, keep detector state."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from carebox.models import Incident, IncidentDelivery
from carebox.store.engine import write_transaction
from carebox.store.ingest import conversation_t, cursor_t, save_cursors

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
    conversations of its account (and cluster key) that began since `link_since`; (id, linked)."""
    async with write_transaction(engine) as conn:
        found = (await conn.execute(sa.select(incident_t.c.id).where(incident_t.c.dedup_key == values["dedup_key"]))).scalar()
        incident_id = found or (await conn.execute(incident_t.insert().values(**values).returning(incident_t.c.id))).scalar_one()
        match = [conversation_t.c.account == values["account"], conversation_t.c.status != "resolved",
                 conversation_t.c.incident_id.is_(None), conversation_t.c.last_message_at >= link_since]
        if values.get("cluster_key"):
            match.append(conversation_t.c.cluster_key == values["cluster_key"])
        else:
            match.append(conversation_t.c.category.in_(("outage", "complaint")))
        linked = (await conn.execute(conversation_t.update().where(*match).values(incident_id=incident_id))).rowcount
    return int(incident_id), int(linked or 0)


async def update_incident(engine: AsyncEngine, incident_id: int, **values: Any) -> None:
    """Change an incident's state, severity or counts."""
    async with write_transaction(engine) as conn:
        await conn.execute(incident_t.update().where(incident_t.c.id == incident_id).values(**values))


async def link_conversations(engine: AsyncEngine, incident_id: int, conversation_ids: Iterable[int]) -> int:
    """Attach conversations to an incident unless they already belong to one."""
    ids = sorted(set(conversation_ids))
    if not ids:
        return 0
    async with write_transaction(engine) as conn:
        result = await conn.execute(conversation_t.update().where(
            conversation_t.c.id.in_(ids), conversation_t.c.incident_id.is_(None)).values(incident_id=incident_id))
        return int(result.rowcount or 0)


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


async def load_detector_state(engine: AsyncEngine) -> str | None:
    """The detector's last saved state (JSON), if any."""
    async with engine.connect() as conn:
        return (await conn.execute(sa.select(cursor_t.c.value).where(cursor_t.c.connector == DETECTOR_STATE))).scalar()


async def save_detector_state(engine: AsyncEngine, state: str, now: datetime) -> None:
    """Persist the detector's state so a restart keeps its baseline and open episodes."""
    async with write_transaction(engine) as conn:
        await save_cursors(conn, {DETECTOR_STATE: state}, now)
