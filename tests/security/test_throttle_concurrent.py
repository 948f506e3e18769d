"""Simultaneous logins: the throttle's check and count are one step, so parallel guesses get no more tries."""

from __future__ import annotations

import asyncio
import dataclasses
import os
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from carebox.store import logins
from tests.security import (
    CSRF,
    HOOK_SECRET,
    HOOK_SECRET_ENV,
    add_users,
    login,
    security_settings,
)
from web.auth import LOCKOUT_S, MAX_FAILURES

GUESSES = 20
NOW = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)


@pytest.fixture
async def pair(aiohttp_client, tmp_path, db_url) -> tuple[Any, Any]:
    """Two web processes (`serve` and `web`) on one store, SQLite or PostgreSQL; a client on each."""
    from carebox.runtime import build_app

    os.environ.setdefault(HOOK_SECRET_ENV, HOOK_SECRET)
    settings = dataclasses.replace(security_settings(tmp_path), database_url=db_url)
    first = await build_app(settings)
    one = await aiohttp_client(first)
    await add_users(first)
    two = await aiohttp_client(await build_app(settings, role="web"))
    return one, two


async def guesses(client: Any, count: int, password: str = "wrong-password") -> list[Any]:
    """`count` logins as "agent" posted at once from one browser (its login page's token); the response codes."""
    token = CSRF.search(await (await client.get("/login")).text()).group(1)
    form = {"username": "agent", "password": password, "csrf": token}
    responses = await asyncio.gather(*(client.post("/login", data=form, allow_redirects=False) for _ in range(count)))
    return [r.status for r in responses]


async def test_parallel_wrong_passwords_get_no_more_tries_than_the_limit(pair):
    one, _ = pair
    assert Counter(await guesses(one, GUESSES)) == {401: MAX_FAILURES, 429: GUESSES - MAX_FAILURES}
    assert (await login(one, "agent")).status == 429


async def test_parallel_wrong_passwords_on_two_processes_get_no_more_tries_than_the_limit(pair):
    one, two = pair
    statuses = await asyncio.gather(guesses(one, GUESSES // 2), guesses(two, GUESSES // 2))
    assert Counter(statuses[0] + statuses[1]) == {401: MAX_FAILURES, 429: GUESSES - MAX_FAILURES}
    assert (await login(two, "agent")).status == 429


async def test_right_passwords_are_not_counted_as_failures(pair):
    one, two = pair
    for client in (one, two) * MAX_FAILURES:
        assert (await login(client, "agent")).status == 303
    assert (await login(one, "agent", "wrong-password")).status == 401
    assert (await login(two, "agent")).status == 303


async def test_parallel_attempts_in_the_store_take_exactly_the_allowed_slots(engine):
    window = timedelta(seconds=LOCKOUT_S)
    taken = await asyncio.gather(*(logins.take_attempt(engine, "k", NOW, window, MAX_FAILURES) for _ in range(GUESSES)))
    assert sum(slot is not None for slot in taken) == MAX_FAILURES
    assert await logins.take_attempt(engine, "other", NOW, window, MAX_FAILURES) is not None  # other keys are free
    assert await logins.take_attempt(engine, "k", NOW + window, window, MAX_FAILURES) is not None  # the window ends


async def test_a_forgotten_attempt_frees_its_slot(engine):
    window = timedelta(seconds=LOCKOUT_S)
    slots = [await logins.take_attempt(engine, "k", NOW, window, MAX_FAILURES) for _ in range(MAX_FAILURES)]
    assert await logins.take_attempt(engine, "k", NOW, window, MAX_FAILURES) is None
    await logins.forget_attempt(engine, slots[0])
    assert await logins.take_attempt(engine, "k", NOW, window, MAX_FAILURES) is not None
