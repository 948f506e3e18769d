"""Every route of the router needs a session, except an explicit allow-list; signed webhooks refuse bad signatures."""

from __future__ import annotations

import re
from typing import Any

import pytest
from aiohttp import web

from tests.security import (
    STATE_CHANGING,
    Route,
    add_users,
    build,
    routes,
    security_settings,
)


async def _anonymous_violations(client: Any, table: list[Route]) -> list[str]:
    """Routes an anonymous visitor reaches: a non-public one that does not refuse, a hook that takes no signature."""
    found = []
    for route in table:
        if route.method == "GET" and route.path.startswith("/events"):
            continue  # checked alone below: a refused stream must not be opened
        resp = await client.request(route.method, route.url, allow_redirects=False, data=b"{}",
                                    headers={"Content-Type": "application/json"})
        await resp.read()
        if route.path.startswith("/hooks/"):
            ok = resp.status in (401, 403) if route.method in STATE_CHANGING else resp.status in (401, 403, 405)
        elif route.public:
            ok = resp.status < 500
        elif route.method == "GET":
            ok = (resp.status == 303 and resp.headers["Location"].startswith("/login")) or resp.status == 401
        else:
            ok = resp.status in (401, 403)
        if not ok:
            found.append(f"{route.method} {route.path} -> {resp.status}")
    return found


@pytest.fixture
async def app(tmp_path) -> web.Application:
    return await build(security_settings(tmp_path))


async def test_every_route_needs_a_session_except_the_allow_list(aiohttp_client, app):
    client = await aiohttp_client(app)
    await add_users(app)
    table = routes(app)
    assert await _anonymous_violations(client, table) == []
    reached = {r.path for r in table}
    assert {"/", "/login", "/healthz", "/metrics", "/admin/users", "/api/v1/conversations", "/hooks/widget/"} <= reached


async def test_the_enumeration_walks_sub_apps_and_static_files(aiohttp_client, app):
    await aiohttp_client(app)  # started and cleaned up: the app's HTTP session is closed
    await add_users(app)
    table = routes(app)
    assert "/hooks/widget/" in {r.path for r in table if r.method == "POST"}
    assert any(r.path.startswith("/static") for r in table)
    assert len(table) >= 30


async def test_a_new_route_that_skips_auth_fails_the_enumeration(aiohttp_client, tmp_path):
    app = await build(security_settings(tmp_path))

    async def leak(_request: web.Request) -> web.Response:
        return web.Response(text="customer data")

    # under the /hooks/ prefix the session check is skipped: only a signature check in the handler protects it
    app.router.add_get("/hooks/backdoor", leak)
    app.router.add_post("/hooks/backdoor", leak)
    client = await aiohttp_client(app)
    await add_users(app)
    violations = await _anonymous_violations(client, routes(app))
    assert violations == ["GET /hooks/backdoor -> 200", "POST /hooks/backdoor -> 200"]


PREFIX_LOOKALIKES = ("/login-as", "/loginx", "/metrics/users", "/healthz/details", "/readyz.json", "/staticfile",
                     "/hooksadmin")


async def test_paths_that_only_share_a_prefix_with_a_public_path_need_a_session(aiohttp_client, tmp_path):
    app = await build(security_settings(tmp_path))

    async def leak(_request: web.Request) -> web.Response:
        return web.Response(text="customer data")

    for path in PREFIX_LOOKALIKES:
        app.router.add_get(path, leak)
    client = await aiohttp_client(app)
    await add_users(app)
    for path in PREFIX_LOOKALIKES:
        resp = await client.get(path, allow_redirects=False)
        assert resp.status == 303 and resp.headers["Location"].startswith("/login"), path


async def test_the_live_event_stream_refuses_anonymous_visitors(aiohttp_client, app):
    client = await aiohttp_client(app)
    await add_users(app)
    resp = await client.get("/events", allow_redirects=False)
    assert resp.status == 401


async def test_the_signed_webhook_refuses_a_missing_or_wrong_signature(aiohttp_client, app):
    client = await aiohttp_client(app)
    await add_users(app)
    body = b'{"items": [{"id": "1", "author": "u", "text": "hi"}]}'
    for headers in ({}, {"X-Carebox-Signature": "t=1,v1=00"}, {"X-Carebox-Signature": "junk"}):
        resp = await client.post("/hooks/widget/", data=body, headers=headers)
        assert resp.status == 401, headers


async def test_api_routes_refuse_an_anonymous_caller_with_401(aiohttp_client, app):
    client = await aiohttp_client(app)
    await add_users(app)
    api = [r for r in routes(app) if r.path.startswith("/api/") and r.path != "/api/v1/openapi.json"]
    assert api
    for route in api:
        resp = await client.request(route.method, route.url, json={}, allow_redirects=False)
        assert resp.status == 401, route
        assert resp.headers.get("WWW-Authenticate") is None or "Bearer" in resp.headers["WWW-Authenticate"]


async def _admin(aiohttp_client: Any, app: web.Application) -> tuple[Any, str]:
    from tests.security import csrf_of, login

    client = await aiohttp_client(app)
    await add_users(app)
    assert (await login(client, "admin")).status == 303
    return client, await csrf_of(client)


async def test_an_id_that_cannot_be_a_row_is_a_400_or_404_on_every_route_never_a_5xx(aiohttp_client, app):
    client, csrf = await _admin(aiohttp_client, app)
    table = [r for r in routes(app) if "{id}" in r.path]
    assert len(table) >= 15
    wrong = []
    for route in table:
        for bad in (str(2**64), str(2**63), "%C2%B2", "9" * 5000, "-1", "1e3"):
            url = re.sub(r"\{(?!id\})[^}]+\}", "1", route.path).replace("{id}", bad)  # other placeholders: a real id
            resp = await client.request(route.method, url, data={"csrf": csrf, "status": "resolved"},
                                        allow_redirects=False)
            await resp.read()
            if resp.status != (404 if bad.isdigit() else 400):
                wrong.append(f"{route.method} {url[:40]} -> {resp.status}")
    assert wrong == []


async def test_changing_a_user_with_an_impossible_id_is_refused_not_a_server_error(aiohttp_client, app):
    client, csrf = await _admin(aiohttp_client, app)
    resp = await client.post("/admin/users", data={"csrf": csrf, "user_id": str(2**64), "role": "agent", "active": "1"},
                             allow_redirects=False)
    assert resp.status < 500


async def test_a_csv_export_with_a_bad_date_is_a_clean_400(aiohttp_client, app):
    client, _ = await _admin(aiohttp_client, app)
    resp = await client.get("/reports/export.csv?until=%C2%B2")
    assert resp.status == 400
    await resp.read()
