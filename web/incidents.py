"""Incident pages: the list, one incident with its conversations, chart and delivery log, and what people do
to it: managers acknowledge, resolve, open by hand, merge, split and unlink; agents and managers switch its
conversations to the incident SLA policy and send one templated acknowledgement to every linked conversation."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any
from urllib.parse import quote

import aiohttp_jinja2
import orjson
from aiohttp import web

from carebox import pipeline
from carebox.duration import format_duration
from carebox.errors import ConnectorError, NotFound
from carebox.incident_policy import TEMPLATES, IncidentSettings, render
from carebox.models import MAX_ROW_ID
from carebox.store import actions
from carebox.store import incident_policy as policy_store
from carebox.store import incidents as store
from web.auth import csrf_token, has_role, require
from web.compose import connector_for
from web.i18n import gettext as _
from web.incident_chart import CHART_BEFORE, chart
from web.keys import (
    clocks_key,
    connectors_key,
    engine_key,
    inbox_settings_key,
    now_key,
    pipeline_key,
    settings_key,
    user_key,
)
from web.live import LiveEvent, announce
from web.views import number, scope_of

__all__ = ["ack_text", "add_routes", "chart"]

log = logging.getLogger(__name__)


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


async def index(request: web.Request) -> web.Response:
    """GET /incidents: open incidents first, then recent ones."""
    rows = await store.list_incidents(request.app[engine_key])
    context = {"incidents": rows, "can_act": has_role(request[user_key], "manager"), "csrf": await csrf_token(request),
               "error": request.query.get("error")}
    return aiohttp_jinja2.render_template("incidents.html", request, context)


async def _context(request: web.Request, incident_id: int, texts: dict[str, str] | None = None) -> dict[str, Any]:
    app = request.app
    found = await store.incident(app[engine_key], incident_id)
    if found is None:
        raise web.HTTPNotFound(text=_("There is no such incident."))
    accounts = scope_of(request[user_key])
    if accounts is not None:  # an agent limited to some accounts sees, and acknowledges, only their conversations
        found["conversations"] = [c for c in found["conversations"] if (c["network"], c["account"]) in accounts]
    now = app[now_key]()
    since, until = found["started_at"] - CHART_BEFORE, found["resolved_at"] or now
    times = await store.complaint_times(app[engine_key], incident_id, since, until)
    marks = {_("started"): found["started_at"], _("detected"): found["detected_at"],
             _("acknowledged"): found["acknowledged_at"], _("resolved"): found["resolved_at"]}
    timeline = sorted(((at, label) for label, at in marks.items() if at is not None), key=lambda p: p[0])
    user, answered = request[user_key], _answered(found)
    return {"i": found, "chart": chart(times, since, until, marks, orjson.loads(found["series"] or "[]")),
            "timeline": timeline, "can_act": has_role(user, "manager"), "can_answer": has_role(user, "agent"),
            "csrf": await csrf_token(request), "error": request.query.get("error"), "answered": answered,
            "groups": ack_groups(request, found, answered, texts), "result": None, "previewed": texts is not None,
            "policy": _policy_view(request, found),
            "others": [r for r in await store.list_incidents(app[engine_key])
                       if r["id"] != incident_id and r["merged_into_id"] is None]}


def ack_groups(request: web.Request, found: dict[str, Any], answered: set[int],
               texts: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """The acknowledgement to send, one text per network and language of the open linked conversations not yet
    answered: the configured template (or the text being edited), its length and the network's limit."""
    settings, limits = request.app[settings_key], request.app[inbox_settings_key]
    groups: dict[str, dict[str, Any]] = {}
    for conv in found["conversations"]:
        if conv["status"] == "resolved" or conv["id"] in answered:
            continue
        lang, template = settings.incidents.template(conv["network"], conv["language"], settings.languages)
        field = f"text_{conv['network']}_{lang}"
        group = groups.setdefault(field, {"field": field, "network": conv["network"], "language": lang,
                                          "limit": limits.reply_limit(conv["network"]), "conversations": [],
                                          "text": render(template, found["cluster_key"], lang)})
        group["conversations"].append(conv)
    for group in groups.values():
        if texts is not None:
            group["text"] = texts.get(group["field"], group["text"])
        group["length"] = len(group["text"])
        group["over"] = group["length"] > group["limit"]
    return sorted(groups.values(), key=lambda g: (g["network"], g["language"]))


def _policy_view(request: web.Request, found: dict[str, Any]) -> dict[str, Any]:
    """The incident SLA policy as the page shows it: configured or not, its targets, in force or not."""
    sla, name, targets = request.app[clocks_key].settings, _configured_policy(request), ""
    if name is not None:
        targets = ", ".join(f"{_(t.kind.value)} {format_duration(t.seconds)} ({t.calendar or '24/7'})"
                            for t in sla.policy(name).targets)
    active = found["policy"] is not None and found["policy_until"] is None and found["state"] != "resolved"
    return {"name": name, "targets": targets, "active": active, "used": found["policy"],
            "since": found["policy_at"], "until": found["policy_until"]}


