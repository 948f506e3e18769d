"""The calendar and policy edit forms: fields from the settings in force, config tables from a posted form,
with every mistake reported on its field in the reader's language."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date, datetime
from itertools import pairwise
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from carebox.calendar import DAY_S, DAYS, Calendar, Window
from carebox.duration import parse_duration
from carebox.errors import ConfigError
from carebox.ports import Category, Priority, Status
from carebox.sla_config import WALL_CLOCK
from carebox.sla_policy import Policy
from carebox.sla_tables import CONTRACT, MATCH_FIELDS, clock_text, policy_table
from web.i18n import gettext as _

MAX_TARGET_S = 366 * 86400  # a contract target beyond a year is a typing mistake, and would overflow planning
_WINDOW = re.compile(r"^(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})(\s*\+1)?$")
_SPLIT = re.compile(r"[,;\s]+")


def day_names() -> list[str]:
    """Monday..Sunday in the reader's language."""
    return [_("Monday"), _("Tuesday"), _("Wednesday"), _("Thursday"), _("Friday"), _("Saturday"), _("Sunday")]


def kind_names() -> dict[str, str]:
    """The targets' names in the reader's language."""
    return {"first_response": _("First response"), "next_response": _("Next response"), "resolution": _("Resolution")}


def _window_field(window: Window) -> str:
    start, end = window
    return f"{clock_text(start)}-{clock_text(end - DAY_S)}+1" if end > DAY_S else f"{clock_text(start)}-{clock_text(end)}"


def calendar_fields(cal: Calendar) -> dict[str, str]:
    """The form's fields for a calendar ("+1" marks a window that ends after midnight)."""
    holidays = (cal.holiday_country or "") + (f"-{cal.holiday_subdivision}" if cal.holiday_subdivision else "")
    fields = {"timezone": cal.timezone, "holidays": holidays, "always_open": "1" if cal.always_open else "",
              "closed": "\n".join(sorted(d.isoformat() for d in cal.closed_dates)),
              "partial": "\n".join(f"{d.isoformat()} " + (", ".join(_window_field(w) for w in ws) or "closed")
                                   for d, ws in sorted(cal.partial_days.items()))}
    for d, day in enumerate(DAYS):
        fields[day] = ", ".join(_window_field(w) for w in cal.weekly[d])
    return fields


def _windows(text: str, label: str, errors: dict[str, str], field: str) -> list[str]:
    """Config windows from "09:00-12:00, 14:00-18:00" (an end marked +1 runs past midnight)."""
    out, spans = [], []
    for item in (p for p in re.split(r"\s*,\s*", text.strip()) if p):
        m = _WINDOW.match(item)
        if not m:
            errors[field] = _("%(field)s: write opening hours as 09:00-12:00, separated by commas (not “%(value)s”).") % {
                "field": label, "value": item}
            return []
        h1, m1, h2, m2 = (int(g) for g in m.groups()[:4])
        start, end = h1 * 3600 + m1 * 60, h2 * 3600 + m2 * 60
        if h1 > 23 or m1 > 59 or m2 > 59 or end > DAY_S:
            errors[field] = _("%(field)s: “%(value)s” is not a time of day.") % {"field": label, "value": item}
            return []
        if m.group(5) and end > start:
            errors[field] = _("%(field)s: %(value)s would last more than a day.") % {"field": label, "value": item}
            return []
        if m.group(5):
            end += DAY_S
        elif end <= start:
            errors[field] = _("%(field)s: %(value)s ends before it starts (to run past midnight, write the end as 06:00+1).") % {
                "field": label, "value": item}
            return []
        spans.append((start, end))
        out.append(f"{clock_text(start)}-{clock_text(end % DAY_S if end > DAY_S else end)}")
    spans.sort()
    for (_s1, e1), (s2, _e2) in pairwise(spans):
        if s2 < e1:
            errors[field] = _("%(field)s: these opening hours overlap.") % {"field": label}
            return []
    return out


def _date(text: str) -> date | None:
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


def calendar_table(form: Mapping[str, Any], version: int) -> tuple[dict[str, Any], dict[str, str]]:
    """The `[calendars.<name>]` table a posted form describes, and the errors by field (empty when valid)."""
    errors: dict[str, str] = {}
    zone = str(form.get("timezone", "")).strip()
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        errors["timezone"] = _("Unknown time zone “%(zone)s”: use an IANA name such as Europe/Paris.") % {"zone": zone}
    if form.get("always_open"):
        return {"timezone": zone, "always_open": True, "version": version}, errors
    hours = {}
    for day, label in zip(DAYS, day_names(), strict=True):
        windows = _windows(str(form.get(day, "")), label, errors, day)
        if windows:
            hours[day] = windows
    if not hours and not any(day in errors for day in DAYS):
        errors["mon"] = _("Give at least one opening window, or tick “open 24/7”.")
    closed = []
    for item in (p for p in _SPLIT.split(str(form.get("closed", ""))) if p):
        if _date(item) is None:
            errors["closed"] = _("Closed dates: “%(value)s” is not a date like 2026-12-26.") % {"value": item}
        closed.append(item)
    partial: dict[str, list[str]] = {}
    for line in (p.strip() for p in str(form.get("partial", "")).splitlines() if p.strip()):
        day_text, _sp, rest = line.partition(" ")
        if _date(day_text) is None:
            errors["partial"] = _("Partial days: start each line with a date like 2026-12-24 (not “%(value)s”).") % {
                "value": day_text}
            continue
        rest = rest.strip()
        partial[day_text] = [] if rest.lower() in ("", "closed", "fermé") else _windows(
            rest, _("Partial day %(date)s") % {"date": day_text}, errors, "partial")
    table = {"timezone": zone, "hours": hours, "holidays": str(form.get("holidays", "")).strip(), "closed": closed,
             "partial": partial, "version": version}
    return table, errors


