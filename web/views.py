"""Inbox pages: saved views, one conversation, and what an agent does to it (assign, status, notes, tags)."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from typing import Any

import aiohttp_jinja2
from aiohttp import web

from carebox.errors import NotFound
from carebox.ports import Status
from carebox.store import actions, queries
from web import explain
from web.auth import csrf_token, has_role
from web.i18n import gettext as _
from web.keys import (
    clocks_key,
    counts_cache_key,
    engine_key,
    inbox_settings_key,
    now_key,
    pipeline_key,
    presence_key,
    settings_key,
    user_key,
)
from web.live import LiveEvent, announce

log = logging.getLogger(__name__)
FILTERS = ("network", "account", "language", "priority", "category", "tag", "assignee", "q")


def number(value: str, what: str) -> int:
    """An integer from the URL or a form; 400 otherwise."""
    try:
        return int(value)
    except ValueError:
        raise web.HTTPBadRequest(text=_("%(what)s must be a number") % {"what": what}) from None


def _filters(request: web.Request) -> queries.Filters:
    q = request.query
    assignee = q.get("assignee") or None
    return queries.Filters(
        network=q.get("network") or None, account=q.get("account") or None, language=q.get("language") or None,
        priority=q.get("priority") or None, category=q.get("category") or None, tag=q.get("tag") or None,
        assignee_id=number(assignee, "assignee") if assignee else None, search=(q.get("q") or "").strip()[:100] or None,
    )


@aiohttp_jinja2.template("inbox.html")
async def inbox(request: web.Request) -> dict[str, Any]:
    """A saved view of conversations, soonest business due first, both clocks on every row, keyset pages."""
    view = request.query.get("view", "awaiting")
    if view not in queries.VIEWS:
        raise web.HTTPNotFound(text=_("There is no view called %(view)s.") % {"view": view})
    app, user = request.app, request[user_key]
    filters, settings = _filters(request), app[inbox_settings_key]
    now = app[now_key]()
    try:
        page = await queries.inbox(app[engine_key], view, user["id"], now=now, limit=settings.page_size,
                                   cursor=request.query.get("after") or None, filters=filters,
                                   due_soon_s=settings.due_soon_s, with_counts=False)
    except ValueError:
        raise web.HTTPBadRequest(text=_("This page link is not valid any more; start from the first page.")) from None
    counts = {**await _shared_counts(app, filters, now),
              **await queries.counts(app[engine_key], user["id"], now, filters, settings.due_soon_s, ("mine",))}
    book = app[clocks_key]
    rows = [{**row, "clock": book.view(row, now)} for row in page.rows]
    kept = {k: request.query[k] for k in FILTERS if request.query.get(k)}
    return {"view": view, "rows": rows, "counts": counts, "next_cursor": page.next_cursor, "filters": kept,
            "first_page": not request.query.get("after"), "users": await queries.users(app[engine_key]),
            "csrf": await csrf_token(request)}


SHARED_VIEWS = tuple(v for v in queries.VIEWS if v != "mine")  # the same for everyone: counted once for all


async def _shared_counts(app: web.Application, filters: queries.Filters, now: datetime) -> dict[str, int]:
    """Counts of the shared views; stale ones are served while one background refresh runs."""
    cache, settings = app[counts_cache_key], app[inbox_settings_key]

    async def refresh() -> dict[str, int]:
        try:
            fresh = await queries.counts(app[engine_key], None, now, filters, settings.due_soon_s, SHARED_VIEWS)
            cache.put(filters, fresh)
            return fresh
        finally:
            cache.refreshing.pop(filters, None)

    counts, stale = cache.get(filters)
    running = cache.refreshing.get(filters)
    if counts is None:
        if cache.ttl_s <= 0:
            return await refresh()
        if running is None:  # one computation for every request arriving meanwhile
            running = cache.refreshing[filters] = asyncio.ensure_future(refresh())
        return dict(await asyncio.shield(running))
    if stale and running is None:
        cache.refreshing[filters] = asyncio.ensure_future(refresh())
    return counts


async def _conversation_or_404(request: web.Request) -> dict[str, Any]:
    found = await queries.conversation(request.app[engine_key], number(request.match_info["id"], "conversation id"))
    if found is None:
        raise web.HTTPNotFound(text=_("There is no such conversation."))
    return found


def fill_canned(body: str, customer_name: str, agent_name: str) -> str:
    """A canned response with its variables filled in (only the documented ones)."""
    first = (agent_name or "").split()[0] if (agent_name or "").strip() else ""
    return body.replace("{customer_name}", customer_name).replace("{agent_first_name}", first)


async def conversation_context(request: web.Request, conv: dict[str, Any] | None = None) -> dict[str, Any]:
    """Everything the conversation page shows (also used when a reply is held or fails)."""
    app, user = request.app, request[user_key]
    conv = conv or await _conversation_or_404(request)
    now = app[now_key]()
    last_in = next((m for m in reversed(conv["mentions"]) if m["direction"] == "in"), None)
    customer_name = (last_in["author_name"] or last_in["author_handle"]) if last_in else ""
    canned = [{**c, "text": fill_canned(c["body"], customer_name, user["display_name"] or user["username"])}
              for c in await queries.canned_responses(app[engine_key], conv["language"])]
    settings = app[settings_key]
    return {
        "c": conv, "clock": app[clocks_key].view(conv, now), "users": await queries.users(app[engine_key]),
        "csrf": await csrf_token(request), "error": request.query.get("error"), "canned": canned,
        "reply_limit": app[inbox_settings_key].reply_limit(conv["network"]),
        "why": explain.why_lines(settings.sla, conv, now), "status_effects": explain.status_effects(settings.sla, conv),
        "people": app[presence_key].who(conv["id"]), "is_manager": has_role(user, "manager"), "hold": None,
        "draft": "",
    }


async def conversation(request: web.Request) -> web.Response:
    """The thread, the customer's identities and timeline, notes, tags, status, SLA panel and the composer."""
    return aiohttp_jinja2.render_template("conversation.html", request, await conversation_context(request))


