"""Report settings: parse `[reports]` (pure) and the instants given on the command line or in a URL."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from carebox.calendar import ALWAYS_OPEN, Calendar
from carebox.duration import parse_duration
from carebox.errors import ConfigError
from carebox.sla import SlaSettings, TargetKind


def parse_instant(text: str | None, key: str) -> datetime | None:
    """An aware datetime from ISO 8601 text; a date alone means its midnight UTC."""
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError as err:
        raise ConfigError(key, "an ISO 8601 date or instant, e.g. 2026-11-01 or 2026-11-01T00:00:00+01:00") from err
    if value.tzinfo is None:
        if len(text) > 10:
            raise ConfigError(key, "an instant with its UTC offset, e.g. 2026-11-01T00:00:00+01:00")
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


# --- settings ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReportSettings:
    """How reports are computed: customer expectation, the calendar for local time, digest schedule."""

    customer_expectation_s: float = 3600.0
    calendar: Calendar = ALWAYS_OPEN
    contract_policies: frozenset[str] = frozenset()
    exclude_incidents: bool = False
    drill_limit: int = 200
    digest_period: str = "weekly"
    digest_at: str = "08:00"
    digest_recipients: tuple[str, ...] = ()
    digest_notifier: str = ""  # the e-mail [[notifiers]] entry whose SMTP settings send the digest
    facts_refresh_s: float = 300.0  # how often the scheduler leader refreshes the report facts (0: only at report time)


def parse_settings(doc: Mapping[str, Any], sla: SlaSettings) -> ReportSettings:
    """ReportSettings from the whole TOML document ([reports]) and the parsed SLA settings."""
    table = doc.get("reports", {})
    if not isinstance(table, Mapping):
        raise ConfigError("reports", "a table ([reports])")
    known = {"customer_expectation", "calendar", "exclude_incidents", "drill_limit", "digest", "facts_refresh"}
    for unknown in set(table) - known:
        raise ConfigError(f"reports.{unknown}", "one of " + ", ".join(sorted(known)))
    expectation = sla.customer_expectation_s
    if "customer_expectation" in table:
        expectation = parse_duration(table["customer_expectation"], "reports.customer_expectation")
        if expectation <= 0:
            raise ConfigError("reports.customer_expectation", "a positive duration")
    cal_name = table.get("calendar", "")
    if not isinstance(cal_name, str):
        raise ConfigError("reports.calendar", "the name of a [calendars.*] table")
    calendar = _report_calendar(cal_name, sla)
    exclude = table.get("exclude_incidents", False)
    if not isinstance(exclude, bool):
        raise ConfigError("reports.exclude_incidents", "true or false")
    limit = table.get("drill_limit", 200)
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= 10_000:
        raise ConfigError("reports.drill_limit", "an integer from 1 to 10000")
    period, at, recipients = _digest(table.get("digest", {}))
    notifier = _digest_notifier(table.get("digest", {}), doc.get("notifiers", []), bool(recipients) and period != "off")
    contract = frozenset(p.name for p in sla.policies if p.target(TargetKind.FIRST_RESPONSE) is not None)
    refresh = _facts_refresh(table.get("facts_refresh", "5m"))
    return ReportSettings(expectation, calendar, contract, exclude, limit, period, at, recipients, notifier, refresh)


def _facts_refresh(raw: object) -> float:
    """Seconds between scheduled refreshes of the report facts; "off" (or "0s") leaves them to report time."""
    if raw == "off":
        return 0.0
    try:
        seconds = parse_duration(raw, "reports.facts_refresh")
    except ConfigError as err:
        raise ConfigError("reports.facts_refresh", 'a duration such as "5m", or "off"') from err
    if seconds < 0 or 0 < seconds < 10:
        raise ConfigError("reports.facts_refresh", 'a duration of at least 10s, or "off"')
    return seconds


def _digest_notifier(raw: Mapping[str, Any], notifiers: object, needed: bool) -> str:
    """The e-mail notifier that sends the digest: the one named, else the first e-mail notifier."""
    emails = [n["name"] for n in notifiers if isinstance(n, Mapping) and n.get("type") == "email"
              and isinstance(n.get("name"), str)] if isinstance(notifiers, list) else []
    name = raw.get("notifier", "")
    if name:
        if name not in emails:
            raise ConfigError("reports.digest.notifier", f"the name of an e-mail [[notifiers]] entry "
                                                         f"({', '.join(emails) or 'none configured'})")
        return str(name)
    if needed and not emails:
        raise ConfigError("reports.digest.notifier", "an e-mail [[notifiers]] entry (type = \"email\") whose SMTP "
                                                     "settings send the digest")
    return emails[0] if emails else ""


def _report_calendar(name: str, sla: SlaSettings) -> Calendar:
    if name:
        if name == "24/7":
            return ALWAYS_OPEN
        if name not in sla.calendars:
            raise ConfigError("reports.calendar", f"one of {', '.join(sorted(sla.calendars)) or '(no calendars)'}")
        return sla.calendars[name]
    for policy in sla.policies:  # default: the calendar of the first contract policy
        target = policy.target(TargetKind.FIRST_RESPONSE)
        if target is not None:
            return sla.calendar_for(target)
    return next(iter(sla.calendars.values()), ALWAYS_OPEN)


def _digest(raw: object) -> tuple[str, str, tuple[str, ...]]:
    if not isinstance(raw, Mapping):
        raise ConfigError("reports.digest", "a table ([reports.digest])")
    for unknown in set(raw) - {"period", "at", "recipients", "notifier"}:
        raise ConfigError(f"reports.digest.{unknown}", "one of at, notifier, period, recipients")
    period = raw.get("period", "weekly")
    if period not in ("daily", "weekly", "off"):
        raise ConfigError("reports.digest.period", '"daily", "weekly" or "off"')
    at = raw.get("at", "08:00")
    if not isinstance(at, str) or len(at) != 5 or at[2] != ":" or not (at[:2] + at[3:]).isdigit() \
            or int(at[:2]) > 23 or int(at[3:]) > 59:
        raise ConfigError("reports.digest.at", 'a local time "HH:MM"')
    recipients = raw.get("recipients", [])
    if not isinstance(recipients, list) or not all(isinstance(r, str) and "@" in r for r in recipients):
        raise ConfigError("reports.digest.recipients", 'a list of e-mail addresses, e.g. ["lead@example.com"]')
    return period, at, tuple(recipients)