def _configured_policy(request: web.Request) -> str | None:
    """The incident SLA policy of the configuration, when it names a policy in force (the file's, or as edited
    from the admin pages)."""
    name = request.app[settings_key].incidents.policy
    return name if name is not None and name in {p.name for p in request.app[clocks_key].settings.policies} else None


async def _reconcile(app: web.Application, conversation_ids: list[int], now: datetime) -> None:
    """Put these conversations' clocks on the policy their incident asks for, and re-arm the moved ones."""
    moved = await policy_store.reconcile(app[engine_key], app[clocks_key], app[settings_key].incidents.policy, now,
                                         conversation_ids)
    rearm = app[pipeline_key].on_clocks
    if moved and rearm is not None:
        rearm(moved)  # new due times: the scheduler plans their warnings and breaches again


def _answered(found: dict[str, Any]) -> set[int]:
    """Linked conversations already answered since the incident started: bulk acknowledgement skips them."""
    return {c["id"] for c in found["conversations"]
            if c["last_outbound_at"] is not None and c["last_outbound_at"] >= found["started_at"]}


async def page(request: web.Request) -> web.Response:
    """GET /incidents/{id}: title, reason, timeline, chart, linked conversations, delivery log and actions."""
    return aiohttp_jinja2.render_template("incident.html", request, await _context(request, _id(request)))


async def _state_change(request: web.Request, action: str) -> web.StreamResponse:
    user = require(request, "manager")
    incident_id, app = _id(request), request.app
    now = app[now_key]()
    change = store.acknowledge if action == "acknowledge" else store.resolve
    try:
        changed = await change(app[engine_key], incident_id, now)
    except NotFound:
        raise web.HTTPNotFound(text=_("There is no such incident.")) from None
    if changed:
        await actions.record_audit(app[engine_key], now, user["id"], f"incident.{action}", incident_id=incident_id)
        log.info("incident %d: %s by user %d", incident_id, action, user["id"])
        if action == "resolve":  # its SLA policy ended with it: the conversations go back to their own
            await _reconcile(app, await policy_store.conversations_of(app[engine_key], incident_id), now)
    raise _back(incident_id)


async def acknowledge(request: web.Request) -> web.StreamResponse:
    """POST: an open incident becomes acknowledged (manager)."""
    return await _state_change(request, "acknowledge")


async def resolve(request: web.Request) -> web.StreamResponse:
    """POST: the incident is resolved by hand (manager); no resolved alert is sent from here."""
    return await _state_change(request, "resolve")


async def open_by_hand(request: web.Request) -> web.StreamResponse:
    """POST /incidents: open an incident for an account and an optional cluster key (manager)."""
    user = require(request, "manager")
    form = await request.post()
    account = str(form.get("account", "")).strip().lstrip("@")[:100]
    key = str(form.get("cluster_key", "")).strip().lower()[:100] or None
    title = str(form.get("title", "")).strip()[:300]
    if not account or not title:
        raise web.HTTPSeeOther("/incidents?error=" + quote(_("An incident needs an account and a title.")))
    now = request.app[now_key]()
    incident_id, linked = await store.open_by_hand(request.app[engine_key], account, key, title, now)
    await actions.record_audit(request.app[engine_key], now, user["id"], "incident.open", incident_id=incident_id,
                               account=account, cluster_key=key, title=title, linked=linked)
    log.warning("incident %d opened by hand by user %d (%d conversations linked)", incident_id, user["id"], linked)
    raise _back(incident_id)


async def merge(request: web.Request) -> web.StreamResponse:
    """POST: merge this incident into another one (manager)."""
    user = require(request, "manager")
    incident_id, form = _id(request), await request.post()
    target = _row_id(str(form.get("target", "")), _("incident id"))
    now = request.app[now_key]()
    try:
        moved = await store.merge(request.app[engine_key], incident_id, target, now)
    except NotFound as err:
        raise _back(incident_id, _("There is no such incident.") + f" ({err})") from None
    except ValueError as err:
        raise _back(incident_id, str(err)) from None
    await actions.record_audit(request.app[engine_key], now, user["id"], "incident.merge", incident_id=incident_id,
                               into=target, moved=moved)
    await _reconcile(request.app, await policy_store.conversations_of(request.app[engine_key], target), now)
    raise _back(target)


async def unlink(request: web.Request) -> web.StreamResponse:
    """POST: detach one conversation from the incident (manager)."""
    user = require(request, "manager")
    incident_id, form = _id(request), await request.post()
    conversation_id = _row_id(str(form.get("conversation", "")), _("conversation id"))
    now = request.app[now_key]()
    try:
        done = await store.unlink(request.app[engine_key], incident_id, conversation_id)
    except NotFound:
        raise web.HTTPNotFound(text=_("There is no such incident.")) from None
    if not done:
        raise _back(incident_id, _("That conversation is not linked to this incident."))
    await actions.record_audit(request.app[engine_key], now, user["id"], "incident.unlink", conversation_id,
                               incident_id=incident_id)
    await _reconcile(request.app, [conversation_id], now)
    raise _back(incident_id)


