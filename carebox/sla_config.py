"""Parse `[calendars.*]`, `[[policies]]` and `[sla]` from a loaded TOML document into SlaSettings."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from carebox.calendar import Calendar, parse_calendar
from carebox.duration import parse_duration
from carebox.errors import ConfigError
from carebox.ports import Category, Priority, Status
from carebox.sla_policy import (
    DEFAULT_LADDER,
    EscalationStep,
    Policy,
    ResponseRule,
    SlaSettings,
    Target,
    TargetKind,
    Trigger,
)

WALL_CLOCK = "24/7"  # the calendar name that means "no calendar: every second counts"
DEFAULT_CALENDARS: dict[str, Any] = {
    "service-hours": {"timezone": "Europe/Paris", "hours": {"mon-fri": ["09:00-19:00"]}, "holidays": "FR"},
}
DEFAULT_POLICIES: list[dict[str, Any]] = [
    {"name": "social", "calendar": "service-hours", "first_response": "1h"},
]
_CONTRACT = (TargetKind.FIRST_RESPONSE, TargetKind.NEXT_RESPONSE, TargetKind.RESOLUTION)
_MATCH = {
    "networks": None, "accounts": None, "languages": None, "tags": None,
    "priorities": frozenset(p.value for p in Priority), "categories": frozenset(c.value for c in Category),
}


def parse_settings(doc: Mapping[str, Any], *, read_file: Callable[[str], str] | None = None) -> SlaSettings:
    """SlaSettings from the whole TOML document; defaults when sections are absent; ConfigError on bad keys."""
    raw_calendars = doc.get("calendars", DEFAULT_CALENDARS)
    if not isinstance(raw_calendars, Mapping):
        raise ConfigError("calendars", "tables such as [calendars.service-hours]")
    calendars: dict[str, Calendar] = {}
    for name, table in raw_calendars.items():
        if name == WALL_CLOCK:
            raise ConfigError(f"calendars.{name}", f"another name ({WALL_CLOCK!r} means the wall clock)")
        if not isinstance(table, Mapping):
            raise ConfigError(f"calendars.{name}", "a table")
        calendars[name] = parse_calendar(name, table, read_file=read_file)
    sla = doc.get("sla", {})
    if not isinstance(sla, Mapping):
        raise ConfigError("sla", "a table")
    pausing = _statuses(sla.get("pausing_statuses", ["pending"]), "sla.pausing_statuses")
    raw_policies = doc.get("policies", DEFAULT_POLICIES)
    if not isinstance(raw_policies, list):
        raise ConfigError("policies", "a list of [[policies]] tables")
    policies = tuple(_policy(i, p, calendars, pausing) for i, p in enumerate(raw_policies))
    names = [p.name for p in policies]
    for name in names:
        if names.count(name) > 1:
            raise ConfigError(f"policies.{name}.name", "a name used by one policy only")
    expectation = parse_duration(sla.get("customer_expectation", "1h"), "sla.customer_expectation")
    if expectation <= 0:
        raise ConfigError("sla.customer_expectation", "a positive duration")
    default_rule, rules = _responses(sla.get("responses", {}))
    return SlaSettings(
        calendars=calendars, policies=policies, customer_expectation_s=expectation, response_rules=rules,
        default_response_rule=default_rule, ladder=_ladder(sla.get("escalation")),
    )


def _strings(value: object, key: str, allowed: frozenset[str] | None = None) -> frozenset[str]:
    """A list of strings, optionally from a closed set."""
    expected = "a list of strings" + (f" among {sorted(allowed)}" if allowed else "")
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(key, expected)
    if allowed is not None and not set(value) <= allowed:
        raise ConfigError(key, expected)
    return frozenset(value)


def _statuses(value: object, key: str) -> frozenset[str]:
    """Conversation statuses that pause the clock."""
    return _strings(value, key, frozenset(s.value for s in Status) - {Status.RESOLVED.value})


def _policy(index: int, raw: object, calendars: Mapping[str, Calendar], pausing: frozenset[str]) -> Policy:
    """One `[[policies]]` table."""
    if not isinstance(raw, Mapping) or not isinstance(raw.get("name"), str) or not raw["name"]:
        raise ConfigError(f"policies[{index}].name", "a table with a non-empty name")
    name = raw["name"]
    key = f"policies.{name}"
    known = {"name", "calendar", "warn", "match", "pausing_statuses", *(k.value for k in _CONTRACT)}
    for unknown in set(raw) - known:
        raise ConfigError(f"{key}.{unknown}", "one of " + ", ".join(sorted(known)))
    default_calendar = _calendar_ref(raw.get("calendar", WALL_CLOCK), f"{key}.calendar", calendars)
    targets = []
    for kind in _CONTRACT:
        if kind.value in raw:
            targets.append(_target(kind, raw[kind.value], f"{key}.{kind.value}", default_calendar, raw, calendars))
    match = raw.get("match", {})
    if not isinstance(match, Mapping):
        raise ConfigError(f"{key}.match", "a table such as { networks = [\"x\"], priorities = [\"P1\"] }")
    for unknown in set(match) - set(_MATCH):
        raise ConfigError(f"{key}.match.{unknown}", "one of " + ", ".join(sorted(_MATCH)))
    conditions = {attr: _strings(match.get(attr, []), f"{key}.match.{attr}", ok) for attr, ok in _MATCH.items()}
    statuses = _statuses(raw["pausing_statuses"], f"{key}.pausing_statuses") if "pausing_statuses" in raw else pausing
    return Policy(name=name, targets=tuple(targets), pausing_statuses=statuses, **conditions)


def policy_from_table(raw: Mapping[str, Any], calendars: Mapping[str, Calendar]) -> Policy:
    """One policy from its `[[policies]]` table (as saved from the web); ConfigError naming the bad key."""
    return _policy(0, raw, calendars, frozenset({"pending"}))


def _calendar_ref(value: object, key: str, calendars: Mapping[str, Calendar]) -> str | None:
    """A calendar name from config; None for the wall clock."""
    if value == WALL_CLOCK:
        return None
    if not isinstance(value, str) or value not in calendars:
        raise ConfigError(key, f"{WALL_CLOCK!r} or a calendar defined under [calendars]: {sorted(calendars)}")
    return value


def _target(
    kind: TargetKind, raw: object, key: str, calendar: str | None, policy: Mapping[str, Any],
    calendars: Mapping[str, Calendar],
) -> Target:
    """A target written "1h" or { target = "1h", calendar = "...", warn = "15m" | "20%" }."""
    if isinstance(raw, Mapping):
        for unknown in set(raw) - {"target", "calendar", "warn"}:
            raise ConfigError(f"{key}.{unknown}", "one of calendar, target, warn")
        if "target" not in raw:
            raise ConfigError(f"{key}.target", 'a duration such as "1h"')
        seconds = parse_duration(raw["target"], f"{key}.target")
        if "calendar" in raw:
            calendar = _calendar_ref(raw["calendar"], f"{key}.calendar", calendars)
        warn = raw.get("warn", policy.get("warn", "20%"))
    else:
        seconds = parse_duration(raw, key)
        warn = policy.get("warn", "20%")
    if seconds <= 0:
        raise ConfigError(key, "a positive duration")
    lead_s, lead_pct = _warn(warn, f"{key}.warn" if isinstance(raw, Mapping) else f"{key.rsplit('.', 1)[0]}.warn")
    return Target(kind, seconds, calendar, lead_s, lead_pct)


def _warn(value: object, key: str) -> tuple[float | None, float | None]:
    """A warning lead: a duration before the due time, a percentage of the target, or false for none."""
    if value is False:
        return None, None
    if isinstance(value, str) and value.strip().endswith("%"):
        try:
            pct = float(value.strip()[:-1])
        except ValueError as err:
            raise ConfigError(key, 'a duration such as "15m", a percentage such as "20%", or false') from err
        if not 0 < pct < 100:
            raise ConfigError(key, "a percentage between 0 and 100, exclusive")
        return None, pct
    return parse_duration(value, key), None


def _responses(raw: object) -> tuple[ResponseRule, dict[str, ResponseRule]]:
    """`[sla.responses.<network>]` tables; `default` applies to networks without their own."""
    if not isinstance(raw, Mapping):
        raise ConfigError("sla.responses", "tables such as [sla.responses.x]")
    rules: dict[str, ResponseRule] = {}
    for network, table in raw.items():
        key = f"sla.responses.{network}"
        if not isinstance(table, Mapping):
            raise ConfigError(key, "a table")
        flags = {}
        for flag in ("public_reply_counts", "private_reply_fulfils_first_response"):
            value = table.get(flag, getattr(ResponseRule(), flag))
            if not isinstance(value, bool):
                raise ConfigError(f"{key}.{flag}", "true or false")
            flags[flag] = value
        for unknown in set(table) - set(flags):
            raise ConfigError(f"{key}.{unknown}", "public_reply_counts or private_reply_fulfils_first_response")
        rules[network] = ResponseRule(**flags)
    return rules.pop("default", ResponseRule()), rules


def _ladder(raw: object) -> tuple[EscalationStep, ...]:
    """`[[sla.escalation]]` steps: trigger (warning|breach), notify (who), after (duration)."""
    if raw is None:
        return DEFAULT_LADDER
    if not isinstance(raw, list):
        raise ConfigError("sla.escalation", "a list of [[sla.escalation]] tables")
    steps = []
    for i, step in enumerate(raw):
        key = f"sla.escalation[{i}]"
        if not isinstance(step, Mapping):
            raise ConfigError(key, "a table with trigger, notify and after")
        if step.get("trigger") not in ("warning", "breach"):
            raise ConfigError(f"{key}.trigger", '"warning" or "breach"')
        if not isinstance(step.get("notify"), str) or not step["notify"]:
            raise ConfigError(f"{key}.notify", 'who to notify, such as "assignee", "team_lead" or "manager"')
        after = parse_duration(step.get("after", 0), f"{key}.after")
        steps.append(EscalationStep(Trigger(step["trigger"]), step["notify"], after))
    return tuple(steps)