def back(conversation_id: int, error: str | None = None) -> web.HTTPSeeOther:
    """Redirect to the conversation page, with an error to show."""
    from urllib.parse import quote

    return web.HTTPSeeOther(f"/conversations/{conversation_id}" + (f"?error={quote(error)}" if error else ""))


async def assign(request: web.Request) -> web.StreamResponse:
    """Assign to a user, to me, or to nobody (audited)."""
    conversation_id = number(request.match_info["id"], "conversation id")
    form = await request.post()
    value = str(form.get("assignee", ""))
    me = request[user_key]["id"]
    assignee = me if value == "me" else (None if value in ("", "none") else number(value, "assignee"))
    try:
        await actions.assign(request.app[engine_key], conversation_id, assignee, me, request.app[now_key]())
    except NotFound as err:
        raise web.HTTPNotFound(text=str(err)) from None
    announce(request.app, LiveEvent("assign", conversation_id, {"assignee_id": assignee, "by": me}))
    raise web.HTTPSeeOther(str(form.get("next") or f"/conversations/{conversation_id}")
                           if str(form.get("next", "")).startswith("/") else f"/conversations/{conversation_id}")


async def status(request: web.Request) -> web.StreamResponse:
    """Open, pending (waiting on the customer) or resolved."""
    conversation_id = number(request.match_info["id"], "conversation id")
    form = await request.post()
    try:
        new = Status(str(form.get("status", "")))
    except ValueError:
        raise web.HTTPBadRequest(text=_("The status must be open, pending or resolved.")) from None
    try:
        changed = await actions.set_status(request.app[engine_key], conversation_id, new, request[user_key]["id"],
                                           request.app[now_key](), clocks=request.app[clocks_key])
    except NotFound as err:
        raise web.HTTPNotFound(text=str(err)) from None
    rearm = request.app[pipeline_key].on_clocks
    if changed and rearm is not None:
        rearm(changed)  # resumed clocks have new due times: the scheduler plans them again
    announce(request.app, LiveEvent("status", conversation_id, {"status": new.value, "by": request[user_key]["id"]}))
    raise web.HTTPSeeOther("/" if new is Status.RESOLVED else f"/conversations/{conversation_id}")


async def note(request: web.Request) -> web.StreamResponse:
    """An internal note (never a response)."""
    conversation_id = number(request.match_info["id"], "conversation id")
    form = await request.post()
    text = str(form.get("text", "")).strip()
    if text:
        try:
            await actions.add_note(request.app[engine_key], conversation_id, request[user_key]["id"], text[:5000],
                                   request.app[now_key]())
        except NotFound as err:
            raise web.HTTPNotFound(text=str(err)) from None
        announce(request.app, LiveEvent("note", conversation_id, {"by": request[user_key]["id"]}))
    raise back(conversation_id)


async def tags(request: web.Request) -> web.StreamResponse:
    """Replace the conversation's tags with the comma-separated list sent."""
    conversation_id = number(request.match_info["id"], "conversation id")
    form = await request.post()
    try:
        await actions.set_tags(request.app[engine_key], conversation_id, str(form.get("tags", "")).split(","),
                               request[user_key]["id"], request.app[now_key]())
    except NotFound as err:
        raise web.HTTPNotFound(text=str(err)) from None
    announce(request.app, LiveEvent("tags", conversation_id, {}))
    raise back(conversation_id)
