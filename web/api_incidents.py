"""JSON API /api/v1/incidents: what the incident page does (list, read, open, acknowledge, resolve, merge, split,
link and unlink conversations, switch the incident SLA policy, send the acknowledgement), with its OpenAPI paths.
Roles as on the page; an incident or conversation outside an agent's accounts is a 404."""

from __future__ import annotations

from collections.abc import Awaitable, Mapping
from typing import Any, TypeVar

import orjson
from aiohttp import web

from carebox.errors import NotFound
from carebox.models import MAX_ROW_ID
from carebox.store import incident_policy as policy_store
from carebox.store import incidents as store
from web import incident_actions as act
from web.keys import engine_key, user_key

T = TypeVar("T")
INCIDENT_FIELDS = ("id", "account", "cluster_key", "title", "state", "severity", "source", "started_at", "detected_at",
                   "acknowledged_at", "resolved_at", "peak_count", "baseline", "reason", "merged_into_id",
                   "split_from_id", "policy", "policy_at", "policy_until")
LINKED_FIELDS = ("id", "network", "account", "status", "language", "category", "cluster_key", "snippet",
                 "last_message_at", "last_outbound_at", "first_response_at")
DELIVERY_FIELDS = ("at", "receiver", "action", "attempt", "outcome", "error")
WINDOW_FIELDS = ("policy", "started_at", "ended_at", "on_user_id", "on_by", "off_user_id", "off_by")


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


def _incident(row: Mapping[str, Any]) -> dict[str, Any]:
    return {**{k: row.get(k) for k in INCIDENT_FIELDS}, "policy_active": act.policy_active(row),
            "policy_windows": [{k: w[k] for k in WINDOW_FIELDS} for w in row["policy_windows"]]}


async def json_body(request: web.Request) -> dict[str, Any]:
    """The request's JSON object body (any /api/v1 write), or 400."""
    try:
        body = orjson.loads(await request.read())
    except orjson.JSONDecodeError:
        raise web.HTTPBadRequest(text="the body must be a JSON object") from None
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(text="the body must be a JSON object")
    return body


def _row_id(value: object, what: str) -> int:
    """An id from a JSON body: 400 when not an integer, 404 when no row can have it."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise web.HTTPBadRequest(text=f"{what} must be an integer id")
    if not 0 < value <= MAX_ROW_ID:
        raise web.HTTPNotFound(text=f"no such {what.split('_')[0]}")
    return value


def _text(body: Mapping[str, Any], key: str, limit: int, *, required: bool = True) -> str:
    value = body.get(key, "")
    if not isinstance(value, str) or "\x00" in value:
        raise web.HTTPBadRequest(text=f"{key} must be a string")
    value = value.strip()[:limit]
    if required and not value:
        raise web.HTTPUnprocessableEntity(text=f"{key} must not be empty")
    return value


async def _run(action: Awaitable[T]) -> T:
    """404 for an unknown (or invisible) incident or conversation, 409 when the incident's state refuses it."""
    try:
        return await action
    except NotFound as err:
        raise web.HTTPNotFound(text=f"no such {err}") from None
    except act.Refused as err:
        raise web.HTTPConflict(text=str(err)) from None


def _id(request: web.Request) -> int:
    return int(request.match_info["id"])  # the row_ids middleware has checked it


def _conversation_id(request: web.Request) -> int:
    value = request.match_info["conversation_id"]
    if not (value.isascii() and value.isdigit()):
        raise web.HTTPBadRequest(text="conversation_id must be a number")
    if len(value) > 19 or not 0 < int(value) <= MAX_ROW_ID:
        raise web.HTTPNotFound(text="no such conversation")
    return int(value)


async def list_incidents(request: web.Request) -> web.Response:
    """GET /api/v1/incidents: unresolved first, then the most recent (100), of the accounts the user may see."""
    engine = request.app[engine_key]
    rows = await store.list_incidents(engine, accounts=act.accounts_of(request[user_key]))
    windows = await policy_store.windows(engine, [r["id"] for r in rows])
    return _json({"items": [{**_incident({**r, "policy_windows": windows[r["id"]]}), "linked": r["linked"]}
                            for r in rows]})


