"""Incident pages: the list, one incident with its conversations, chart and delivery log, and what people do
to it: managers acknowledge, resolve, open by hand, merge, split and unlink; agents and managers switch its
conversations to the incident SLA policy and send one templated acknowledgement to every linked conversation."""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from typing import Any, TypeVar
from urllib.parse import quote

import aiohttp_jinja2
import orjson
from aiohttp import web

from carebox.errors import NotFound
from carebox.incident_policy import TEMPLATES, IncidentSettings, render
from carebox.models import MAX_ROW_ID
from carebox.store import incidents as store
from web import incident_actions as act
from web.auth import csrf_token, has_role
from web.i18n import duration
from web.i18n import gettext as _
from web.incident_chart import CHART_BEFORE, chart
from web.keys import clocks_key, engine_key, now_key, settings_key, user_key
from web.views import number

__all__ = ["ack_text", "add_routes", "chart"]

log = logging.getLogger(__name__)
T = TypeVar("T")


def add_routes(app: web.Application) -> None:
    """Register the incident pages and actions."""
    r = app.router
    r.add_get("/incidents", index)
    r.add_post("/incidents", open_by_hand)
    r.add_get("/incidents/{id}", page)
    r.add_post("/incidents/{id}/acknowledge", acknowledge)
    r.add_post("/incidents/{id}/resolve", resolve)
    r.add_post("/incidents/{id}/merge", merge)
    r.add_post("/incidents/{id}/unlink", unlink)
    r.add_post("/incidents/{id}/bulk-ack", bulk_acknowledge)
    r.add_post("/incidents/{id}/split", split)
    r.add_post("/incidents/{id}/policy", switch_policy)


def ack_text(language: str | None, cluster_key: str | None, network: str = "*",
             settings: IncidentSettings | None = None) -> str:
    """The prefilled acknowledgement for a conversation's network and language, naming the service."""
    lang, template = (settings or IncidentSettings(templates=TEMPLATES)).template(network, language)
    return render(template, cluster_key, lang)


def _id(request: web.Request) -> int:
    return _row_id(request.match_info["id"], _("incident id"))


def _row_id(value: str, what: str) -> int:
    """A row id from the URL or a form: 400 when not a number, 404 when no row can have it."""
    found = number(value, what)
    if not 0 < found <= MAX_ROW_ID:
        raise web.HTTPNotFound(text=_("There is no such incident.") if what == _("incident id") else
                               _("There is no such conversation."))
    return found


def _back(incident_id: int, error: str | None = None) -> web.HTTPSeeOther:
    return web.HTTPSeeOther(f"/incidents/{incident_id}" + (f"?error={quote(error)}" if error else ""))


async def _do(incident_id: int, action: Awaitable[T]) -> T:
    """Run an incident action: 404 for an unknown (or invisible) incident or conversation, back to the incident
    page with the reason when it is refused."""
    try:
        return await action
    except NotFound as err:
        what = _("There is no such conversation.") if str(err).startswith("conversation") else _("There is no such incident.")
        raise web.HTTPNotFound(text=what) from None
    except act.Refused as err:
        raise _back(incident_id, str(err)) from None


async def index(request: web.Request) -> web.Response:
    """GET /incidents: open incidents first, then recent ones (of the accounts the user may see)."""
    rows = await store.list_incidents(request.app[engine_key], accounts=act.accounts_of(request[user_key]))
    context = {"incidents": rows, "can_act": has_role(request[user_key], "manager"), "csrf": await csrf_token(request),
               "error": request.query.get("error")}
    return aiohttp_jinja2.render_template("incidents.html", request, context)


async def _context(request: web.Request, incident_id: int, texts: dict[str, str] | None = None) -> dict[str, Any]:
    app, user = request.app, request[user_key]
    try:
        found = await act.load(app, user, incident_id)
    except NotFound:
        raise web.HTTPNotFound(text=_("There is no such incident.")) from None
    now = app[now_key]()
    since, until = found["started_at"] - CHART_BEFORE, found["resolved_at"] or now
    times = await store.complaint_times(app[engine_key], incident_id, since, until)
    marks = {_("started"): found["started_at"], _("detected"): found["detected_at"],
             _("acknowledged"): found["acknowledged_at"], _("resolved"): found["resolved_at"]}
    timeline = sorted(((at, label) for label, at in marks.items() if at is not None), key=lambda p: p[0])
    return {"i": found, "chart": chart(times, since, until, marks, orjson.loads(found["series"] or "[]")),
            "timeline": timeline, "can_act": has_role(user, "manager"), "can_answer": has_role(user, "agent"),
            "csrf": await csrf_token(request), "error": request.query.get("error"), "answered": act.answered(found),
            "groups": act.ack_groups(app, found, texts), "result": None, "previewed": texts is not None,
            "policy": _policy_view(request, found),
            "others": [r for r in await store.list_incidents(app[engine_key], accounts=act.accounts_of(user))
                       if r["id"] != incident_id and r["merged_into_id"] is None]}


