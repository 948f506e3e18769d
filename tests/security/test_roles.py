"""Roles: agents stay out of admin pages and reports; managers cannot manage users or connectors; admins can."""

from __future__ import annotations

import inspect
import re
from typing import Any

import pytest
from aiohttp import web

from tests.security import (
    STATE_CHANGING,
    Route,
    add_users,
    build,
    csrf_of,
    login,
    routes,
    security_settings,
)

RANK = {"agent": 1, "manager": 2, "admin": 3}
REQUIRE = re.compile(r'require\(request, "(agent|manager|admin)"\)|(_require_manager)\(request\)')
# What the rules say, by path: the least role a route under the prefix needs (the most specific prefix wins).
RULES = (("/admin/users", "admin"), ("/admin/connectors", "admin"), ("/admin/", "manager"), ("/reports", "manager"))


def needed_role(route: Route) -> str | None:
    """The role a route's handler demands, read from its source (`auth.require` or the reports' manager check)."""
    try:
        source = inspect.getsource(route.handler)
    except (OSError, TypeError):
        return None
    found = [m.group(1) or "manager" for m in REQUIRE.finditer(source)]
    return max(found, key=RANK.__getitem__) if found else None


def rule_for(path: str) -> str | None:
    """The role the rules demand for `path`, if any."""
    return next((role for prefix, role in RULES if path.startswith(prefix)), None)


def rule_violations(table: list[Route]) -> list[str]:
    """Routes whose handler demands less than the rules."""
    return [f"{r.method} {r.path} needs {rule_for(r.path)}, handler checks {needed_role(r)}" for r in table
            if rule_for(r.path) and RANK.get(needed_role(r) or "", 0) < RANK[rule_for(r.path) or "agent"]]


@pytest.fixture
async def app(tmp_path) -> web.Application:
    return await build(security_settings(tmp_path))


async def _as(aiohttp_client: Any, app: web.Application, role: str) -> tuple[Any, str]:
    client = await aiohttp_client(app)
    await add_users(app)
    assert (await login(client, role)).status == 303
    return client, await csrf_of(client)


async def _status(client: Any, csrf: str, route: Route) -> int:
    if route.method in STATE_CHANGING:
        resp = await client.request(route.method, route.url, data={"csrf": csrf}, allow_redirects=False)
    else:
        resp = await client.get(route.url, allow_redirects=False)
    await resp.read()
    return resp.status


async def test_every_admin_and_report_route_checks_the_role_the_rules_demand(aiohttp_client, app):
    await aiohttp_client(app)
    await add_users(app)  # a moment of life: an app stopped at once can hang its teardown (see report)
    table = routes(app)
    assert rule_violations(table) == []
    assert {r.path for r in table if rule_for(r.path)} >= {"/admin/users", "/admin/connectors", "/admin/policies",
                                                          "/admin/canned", "/admin/dead-letters", "/reports",
                                                          "/admin/calendars/{name}", "/admin/policies/{name}"}
    assert {r.method for r in table if r.path in ("/admin/calendars/{name}", "/admin/policies/{name}")} == {"GET", "POST"}


async def test_an_admin_route_without_a_role_check_fails_the_rule_check(aiohttp_client, app):
    async def open_door(_request: web.Request) -> web.Response:
        return web.Response(text="users")

    app.router.add_post("/admin/users/export", open_door)
    await aiohttp_client(app)
    await add_users(app)  # a moment of life: an app stopped at once can hang its teardown (see report)
    assert rule_violations(routes(app)) == ["POST /admin/users/export needs admin, handler checks None"]


@pytest.mark.parametrize("role", ["agent", "manager", "admin"])
async def test_each_role_is_refused_exactly_the_routes_above_it(aiohttp_client, app, role):
    client, csrf = await _as(aiohttp_client, app, role)
    protected = [(r, needed_role(r)) for r in routes(app) if needed_role(r) and not r.path.startswith("/events")]
    assert len(protected) >= 10
    wrong = []
    for route, needed in protected:
        status = await _status(client, csrf, route)
        allowed = RANK[role] >= RANK[needed]
        if (status == 403) == allowed or status >= 500:
            wrong.append(f"{role} {route.method} {route.path} (needs {needed}) -> {status}")
    assert wrong == []
