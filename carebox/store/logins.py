"""Failed logins in the store: the lockout count every web process shares (web/auth.py decides)."""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from carebox.models import LoginFailure
from carebox.store.engine import write_transaction

failure: sa.Table = LoginFailure.__table__  # type: ignore[attr-defined]


async def failures_since(engine: AsyncEngine, key: str, since: datetime) -> int:
    """How many failed logins `key` has had after `since`."""
    async with engine.connect() as c:
        query = sa.select(sa.func.count()).select_from(failure).where(failure.c.key == key, failure.c.at > since)
        return int((await c.execute(query)).scalar_one())


async def record_failure(engine: AsyncEngine, key: str, now: datetime, window: timedelta) -> None:
    """Remember one failed login of `key`, forgetting every failure older than `window` (of any key)."""
    async with write_transaction(engine) as c:
        await c.execute(failure.delete().where(failure.c.at <= now - window))
        await c.execute(failure.insert().values(key=key, at=now))