def _policy_view(request: web.Request, found: dict[str, Any]) -> dict[str, Any]:
    """The incident SLA policy as the page shows it: configured or not, its targets, in force or not."""
    sla, name, targets = request.app[clocks_key].settings, act.configured_policy(request.app), ""
    if name is not None:
        targets = ", ".join(f"{_(t.kind.value)} {duration(t.seconds)} ({t.calendar or '24/7'})"
                            for t in sla.policy(name).targets)
    active = act.policy_active(found)
    windows = [_window_view(w, found) for w in found["policy_windows"]]
    return {"name": name, "targets": targets, "active": active, "used": found["policy"], "since": found["policy_at"],
            "current": windows[-1] if active and windows else None, "past": windows[:-1] if active else windows,
            "auto": request.app[settings_key].incidents.auto_policy}


def _window_view(window: dict[str, Any], found: dict[str, Any]) -> dict[str, Any]:
    """One window of the incident policy as the page tells it: when, and who switched it on and off."""
    if window["on_by"]:
        on = _("by %(name)s") % {"name": window["on_by"]}
    else:
        on = _("by the detector") if found["source"] == "detector" else _("by carebox ([incidents] auto_policy)")
    if window["off_by"]:
        off = _("by %(name)s") % {"name": window["off_by"]}
    else:
        off = _("when the incident was resolved") if found["state"] == "resolved" else _("by carebox")
    return {**window, "on": on, "off": off}


async def page(request: web.Request) -> web.Response:
    """GET /incidents/{id}: title, reason, timeline, chart, linked conversations, delivery log and actions."""
    return aiohttp_jinja2.render_template("incident.html", request, await _context(request, _id(request)))


async def acknowledge(request: web.Request) -> web.StreamResponse:
    """POST: an open incident becomes acknowledged (manager)."""
    incident_id = _id(request)
    await _do(incident_id, act.set_state(request.app, request[user_key], incident_id, "acknowledged"))
    raise _back(incident_id)


async def resolve(request: web.Request) -> web.StreamResponse:
    """POST: the incident is resolved by hand (manager); no resolved alert is sent from here."""
    incident_id = _id(request)
    await _do(incident_id, act.set_state(request.app, request[user_key], incident_id, "resolved"))
    raise _back(incident_id)


async def open_by_hand(request: web.Request) -> web.StreamResponse:
    """POST /incidents: open an incident for an account and an optional cluster key (manager)."""
    form = await request.post()
    account = str(form.get("account", "")).strip().lstrip("@")[:100]
    key = str(form.get("cluster_key", "")).strip().lower()[:100] or None
    title = str(form.get("title", "")).strip()[:300]
    try:
        incident_id, _linked = await act.open_by_hand(request.app, request[user_key], account, key, title)
    except act.Refused as err:
        raise web.HTTPSeeOther("/incidents?error=" + quote(str(err))) from None
    raise _back(incident_id)


async def merge(request: web.Request) -> web.StreamResponse:
    """POST: merge this incident into another one (manager)."""
    incident_id, form = _id(request), await request.post()
    target = _row_id(str(form.get("target", "")), _("incident id"))
    await _do(incident_id, act.merge(request.app, request[user_key], incident_id, target))
    raise _back(target)


async def unlink(request: web.Request) -> web.StreamResponse:
    """POST: detach one conversation from the incident (manager)."""
    incident_id, form = _id(request), await request.post()
    conversation_id = _row_id(str(form.get("conversation", "")), _("conversation id"))
    await _do(incident_id, act.unlink(request.app, request[user_key], incident_id, conversation_id))
    raise _back(incident_id)


async def split(request: web.Request) -> web.StreamResponse:
    """POST: move the chosen linked conversations to a new incident (manager)."""
    incident_id, form = _id(request), await request.post()
    ids = [_row_id(str(v), _("conversation id")) for v in form.getall("conversation", [])]
    title = str(form.get("title", "")).strip()[:300]
    new_id, _moved = await _do(incident_id, act.split(request.app, request[user_key], incident_id, ids, title))
    raise _back(new_id)


async def switch_policy(request: web.Request) -> web.StreamResponse:
    """POST: put the linked conversations on the incident SLA policy (action=on) or back on their own (action=off);
    an operational action, so agents may do it as well as managers."""
    incident_id = _id(request)
    on = str((await request.post()).get("action", "on")) != "off"
    await _do(incident_id, act.switch_policy(request.app, request[user_key], incident_id, on))
    raise _back(incident_id)


async def bulk_acknowledge(request: web.Request) -> web.Response:
    """POST: send the acknowledgement of each network and language to every linked open conversation not yet
    answered (agent or manager); with `preview`, show the texts as they would go, sending nothing."""
    incident_id, app, user = _id(request), request.app, request[user_key]
    form = await request.post()
    context = await _context(request, incident_id)
    texts = {g["field"]: str(form.get(g["field"], form.get(f"text_{g['language']}", ""))).strip()
             for g in context["groups"]}
    if form.get("preview"):
        return aiohttp_jinja2.render_template("incident.html", request, await _context(request, incident_id, texts))
    result = await _do(incident_id, act.acknowledge_customers(app, user, context["i"], texts))
    context = await _context(request, incident_id)
    context["result"] = result
    status = 502 if result["failed"] and not result["sent"] else 200
    return aiohttp_jinja2.render_template("incident.html", request, context, status=status)