def config_error(err: ConfigError) -> tuple[str, str]:
    """(field, message) for an error the config parser found in a table the form built."""
    parts = err.key.split(".")
    field = parts[2] if len(parts) > 2 else ""
    if field == "holidays":
        return field, _("Holidays: use a country code known to the holidays package, such as FR or US-NY.")
    if field == "hours":
        return "mon", _("Opening hours overlap across midnight (check the windows ending with +1).")
    if field == "timezone":
        return field, _("Unknown time zone: use an IANA name such as Europe/Paris.")
    return field or "form", _("%(key)s: expected %(expected)s") % {"key": err.key, "expected": err.expected}


def policy_fields(policy: Policy) -> dict[str, str]:
    """The form's fields for a policy."""
    table = policy_table(policy)
    fields = {"calendar": table["calendar"]}
    for kind in CONTRACT:
        target = table.get(kind.value)
        fields[f"{kind.value}_target"] = target["target"] if target else ""
        fields[f"{kind.value}_calendar"] = target["calendar"] if target else ""
        fields[f"{kind.value}_warn"] = (target["warn"] or "none") if target else "20%"
    for attr in MATCH_FIELDS:
        fields[f"match_{attr}"] = ", ".join(table["match"][attr])
    for status in table["pausing_statuses"]:
        fields[f"pausing_{status}"] = "1"
    return fields


_ALLOWED = {"priorities": {p.value for p in Priority}, "categories": {c.value for c in Category}}


def _warn(text: str, label: str, errors: dict[str, str], field: str) -> str | bool:
    text = text.strip()
    if text.lower() in ("none", "aucun", "false", "0"):
        return False
    if text.endswith("%"):
        try:
            pct = float(text[:-1])
        except ValueError:
            pct = -1.0
        if not 0 < pct < 100:
            errors[field] = _("%(field)s: a warning percentage is between 0 and 100 (not “%(value)s”).") % {
                "field": label, "value": text}
        return text
    try:
        parse_duration(text, field)
    except ConfigError:
        errors[field] = _("%(field)s: “%(value)s” is not a duration; write 15m, 20%% or none.") % {"field": label, "value": text}
    return text


def policy_table_from_form(form: Mapping[str, Any], name: str, calendars: list[str]) -> tuple[dict[str, Any], dict[str, str]]:
    """The `[[policies]]` table a posted form describes, and the errors by field (empty when valid)."""
    errors: dict[str, str] = {}
    choices = [*calendars, WALL_CLOCK]
    calendar = str(form.get("calendar", WALL_CLOCK))
    if calendar not in choices:
        errors["calendar"] = _("Choose one of the calendars.")
    table: dict[str, Any] = {"name": name, "calendar": calendar}
    for kind in CONTRACT:
        label = kind_names()[kind.value]
        text = str(form.get(f"{kind.value}_target", "")).strip()
        if not text:
            continue
        field = f"{kind.value}_target"
        try:
            seconds = parse_duration(text, field)
        except ConfigError:
            errors[field] = _("%(field)s: “%(value)s” is not a duration; write 1h, 90m, 1h30m or 2d.") % {
                "field": label, "value": text}
            continue
        if seconds <= 0:
            errors[field] = _("%(field)s: the target must be longer than zero.") % {"field": label}
        elif seconds > MAX_TARGET_S:
            errors[field] = _("%(field)s: a target of more than a year cannot be planned.") % {"field": label}
        own = str(form.get(f"{kind.value}_calendar", "")).strip() or calendar
        if own not in choices:
            errors[f"{kind.value}_calendar"] = _("Choose one of the calendars.")
        warn = _warn(str(form.get(f"{kind.value}_warn", "20%")) or "20%", label, errors, f"{kind.value}_warn")
        table[kind.value] = {"target": text, "calendar": own, "warn": warn}
    match = {}
    for attr in MATCH_FIELDS:
        values = sorted({v for v in _SPLIT.split(str(form.get(f"match_{attr}", ""))) if v})
        allowed = _ALLOWED.get(attr)
        if allowed and not set(values) <= allowed:
            errors[f"match_{attr}"] = _("Use only: %(allowed)s.") % {"allowed": ", ".join(sorted(allowed))}
        match[attr] = values
    table["match"] = match
    table["pausing_statuses"] = sorted(s.value for s in Status if s != Status.RESOLVED and form.get(f"pausing_{s.value}"))
    return table, errors


def preview_instant(text: str, zone: ZoneInfo) -> datetime | None:
    """The preview's message time, read in the reader's zone; None when it is not a date and time."""
    try:
        local = datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    return local if local.tzinfo else local.replace(tzinfo=zone)
