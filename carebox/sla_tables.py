"""Calendars and policies as config tables, and settings with the tables saved from the web applied.

A web edit is stored as the table a manager would have written in the config file; it goes through
the same parser as the file (`parse_calendar`, the policy parser), so the two cannot disagree.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from carebox.calendar import DAY_S, DAYS, Calendar, Window, parse_calendar
from carebox.errors import ConfigError
from carebox.sla_config import WALL_CLOCK, policy_from_table
from carebox.sla_policy import Policy, SlaSettings, Target, TargetKind

CONTRACT = (TargetKind.FIRST_RESPONSE, TargetKind.NEXT_RESPONSE, TargetKind.RESOLUTION)
MATCH_FIELDS = ("networks", "accounts", "priorities", "categories", "languages", "tags")


def clock_text(seconds: int) -> str:
    """ "HH:MM" of local seconds after midnight (24:00 for the end of the day)."""
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}"


def window_text(window: Window) -> str:
    """A window as the config writes it: "09:00-19:00", "22:00-06:00" when it crosses midnight."""
    start, end = window
    return f"{clock_text(start)}-{clock_text(end if end <= DAY_S else end - DAY_S)}"


def duration_text(seconds: float) -> str:
    """A duration that `parse_duration` reads back exactly: "1h", "1h30m", "2d", "45s"."""
    s, out = int(seconds), ""
    if s != seconds or s == 0:
        return f"{seconds:g}s"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if s >= size:
            out += f"{s // size}{unit}"
            s %= size
    return out


def calendar_table(cal: Calendar) -> dict[str, Any]:
    """The `[calendars.<name>]` table that parses back to `cal` (iCal closures are written out as dates)."""
    if cal.always_open:
        return {"timezone": cal.timezone, "always_open": True, "version": cal.version}
    holidays = cal.holiday_country or ""
    if cal.holiday_country and cal.holiday_subdivision:
        holidays += f"-{cal.holiday_subdivision}"
    return {
        "timezone": cal.timezone,
        "hours": {DAYS[d]: [window_text(w) for w in cal.weekly[d]] for d in range(7) if cal.weekly[d]},
        "holidays": holidays,
        "closed": sorted(d.isoformat() for d in cal.closed_dates),
        "partial": {d.isoformat(): [window_text(w) for w in ws] for d, ws in sorted(cal.partial_days.items())},
        "version": cal.version,
    }


def _target_table(target: Target) -> dict[str, Any]:
    warn: str | bool = False
    if target.warn_lead_pct is not None:
        warn = f"{target.warn_lead_pct:g}%"
    elif target.warn_lead_s is not None:
        warn = duration_text(target.warn_lead_s)
    return {"target": duration_text(target.seconds), "calendar": target.calendar or WALL_CLOCK, "warn": warn}


def policy_table(policy: Policy) -> dict[str, Any]:
    """The `[[policies]]` table that parses back to `policy` (every target written out in full)."""
    table: dict[str, Any] = {"name": policy.name}
    calendars = {t.calendar for t in policy.targets}
    table["calendar"] = (calendars.pop() or WALL_CLOCK) if len(calendars) == 1 else WALL_CLOCK
    for target in policy.targets:
        table[target.kind.value] = _target_table(target)
    table["match"] = {attr: sorted(getattr(policy, attr)) for attr in MATCH_FIELDS}
    table["pausing_statuses"] = sorted(policy.pausing_statuses)
    return table


def parse_calendar_table(name: str, table: Mapping[str, Any]) -> Calendar:
    """A calendar from a table saved on the web; ConfigError naming the bad key (no file is ever read)."""
    if "ical" in table:
        raise ConfigError(f"calendars.{name}.ical", "no ical key in a calendar edited on the web")
    return parse_calendar(name, table)


def with_edits(
    base: SlaSettings, calendars: Mapping[str, Mapping[str, Any]], policies: Mapping[str, Mapping[str, Any]]
) -> SlaSettings:
    """`base` with the saved tables in place of the configured calendars and policies of the same name.
    Edited policies keep their place in the order (first match wins); unknown names are appended."""
    cals = dict(base.calendars)
    for name, table in calendars.items():
        cals[name] = parse_calendar_table(name, table)
    known = {p.name for p in base.policies}
    edited = {name: policy_from_table(table, cals) for name, table in policies.items()}
    ordered = tuple(edited.get(p.name, p) for p in base.policies)
    ordered += tuple(p for name, p in edited.items() if name not in known)
    for policy in ordered:
        for target in policy.targets:
            if target.calendar is not None and target.calendar not in cals:
                raise ConfigError(f"policies.{policy.name}.calendar", f"{WALL_CLOCK!r} or one of {sorted(cals)}")
    return replace(base, calendars=cals, policies=ordered)
