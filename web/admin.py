"""Admin pages: users (admin), connectors (admin), policies with a due-time preview, canned responses and
dead letters (manager). Calendars and policies are edited in web/admin_sla.py."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp_jinja2
from aiohttp import web

from carebox.errors import BadPayload
from carebox.models import MAX_ROW_ID
from carebox.ports import IngestBatch
from carebox.store import actions, queries
from web import admin_sla, auth, explain
from web.assigning import auto_assign
from web.i18n import CURRENT, LANGUAGES
from web.i18n import gettext as _
from web.keys import (
    clocks_key,
    connectors_key,
    engine_key,
    now_key,
    pipeline_key,
)
from web.live import LiveEvent, announce
from web.views import stored_accounts

log = logging.getLogger(__name__)


def add_routes(app: web.Application) -> None:
    """Register the admin pages."""
    r = app.router
    r.add_get("/admin/users", users)
    r.add_post("/admin/users", save_user)
    r.add_get("/admin/connectors", connectors)
    r.add_get("/admin/policies", policies)
    r.add_get("/admin/canned", canned)
    r.add_post("/admin/canned", add_canned)
    r.add_post("/admin/canned/{id}/delete", delete_canned)
    r.add_get("/admin/dead-letters", dead_letters)
    r.add_get("/admin/dead-letters/{id}", dead_letter)
    r.add_post("/admin/dead-letters/{id}", handle_dead_letter)
    r.add_post("/assign/auto", assign_waiting)


async def _render(request: web.Request, name: str, context: dict[str, Any], status: int = 200) -> web.Response:
    context.setdefault("csrf", await auth.csrf_token(request))
    return aiohttp_jinja2.render_template(name, request, context, status=status)


async def users(request: web.Request, error: str | None = None) -> web.Response:
    """GET /admin/users (admin)."""
    auth.require(request, "admin")
    known = {f"{c.network}/{c.account}" for c in request.app[connectors_key].values()}  # accounts, for the hint
    known |= {f"{n}/{a}" for n, a in await queries.known_accounts(request.app[engine_key])}
    return await _render(request, "admin_users.html", {"users": await queries.all_users(request.app[engine_key]),
                                                       "roles": list(auth.ROLES), "error": error,
                                                       "known_accounts": sorted(known)}, 400 if error else 200)


async def save_user(request: web.Request) -> web.StreamResponse:
    """POST /admin/users: create a user (with a password) or change a user's role and activity."""
    me = auth.require(request, "admin")
    form, engine, now = await request.post(), request.app[engine_key], request.app[now_key]()
    role = str(form.get("role", "agent"))
    if role not in auth.ROLES:
        return await users(request, _("Unknown role."))
    try:  # the accounts an agent may see; absent from the form: unchanged
        accounts = {"accounts": stored_accounts(str(form["accounts"]))} if "accounts" in form else {}
    except ValueError as err:
        return await users(request, _("Write each account as network/account, like x/acme (not: %(entry)s).")
                           % {"entry": str(err)})
    if form.get("user_id"):
        user_id = int(str(form["user_id"])) if str(form["user_id"]).isdigit() else 0
        if not 0 < user_id <= MAX_ROW_ID:
            raise web.HTTPNotFound(text=_("No such user."))
        if user_id == me["id"] and (role != "admin" or form.get("active") != "1"):
            return await users(request, _("You cannot remove your own admin role or deactivate yourself."))
        await actions.update_user(engine, user_id, me["id"], now, role=role, active=form.get("active") == "1",
                                  **accounts)
        raise web.HTTPSeeOther("/admin/users")
    username, password = str(form.get("username", "")).strip(), str(form.get("password", ""))
    if not username or len(password) < 10:
        return await users(request, _("A new user needs a name and a password of at least 10 characters."))
    if await queries.user_by_name(engine, username) is not None:
        return await users(request, _("This user name is taken."))
    user_id = await actions.add_user(engine, username, auth.hash_password(password), role, now,
                                     str(form.get("display_name", "")).strip())
    await actions.update_user(engine, user_id, me["id"], now, language="auto", **accounts)
    raise web.HTTPSeeOther("/admin/users")


async def connectors(request: web.Request) -> web.Response:
    """GET /admin/connectors (admin): each connector's network, account and health."""
    auth.require(request, "admin")
    rows = [{"name": name, "type": type(c).__name__.removesuffix("Connector"), "network": c.network, "account": c.account,
             "last_error": getattr(c, "last_error", None), "last_ok_at": getattr(c, "last_ok_at", None)}
            for name, c in sorted(request.app[connectors_key].items())]
    return await _render(request, "admin_connectors.html", {"connectors": rows})


