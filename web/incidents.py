"""Incident pages: the list, one incident with its conversations, chart and delivery log, and what a manager does
to it (acknowledge, resolve, open by hand, merge, unlink, one templated acknowledgement to every linked conversation)."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

import aiohttp_jinja2
from aiohttp import web

from carebox import pipeline
from carebox.errors import ConnectorError, NotFound
from carebox.models import MAX_ROW_ID
from carebox.store import actions
from carebox.store import incidents as store
from web.auth import csrf_token, has_role, require
from web.compose import connector_for
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
from web.views import number

log = logging.getLogger(__name__)
CHART_BEFORE = timedelta(minutes=60)
CHART_SPAN = timedelta(hours=12)  # past this the chart stops: one bar a minute stays readable
CHART_W, CHART_H, CHART_LEFT, CHART_BOTTOM, CHART_TOP = 720, 180, 36, 22, 8
ACK_TEMPLATES = {
    "en": ("We're aware of an issue affecting {service} and our teams are on it. We'll update you here.", "our service"),
    "fr": (("Nous avons connaissance d'un incident sur {service} et nos équipes sont mobilisées. "
            "Nous vous tenons informé ici."), "notre service"),
}


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


@dataclass(frozen=True, slots=True)
class Bar:
    """One minute of complaints on the chart."""

    x: float
    y: float
    w: float
    h: float
    count: int
    at: datetime


@dataclass(frozen=True, slots=True)
class Chart:
    """The geometry of the complaints-per-minute chart, in SVG user units."""

    bars: tuple[Bar, ...]
    markers: tuple[tuple[float, str], ...]
    peak: int
    since: datetime
    until: datetime
    total: int
    clipped: bool


def chart(times: list[datetime], since: datetime, until: datetime, marks: dict[str, datetime | None]) -> Chart:
    """Complaints per minute from `since` to `until` as bars, with vertical markers at `marks` (label -> time)."""
    clipped = until - since > CHART_SPAN + CHART_BEFORE
    until = min(until, since + CHART_SPAN + CHART_BEFORE)
    minutes = max(1, math.ceil((until - since).total_seconds() / 60))
    counts = [0] * minutes
    for t in times:
        i = int((t - since).total_seconds() // 60)
        if 0 <= i < minutes:
            counts[i] += 1
    peak = max(counts) or 1
    width, height = CHART_W - CHART_LEFT - 4, CHART_H - CHART_BOTTOM - CHART_TOP
    step = width / minutes
    bars = tuple(Bar(x=round(CHART_LEFT + i * step, 2), y=round(CHART_TOP + height * (1 - n / peak), 2),
                     w=round(max(step - 0.5, 0.5), 2), h=round(height * n / peak, 2), count=n,
                     at=since + timedelta(minutes=i)) for i, n in enumerate(counts) if n)
    markers = tuple((round(CHART_LEFT + width * (at - since).total_seconds() / (until - since).total_seconds(), 2), label)
                    for label, at in marks.items() if at is not None and since <= at <= until)
    return Chart(bars=bars, markers=markers, peak=max(counts), since=since, until=until, total=sum(counts),
                 clipped=clipped)


def ack_text(language: str | None, cluster_key: str | None) -> str:
    """The prefilled acknowledgement in a conversation's language (French or English)."""
    template, ours = ACK_TEMPLATES["fr" if (language or "").startswith("fr") else "en"]
    return template.format(service=cluster_key or ours)


def _lang(language: str | None) -> str:
    return "fr" if (language or "").startswith("fr") else "en"


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


async def _context(request: web.Request, incident_id: int) -> dict[str, Any]:
    app = request.app
    found = await store.incident(app[engine_key], incident_id)
    if found is None:
        raise web.HTTPNotFound(text=_("There is no such incident."))
    now = app[now_key]()
    since, until = found["started_at"] - CHART_BEFORE, found["resolved_at"] or now
    times = await store.complaint_times(app[engine_key], incident_id, since, until)
    marks = {_("started"): found["started_at"], _("detected"): found["detected_at"],
             _("acknowledged"): found["acknowledged_at"], _("resolved"): found["resolved_at"]}
    timeline = sorted(((at, label) for label, at in marks.items() if at is not None), key=lambda p: p[0])
    languages = sorted({_lang(c["language"]) for c in found["conversations"]} or {"en"})
    return {"i": found, "chart": chart(times, since, until, marks), "timeline": timeline,
            "can_act": has_role(request[user_key], "manager"), "csrf": await csrf_token(request),
            "error": request.query.get("error"), "answered": _answered(found),
            "ack": {lang: ack_text(lang, found["cluster_key"]) for lang in languages}, "result": None,
            "others": [r for r in await store.list_incidents(app[engine_key])
                       if r["id"] != incident_id and r["merged_into_id"] is None]}


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
    raise _back(incident_id)


async def bulk_acknowledge(request: web.Request) -> web.Response:
    """POST: send the templated acknowledgement to every linked open conversation not yet answered (manager)."""
    user = require(request, "manager")
    incident_id, app = _id(request), request.app
    form = await request.post()
    context = await _context(request, incident_id)
    found, texts = context["i"], {lang: str(form.get(f"text_{lang}", "")).strip() for lang in ACK_TEMPLATES}
    sent: list[int] = []
    skipped: list[int] = []
    failed: list[tuple[int, str]] = []
    for conv in found["conversations"]:
        if conv["status"] == "resolved":
            continue
        if conv["id"] in context["answered"]:
            skipped.append(conv["id"])
            continue
        error = await _send_one(request, conv, texts[_lang(conv["language"])], user["id"])
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