async def get_incident(request: web.Request) -> web.Response:
    """GET /api/v1/incidents/{id}: with its linked conversations and delivery log."""
    found = await _run(act.load(request.app, request[user_key], _id(request)))
    return _json({**_incident(found), "conversations": [{k: c[k] for k in LINKED_FIELDS} for c in found["conversations"]],
                  "deliveries": [{k: d[k] for k in DELIVERY_FIELDS} for d in found["deliveries"]]})


async def open_incident(request: web.Request) -> web.Response:
    """POST /api/v1/incidents {"account", "cluster_key"?, "title"} (manager)."""
    body = await json_body(request)
    account = _text(body, "account", 100).lstrip("@")
    key = body.get("cluster_key")
    key = None if key is None else _text(body, "cluster_key", 100, required=False).lower() or None
    title = _text(body, "title", 300)
    incident_id, linked = await _run(act.open_by_hand(request.app, request[user_key], account, key, title))
    found = await _run(act.load(request.app, request[user_key], incident_id))
    return _json({**_incident(found), "linked": linked}, status=201)


async def _set_state(request: web.Request, state: str) -> web.Response:
    incident_id = _id(request)
    changed = await _run(act.set_state(request.app, request[user_key], incident_id, state))
    found = await _run(act.load(request.app, request[user_key], incident_id))
    return _json({**_incident(found), "changed": changed})


async def acknowledge(request: web.Request) -> web.Response:
    """POST /api/v1/incidents/{id}/acknowledge (manager)."""
    return await _set_state(request, "acknowledged")


async def resolve(request: web.Request) -> web.Response:
    """POST /api/v1/incidents/{id}/resolve (manager): its conversations go back to their own SLA policy."""
    return await _set_state(request, "resolved")


async def put_policy(request: web.Request) -> web.Response:
    """PUT /api/v1/incidents/{id}/policy {"active": bool} (agent): the incident SLA policy on or off."""
    incident_id, body = _id(request), await json_body(request)
    active = body.get("active")
    if not isinstance(active, bool):
        raise web.HTTPBadRequest(text="active must be true (the incident policy) or false (their own policies)")
    changed, moved = await _run(act.switch_policy(request.app, request[user_key], incident_id, active))
    found = await _run(act.load(request.app, request[user_key], incident_id))
    return _json({**_incident(found), "changed": changed, "moved_clocks": moved})


async def merge(request: web.Request) -> web.Response:
    """POST /api/v1/incidents/{id}/merge {"into": id} (manager)."""
    incident_id, body = _id(request), await json_body(request)
    target = _row_id(body.get("into"), "into")
    moved = await _run(act.merge(request.app, request[user_key], incident_id, target))
    return _json({"id": incident_id, "merged_into_id": target, "moved": moved})


async def split(request: web.Request) -> web.Response:
    """POST /api/v1/incidents/{id}/split {"conversation_ids": [id], "title"} (manager): a new incident."""
    incident_id, body = _id(request), await json_body(request)
    ids = body.get("conversation_ids")
    if not isinstance(ids, list) or not ids:
        raise web.HTTPBadRequest(text="conversation_ids must be a non-empty list of conversation ids")
    chosen = [_row_id(i, "conversation_ids") for i in ids]
    title = _text(body, "title", 300)
    new_id, moved = await _run(act.split(request.app, request[user_key], incident_id, chosen, title))
    found = await _run(act.load(request.app, request[user_key], new_id))
    return _json({**_incident(found), "moved": moved}, status=201)


async def link(request: web.Request) -> web.Response:
    """PUT /api/v1/incidents/{id}/conversations/{conversation_id} (manager)."""
    incident_id, conversation_id = _id(request), _conversation_id(request)
    changed = await _run(act.link(request.app, request[user_key], incident_id, conversation_id))
    return _json({"incident_id": incident_id, "conversation_id": conversation_id, "changed": changed})


