"""Calendars and policies edited from the web (managers): validation on each field, a due-time preview before
saving, and a save that stores a new version, audits it and puts it in force in every process."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import aiohttp_jinja2
from aiohttp import web

from carebox import escalation
from carebox.calendar import Calendar, add_business
from carebox.clocks import calendar_to_json
from carebox.duration import parse_duration
from carebox.errors import ConfigError
from carebox.sla_config import WALL_CLOCK, policy_from_table
from carebox.sla_policy import Policy, SlaSettings
from carebox.sla_tables import CONTRACT, parse_calendar_table
from carebox.store import sla_edits
from web import auth
from web.i18n import CURRENT
from web.i18n import gettext as _
from web.keys import clocks_key, engine_key, now_key, settings_key, sla_edits_key
from web.sla_forms import (
    MAX_TARGET_S,
    calendar_fields,
    calendar_table,
    config_error,
    day_names,
    kind_names,
    policy_fields,
    policy_table_from_form,
    preview_instant,
)

log = logging.getLogger(__name__)


def add_routes(app: web.Application) -> None:
    """Register the calendar and policy editors."""
    r = app.router
    r.add_get("/admin/calendars/{name}", calendar_page)
    r.add_post("/admin/calendars/{name}", save_calendar)
    r.add_get("/admin/policies/{name}", policy_page)
    r.add_post("/admin/policies/{name}", save_policy)


def _settings(request: web.Request) -> SlaSettings:
    return request.app[clocks_key].settings


async def sources(request: web.Request) -> dict[tuple[str, str], dict[str, Any]]:
    """(kind, name) -> the version saved from the web that is in force (absent: as in the config file)."""
    return {(r["kind"], r["name"]): r for r in await sla_edits.latest(request.app[engine_key])}


def _calendar_or_404(request: web.Request) -> Calendar:
    cal = _settings(request).calendars.get(request.match_info["name"])
    if cal is None:
        raise web.HTTPNotFound(text=_("There is no such calendar."))
    return cal


def _policy_or_404(request: web.Request) -> Policy:
    try:
        return _settings(request).policy(request.match_info["name"])
    except KeyError:
        raise web.HTTPNotFound(text=_("There is no such policy.")) from None


async def _render(request: web.Request, template: str, context: dict[str, Any], status: int = 200) -> web.Response:
    context.setdefault("csrf", await auth.csrf_token(request))
    context.setdefault("errors", {})
    context.setdefault("preview", None)
    context.setdefault("notice", None)
    return aiohttp_jinja2.render_template(template, request, context, status=status)


async def _calendar_context(request: web.Request, cal: Calendar) -> dict[str, Any]:
    settings = _settings(request)
    using = [p for p in settings.policies if any(t.calendar == cal.name for t in p.targets)]
    default_target = next((t.seconds for p in using for t in p.targets if t.calendar == cal.name), 3600.0)
    return {"cal": cal, "days": list(zip(("mon", "tue", "wed", "thu", "fri", "sat", "sun"), day_names(), strict=True)),
            "using": using, "source": (await sources(request)).get(("calendar", cal.name)),
            "history": await sla_edits.history(request.app[engine_key], "calendar", cal.name),
            "default_target": default_target}


async def calendar_page(request: web.Request) -> web.Response:
    """GET /admin/calendars/{name} (manager): the calendar's hours, zone, holidays and closures, to edit."""
    auth.require(request, "manager")
    cal = _calendar_or_404(request)
    context = await _calendar_context(request, cal)
    context.update(fields=calendar_fields(cal), version=cal.version,
                   notice=_("Saved: version %(v)d is in force.") % {"v": cal.version} if request.query.get("saved") else None)
    return await _render(request, "admin_calendar.html", context)


def _preview_due(form: Any, current: Calendar, edited: Calendar | None, errors: dict[str, str]) -> dict[str, Any] | None:
    """When a message at the preview's time would be due under the version in force and the edited one."""
    at = preview_instant(str(form.get("preview_at", "")), CURRENT.get().zone())
    if at is None:
        errors["preview_at"] = _("Give the message time as a date and a time.")
        return None
    try:
        seconds = parse_duration(str(form.get("preview_target", "1h")), "preview_target")
    except ConfigError:
        seconds = -1.0
    if not 0 < seconds <= MAX_TARGET_S:
        errors["preview_target"] = _("The target is not a duration; write 1h, 90m, 1h30m or 2d.")
        return None
    try:
        started = at.astimezone(UTC)
        return {"at": started, "target_s": seconds, "current": add_business(current, started, seconds),
                "edited": add_business(edited, started, seconds) if edited is not None else None}
    except (OverflowError, ValueError):  # a year 9999 message time: nothing to plan
        errors["preview_at"] = _("Give the message time as a date and a time.")
        return None


