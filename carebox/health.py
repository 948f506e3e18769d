"""Readiness checks of the store and the queue, for /healthz and /readyz and `carebox worker` probes."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

TIMEOUT_S = 2.0


@dataclass(frozen=True, slots=True)
class Check:
    """The outcome of one check: ok, how long it took, and what was wrong or found."""

    name: str
    ok: bool
    latency_ms: float
    detail: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "ok": self.ok, "latency_ms": round(self.latency_ms, 1), "detail": self.detail}


async def check_store(engine: AsyncEngine, timeout_s: float = TIMEOUT_S) -> Check:
    """The store answers a query and has a migrated schema."""
    started = time.perf_counter()
    try:
        async with asyncio.timeout(timeout_s):
            async with engine.connect() as conn:
                version = (await conn.execute(sa.text("SELECT version_num FROM alembic_version"))).scalar()
        return Check("store", True, (time.perf_counter() - started) * 1000, f"{engine.dialect.name} at {version}")
    except Exception as err:  # noqa: BLE001 - a health check reports, it never raises
        return Check("store", False, (time.perf_counter() - started) * 1000, f"{type(err).__name__}: {err}"[:300])


async def check_queue(queue: Any, timeout_s: float = TIMEOUT_S) -> Check:
    """The queue is reachable: Redis answers with the stream's length and pending entries; embedded is always up."""
    started = time.perf_counter()
    stats = getattr(queue, "stats", None)
    if stats is None:
        return Check("queue", True, 0.0, f"embedded, {len(queue)} batches waiting")
    try:
        async with asyncio.timeout(timeout_s):
            found = await stats()
        return Check("queue", True, (time.perf_counter() - started) * 1000,
                     f"redis stream length {found['length']}, pending {found['pending']}")
    except Exception as err:  # noqa: BLE001
        return Check("queue", False, (time.perf_counter() - started) * 1000, f"{type(err).__name__}: {err}"[:300])


async def readiness(engine: AsyncEngine, queue: Any | None) -> tuple[bool, list[Check]]:
    """Every check, run concurrently; ready when all pass."""
    checks = [check_store(engine)] + ([check_queue(queue)] if queue is not None else [])
    results = list(await asyncio.gather(*checks))
    return all(c.ok for c in results), results