def _preview(request: web.Request) -> dict[str, Any] | None:
    q = request.query
    if not q.get("at"):
        return None
    try:
        local = datetime.fromisoformat(q["at"])
        started = (local if local.tzinfo else local.replace(tzinfo=CURRENT.get().zone())).astimezone(ZoneInfo("UTC"))
    except ValueError:
        return {"error": _("Give the message time as YYYY-MM-DDTHH:MM.")}
    row = {"network": q.get("network") or "x", "account": q.get("account") or "", "priority": q.get("priority") or "P3",
           "category": q.get("category") or "question", "language": q.get("language") or "", "tags": "[]"}
    book = request.app[clocks_key]
    start = getattr(book, "start", None)
    plan = start("first_response", row, started) if start else book.start_first_response(row, started)  # type: ignore[attr-defined]
    if plan is None:
        return {"error": _("No clock would start for this conversation.")}
    clock = {"target": plan.target, "policy": plan.policy, "started_at": plan.started_at,
             "calendar_version": plan.calendar_version, "business_due": plan.business_due}
    why = explain.why_lines(book.settings, {**row, "clocks": [clock]}, started)
    return {"plan": plan, "why": why, "row": row}


async def policies(request: web.Request) -> web.Response:
    """GET /admin/policies (manager): calendars, policies, and a preview of the due time of a message."""
    auth.require(request, "manager")
    sla = request.app[clocks_key].settings  # the configured settings with the versions saved from the web
    return await _render(request, "admin_policies.html", {
        "calendars": sorted(sla.calendars.values(), key=lambda c: c.name), "policies": sla.policies,
        "expectation_s": sla.customer_expectation_s, "preview": _preview(request), "q": request.query,
        "sources": await admin_sla.sources(request),
    })


async def canned(request: web.Request, error: str | None = None) -> web.Response:
    """GET /admin/canned (manager)."""
    auth.require(request, "manager")
    return await _render(request, "admin_canned.html", {"canned": await queries.canned_responses(request.app[engine_key]),
                                                        "languages": LANGUAGES, "error": error}, 400 if error else 200)


async def add_canned(request: web.Request) -> web.StreamResponse:
    """POST /admin/canned: a new canned response."""
    me = auth.require(request, "manager")
    form = await request.post()
    title, body = str(form.get("title", "")).strip()[:80], str(form.get("body", "")).strip()[:5000]
    language = str(form.get("language", "en"))
    if not title or not body or language not in LANGUAGES:
        return await canned(request, _("A canned response needs a title, a text and a language."))
    await actions.add_canned(request.app[engine_key], title, language, body, me["id"], request.app[now_key]())
    raise web.HTTPSeeOther("/admin/canned")


async def delete_canned(request: web.Request) -> web.StreamResponse:
    """POST /admin/canned/{id}/delete."""
    me = auth.require(request, "manager")
    if request.match_info["id"].isdigit():
        await actions.delete_canned(request.app[engine_key], int(request.match_info["id"]), me["id"], request.app[now_key]())
    raise web.HTTPSeeOther("/admin/canned")


async def dead_letters(request: web.Request) -> web.Response:
    """GET /admin/dead-letters (manager): the latest rejected payloads."""
    auth.require(request, "manager")
    return await _render(request, "admin_dead_letters.html", {"letters": await queries.dead_letters(request.app[engine_key]),
                                                              "letter": None})


async def _letter_or_404(request: web.Request) -> dict[str, Any]:
    ident = request.match_info["id"]
    letter = await queries.dead_letter_by_id(request.app[engine_key], int(ident)) if ident.isdigit() else None
    if letter is None:
        raise web.HTTPNotFound(text=_("There is no such dead letter."))
    return letter


async def dead_letter(request: web.Request, error: str | None = None) -> web.Response:
    """GET /admin/dead-letters/{id}: the payload and the reason."""
    auth.require(request, "manager")
    return await _render(request, "admin_dead_letters.html", {"letters": [], "letter": await _letter_or_404(request),
                                                              "error": error}, 400 if error else 200)


async def handle_dead_letter(request: web.Request) -> web.StreamResponse:
    """POST /admin/dead-letters/{id} action=requeue|handled: ingest it again (jsonl format) or set it aside."""
    from connectors.social.jsonl import parse_line

    me = auth.require(request, "manager")
    letter, form = await _letter_or_404(request), await request.post()
    app, now = request.app, request.app[now_key]()
    if form.get("action") == "requeue":
        try:
            mention = parse_line(letter["payload"])
        except BadPayload as err:
            return await dead_letter(request, _("It still does not parse (%(reason)s); mark it handled instead.")
                                     % {"reason": err.reason})
        added = await app[pipeline_key].ingest([IngestBatch(letter["source"], (mention,))], now)
        log.info("dead letter %s requeued by %s (%d mention added)", letter["id"], me["username"], added)
        await actions.handle_dead_letter(app[engine_key], letter["id"], "requeued", me["id"], now)
    else:
        await actions.handle_dead_letter(app[engine_key], letter["id"], "handled", me["id"], now)
    raise web.HTTPSeeOther("/admin/dead-letters")


async def assign_waiting(request: web.Request) -> web.StreamResponse:
    """POST /assign/auto (manager): assign waiting conversations to online agents now."""
    me = auth.require(request, "manager")
    done = await auto_assign(request.app, force=True, by_user_id=me["id"])
    announce(request.app, LiveEvent("assign", None, {"count": done}))
    raise web.HTTPSeeOther("/?view=unassigned")
