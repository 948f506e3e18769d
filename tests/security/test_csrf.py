"""CSRF: every state-changing request of a session needs that session's token; the API takes a Bearer token instead."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import web

from tests.security import (
    STATE_CHANGING,
    Route,
    add_users,
    api_token,
    build,
    csrf_of,
    login,
    routes,
    second_browser,
    security_settings,
)


@pytest.fixture
async def app(tmp_path) -> web.Application:
    return await build(security_settings(tmp_path))


async def _session(client: Any, username: str) -> tuple[Any, str]:
    assert (await login(client, username)).status == 303
    return client, await csrf_of(client)


def _session_routes(app: web.Application) -> list[Route]:
    """State-changing routes that run under a session: all but login, signed hooks and the Bearer API."""
    return [r for r in routes(app) if r.method in STATE_CHANGING and not r.public and not r.path.startswith("/api/")]


async def _refusals(client: Any, table: list[Route], attempts: list[dict[str, Any]]) -> list[str]:
    wrong = []
    for route in table:
        for attempt in attempts:
            resp = await client.request(route.method, route.url, allow_redirects=False, **attempt)
            await resp.read()
            if resp.status != 403:
                wrong.append(f"{route.method} {route.path} {sorted(attempt)} -> {resp.status}")
    return wrong


async def test_every_state_change_without_the_token_or_with_another_sessions_token_is_refused(aiohttp_client, app):
    client = await aiohttp_client(app)
    await add_users(app)
    _, own = await _session(client, "admin")
    async with second_browser(client) as browser:
        _, other = await _session(browser, "manager")
    assert own != other
    table = _session_routes(app)
    assert {"/logout", "/conversations/{id}/reply", "/admin/users", "/me/tokens"} <= {r.path for r in table}
    attempts = [{}, {"data": {"status": "resolved"}}, {"data": {"csrf": other}}, {"headers": {"X-CSRF-Token": other}},
                {"json": {"csrf": own}}, {"data": {"csrf": ""}}]
    assert await _refusals(client, table, attempts) == []
    # the refusals were the CSRF check's: with the session's own token the same requests pass it
    passed = await _refusals(client, [r for r in table if r.path != "/logout"], [{"data": {"csrf": own}}])
    assert len(passed) == len(table) - 1


async def test_login_needs_the_token_of_the_login_page(aiohttp_client, app):
    client = await aiohttp_client(app)
    await add_users(app)
    resp = await client.post("/login", data={"username": "admin", "password": "whatever-it-is"}, allow_redirects=False)
    assert resp.status == 403


async def test_the_token_changes_when_a_session_logs_in(aiohttp_client, app):
    client = await aiohttp_client(app)
    await add_users(app)
    before = await (await client.get("/login")).text()
    assert (await login(client, "agent")).status == 303
    assert await csrf_of(client) not in before


async def test_api_state_changes_need_a_bearer_token_not_a_session(aiohttp_client, app):
    client = await aiohttp_client(app)
    await add_users(app)
    await _session(client, "admin")
    token = await api_token(client)
    table = [r for r in routes(app) if r.method in STATE_CHANGING and r.path.startswith("/api/")]
    assert table
    # a logged-in browser's cookie alone (what a cross-site form would send) is refused
    assert await _refusals(client, table, [{"json": {"text": "hi", "assignee_id": None}}]) == []
    async with second_browser(client) as anonymous:
        await _bearer_calls(anonymous, table, token)


async def _bearer_calls(anonymous: Any, table: list[Route], token: str) -> None:
    for route in table:
        resp = await anonymous.request(route.method, route.url, json={"text": "hi", "assignee_id": None},
                                       headers={"Authorization": f"Bearer {token}"})
        assert resp.status not in (401, 403), route
        bad = await anonymous.request(route.method, route.url, json={"text": "hi"}, headers={"Authorization": "Bearer x"})
        assert bad.status == 401, route
