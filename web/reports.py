"""Manager reports: the report page, drill-down lists, CSV and JSON exports, what-if; managers and admins only."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Mapping
from datetime import date, datetime, time
from typing import Any
from urllib.parse import urlencode

import aiohttp_jinja2
import orjson
from aiohttp import web

from carebox import reports, reports_config
from carebox.errors import ConfigError
from carebox.escalation import settings_with_edits
from carebox.reports_charts import heatmap_svg, trend_svg
from carebox.reports_whatif import compare, configured_scenario, outcome_row, scenarios
from carebox.store import actions, reporting
from web import i18n
from web.auth import csrf_token
from web.display_names import network_name
from web.i18n import gettext as _
from web.keys import engine_key, now_key, settings_key, user_key

ROLES = ("manager", "admin")
SCOPE_PARAMS = ("since", "until", "exclude_incidents")


def _require_manager(request: web.Request) -> None:
    if request[user_key].get("role") not in ROLES:
        raise web.HTTPForbidden(text="reports are for managers and admins")


def _instant(text: str, key: str) -> datetime | None:
    try:
        return reports_config.parse_instant(text or None, key)
    except ConfigError as err:
        raise web.HTTPBadRequest(text=f"{key}: expected {err.expected}") from err


def _report_settings(request: web.Request) -> reports_config.ReportSettings:
    settings = request.app[settings_key]
    return reports_config.parse_settings(settings.raw, settings.sla)


def _scope(request: web.Request, rs: reports_config.ReportSettings, where: Mapping[str, str] | None = None) -> reporting.Scope:
    q = request.query
    exclude = {"1": True, "0": False}.get(q.get("exclude_incidents", ""))
    return reporting.make_scope(rs, request.app[now_key](), since=_instant(q.get("since", ""), "since"),
                                until=_instant(q.get("until", ""), "until"), exclude_incidents=exclude, where=where)


def _by(request: web.Request) -> str:
    by = request.query.get("by", "account")
    if by not in reports.DIMENSIONS:
        raise web.HTTPBadRequest(text=f"by must be one of {', '.join(reports.DIMENSIONS)}")
    return by


def drill_link(request: web.Request) -> Callable[..., str]:
    """A function building /reports/drill URLs that keep the page's period and incident choice."""
    kept = {k: request.query[k] for k in SCOPE_PARAMS if request.query.get(k)}

    def link(metric: str = "all", **filters: Any) -> str:
        params = {**kept, "metric": metric, **{k: v for k, v in filters.items() if v is not None and v != ""}}
        return "/reports/drill?" + urlencode(params)

    return link


@aiohttp_jinja2.template("report.html")
async def report_page(request: web.Request) -> dict[str, Any]:
    """The report: totals, breakdown, per account, trends, heatmap, what-if; every figure links to its drill-down."""
    _require_manager(request)
    rs = _report_settings(request)
    scope, by = _scope(request, rs), _by(request)
    engine = request.app[engine_key]
    report = await reporting.build_report(engine, scope, rs, by=by)
    whatif = await _whatif(request, engine, scope)
    link = drill_link(request)
    return {
        "r": report, "by": by, "dimensions": reports.DIMENSIONS, "q": request.query, "drill": link,
        "trend_svg": trend_svg(report.daily, link=link("answered") + "&day="),
        "week_svg": trend_svg(report.weekly, "Median first response per week", link=link("answered") + "&week="),
        "heatmap_svg": heatmap_svg(report.heatmap, link=link("all") + "&how="),
        "week_numbers": [reports.day_number(p.start) for p in report.weekly],
        "week_labels": [_day(p.start) for p in report.weekly], "dimension_names": _dimension_names(),
        "group_label": group_label,
        "whatif": whatif, "export_qs": urlencode({k: v for k, v in request.query.items() if k in (*SCOPE_PARAMS, "by")}),
        "csrf": await csrf_token(request),
    }


DRILL_TITLES = {"all": "All conversations", "answered": "Answered conversations",
                "unanswered": "Unanswered conversations", "met": "Conversations that met their SLA",
                "breached": "Conversations that breached their SLA",
                "late": "Conversations answered after the customer's expectation",
                "off_hours": "Conversations opened outside service hours", "incident": "Conversations in an incident",
                "resolved": "Resolved conversations"}
DIMENSION_NAMES = {"account": "Account", "network": "Network", "agent": "Agent", "priority": "Priority",
                   "category": "Category", "language": "Language"}


def group_label(key: str, by: str) -> str:
    """A breakdown group as people read it: a network's own name, a category or "(unassigned)" translated."""
    if by == "network":
        return network_name(key)
    return _(key) if by == "category" or key == reporting.UNASSIGNED else key


def _dimension_names() -> dict[str, str]:
    return {d: _(DIMENSION_NAMES.get(d, d)) for d in reports.DIMENSIONS}


