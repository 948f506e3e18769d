"""Security headers everywhere, cookie flags, login throttling, argon2 passwords, hashed API tokens, no secret in logs."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from aiohttp import web
from argon2 import PasswordHasher

from carebox.store import queries
from tests.security import (
    PASSWORD,
    add_users,
    api_token,
    build,
    csrf_of,
    login,
    second_browser,
    security_settings,
)
from web.keys import engine_key

HEADERS = ("Content-Security-Policy", "X-Frame-Options", "Referrer-Policy", "X-Content-Type-Options")


def missing_headers(resp: Any) -> list[str]:
    """Security headers absent or too weak on a response."""
    h = resp.headers
    problems = [name for name in HEADERS if name not in h]
    csp = h.get("Content-Security-Policy", "")
    if "frame-ancestors 'none'" not in csp and "frame-ancestors 'self'" not in csp:
        problems.append("CSP frame-ancestors")
    if "'unsafe-inline'" in csp.split("script-src")[-1].split(";")[0] or "default-src" not in csp:
        problems.append("CSP script-src")
    if h.get("X-Content-Type-Options", "").lower() != "nosniff":
        problems.append("nosniff")
    if h.get("X-Frame-Options", "").upper() not in ("DENY", "SAMEORIGIN"):
        problems.append("X-Frame-Options value")
    return problems


@pytest.fixture
async def app(tmp_path) -> web.Application:
    return await build(security_settings(tmp_path))


@pytest.fixture
async def client(aiohttp_client, app) -> Any:
    cli = await aiohttp_client(app)
    await add_users(app)
    return cli


async def test_pages_error_pages_static_files_and_api_errors_carry_the_security_headers(client):
    anonymous = {"/login": 200, "/static/carebox.css": 200, "/static/carebox.js": 200, "/static/nope.css": 404,
                 "/healthz": 200, "/api/v1/conversations": 401}
    for path, status in anonymous.items():
        resp = await client.get(path, allow_redirects=False)
        assert resp.status == status, path
        assert missing_headers(resp) == [], path
    assert (await login(client, "agent")).status == 303
    logged_in = {"/": 200, "/me": 200, "/no-such-page": 404, "/admin/users": 403, "/conversations/999999": 404}
    for path, status in logged_in.items():
        resp = await client.get(path, allow_redirects=False)
        assert resp.status == status, path
        assert missing_headers(resp) == [], path


async def test_redirects_and_webhook_refusals_carry_the_security_headers(client):
    redirect = await client.get("/", allow_redirects=False)
    assert redirect.status == 303 and missing_headers(redirect) == []
    refused = await client.post("/hooks/widget/", data=b"{}")
    assert refused.status == 401 and missing_headers(refused) == []


async def test_the_session_cookie_is_httponly_and_samesite_lax_and_not_secure_by_default(client):
    for resp in (await client.get("/login"), await login(client, "agent")):
        cookie = resp.cookies["carebox_session"]
        assert cookie["httponly"] and cookie["samesite"] == "Lax" and not cookie["secure"]


async def test_the_session_cookie_is_secure_when_web_secure_cookies_is_set(aiohttp_client, tmp_path):
    app = await build(security_settings(tmp_path, secure_cookies=True))
    client = await aiohttp_client(app)
    await add_users(app)
    resp = await client.get("/login")  # the login form starts a session (for its CSRF token)
    cookie = resp.cookies["carebox_session"]
    assert cookie["secure"] and cookie["httponly"] and cookie["samesite"] == "Lax"


async def test_five_failed_logins_lock_the_name_even_with_the_right_password_and_other_names_still_log_in(client):
    for _ in range(5):
        assert (await login(client, "agent", "wrong-password")).status == 401
    assert (await login(client, "AGENT")).status == 429
    assert (await login(client, "agent")).status == 429
    async with second_browser(client) as other:
        assert (await login(other, "manager")).status == 303


async def test_failed_logins_for_unknown_names_are_throttled_too(client):
    for _ in range(5):
        assert (await login(client, "nobody", "guess-guess")).status == 401
    assert (await login(client, "nobody", "guess-guess")).status == 429


async def test_a_user_created_in_the_admin_page_gets_an_argon2id_hash(client, app):
    assert (await login(client, "admin")).status == 303
    form = {"username": "newbie", "password": "a-long-password-1", "role": "agent", "csrf": await csrf_of(client)}
    await client.post("/admin/users", data=form, allow_redirects=False)
    stored = (await queries.user_by_name(app[engine_key], "newbie"))["password_hash"]
    assert stored.startswith("$argon2id$") and "a-long-password-1" not in stored
    assert PasswordHasher().verify(stored, "a-long-password-1")


async def _all_tokens(app: web.Application) -> list[str]:
    async with app[engine_key].connect() as c:
        return [row[0] for row in await c.execute(sa.select(queries.token.c.token_hash))]


async def test_api_tokens_are_stored_as_sha256_hashes_and_never_in_clear(client, app, tmp_path):
    assert (await login(client, "agent")).status == 303
    token = await api_token(client)
    assert await _all_tokens(app) == [hashlib.sha256(token.encode()).hexdigest()]
    me = await (await client.get("/me")).text()
    assert token not in me, "a token is shown once, never again"
    for file in Path(tmp_path).glob("carebox.db*"):
        assert token.encode() not in file.read_bytes(), file


async def test_no_password_token_or_session_cookie_reaches_the_logs(client, caplog):
    caplog.set_level(logging.DEBUG)
    assert (await login(client, "admin", "Wrong-Pa55word-xyz")).status == 401
    resp = await login(client, "admin")
    session_cookie = resp.cookies["carebox_session"].value
    token = await api_token(client)
    async with second_browser(client) as caller:
        auth = {"Authorization": f"Bearer {token}"}
        assert (await caller.get("/api/v1/conversations", headers=auth)).status == 200
        assert (await caller.get("/api/v1/conversations/1", headers=auth)).status == 404
        assert (await caller.get("/api/v1/conversations", headers={"Authorization": f"Bearer {token}x"})).status == 401
    logged = "\n".join(f"{r.getMessage()} {r.exc_text or ''} {r.args!r}" for r in caplog.records)
    assert caplog.records, "the capture must see the app's log lines"
    for secret in (PASSWORD, "Wrong-Pa55word-xyz", token, token[4:], session_cookie):
        assert secret not in logged
