"""Replying: public or private, the length limit of the network, the collision hold, failures shown with the
draft kept."""

from __future__ import annotations

import logging
from typing import Any

import aiohttp_jinja2
from aiohttp import web

from carebox import pipeline
from carebox.errors import ConnectorError, NotFound
from carebox.ports import Status
from carebox.store import actions, queries
from web.i18n import gettext as _
from web.keys import (
    connectors_key,
    engine_key,
    inbox_settings_key,
    now_key,
    pipeline_key,
    user_key,
)
from web.live import LiveEvent, announce
from web.reply_kinds import chosen_kind, connector_for, reply_kinds
from web.views import after_done, conversation_context, number

log = logging.getLogger(__name__)


async def _again(request: web.Request, conv: dict[str, Any], text: str, *, error: str | None = None,
                 hold: list[dict[str, Any]] | None = None, status: int = 200, kind: str = "") -> web.Response:
    context = await conversation_context(request, conv)
    context.update(error=error, hold=hold, draft=text, kind=kind)
    return aiohttp_jinja2.render_template("conversation.html", request, context, status=status)


def _next(form: Any) -> str:
    target = str(form.get("next") or "/")
    return target if target.startswith("/") and not target.startswith("//") else "/"


async def reply(request: web.Request) -> web.StreamResponse:
    """Send a reply; held when the customer or another agent wrote since the page loaded, unless sent anyway."""
    app, user = request.app, request[user_key]
    conversation_id = number(request.match_info["id"], "conversation id")
    form = await request.post()
    text = str(form.get("text", "")).strip()
    conv = await queries.conversation(app[engine_key], conversation_id)
    if conv is None:
        raise web.HTTPNotFound(text=_("There is no such conversation."))
    limit = app[inbox_settings_key].reply_limit(conv["network"])
    kind, public = str(form.get("kind", "")), chosen_kind(form.get("kind"))
    if not text:
        return await _again(request, conv, text, error=_("The reply is empty."), status=400, kind=kind)
    if len(text) > limit:
        return await _again(request, conv, text, status=400, kind=kind, error=_(
            "The reply has %(n)d characters; %(network)s accepts %(limit)d.") % {"n": len(text), "network": conv["network"], "limit": limit})
    kinds = reply_kinds(app[connectors_key], conv)
    if public is not None and public != kinds["public"] and not kinds["choice"]:
        return await _again(request, conv, text, status=400, kind=kind, error=_(
            "%(network)s offers no choice here: a private message is answered privately, and a public post "
            "publicly.") % {"network": conv["network"]})
    seen = str(form.get("seen", ""))
    if seen.isdigit() and not form.get("force"):
        news = await queries.activity_since(app[engine_key], conversation_id, int(seen), user["id"])
        if news:
            return await _again(request, conv, text, hold=news, status=409, kind=kind)
    connector = connector_for(app[connectors_key], conv)
    if connector is None:
        return await _again(request, conv, text, status=503, kind=kind, error=_(
            "No connector is running for %(network)s/%(account)s; the reply was not sent.") % conv)
    try:
        await pipeline.reply(app[pipeline_key], connector, conversation_id, text, user["id"], app[now_key], public)
    except ConnectorError as err:
        log.warning("reply to conversation %d failed: %s", conversation_id, err)
        return await _again(request, conv, text, status=502, kind=kind, error=_(
            "The network refused or failed the reply (%(err)s); nothing was sent. Try again.") % {"err": err})
    except NotFound as err:
        return await _again(request, conv, text, error=str(err), status=404)
    announce(app, LiveEvent("reply", conversation_id, {"by": user["id"], "assignee_id": conv["assignee_id"]}))
    if form.get("resolve"):
        await actions.set_status(app[engine_key], conversation_id, Status.RESOLVED, user["id"], app[now_key]())
        announce(app, LiveEvent("status", conversation_id, {"status": "resolved", "by": user["id"]}))
    raise web.HTTPSeeOther(after_done(_next(form), "replied-resolved" if form.get("resolve") else "replied", conversation_id))
