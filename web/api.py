"""JSON API /api/v1: conversations, mentions, replies, assignment; Bearer tokens; an OpenAPI document."""

from __future__ import annotations

import logging
from typing import Any

import orjson
from aiohttp import web

from carebox import pipeline
from carebox.errors import ConnectorError, NotFound
from carebox.models import MAX_ROW_ID
from carebox.store import actions, queries
from web import api_incidents
from web.compose import connector_for
from web.keys import (
    connectors_key,
    engine_key,
    inbox_settings_key,
    now_key,
    pipeline_key,
    user_key,
)
from web.live import LiveEvent, announce
from web.reply_kinds import reply_kinds
from web.views import _filters, can_take, scope_of

log = logging.getLogger(__name__)
CONVERSATION_FIELDS = ("id", "network", "account", "status", "priority", "category", "language", "assignee_id", "snippet",
                       "public", "tags", "incident_id", "message_count", "first_message_at", "last_message_at",
                       "due_business", "due_wall", "first_response_at", "resolved_at", "policy", "customer_id")


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


def _public(row: dict[str, Any]) -> dict[str, Any]:
    out = {k: row.get(k) for k in CONVERSATION_FIELDS}
    out["tags"] = orjson.loads(out["tags"] or "[]")
    return out


def _in_range(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_ROW_ID


def _id(request: web.Request) -> int:
    value = request.match_info["id"]
    if not (value.isascii() and value.isdigit() and len(value) <= 19):  # "²".isdigit() is true, int("²") fails
        raise web.HTTPBadRequest(text="conversation id must be a number")
    if not _in_range(int(value)):
        raise web.HTTPNotFound(text="no such conversation")
    return int(value)


async def list_conversations(request: web.Request) -> web.Response:
    """GET /api/v1/conversations?view=&after=&network=...: one keyset page of a saved view."""
    view = request.query.get("view", "awaiting")
    if view not in queries.VIEWS:
        raise web.HTTPBadRequest(text=f"view must be one of {', '.join(queries.VIEWS)}")
    settings = request.app[inbox_settings_key]
    try:
        page = await queries.inbox(request.app[engine_key], view, request[user_key]["id"], now=request.app[now_key](),
                                   limit=min(int(request.query.get("limit", settings.page_size)), 500),
                                   cursor=request.query.get("after") or None, filters=_filters(request),
                                   due_soon_s=settings.due_soon_s, with_counts=False)
    except ValueError:
        raise web.HTTPBadRequest(text="bad limit or cursor") from None
    return _json({"items": [_public(r) for r in page.rows], "next": page.next_cursor})


async def _visible(request: web.Request) -> int:
    """The path's conversation id when it exists on an account the user may see; 404 otherwise."""
    conversation_id = _id(request)
    if not await queries.can_see(request.app[engine_key], conversation_id, scope_of(request[user_key])):
        raise web.HTTPNotFound(text="no such conversation")
    return conversation_id


async def get_conversation(request: web.Request) -> web.Response:
    """GET /api/v1/conversations/{id}."""
    conv = await queries.conversation(request.app[engine_key], _id(request), scope_of(request[user_key]))
    if conv is None:
        raise web.HTTPNotFound(text="no such conversation")
    return _json({**_public(conv), "assignee": conv["assignee"],
                  "identities": [{k: i[k] for k in ("network", "handle", "display_name")} for i in conv["identities"]]})


async def list_mentions(request: web.Request) -> web.Response:
    """GET /api/v1/conversations/{id}/mentions: the thread."""
    return _json({"items": await queries.mentions_of(request.app[engine_key], await _visible(request))})


async def post_reply(request: web.Request) -> web.Response:
    """POST /api/v1/conversations/{id}/replies {"text", "seen_mention_id"?, "public"?}: publish through the
    connector; `public` false sends a private message, absent answers in the kind of the customer's last message."""
    app, user, conversation_id = request.app, request[user_key], _id(request)
    body = await api_incidents.json_body(request)
    text = str(body.get("text", "")).strip()
    conv = await queries.conversation(app[engine_key], conversation_id, scope_of(user))
    if conv is None:
        raise web.HTTPNotFound(text="no such conversation")
    limit = app[inbox_settings_key].reply_limit(conv["network"])
    if not text or len(text) > limit:
        raise web.HTTPUnprocessableEntity(text=f"text must have 1 to {limit} characters on {conv['network']}")
    seen = body.get("seen_mention_id")
    if seen is not None and not _in_range(seen):
        raise web.HTTPBadRequest(text="seen_mention_id must be a mention id")
    if isinstance(seen, int) and not body.get("force"):
        news = await queries.activity_since(app[engine_key], conversation_id, seen, user["id"])
        if news:
            return _json({"error": "held: new activity since seen_mention_id", "activity": news}, status=409)
    public = body.get("public")
    if public is not None and not isinstance(public, bool):
        raise web.HTTPBadRequest(text="public must be true (a public reply) or false (a private message)")
    kinds = reply_kinds(app[connectors_key], conv)
    if public is not None and public != kinds["public"] and not kinds["choice"]:
        raise web.HTTPUnprocessableEntity(text=f"{conv['network']} offers no choice here: a private message is answered "
                                               "privately, and a public post publicly")
    connector = connector_for(app[connectors_key], conv)
    if connector is None:
        raise web.HTTPServiceUnavailable(text=f"no connector is running for {conv['network']}/{conv['account']}")
    try:
        sent = await pipeline.reply(app[pipeline_key], connector, conversation_id, text, user["id"], app[now_key],
                                    public)
    except ConnectorError as err:
        raise web.HTTPBadGateway(text=f"the network refused or failed the reply: {err}") from None
    except NotFound as err:
        raise web.HTTPNotFound(text=str(err)) from None
    announce(app, LiveEvent("reply", conversation_id, {"by": user["id"], "assignee_id": conv["assignee_id"]}))
    return _json({"external_id": sent.external_id, "url": sent.url, "created_at": sent.created_at}, status=201)


async def put_assignment(request: web.Request) -> web.Response:
    """PUT /api/v1/conversations/{id}/assignment {"assignee_id": int | null}."""
    conversation_id, body = await _visible(request), await api_incidents.json_body(request)
    assignee = body.get("assignee_id")
    if assignee is not None and (not isinstance(assignee, int) or isinstance(assignee, bool)):
        raise web.HTTPBadRequest(text="assignee_id must be a user id or null")
    if assignee is not None and not _in_range(assignee):
        raise web.HTTPNotFound(text="no such user")
    if not await can_take(request.app, conversation_id, assignee):
        raise web.HTTPUnprocessableEntity(text="this agent cannot see this conversation's account")
    try:
        await actions.assign(request.app[engine_key], conversation_id, assignee, request[user_key]["id"], request.app[now_key]())
    except NotFound as err:
        raise web.HTTPNotFound(text=str(err)) from None
    announce(request.app, LiveEvent("assign", conversation_id, {"assignee_id": assignee, "by": request[user_key]["id"]}))
    return _json({"id": conversation_id, "assignee_id": assignee})


async def openapi(request: web.Request) -> web.Response:
    """GET /api/v1/openapi.json."""
    return _json(OPENAPI)


def add_routes(app: web.Application) -> None:
    """Register /api/v1."""
    r = app.router
    r.add_get("/api/v1/openapi.json", openapi)
    r.add_get("/api/v1/conversations", list_conversations)
    r.add_get("/api/v1/conversations/{id}", get_conversation)
    r.add_get("/api/v1/conversations/{id}/mentions", list_mentions)
    r.add_post("/api/v1/conversations/{id}/replies", post_reply)
    r.add_put("/api/v1/conversations/{id}/assignment", put_assignment)
    api_incidents.add_routes(app)  # /api/v1/incidents: what the incident page does


def _op(summary: str, responses: dict[str, str], *, params: list[dict[str, Any]] | None = None,
        body: dict[str, Any] | None = None) -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary, "responses": {k: {"description": v} for k, v in responses.items()}}
    if params:
        op["parameters"] = params
    if body:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
    return op


