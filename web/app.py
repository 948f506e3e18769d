"""The aiohttp application factory: middlewares, templates, routes."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import aiohttp_jinja2
import jinja2
import orjson
from aiohttp import web
from aiohttp_session import session_middleware
from aiohttp_session.cookie_storage import EncryptedCookieStorage

from carebox.config import Settings
from carebox.models import MAX_ROW_ID
from web import auth, i18n, live, reports, routes
from web.keys import (
    broadcaster_key,
    counts_cache_key,
    inbox_settings_key,
    pipeline_key,
    presence_key,
    session_secret_key,
    settings_key,
    sla_listeners_key,
    tasks_key,
    user_key,
)
from web.settings import parse as parse_inbox

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
async def server_timing(request: web.Request, handler: Handler) -> web.StreamResponse:
    """`Server-Timing: app;dur=<ms>` on every response: the time spent in the app (what benchmarks/inbox.py reads,
    whichever web process answered; the browser's developer tools show it too)."""
    started = time.perf_counter()
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        exc.headers["Server-Timing"] = f"app;dur={(time.perf_counter() - started) * 1000:.2f}"
        raise
    response.headers["Server-Timing"] = f"app;dur={(time.perf_counter() - started) * 1000:.2f}"
    return response


@web.middleware
async def error_pages(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Readable error pages; never a stack trace."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400 or request.path.startswith(("/hooks/", "/healthz")):
            raise
        if request.path.startswith("/api/"):
            return web.json_response({"error": exc.text or exc.reason}, status=exc.status,
                                     headers={k: v for k, v in exc.headers.items() if k == "WWW-Authenticate"})
        return _error(request, exc.status, exc.text or exc.reason)
    except ConnectionResetError:  # the browser went away mid-response (a download cancelled): nobody to answer
        log.info("client closed the connection during %s %s", request.method, request.path)
        raise
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        if request.path.startswith(("/api/", "/hooks/")):
            return web.json_response({"error": "internal error"}, status=500)
        return _error(request, 500, "Something went wrong on our side. The error was logged.")


@web.middleware
async def row_ids(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every `{id}` in the router is a row id: not a number is a 400, beyond BIGINT a 404, never a driver's 500."""
    value = request.match_info.get("id")
    if value is not None:
        if not (value.isascii() and value.isdigit()):  # "²".isdigit() is true, int("²") fails
            raise web.HTTPBadRequest(text="the id must be a number")
        if len(value) > 19 or int(value) > MAX_ROW_ID:
            raise web.HTTPNotFound(text="no such item")
    return await handler(request)


def _error(request: web.Request, status: int, message: str) -> web.Response:
    return aiohttp_jinja2.render_template("error.html", request, {"status": status, "message": message, "user": None},
                                         status=status)


@web.middleware
async def security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    """CSP, framing, sniffing and referrer headers on every response, raised redirects and refusals included."""
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        for name, value in SECURITY_HEADERS.items():
            exc.headers.setdefault(name, value)
        raise
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


async def _context(request: web.Request) -> dict[str, object]:
    user = request.get(user_key)
    return {"user": user, "lang": i18n.CURRENT.get().language, "csrf": await auth.csrf_token(request) if user else ""}


async def _live_startup(app: web.Application) -> None:
    """Subscribe live updates to the pipeline's after-commit observers (set up from the web side)."""
    if pipeline_key not in app:
        return
    if sla_listeners_key in app:
        app[sla_listeners_key].append(live.on_sla(app))
    pipe, announce_ = app[pipeline_key], live.on_committed(app)
    observers = getattr(pipe, "observers", None)
    if observers is not None:
        observers.append(announce_)
        return
    previous = pipe.on_committed

    def committed(rows: list[dict[str, object]]) -> None:
        if previous is not None:
            previous(rows)
        announce_(rows)

    pipe.on_committed = committed


async def _stop_tasks(app: web.Application) -> None:
    for task in list(app[tasks_key]):
        task.cancel()
    await asyncio.gather(*app[tasks_key], return_exceptions=True)


def _templates(app: web.Application) -> None:
    env = aiohttp_jinja2.setup(
        app, context_processors=[_context], loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=jinja2.select_autoescape(default=True), extensions=["jinja2.ext.i18n"],
        auto_reload=False,  # templates ship with the code: no stat() of every file on every render
        filters={"duration": i18n.duration, "local": i18n.local, "fromjson": lambda v: orjson.loads(v or "[]")},
    )
    env.install_gettext_callables(i18n.gettext, i18n.ngettext, newstyle=True)  # type: ignore[attr-defined]
    env.globals["product"] = "carebox"
    env.globals["utc_now"] = lambda: datetime.now(UTC)


def create_app(settings: Settings, *, session_secret: bytes) -> web.Application:
    """The web app; the composition root adds the store, pipeline and connectors through cleanup contexts."""
    storage = EncryptedCookieStorage(
        session_secret, cookie_name="carebox_session", httponly=True, samesite="Lax",
        secure=settings.web.secure_cookies, max_age=int(settings.web.session_max_age_s),
    )
    app = web.Application(middlewares=[server_timing, security_headers, error_pages, session_middleware(storage),
                                       auth.auth_middleware, row_ids])
    app[settings_key] = settings
    app[session_secret_key] = session_secret
    inbox_settings = parse_inbox(settings.raw)
    app[inbox_settings_key] = inbox_settings
    app[broadcaster_key] = live.InProcessBroadcaster()
    app[presence_key] = live.Presence()
    app[counts_cache_key] = live.CountsCache(inbox_settings.counts_cache_s)
    app[tasks_key] = set()
    app.on_startup.append(_live_startup)
    app.on_cleanup.append(_stop_tasks)
    _templates(app)
    routes.add_routes(app)
    reports.setup(app)
    app.router.add_static("/static/", HERE / "static", name="static")
    return app
