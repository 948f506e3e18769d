"""Shared fixtures: an isolated SQLite store, a pipeline, mention factories, service checks."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from carebox import config
from carebox.ports import Direction, InboundMention

REQUIRE_SERVICES = os.environ.get("CAREBOX_REQUIRE_SERVICES") == "1"


def need_service(name: str, reachable: bool, how: str) -> None:
    """Skip when a service is absent, unless CI requires it (CAREBOX_REQUIRE_SERVICES=1): then fail."""
    if reachable:
        return
    message = f"{name} is not reachable ({how})"
    if REQUIRE_SERVICES:
        pytest.fail(message + " and CAREBOX_REQUIRE_SERVICES=1")
    pytest.skip(message)


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'carebox.db'}"


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