async def split(request: web.Request) -> web.StreamResponse:
    """POST: move the chosen linked conversations to a new incident (manager)."""
    user = require(request, "manager")
    incident_id, form = _id(request), await request.post()
    ids = [_row_id(str(v), _("conversation id")) for v in form.getall("conversation", [])]
    title = str(form.get("title", "")).strip()[:300]
    if not ids:
        raise _back(incident_id, _("Choose the conversations to move to the new incident."))
    if not title:
        raise _back(incident_id, _("The new incident needs a title."))
    now = request.app[now_key]()
    try:
        new_id, moved = await store.split(request.app[engine_key], incident_id, ids, title, now)
    except NotFound:
        raise web.HTTPNotFound(text=_("There is no such incident.")) from None
    except ValueError as err:
        raise _back(incident_id, _(str(err))) from None
    await actions.record_audit(request.app[engine_key], now, user["id"], "incident.split", incident_id=incident_id,
                               into=new_id, conversations=ids, title=title)
    log.info("incident %d: %d conversations split off into incident %d by user %d", incident_id, moved, new_id,
             user["id"])
    await _reconcile(request.app, ids, now)
    raise _back(new_id)


async def switch_policy(request: web.Request) -> web.StreamResponse:
    """POST: put the linked conversations on the incident SLA policy (action=on) or back on their own (action=off);
    an operational action, so agents may do it as well as managers."""
    user = require(request, "agent")
    incident_id, app = _id(request), request.app
    on = str((await request.post()).get("action", "on")) != "off"
    name, engine, now = _configured_policy(request), app[engine_key], app[now_key]()
    if on and name is None:
        raise _back(incident_id, _("No incident SLA policy is configured ([incidents] policy)."))
    try:
        changed = await (policy_store.switch_on(engine, incident_id, name, now) if on and name is not None
                         else policy_store.switch_off(engine, incident_id, now))
    except NotFound:
        raise web.HTTPNotFound(text=_("There is no such incident.")) from None
    if changed:
        await _reconcile(app, await policy_store.conversations_of(engine, incident_id), now)
        await actions.record_audit(engine, now, user["id"], f"incident.policy_{'on' if on else 'off'}",
                                   incident_id=incident_id, policy=name)
        log.info("incident %d: SLA policy %s switched %s by user %d", incident_id, name, "on" if on else "off",
                 user["id"])
    raise _back(incident_id)


async def bulk_acknowledge(request: web.Request) -> web.Response:
    """POST: send the acknowledgement of each network and language to every linked open conversation not yet
    answered (agent or manager); with `preview`, show the texts as they would go, sending nothing."""
    user = require(request, "agent")
    incident_id, app = _id(request), request.app
    form = await request.post()
    context = await _context(request, incident_id)
    texts = {g["field"]: str(form.get(g["field"], form.get(f"text_{g['language']}", ""))).strip()
             for g in context["groups"]}
    if form.get("preview"):
        return aiohttp_jinja2.render_template("incident.html", request, await _context(request, incident_id, texts))
    found = context["i"]
    sent: list[int] = []
    skipped = sorted(c["id"] for c in found["conversations"] if c["status"] != "resolved" and c["id"] in context["answered"])
    failed: list[tuple[int, str]] = []
    for group in context["groups"]:
        for conv in group["conversations"]:
            error = await _send_one(request, conv, texts[group["field"]], user["id"])
            if error is None:
                sent.append(conv["id"])
            else:
                failed.append((conv["id"], error))
    await actions.record_audit(app[engine_key], app[now_key](), user["id"], "incident.bulk_ack", incident_id=incident_id,
                               sent=sent, skipped=skipped, failed=[cid for cid, _e in failed])
    log.info("incident %d: bulk acknowledgement sent to %d, skipped %d, failed %d",
             incident_id, len(sent), len(skipped), len(failed))
    context = await _context(request, incident_id)
    context["result"] = {"sent": sent, "skipped": skipped, "failed": failed}
    return aiohttp_jinja2.render_template("incident.html", request, context, status=502 if failed and not sent else 200)


async def _send_one(request: web.Request, conv: dict[str, Any], text: str, user_id: int) -> str | None:
    """Reply to one conversation; the error to show when it was not sent."""
    app = request.app
    if not text:
        return _("The message is empty.")
    limit = app[inbox_settings_key].reply_limit(conv["network"])
    if len(text) > limit:
        return _("The reply has %(n)d characters; %(network)s accepts %(limit)d.") % {
            "n": len(text), "network": conv["network"], "limit": limit}
    connector = connector_for(app[connectors_key], conv)
    if connector is None:
        return _("No connector is running for %(network)s/%(account)s; the reply was not sent.") % conv
    try:
        await pipeline.reply(app[pipeline_key], connector, conv["id"], text, user_id, app[now_key])
    except ConnectorError as err:
        log.warning("bulk acknowledgement to conversation %d failed: %s", conv["id"], err)
        return str(err) or type(err).__name__
    except NotFound as err:
        return str(err)
    announce(app, LiveEvent("reply", conv["id"], {"by": user_id}))
    return None
