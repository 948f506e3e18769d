"""Login attempts in the store: the lockout count every web process shares (web/auth.py decides)."""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from carebox.models import LoginFailure
from carebox.store.engine import write_transaction

failure: sa.Table = LoginFailure.__table__  # type: ignore[attr-defined]
# First key of the two-int advisory locks taken per throttle key (ingest 7301, leader 7310, migrations 7320).
LOCK_SPACE = 7330
_LOCK_KEY = sa.text("SELECT pg_advisory_xact_lock(:space, hashtext(:key))")


async def _lock(c: AsyncConnection, key: str) -> None:
    # SQLite's BEGIN IMMEDIATE already serialises every writer; PostgreSQL's READ COMMITTED would let two
    # transactions count the same rows and both insert, so attempts of one key queue up on a lock.
    if c.dialect.name == "postgresql":
        await c.execute(_LOCK_KEY, {"space": LOCK_SPACE, "key": key})


def _forget_expired(cutoff: datetime) -> sa.Delete:
    # SKIP LOCKED (PostgreSQL; ignored by SQLite): rows another attempt is already deleting are left to it,
    # so concurrent attempts never wait on, or deadlock over, each other's clean-up.
    expired = sa.select(failure.c.id).where(failure.c.at <= cutoff).with_for_update(skip_locked=True)
    return failure.delete().where(failure.c.id.in_(expired))


async def take_attempt(engine: AsyncEngine, key: str, now: datetime, window: timedelta, limit: int) -> int | None:
    """Count one login attempt of `key` before its password is checked (its row id), in one step with the check:
    None, and nothing counted, when `key` already has `limit` attempts within `window`."""
    async with write_transaction(engine) as c:
        await _lock(c, key)
        await c.execute(_forget_expired(now - window))
        counted = sa.select(sa.func.count()).select_from(failure).where(failure.c.key == key, failure.c.at > now - window)
        if int((await c.execute(counted)).scalar_one()) >= limit:
            return None
        inserted = await c.execute(failure.insert().values(key=key, at=now))
        return int(inserted.inserted_primary_key[0])


async def forget_attempt(engine: AsyncEngine, attempt_id: int) -> None:
    """Uncount an attempt whose password was right: only failures lock a name."""
    async with write_transaction(engine) as c:
        await c.execute(failure.delete().where(failure.c.id == attempt_id))