async def unlink(request: web.Request) -> web.Response:
    """DELETE /api/v1/incidents/{id}/conversations/{conversation_id} (manager)."""
    incident_id, conversation_id = _id(request), _conversation_id(request)
    try:
        await _run(act.unlink(request.app, request[user_key], incident_id, conversation_id))
    except web.HTTPConflict as err:  # not linked to it: as a resource of this incident, it does not exist
        raise web.HTTPNotFound(text=err.text) from None
    return _json({"incident_id": incident_id, "conversation_id": conversation_id, "changed": True})


def _groups(groups: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"network": g["network"], "language": g["language"], "text": g["text"], "length": g["length"],
             "limit": g["limit"], "over": g["over"], "conversation_ids": [c["id"] for c in g["conversations"]]}
            for g in groups]


async def get_acknowledgement(request: web.Request) -> web.Response:
    """GET /api/v1/incidents/{id}/acknowledgement: the texts that would go, per network and language."""
    found = await _run(act.load(request.app, request[user_key], _id(request)))
    return _json({"groups": _groups(act.ack_groups(request.app, found)), "answered": sorted(act.answered(found))})


async def post_acknowledgement(request: web.Request) -> web.Response:
    """POST /api/v1/incidents/{id}/acknowledgement {"texts"?: {network: {language: text}}} (agent): sends it."""
    body = await json_body(request)
    found = await _run(act.load(request.app, request[user_key], _id(request)))
    texts = body.get("texts", {})
    if not isinstance(texts, dict) or not all(
            isinstance(by_lang, dict) and all(isinstance(t, str) for t in by_lang.values()) for by_lang in texts.values()):
        raise web.HTTPBadRequest(text='texts must map a network to {language: text}, e.g. {"x": {"en": "We know."}}')
    fields = {f"text_{network}_{lang}": text for network, by_lang in texts.items() for lang, text in by_lang.items()}
    result = await _run(act.acknowledge_customers(request.app, request[user_key], found, fields))
    return _json({"sent": result["sent"], "skipped": result["skipped"],
                  "failed": [{"conversation_id": cid, "error": error} for cid, error in result["failed"]]})


def add_routes(app: web.Application) -> None:
    """Register /api/v1/incidents."""
    r = app.router
    r.add_get("/api/v1/incidents", list_incidents)
    r.add_post("/api/v1/incidents", open_incident)
    r.add_get("/api/v1/incidents/{id}", get_incident)
    r.add_post("/api/v1/incidents/{id}/acknowledge", acknowledge)
    r.add_post("/api/v1/incidents/{id}/resolve", resolve)
    r.add_put("/api/v1/incidents/{id}/policy", put_policy)
    r.add_post("/api/v1/incidents/{id}/merge", merge)
    r.add_post("/api/v1/incidents/{id}/split", split)
    r.add_put("/api/v1/incidents/{id}/conversations/{conversation_id}", link)
    r.add_delete("/api/v1/incidents/{id}/conversations/{conversation_id}", unlink)
    r.add_get("/api/v1/incidents/{id}/acknowledgement", get_acknowledgement)
    r.add_post("/api/v1/incidents/{id}/acknowledgement", post_acknowledgement)


# --- the OpenAPI paths (merged into web/api.py's document) ------------------------------------------------

def _nullable(kind: str, **extra: Any) -> dict[str, Any]:
    return {"type": [kind, "null"], **extra}


