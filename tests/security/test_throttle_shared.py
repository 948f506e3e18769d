"""Login throttling holds across web processes: failures are counted in the shared store, not in each process."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from carebox.store import logins
from tests.security import (
    HOOK_SECRET,
    HOOK_SECRET_ENV,
    PASSWORD,
    add_users,
    login,
    second_browser,
    security_settings,
)
from web.keys import engine_key


class Clock:
    """A wall clock both processes read, moved by the test."""

    def __init__(self) -> None:
        self.at = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.at


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def pair(aiohttp_client, tmp_path, clock) -> tuple[Any, Any, Any]:
    """Two web processes on one store: the main one (`serve`) and a `web` one; a client on each, and the app."""
    from carebox.runtime import build_app

    os.environ.setdefault(HOOK_SECRET_ENV, HOOK_SECRET)
    settings = security_settings(tmp_path)
    first = await build_app(settings, now=clock)
    one = await aiohttp_client(first)
    await add_users(first)
    two = await aiohttp_client(await build_app(settings, now=clock, role="web"))
    return one, two, first


async def test_failures_split_across_two_processes_lock_the_name_on_both(pair):
    one, two, _ = pair
    for client in (one, two, one, two, one):
        assert (await login(client, "agent", "wrong-password")).status == 401
    assert (await login(two, "Agent")).status == 429  # the right password, any case, on either process
    assert (await login(one, "agent")).status == 429
    async with second_browser(two) as other:
        assert (await login(other, "manager")).status == 303  # other names still log in


async def test_four_failures_on_two_processes_do_not_lock_the_name(pair):
    one, two, _ = pair
    for client in (one, two, one, two):
        assert (await login(client, "agent", "wrong-password")).status == 401
    assert (await login(two, "agent")).status == 303


async def test_unknown_names_are_locked_across_processes_too(pair):
    one, two, _ = pair
    for client in (two, one, two, one, two):
        assert (await login(client, "nobody", "guess-guess")).status == 401
    assert (await login(one, "NOBODY", "guess-guess")).status == 429


async def test_the_lock_lifts_after_five_minutes_on_every_process(pair, clock):
    one, two, _ = pair
    for client in (one, two, one, two, one):
        assert (await login(client, "agent", "wrong-password")).status == 401
    clock.at += timedelta(minutes=4, seconds=59)
    assert (await login(two, "agent")).status == 429
    clock.at += timedelta(seconds=2)
    assert (await login(two, "agent")).status == 303


async def test_the_store_keeps_neither_the_typed_name_nor_expired_failures(pair, clock):
    one, two, app = pair
    await login(one, PASSWORD, "wrong-password")  # a password typed in the name field
    clock.at += timedelta(minutes=6)
    await login(two, "agent", "wrong-password")
    async with app[engine_key].connect() as c:
        rows = (await c.execute(sa.select(logins.failure))).all()
    assert len(rows) == 1 and rows[0].at == clock.at  # the older failure was forgotten
    assert PASSWORD not in rows[0].key and "agent" not in rows[0].key and len(rows[0].key) == 64