def _day(day: date) -> str:
    """A calendar day as the reader writes it ("16 Nov 2026", "16 nov. 2026")."""
    return i18n.local(datetime.combine(day, time(12), i18n.CURRENT.get().zone()), "day")


async def _whatif(request: web.Request, engine: Any, scope: reporting.Scope) -> list[dict[str, Any]]:
    hours, target = request.query.get("what_if_hours", ""), request.query.get("what_if_target", "")
    if not hours and not target:
        return []
    # the calendars and policies as edited on the web, not only as the file says
    actual = configured_scenario(await settings_with_edits(engine, request.app[settings_key].sla))
    if actual is None:
        raise web.HTTPBadRequest(text="what-if needs a policy with a first_response target")
    try:
        wanted = scenarios(actual, hours or None, target or None)
    except ConfigError as err:
        raise web.HTTPBadRequest(text=f"{err.key}: expected {err.expected}") from err
    return [outcome_row(o) for o in compare(await reporting.response_pairs(engine, scope), wanted, scope.now)]


def _int_param(request: web.Request, name: str) -> int | None:
    text = request.query.get(name, "")
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        raise web.HTTPBadRequest(text=f"{name} must be a number") from None


@aiohttp_jinja2.template("report_drill.html")
async def drill(request: web.Request) -> dict[str, Any]:
    """The conversations behind one figure: a group, a day, a week or an hour of the week, and a metric."""
    _require_manager(request)
    rs = _report_settings(request)
    where = {d: request.query[d] for d in reports.DIMENSIONS if d in request.query}
    metric = request.query.get("metric", "all")
    if metric not in reporting.DRILL_METRICS:
        raise web.HTTPBadRequest(text=f"metric must be one of {', '.join(reporting.DRILL_METRICS)}")
    extra = {k: v for k in ("day", "week", "how") if (v := _int_param(request, k)) is not None}
    rows = await reporting.drill(request.app[engine_key], _scope(request, rs, where), rs, metric, extra, rs.drill_limit)
    names = _dimension_names()
    return {"rows": rows, "metric": _(DRILL_TITLES[metric]), "unassigned": reporting.UNASSIGNED, "where": {names[k]: v for k, v in where.items()},
            "extra": extra, "limit": rs.drill_limit,
            "day_label": {k: _day(reports.local_day(v)) for k, v in extra.items() if k in ("day", "week")},
            "csrf": await csrf_token(request)}


async def _audit_export(request: web.Request, kind: str, scope: reporting.Scope, by: str | None = None) -> None:
    """Record who exported what: the format, the period, the breakdown and the incident choice."""
    detail: dict[str, Any] = {
        "since": scope.since.isoformat() if scope.since else None,
        "until": scope.until.isoformat() if scope.until else None,
        "exclude_incidents": scope.exclude_incidents,
    }
    if by is not None:
        detail["by"] = by
    await actions.record_audit(request.app[engine_key], request.app[now_key](), request[user_key]["id"],
                               f"export.{kind}", None, **detail)


async def export_csv(request: web.Request) -> web.StreamResponse:
    """One row per conversation with every clock value, streamed."""
    _require_manager(request)
    rs = _report_settings(request)
    scope = _scope(request, rs)  # a bad date is a 400 before any header is sent
    await _audit_export(request, "report.csv", scope)
    response = web.StreamResponse(headers={"Content-Type": "text/csv; charset=utf-8",
                                           "Content-Disposition": 'attachment; filename="carebox-conversations.csv"'})
    await response.prepare(request)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=reporting.CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    async for row in reporting.conversation_rows(request.app[engine_key], scope, rs):
        writer.writerow({k: v.isoformat() if isinstance(v, datetime) else "" if v is None else v for k, v in row.items()})
        if buffer.tell() > 64 * 1024:
            await response.write(buffer.getvalue().encode())
            buffer.seek(0)
            buffer.truncate()
    await response.write(buffer.getvalue().encode())
    await response.write_eof()
    return response


async def export_json(request: web.Request) -> web.Response:
    """The whole report as JSON (the same document as `carebox report --format json`)."""
    _require_manager(request)
    rs = _report_settings(request)
    scope, by = _scope(request, rs), _by(request)
    await _audit_export(request, "report.json", scope, by)
    report = await reporting.build_report(request.app[engine_key], scope, rs, by=by)
    doc = reports.to_json(report)
    whatif = await _whatif(request, request.app[engine_key], scope)
    if whatif:
        doc["what_if"] = whatif
    return web.Response(body=orjson.dumps(doc, default=str), content_type="application/json")


def setup(app: web.Application) -> None:
    """Add the /reports routes."""
    app.router.add_get("/reports", report_page)
    app.router.add_get("/reports/drill", drill)
    app.router.add_get("/reports/export.csv", export_csv)
    app.router.add_get("/reports/export.json", export_json)