_TIME = _nullable("string", format="date-time")
INCIDENT: dict[str, Any] = {"type": "object", "required": ["id", "account", "state", "policy_active"], "properties": {
    "id": {"type": "integer"}, "account": {"type": "string"}, "cluster_key": _nullable("string"),
    "title": {"type": "string"}, "state": {"type": "string", "enum": ["open", "acknowledged", "resolved"]},
    "severity": {"type": "string"}, "source": {"type": "string", "enum": ["detector", "manual", "split"]},
    "started_at": _TIME, "detected_at": _TIME, "acknowledged_at": _TIME, "resolved_at": _TIME,
    "peak_count": {"type": "integer"}, "baseline": {"type": "number"}, "reason": {"type": "string"},
    "merged_into_id": _nullable("integer"), "split_from_id": _nullable("integer"), "policy": _nullable("string"),
    "policy_at": _TIME, "policy_until": _TIME, "policy_active": {"type": "boolean"},
    "policy_windows": {"type": "array", "description": "every window of the incident SLA policy, oldest first; "
                       "a null user (on_by, off_by) is carebox itself", "items": {
        "type": "object", "required": ["policy", "started_at", "ended_at"], "properties": {
            "policy": {"type": "string"}, "started_at": {"type": "string", "format": "date-time"}, "ended_at": _TIME,
            "on_user_id": _nullable("integer"), "on_by": _nullable("string"),
            "off_user_id": _nullable("integer"), "off_by": _nullable("string")}}}}}
_IDS = {"type": "array", "items": {"type": "integer"}}
_ID = {"name": "id", "in": "path", "required": True, "schema": {"type": "integer", "format": "int64"}}
_CONV = {"name": "conversation_id", "in": "path", "required": True, "schema": {"type": "integer", "format": "int64"}}
_FOUND = {"404": "no such incident (or not on an account you may see)"}
_MANAGER = {"403": "needs the manager role", **_FOUND}


def _with(extra: Mapping[str, Any]) -> dict[str, Any]:
    return {**INCIDENT, "properties": {**INCIDENT["properties"], **extra}}


def _op(summary: str, ok: tuple[str, str, dict[str, Any]], errors: Mapping[str, str], *,
        params: list[dict[str, Any]] | None = None, body: dict[str, Any] | None = None) -> dict[str, Any]:
    status, what, schema = ok
    op: dict[str, Any] = {"summary": summary, "responses": {
        status: {"description": what, "content": {"application/json": {"schema": schema}}},
        **{code: {"description": text} for code, text in errors.items()}}}
    if params:
        op["parameters"] = params
    if body:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
    return op


def _state_change(summary: str) -> dict[str, Any]:
    return {"post": _op(summary, ("200", "the incident; changed is false when it already was",
                                  _with({"changed": {"type": "boolean"}})), _MANAGER, params=[_ID])}


