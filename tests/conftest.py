"""Shared fixtures: an isolated store on SQLite and on PostgreSQL, a pipeline, mention factories, service checks."""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import secrets
import socket
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from carebox import config
from carebox.ports import Direction, InboundMention

REQUIRE_SERVICES = os.environ.get("CAREBOX_REQUIRE_SERVICES") == "1"
PG_HOST = os.environ.get("CAREBOX_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("CAREBOX_TEST_PG_PORT", "5432"))
PG_USER = os.environ.get("CAREBOX_TEST_PG_USER", "postgres")
REDIS_URL = os.environ.get("CAREBOX_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
# Test modules that are about SQLite by nature (a replay killed on an SQLite file): never run on PostgreSQL.
SQLITE_ONLY_MODULES = frozenset({"test_durability"})


def need_service(name: str, reachable: bool, how: str) -> None:
    """Skip when a service is absent, unless CI requires it (CAREBOX_REQUIRE_SERVICES=1): then fail."""
    if reachable:
        return
    message = f"{name} is not reachable ({how})"
    if REQUIRE_SERVICES:
        pytest.fail(message + " and CAREBOX_REQUIRE_SERVICES=1")
    pytest.skip(message)


def reachable(host: str, port: int) -> bool:
    """Whether a TCP service answers on host:port."""
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def pg_url(database: str) -> str:
    """The SQLAlchemy URL of a database on the test server."""
    return f"postgresql+asyncpg://{PG_USER}@{PG_HOST}:{PG_PORT}/{database}"


def pg_execute(database: str, *statements: str) -> list[Any]:
    """Run statements on a database of the test server (in a thread with its own loop); the last one's rows."""
    import asyncpg

    async def run() -> list[Any]:
        conn = await asyncpg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, database=database)
        try:
            rows: list[Any] = []
            for statement in statements:
                rows = await conn.fetch(statement)
            return rows
        finally:
            await conn.close()

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, run()).result()


def create_pg_database(prefix: str = "carebox_test") -> str:
    """Create a uniquely named database on the test server; returns its name."""
    name = f"{prefix}_{secrets.token_hex(4)}"
    pg_execute("postgres", f'CREATE DATABASE "{name}"')
    return name


def drop_pg_database(name: str) -> None:
    """Drop a test database, disconnecting whoever is left on it."""
    pg_execute("postgres", f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def need_postgres() -> None:
    """Skip (or fail in CI) when the test PostgreSQL is absent."""
    need_service("PostgreSQL", reachable(PG_HOST, PG_PORT), f"{PG_HOST}:{PG_PORT}")


def need_redis() -> None:
    """Skip (or fail in CI) when the test Redis is absent."""
    from redis import Redis

    try:
        with Redis.from_url(REDIS_URL, socket_connect_timeout=1.0) as client:
            ok = bool(client.ping())
    except Exception:  # noqa: BLE001 - any failure means "absent"
        ok = False
    need_service("Redis", ok, REDIS_URL)


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """One migrated PostgreSQL database for this test run, dropped at the end."""
    need_postgres()
    from carebox.store.migrate import upgrade_sync

    name = create_pg_database()
    try:
        upgrade_sync(pg_url(name))
        yield name
    finally:
        drop_pg_database(name)


def truncate_pg(name: str) -> None:
    """Empty every table of a test database (ids restart), keeping the schema."""
    pg_execute(name, """DO $$ DECLARE t text; BEGIN
        SELECT string_agg(format('%I', tablename), ', ') INTO t FROM pg_tables
         WHERE schemaname = 'public' AND tablename <> 'alembic_version';
        IF t IS NOT NULL THEN EXECUTE 'TRUNCATE ' || t || ' RESTART IDENTITY CASCADE'; END IF; END $$""")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Keep SQLite-only modules (and tests marked sqlite_only) off PostgreSQL."""
    kept, dropped = [], []
    for item in items:
        callspec = getattr(item, "callspec", None)
        on_pg = callspec is not None and callspec.params.get("db_url") == "postgres"
        sqlite_only = item.module is not None and item.module.__name__.rsplit(".", 1)[-1] in SQLITE_ONLY_MODULES
        (dropped if on_pg and (sqlite_only or item.get_closest_marker("sqlite_only")) else kept).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty, migrated-on-demand store: an SQLite file, or the run's PostgreSQL database emptied."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'carebox.db'}"
    name = request.getfixturevalue("pg_database")
    truncate_pg(name)
    return pg_url(name)


@pytest.fixture
def settings(tmp_path: Path, db_url: str) -> config.Settings:
    return config.parse({"carebox": {"data_dir": str(tmp_path)}, "database": {"url": db_url}}, environ={})


@pytest.fixture
async def engine(db_url: str) -> AsyncIterator[Any]:
    from carebox.store.engine import make_engine
    from carebox.store.migrate import upgrade

    await upgrade(db_url)
    eng = make_engine(db_url)
    yield eng
    await eng.dispose()


@pytest.fixture
def pipeline(settings: config.Settings, engine: Any) -> Any:
    from carebox.runtime import make_pipeline

    return make_pipeline(settings, engine)[0]


def at(text: str) -> datetime:
    """An aware UTC datetime from ISO text ("2026-11-20T17:50:00+00:00" or with another offset)."""
    return datetime.fromisoformat(text).astimezone(UTC)


@pytest.fixture
def mention() -> Callable[..., InboundMention]:
    counter = iter(range(1, 1_000_000))

    def make(text: str = "my 4G is down since this morning", *, when: str = "2026-11-17T10:00:00+01:00",
             author: str = "u1", direction: Direction = Direction.INBOUND, **kw: Any) -> InboundMention:
        fields: dict[str, Any] = {
            "network": "x", "account": "acme", "external_id": str(next(counter)), "author_id": author,
            "author_handle": author if direction is Direction.INBOUND else "acme", "text": text,
            "created_at": at(when), "direction": direction,
        }
        fields.update(kw)
        return InboundMention(**fields)

    return make


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    """The browser every browser test drives: Debian's Chromium through Playwright, headless, never downloaded."""
    from playwright.async_api import async_playwright

    from tests.e2e.harness import CHROMIUM, CHROMIUM_ARGS

    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        await chromium.close()
