"""Web security tests: a whole carebox app (store, pipeline, web, a signed webhook) and the routes of its router."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from argon2 import PasswordHasher

from carebox import config

PASSWORD = "s3cret-pass-Zq9"
# A real argon2id hash with cheap parameters: the login path is the production one, the tests stay fast.
CHEAP_HASH = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1).hash(PASSWORD)
CSRF = re.compile(r'name="csrf" value="([^"]+)"')
HOOK_SECRET_ENV = "CAREBOX_SECURITY_TEST_HOOK_SECRET"
HOOK_SECRET = "hook-secret-for-tests"
USERS = (("agent", "agent"), ("manager", "manager"), ("admin", "admin"))
# Reachable without a session: the login form, probes, metrics, static files and signed webhooks.
PUBLIC = ("/login", "/healthz", "/readyz", "/metrics", "/static/", "/hooks/")
STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def security_settings(tmp_path: Path, **web_options: Any) -> config.Settings:
    """An SQLite store in `tmp_path` and one signed webhook connector mounted at /hooks/widget/."""
    doc = {"carebox": {"data_dir": str(tmp_path)}, "database": {"url": f"sqlite+aiosqlite:///{tmp_path / 'carebox.db'}"},
           "inbox": {"counts_cache": "0s"}, "web": web_options,
           "connectors": [{"type": "webhook", "name": "widget", "account": "acme", "secret_env": HOOK_SECRET_ENV}]}
    return config.parse(doc, environ={HOOK_SECRET_ENV: HOOK_SECRET})


async def build(settings: config.Settings) -> web.Application:
    """The whole app as `carebox serve` builds it."""
    from carebox.runtime import build_app

    os.environ.setdefault(HOOK_SECRET_ENV, HOOK_SECRET)  # build_app reads connector secrets from the environment
    return await build_app(settings)


async def add_users(app: web.Application, users: tuple[tuple[str, str], ...] = USERS) -> dict[str, int]:
    """Create `users` (name, role) with PASSWORD; their ids by name."""
    from carebox.store import actions
    from web.keys import engine_key

    return {name: await actions.add_user(app[engine_key], name, CHEAP_HASH, role, datetime.now(UTC))
            for name, role in users}


async def login(client: Any, username: str, password: str = PASSWORD) -> Any:
    """Post the login form with the page's CSRF token; the (unfollowed) response."""
    page = await client.get("/login")
    token = CSRF.search(await page.text()).group(1)
    return await client.post("/login", data={"username": username, "password": password, "csrf": token},
                             allow_redirects=False)


async def csrf_of(client: Any) -> str:
    """The logged-in session's CSRF token, read from the /me page."""
    return CSRF.search(await (await client.get("/me")).text()).group(1)


@dataclass(frozen=True, slots=True)
class Route:
    """One method and path of the router, sub-apps and static files included."""

    method: str
    path: str
    handler: Any

    @property
    def url(self) -> str:
        """A concrete URL: every {placeholder} becomes 1, a static prefix gets a real file."""
        if self.path.startswith("/static"):
            return "/static/carebox.css"
        return re.sub(r"\{[^}]+\}", "1", self.path)

    @property
    def public(self) -> bool:
        """Whether the route is on the allow-list of routes reachable without a session."""
        return self.path in ("/login", "/healthz", "/readyz", "/metrics") or self.path.startswith(("/static", "/hooks/"))


def walk(app: web.Application) -> Iterator[Route]:
    """Every (method, path) of `app`, descending into sub-applications (whose resources carry their prefix)."""
    for resource in app.router.resources():
        sub = getattr(resource, "_app", None)
        if isinstance(sub, web.Application):
            yield from walk(sub)
            continue
        for route in resource:
            if route.method in ("HEAD", "*"):
                continue
            yield Route(route.method, resource.canonical, route.handler)


def routes(app: web.Application) -> list[Route]:
    """The router's routes, sorted and without duplicates."""
    return sorted(set(walk(app)), key=lambda r: (r.path, r.method))


async def api_token(client: Any) -> str:
    """A new API token for the logged-in user, created through /me/tokens (shown once)."""
    body = await (await client.post("/me/tokens", data={"name": "ci", "csrf": await csrf_of(client)})).text()
    return re.search(r'<code id="new-token">([^<]+)</code>', body).group(1)


def second_browser(client: Any) -> aiohttp.ClientSession:
    """Another browser (its own cookie jar) on the same test server; use with `async with`."""
    return aiohttp.ClientSession(base_url=str(client.make_url("")), cookie_jar=aiohttp.CookieJar(unsafe=True))