PATHS: dict[str, Any] = {
    "/api/v1/incidents": {
        "get": _op("Incidents, unresolved first, then the most recent (100)",
                   ("200", "items", {"type": "object", "properties": {"items": {"type": "array", "items": _with(
                       {"linked": {"type": "integer"}})}}}), {}),
        "post": _op("Open an incident by hand, linking the matching open conversations of the last hour (manager)",
                    ("201", "the new incident", _with({"linked": {"type": "integer"}})),
                    {"400": "not a JSON object", "403": "needs the manager role", "409": "refused",
                     "422": "empty account or title"},
                    body={"type": "object", "required": ["account", "title"], "properties": {
                        "account": {"type": "string"}, "cluster_key": _nullable("string"), "title": {"type": "string"}}})},
    "/api/v1/incidents/{id}": {"get": _op(
        "One incident with its linked conversations (those on your accounts) and its alert delivery log",
        ("200", "the incident", _with({"conversations": {"type": "array", "items": {"type": "object"}},
                                       "deliveries": {"type": "array", "items": {"type": "object"}}})),
        _FOUND, params=[_ID])},
    "/api/v1/incidents/{id}/acknowledge": _state_change("Acknowledge an open incident (manager)"),
    "/api/v1/incidents/{id}/resolve": _state_change(
        "Resolve an incident (manager); its conversations go back to their own SLA policy"),
    "/api/v1/incidents/{id}/policy": {"put": _op(
        "Switch the linked conversations onto the incident SLA policy ([incidents] policy) or back onto their own "
        "(agent); every moved clock gets an SLA event, the switch is audited",
        ("200", "the incident", _with({"changed": {"type": "boolean"}, "moved_clocks": {"type": "integer"}})),
        {"400": "active is not a boolean", "403": "needs the agent role", **_FOUND,
         "409": "no incident policy configured, or the incident is resolved"},
        params=[_ID], body={"type": "object", "required": ["active"], "properties": {"active": {"type": "boolean"}}})},
    "/api/v1/incidents/{id}/merge": {"post": _op(
        "Merge into another incident (manager): its conversations move there, it is resolved as merged",
        ("200", "merged", {"type": "object", "properties": {"id": {"type": "integer"}, "merged_into_id": {"type": "integer"},
                                                            "moved": {"type": "integer"}}}),
        {"400": "into is not an id", **_MANAGER, "409": "unknown target, itself, or already merged"},
        params=[_ID], body={"type": "object", "required": ["into"], "properties": {"into": {"type": "integer"}}})},
    "/api/v1/incidents/{id}/split": {"post": _op(
        "Move linked conversations to a new incident (manager); it keeps the SLA policy in force",
        ("201", "the new incident", _with({"moved": {"type": "integer"}})),
        {"400": "conversation_ids is not a list of ids", **_MANAGER,
         "409": "a conversation not linked here, or none would be left", "422": "empty title"},
        params=[_ID], body={"type": "object", "required": ["conversation_ids", "title"], "properties": {
            "conversation_ids": _IDS, "title": {"type": "string"}}})},
    "/api/v1/incidents/{id}/conversations/{conversation_id}": {
        "put": _op("Link a conversation (manager); it follows the incident's SLA policy",
                   ("200", "linked; changed is false when it already was", {"type": "object", "properties": {
                       "incident_id": {"type": "integer"}, "conversation_id": {"type": "integer"},
                       "changed": {"type": "boolean"}}}),
                   {"400": "not a number", "403": "needs the manager role", "404": "no such incident or conversation",
                    "409": "linked to another incident, or this one was merged"}, params=[_ID, _CONV]),
        "delete": _op("Unlink a conversation (manager); it goes back to its own SLA policy",
                      ("200", "unlinked", {"type": "object", "properties": {
                          "incident_id": {"type": "integer"}, "conversation_id": {"type": "integer"},
                          "changed": {"type": "boolean"}}}),
                      {"400": "not a number", "403": "needs the manager role",
                       "404": "no such incident or conversation, or not linked to it"}, params=[_ID, _CONV])},
    "/api/v1/incidents/{id}/acknowledgement": {
        "get": _op("The acknowledgement that would go: one text per network and language of the open linked "
                   "conversations not yet answered since the incident started",
                   ("200", "groups", {"type": "object", "properties": {"answered": _IDS, "groups": {"type": "array", "items": {
                       "type": "object", "properties": {
                           "network": {"type": "string"}, "language": {"type": "string"}, "text": {"type": "string"},
                           "length": {"type": "integer"}, "limit": {"type": "integer"}, "over": {"type": "boolean"},
                           "conversation_ids": _IDS}}}}}), _FOUND, params=[_ID]),
        "post": _op("Send it (agent): each group's text, or the configured template, as an ordinary reply that "
                    "counts for the SLA; a text over its network's limit is not sent (listed in failed)",
                    ("200", "what was sent, skipped (already answered) and failed", {"type": "object", "properties": {
                        "sent": _IDS, "skipped": _IDS, "failed": {"type": "array", "items": {"type": "object", "properties": {
                            "conversation_id": {"type": "integer"}, "error": {"type": "string"}}}}}}),
                    {"400": "texts is not {network: {language: text}}", "403": "needs the agent role", **_FOUND},
                    params=[_ID], body={"type": "object", "properties": {"texts": {
                        "type": "object", "additionalProperties": {"type": "object",
                                                                   "additionalProperties": {"type": "string"}}}}})},
}
