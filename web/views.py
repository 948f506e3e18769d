"""Inbox pages: the list of conversations, one conversation, and what an agent does to it."""

from __future__ import annotations

import logging
from typing import Any

import aiohttp_jinja2
from aiohttp import web

from carebox import pipeline
from carebox.errors import ConnectorError, NotFound
from carebox.ports import Status
from carebox.store import actions, queries
from web.auth import csrf_token
from web.keys import clocks_key, connectors_key, engine_key, now_key, pipeline_key, user_key

log = logging.getLogger(__name__)
PAGE = 50
MAX_REPLY = 5000


def _int(value: str, what: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise web.HTTPBadRequest(text=f"{what} must be a number") from None


@aiohttp_jinja2.template("inbox.html")
async def inbox(request: web.Request) -> dict[str, Any]:
    """A saved view of conversations, soonest business due first, both clocks on every row."""
    view = request.query.get("view", "awaiting")
    if view not in queries.VIEWS:
        raise web.HTTPNotFound(text=f"no view {view!r}")
    page = max(0, _int(request.query.get("page", "0"), "page"))
    user = request[user_key]
    result = await queries.inbox(request.app[engine_key], view, user["id"], limit=PAGE, offset=page * PAGE)
    now = request.app[now_key]()
    book = request.app[clocks_key]
    rows = [{**row, "clock": book.view(row, now)} for row in result.rows]
    return {"view": view, "rows": rows, "counts": result.counts, "page": page, "has_more": result.has_more,
            "csrf": await csrf_token(request)}


async def _conversation_or_404(request: web.Request) -> dict[str, Any]:
    found = await queries.conversation(request.app[engine_key], _int(request.match_info["id"], "conversation id"))
    if found is None:
        raise web.HTTPNotFound(text="no such conversation")
    return found


@aiohttp_jinja2.template("conversation.html")
async def conversation(request: web.Request) -> dict[str, Any]:
    """The thread, the customer's identities and other conversations, the SLA log."""
    conv = await _conversation_or_404(request)
    now = request.app[now_key]()
    return {"c": conv, "clock": request.app[clocks_key].view(conv, now), "users": await queries.users(request.app[engine_key]),
            "csrf": await csrf_token(request), "error": request.query.get("error")}


def _back(conversation_id: int, error: str | None = None) -> web.HTTPSeeOther:
    from urllib.parse import quote

    return web.HTTPSeeOther(f"/conversations/{conversation_id}" + (f"?error={quote(error)}" if error else ""))


async def reply(request: web.Request) -> web.StreamResponse:
    """Send a reply through the conversation's connector; the clock stops once the network confirms."""
    conversation_id = _int(request.match_info["id"], "conversation id")
    form = await request.post()
    text = str(form.get("text", "")).strip()
    if not text:
        raise _back(conversation_id, "The reply is empty.")
    if len(text) > MAX_REPLY:
        raise _back(conversation_id, f"The reply is longer than {MAX_REPLY} characters.")
    conv = await _conversation_or_404(request)
    connectors = request.app[connectors_key]
    connector = connectors.get(conv["source"]) or next(
        (c for c in connectors.values() if c.network == conv["network"] and c.account == conv["account"]), None)
    if connector is None:
        raise _back(conversation_id, f"No connector is running for {conv['network']}/{conv['account']}; the reply was not sent.")
    try:
        await pipeline.reply(request.app[pipeline_key], connector, conversation_id, text, request[user_key]["id"], request.app[now_key])
    except ConnectorError as err:
        log.warning("reply to conversation %d failed: %s", conversation_id, err)
        raise _back(conversation_id, f"The network refused or failed the reply ({err}); nothing was sent. Try again.") from None
    except NotFound as err:
        raise _back(conversation_id, str(err)) from None
    if form.get("resolve"):
        await actions.set_status(request.app[engine_key], conversation_id, Status.RESOLVED, request[user_key]["id"], request.app[now_key]())
    raise web.HTTPSeeOther(str(form.get("next") or "/"))


async def assign(request: web.Request) -> web.StreamResponse:
    """Assign to a user, to me, or to nobody."""
    conversation_id = _int(request.match_info["id"], "conversation id")
    form = await request.post()
    value = str(form.get("assignee", ""))
    assignee = request[user_key]["id"] if value == "me" else (None if value in ("", "none") else _int(value, "assignee"))
    try:
        await actions.assign(request.app[engine_key], conversation_id, assignee, request[user_key]["id"], request.app[now_key]())
    except NotFound as err:
        raise web.HTTPNotFound(text=str(err)) from None
    raise _back(conversation_id)


async def status(request: web.Request) -> web.StreamResponse:
    """Open, pending (waiting on the customer) or resolved."""
    conversation_id = _int(request.match_info["id"], "conversation id")
    form = await request.post()
    try:
        new = Status(str(form.get("status", "")))
    except ValueError:
        raise web.HTTPBadRequest(text="status must be open, pending or resolved") from None
    try:
        await actions.set_status(request.app[engine_key], conversation_id, new, request[user_key]["id"], request.app[now_key]())
    except NotFound as err:
        raise web.HTTPNotFound(text=str(err)) from None
    raise web.HTTPSeeOther("/" if new is Status.RESOLVED else f"/conversations/{conversation_id}")


async def note(request: web.Request) -> web.StreamResponse:
    """An internal note (never a response)."""
    conversation_id = _int(request.match_info["id"], "conversation id")
    form = await request.post()
    text = str(form.get("text", "")).strip()
    if text:
        try:
            await actions.add_note(request.app[engine_key], conversation_id, request[user_key]["id"], text, request.app[now_key]())
        except NotFound as err:
            raise web.HTTPNotFound(text=str(err)) from None
    raise _back(conversation_id)
