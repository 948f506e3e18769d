"""The aiohttp application factory: middlewares, templates, routes."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import aiohttp_jinja2
import jinja2
from aiohttp import web
from aiohttp_session import session_middleware
from aiohttp_session.cookie_storage import EncryptedCookieStorage

from carebox.config import Settings
from carebox.duration import format_duration
from web import auth, ops, views
from web.keys import session_secret_key, settings_key, throttle_key, user_key

log = logging.getLogger(__name__)
HERE = Path(__file__).parent
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


@web.middleware
async def error_pages(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Readable error pages; never a stack trace."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400 or request.path.startswith(("/api/", "/hooks/", "/healthz")):
            raise
        return _error(request, exc.status, exc.text or exc.reason)
    except Exception:  # noqa: BLE001 - the last line of defence
        log.exception("unhandled error on %s %s", request.method, request.path)
        if request.path.startswith(("/api/", "/hooks/")):
            return web.json_response({"error": "internal error"}, status=500)
        return _error(request, 500, "Something went wrong on our side. The error was logged.")


def _error(request: web.Request, status: int, message: str) -> web.Response:
    return aiohttp_jinja2.render_template("error.html", request, {"status": status, "message": message}, status=status)


@web.middleware
async def security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    """CSP, framing, sniffing and referrer headers on every response."""
    response = await handler(request)
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def _local(value: datetime | None, tz: str = "Europe/Paris", fmt: str = "%a %d %b %H:%M") -> str:
    if value is None:
        return ""
    return value.astimezone(ZoneInfo(tz)).strftime(fmt)


async def _user_context(request: web.Request) -> dict[str, object]:
    return {"user": request.get(user_key)}


def create_app(settings: Settings, *, session_secret: bytes) -> web.Application:
    """The web app; the composition root adds the store, pipeline and connectors through cleanup contexts."""
    storage = EncryptedCookieStorage(
        session_secret, cookie_name="carebox_session", httponly=True, samesite="Lax",
        secure=settings.web.secure_cookies, max_age=int(settings.web.session_max_age_s),
    )
    app = web.Application(middlewares=[security_headers, error_pages, session_middleware(storage), auth.auth_middleware])
    app[settings_key] = settings
    app[session_secret_key] = session_secret
    app[throttle_key] = {}
    env = aiohttp_jinja2.setup(
        app, context_processors=[_user_context], loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=jinja2.select_autoescape(default=True),
        filters={"duration": lambda s: "" if s is None else format_duration(s),
                 "local": lambda v, fmt="%a %d %b %H:%M": _local(v, settings.timezone, fmt)},
    )
    env.globals["product"] = "carebox"
    env.globals["utc_now"] = lambda: datetime.now(UTC)
    app.router.add_get("/login", auth.login_form)
    app.router.add_post("/login", auth.login)
    app.router.add_post("/logout", auth.logout)
    app.router.add_get("/healthz", ops.healthz)
    app.router.add_get("/metrics", ops.metrics)
    app.router.add_get("/", views.inbox)
    app.router.add_get("/conversations/{id}", views.conversation)
    app.router.add_post("/conversations/{id}/reply", views.reply)
    app.router.add_post("/conversations/{id}/assign", views.assign)
    app.router.add_post("/conversations/{id}/status", views.status)
    app.router.add_post("/conversations/{id}/notes", views.note)
    app.router.add_static("/static/", HERE / "static", name="static")
    return app
