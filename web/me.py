"""The agent's own settings: language, time zone, availability, languages and skills, API tokens."""

from __future__ import annotations

from typing import Any
from zoneinfo import available_timezones

import aiohttp_jinja2
from aiohttp import web

from carebox.store import actions, queries
from web import auth, i18n
from web.assigning import auto_assign
from web.i18n import gettext as _
from web.keys import engine_key, now_key, user_key

ZONES = sorted(available_timezones())


async def _profile(request: web.Request) -> dict[str, Any]:
    user = request[user_key]
    rows = [r for r in await queries.agent_profiles(request.app[engine_key]) if r["id"] == user["id"]]
    return rows[0] if rows else {}


async def page(request: web.Request, *, new_token: str | None = None, error: str | None = None) -> web.Response:
    """GET /me."""
    user = request[user_key]
    context = {"profile": await _profile(request), "zones": ZONES, "new_token": new_token, "error": error,
               "tokens": await queries.api_tokens(request.app[engine_key], user["id"]), "languages": i18n.LANGUAGES,
               "csrf": await auth.csrf_token(request)}
    return aiohttp_jinja2.render_template("me.html", request, context, status=400 if error else 200)


def _words(value: Any) -> list[str]:
    return [w.strip().lower() for w in str(value or "").split(",") if w.strip()][:20]


async def save(request: web.Request) -> web.StreamResponse:
    """POST /me: interface language and time zone; availability, languages and skills for assignment."""
    app, user = request.app, request[user_key]
    form = await request.post()
    language = str(form.get("language", "auto"))
    timezone = str(form.get("timezone", user["timezone"]))
    if language not in (*i18n.LANGUAGES, "auto") or timezone not in ZONES:
        return await page(request, error=_("Choose a language and a time zone from the lists."))
    now = app[now_key]()
    await actions.update_user(app[engine_key], user["id"], user["id"], now, language=language, timezone=timezone)
    available = form.get("available") == "1"
    await actions.set_profile(app[engine_key], user["id"], user["id"], now, available=available,
                              languages=_words(form.get("agent_languages")), skills=_words(form.get("skills")),
                              last_seen_at=now)
    if available:
        await auto_assign(app)
    raise web.HTTPSeeOther("/me")


async def create_token(request: web.Request) -> web.Response:
    """POST /me/tokens: a new API token, shown once."""
    form = await request.post()
    name = str(form.get("name", "")).strip()[:60] or "token"
    token = auth.new_token()
    await actions.add_token(request.app[engine_key], request[user_key]["id"], name, auth.token_hash(token), request.app[now_key]())
    return await page(request, new_token=token)


async def revoke_token(request: web.Request) -> web.StreamResponse:
    """POST /me/tokens/{id}/revoke."""
    token_id = request.match_info["id"]
    if token_id.isdigit():
        await actions.revoke_token(request.app[engine_key], int(token_id), request[user_key]["id"], request.app[now_key]())
    raise web.HTTPSeeOther("/me")