_ID = {"name": "id", "in": "path", "required": True, "schema": {"type": "integer", "format": "int64"}}
_Q = [{"name": n, "in": "query", "required": False, "schema": {"type": "string"}}
      for n in ("view", "after", "limit", "network", "account", "language", "priority", "category", "tag", "assignee", "q")]
OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "carebox API", "version": "1"},
    "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
    "security": [{"bearer": []}],
    "paths": {
        "/api/v1/conversations": {"get": _op("A keyset page of a saved view (mine, unassigned, due_soon, breached, "
                                             "incident, open, pending, resolved); pass `next` as `after`.",
                                             {"200": "items and next cursor", "400": "bad view or cursor"}, params=_Q)},
        "/api/v1/conversations/{id}": {"get": _op("One conversation", {"200": "the conversation", "404": "unknown"},
                                                  params=[_ID])},
        "/api/v1/conversations/{id}/mentions": {"get": _op("Its thread, oldest first", {"200": "items", "404": "unknown"},
                                                           params=[_ID])},
        "/api/v1/conversations/{id}/replies": {"post": _op(
            "Publish a reply through the conversation's connector; the SLA clock stops when the network confirms.",
            {"201": "sent", "409": "held: new activity since seen_mention_id (send again with force)",
             "400": "public is not a boolean", "422": "empty or too long, or a kind of reply the network does not allow here",
             "502": "the network refused"}, params=[_ID],
            body={"type": "object", "required": ["text"], "properties": {
                "text": {"type": "string"}, "seen_mention_id": {"type": "integer"}, "force": {"type": "boolean"},
                "public": {"type": "boolean"}}})},
        "/api/v1/conversations/{id}/assignment": {"put": _op(
            "Assign (or unassign with null); audited", {"200": "assigned", "404": "unknown conversation or user",
                                                        "422": "the assignee cannot see the conversation's account"},
            params=[_ID], body={"type": "object", "properties": {"assignee_id": {"type": ["integer", "null"]}}})},
        **api_incidents.PATHS,
    },
}
