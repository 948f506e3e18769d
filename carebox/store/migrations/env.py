"""Alembic environment: runs carebox's migrations on the configured (async) engine."""

from __future__ import annotations

import asyncio

import sqlalchemy as sa
from alembic import context
from sqlalchemy.engine import Connection
from sqlmodel import SQLModel

from carebox import models  # noqa: F401  (registers the tables)
from carebox.store.engine import make_engine

target_metadata = SQLModel.metadata
MIGRATION_LOCK = 7320


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            # several processes may start at once: one migrates, the others wait and then find nothing to do
            connection.execute(sa.text("SELECT pg_advisory_xact_lock(:space, 0)"), {"space": MIGRATION_LOCK})
        context.run_migrations()


async def _main() -> None:
    engine = make_engine(context.config.get_main_option("sqlalchemy.url") or "")
    async with engine.connect() as connection:
        await connection.run_sync(_run)
        await connection.commit()
    await engine.dispose()


if context.is_offline_mode():
    context.configure(url=context.config.get_main_option("sqlalchemy.url"), target_metadata=target_metadata)
    with context.begin_transaction():
        context.run_migrations()
else:
    asyncio.run(_main())