async def save_calendar(request: web.Request) -> web.Response:
    """POST /admin/calendars/{name} action=preview|save: check the form; preview a due time, or save a new version."""
    me = auth.require(request, "manager")
    current = _calendar_or_404(request)
    form, app = await request.post(), request.app
    engine = app[engine_key]
    version = await sla_edits.next_calendar_version(engine, current.name, current.version)
    table, errors = calendar_table(form, version)
    edited = None
    if not errors:
        try:
            edited = parse_calendar_table(current.name, table)
        except ConfigError as err:
            field, message = config_error(err)
            errors[field] = message
    context = await _calendar_context(request, current)
    context.update(fields={k: str(v) for k, v in form.items()}, version=current.version, errors=errors)
    if form.get("action") != "save":
        context["preview"] = _preview_due(form, current, edited, errors)
        return await _render(request, "admin_calendar.html", context, 400 if errors else 200)
    if edited is None:
        return await _render(request, "admin_calendar.html", context, 400)
    edited_version = int(str(form.get("version", "0"))) if str(form.get("version", "")).isdigit() else 0
    try:
        await sla_edits.save(engine, "calendar", current.name, table, version=version, edited_version=edited_version,
                             user_id=me["id"], now=app[now_key](), calendar_definition=calendar_to_json(edited))
    except sla_edits.EditConflict:
        context["errors"] = {"form": _("Someone saved this calendar since you opened it; reload the page to see "
                                       "their version (your changes are still in the form).")}
        return await _render(request, "admin_calendar.html", context, 409)
    log.info("calendar %s version %d saved by %s", current.name, version, me["username"])
    await _put_in_force(app)
    raise web.HTTPSeeOther(f"/admin/calendars/{quote(current.name)}?saved=1")


async def _put_in_force(app: web.Application) -> None:
    """The new version takes effect here at once (rebasing running clocks if this process leads) and elsewhere."""
    follower = app.get(sla_edits_key)
    if follower is not None:
        await follower.saved()
    else:
        await escalation.use_edits(app[engine_key], app[clocks_key], app[settings_key].sla)


def _calendar_names(request: web.Request) -> list[str]:
    return sorted(_settings(request).calendars)


async def _policy_context(request: web.Request, policy: Policy) -> dict[str, Any]:
    source = (await sources(request)).get(("policy", policy.name))
    return {"policy": policy, "calendars": _calendar_names(request), "wall_clock": WALL_CLOCK, "kinds": kind_names(),
            "source": source, "version": source["version"] if source else 0,
            "history": await sla_edits.history(request.app[engine_key], "policy", policy.name)}


async def policy_page(request: web.Request) -> web.Response:
    """GET /admin/policies/{name} (manager): the policy's targets, calendar and conditions, to edit."""
    auth.require(request, "manager")
    policy = _policy_or_404(request)
    context = await _policy_context(request, policy)
    context.update(fields=policy_fields(policy),
                   notice=_("Saved: the new targets apply to clocks started from now on.") if request.query.get("saved") else None)
    return await _render(request, "admin_policy.html", context)


def _policy_preview(form: Any, settings: SlaSettings, current: Policy, edited: Policy | None,
                    errors: dict[str, str]) -> dict[str, Any] | None:
    at = preview_instant(str(form.get("preview_at", "")), CURRENT.get().zone())
    if at is None:
        errors["preview_at"] = _("Give the message time as a date and a time.")
        return None

    def due(policy: Policy | None) -> dict[str, datetime]:
        if policy is None:
            return {}
        return {t.kind.value: add_business(settings.calendar_for(t), started, t.seconds) for t in policy.targets}

    try:
        started = at.astimezone(UTC)
        return {"at": started, "current": due(current), "edited": due(edited), "kinds": [k.value for k in CONTRACT],
                "expected": started + timedelta(seconds=settings.customer_expectation_s)}
    except (OverflowError, ValueError):  # a year 9999 message time: nothing to plan
        errors["preview_at"] = _("Give the message time as a date and a time.")
        return None


async def save_policy(request: web.Request) -> web.Response:
    """POST /admin/policies/{name} action=preview|save: check the form; preview the due times, or save a new version."""
    me = auth.require(request, "manager")
    current = _policy_or_404(request)
    form, app = await request.post(), request.app
    settings = _settings(request)
    table, errors = policy_table_from_form(form, current.name, _calendar_names(request))
    edited = None
    if not errors:
        try:
            edited = policy_from_table(table, settings.calendars)
        except ConfigError as err:
            field, message = config_error(err)
            errors[field] = message
    context = await _policy_context(request, current)
    context.update(fields={k: str(v) for k, v in form.items()}, errors=errors)
    if form.get("action") != "save":
        context["preview"] = _policy_preview(form, settings, current, edited, errors)
        return await _render(request, "admin_policy.html", context, 400 if errors else 200)
    if edited is None:
        return await _render(request, "admin_policy.html", context, 400)
    edited_version = int(str(form.get("version", "0"))) if str(form.get("version", "")).isdigit() else 0
    try:
        await sla_edits.save(app[engine_key], "policy", current.name, table, version=context["version"] + 1,
                             edited_version=edited_version, user_id=me["id"], now=app[now_key]())
    except sla_edits.EditConflict:
        context["errors"] = {"form": _("Someone saved this policy since you opened it; reload the page to see "
                                       "their version (your changes are still in the form).")}
        return await _render(request, "admin_policy.html", context, 409)
    log.info("policy %s version %d saved by %s", current.name, context["version"] + 1, me["username"])
    await _put_in_force(app)
    raise web.HTTPSeeOther(f"/admin/policies/{quote(current.name)}?saved=1")
