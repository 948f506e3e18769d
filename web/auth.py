"""Login, logout, sessions, CSRF tokens and login throttling."""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any
from urllib.parse import quote

import aiohttp_jinja2
from aiohttp import web
from aiohttp_session import get_session, new_session
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from carebox.store import logins, queries
from web import i18n
from web.auth_proxies import request_client
from web.keys import engine_key, now_key, user_key

log = logging.getLogger(__name__)
HASHER = PasswordHasher()
# Exact paths, and prefixes that end with "/": "/login-as" or "/metrics/users" must not become public by accident.
PUBLIC_PATHS = frozenset({"/login", "/healthz", "/readyz", "/metrics"})
PUBLIC_PREFIXES = ("/static/", "/hooks/")
MAX_FAILURES = 5
LOCKOUT_S = 300.0


def hash_password(password: str) -> str:
    """An argon2id hash."""
    return HASHER.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    """True when `password` matches the stored argon2 hash."""
    try:
        return HASHER.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def throttle_key_of(username: str, client: str | None) -> str:
    """What attempts are counted under: the name (case-insensitive) and the client's address, hashed before storing."""
    return hashlib.sha256(f"{username.lower()}|{client}".encode()).hexdigest()


async def csrf_token(request: web.Request) -> str:
    """The session's CSRF token, created on first use."""
    session = await get_session(request)
    if "csrf" not in session:
        session["csrf"] = secrets.token_urlsafe(32)
    return str(session["csrf"])


ROLES = {"agent": 1, "manager": 2, "admin": 3}


def has_role(user: dict[str, Any] | None, role: str) -> bool:
    """Whether `user` holds `role` or a higher one (agent < manager < admin)."""
    return user is not None and ROLES.get(user["role"], 0) >= ROLES[role]


def require(request: web.Request, role: str) -> dict[str, Any]:
    """The request's user when they hold `role`; 403 otherwise."""
    user = request[user_key]
    if not has_role(user, role):
        raise web.HTTPForbidden(text=f"this page needs the {role} role")
    return user


def token_hash(token: str) -> str:
    """The stored form of an API token (tokens are random, so a plain SHA-256 is enough)."""
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    """A fresh API token to show once."""
    return "cbx_" + secrets.token_urlsafe(32)


async def _bearer_user(request: web.Request) -> dict[str, Any] | None:
    header = request.headers.get("Authorization", "")
    if not header.lower().startswith("bearer "):
        return None
    user = await queries.user_by_token_hash(request.app[engine_key], token_hash(header[7:].strip()))
    if user is None:
        raise web.HTTPUnauthorized(text="unknown or revoked API token", headers={"WWW-Authenticate": "Bearer"})
    return user


@web.middleware
async def auth_middleware(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
    """Every route needs a logged-in user (or a Bearer token on /api/v1) except the public ones; state changes need CSRF."""
    if request.path in PUBLIC_PATHS or request.path.startswith(PUBLIC_PREFIXES):
        i18n.CURRENT.set(i18n.Locale(i18n.negotiate(request.headers.get("Accept-Language"))))
        return await handler(request)
    if request.path.startswith("/api/v1"):
        bearer = await _bearer_user(request)
        if bearer is not None:
            request[user_key] = bearer
            return await handler(request)
    session = await get_session(request)
    user_id = session.get("user_id")
    user = await queries.user_by_id(request.app[engine_key], user_id) if user_id else None
    if user is None or not user["active"]:
        if request.method == "GET" and not request.path.startswith(("/api/", "/events")):
            raise web.HTTPSeeOther(f"/login?next={quote(request.path_qs)}" if request.path != "/" else "/login")
        raise web.HTTPUnauthorized(text="login required")
    if request.method not in ("GET", "HEAD", "OPTIONS"):
        sent = request.headers.get("X-CSRF-Token")
        if not sent and request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
            sent = (await request.post()).get("csrf")
        if not sent or not secrets.compare_digest(str(sent), str(session.get("csrf", ""))):
            raise web.HTTPForbidden(text="invalid or missing CSRF token; reload the page and try again")
    request[user_key] = user
    i18n.CURRENT.set(i18n.Locale(i18n.choose(user["language"], request.headers.get("Accept-Language")), user["timezone"]))
    return await handler(request)


@aiohttp_jinja2.template("login.html")
async def login_form(request: web.Request) -> dict[str, Any]:
    """The login page."""
    return {"error": None, "next": request.query.get("next", "/"), "csrf": await csrf_token(request)}


async def login(request: web.Request) -> web.StreamResponse:
    """Check the password (argon2), throttle repeated failures, start a fresh session."""
    form = await request.post()
    session = await get_session(request)
    username = str(form.get("username", "")).strip()
    target = str(form.get("next", "/"))
    if not target.startswith("/") or target.startswith("//"):
        target = "/"
    context = {"next": target, "csrf": await csrf_token(request)}
    if not secrets.compare_digest(str(form.get("csrf", "")), str(session.get("csrf", ""))):
        context["error"] = i18n.gettext("Your session expired; please try again.")
        return aiohttp_jinja2.render_template("login.html", request, context, status=403)
    # Attempts are counted in the store (every web process and every `carebox web` sees the same count), and
    # counted before the password is checked, in one step with the check: parallel guesses cannot all pass it.
    engine, client = request.app[engine_key], request_client(request)
    attempt = await logins.take_attempt(engine, throttle_key_of(username, client), request.app[now_key](),
                                        timedelta(seconds=LOCKOUT_S), MAX_FAILURES)
    if attempt is None:
        context["error"] = i18n.gettext("Too many failed attempts; wait a few minutes.")
        return aiohttp_jinja2.render_template("login.html", request, context, status=429)
    user = await queries.user_by_name(engine, username)
    if user is None or not user["active"] or not verify_password(user["password_hash"], str(form.get("password", ""))):
        log.info("failed login for %r from %s", username, client)
        context["error"] = i18n.gettext("Wrong user name or password.")
        return aiohttp_jinja2.render_template("login.html", request, context, status=401)
    await logins.forget_attempt(engine, attempt)
    session = await new_session(request)
    session["user_id"] = user["id"]
    session["csrf"] = secrets.token_urlsafe(32)
    raise web.HTTPSeeOther(target)


async def logout(request: web.Request) -> web.StreamResponse:
    """End the session."""
    session = await get_session(request)
    session.invalidate()
    raise web.HTTPSeeOther("/login")
