"""The [alerting] and [[notifiers]] configuration: receivers, routes, timings, silences, inhibition."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from carebox.alerting import (
    BRAND_WIDE_INHIBITS_CLUSTERS,
    SEVERITIES,
    AlertingSettings,
    InhibitRule,
    Matcher,
    ReceiverSettings,
    Route,
    Silence,
    Timing,
    parse_matcher,
)
from carebox.duration import parse_duration
from carebox.errors import ConfigError

# Keys each notifier type requires; secrets are given as the NAME of an environment variable.
KINDS: dict[str, tuple[str, ...]] = {
    "webhook": ("url", "secret_env"),
    "slack": ("webhook_url_env",),
    "pagerduty": ("routing_key_env",),
    "email": ("host", "sender", "recipients"),
}
# Notifier types with an acknowledge event of their own (Events API v2 "acknowledge"); the others are not told.
ACKNOWLEDGING = frozenset({"pagerduty"})
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_TIMING_KEYS = ("group_by", "group_wait", "group_interval", "repeat_interval")
_SECTION_KEYS = {"receivers", "routes", "silences", "inhibit_rules", "inhibit_brand_wide", "retry_initial",
                 "retry_max", *_TIMING_KEYS}


def parse_settings(raw: Mapping[str, Any]) -> AlertingSettings:
    """AlertingSettings from the loaded TOML mapping (`[alerting]` and `[[notifiers]]`); ConfigError if bad."""
    section = _table(raw.get("alerting", {}), "alerting")
    unknown = sorted(set(section) - _SECTION_KEYS)
    if unknown:
        raise ConfigError(f"alerting.{unknown[0]}", f"one of {', '.join(sorted(_SECTION_KEYS))}")
    receivers = _parse_receivers(raw.get("notifiers", []))
    timing = _parse_timing(section, "alerting", Timing())
    default = _names(section.get("receivers", list(receivers)), "alerting.receivers", receivers)
    routes = tuple(
        _parse_route(_table(r, f"alerting.routes[{i}]"), f"alerting.routes[{i}]", receivers, timing)
        for i, r in enumerate(_list(section.get("routes", []), "alerting.routes"))
    )
    rules: tuple[InhibitRule, ...] = ()
    if _bool(section.get("inhibit_brand_wide", True), "alerting.inhibit_brand_wide"):
        rules = (BRAND_WIDE_INHIBITS_CLUSTERS,)
    for i, r in enumerate(_list(section.get("inhibit_rules", []), "alerting.inhibit_rules")):
        key = f"alerting.inhibit_rules[{i}]"
        r = _table(r, key)
        equal = tuple(_strings(r.get("equal", ["account"]), f"{key}.equal"))
        rules += (InhibitRule(_matchers(r.get("source_matchers"), f"{key}.source_matchers"),
                              _matchers(r.get("target_matchers"), f"{key}.target_matchers"), equal),)
    silences = tuple(
        _parse_silence(_table(s, f"alerting.silences[{i}]"), f"alerting.silences[{i}]", i)
        for i, s in enumerate(_list(section.get("silences", []), "alerting.silences"))
    )
    retry_initial = parse_duration(section.get("retry_initial", 30), "alerting.retry_initial")
    retry_max = parse_duration(section.get("retry_max", 300), "alerting.retry_max")
    if retry_initial <= 0 or retry_max < retry_initial:
        raise ConfigError("alerting.retry_max", "a duration at least alerting.retry_initial, which must be > 0")
    return AlertingSettings(receivers, tuple(default), routes, timing, retry_initial, retry_max, rules, silences)


def _parse_receivers(items: object) -> dict[str, ReceiverSettings]:
    out: dict[str, ReceiverSettings] = {}
    for i, item in enumerate(_list(items, "notifiers")):
        key = f"notifiers[{i}]"
        item = _table(item, key)
        name = item.get("name")
        if not isinstance(name, str) or not name.strip() or name in out:
            raise ConfigError(f"{key}.name", "a non-empty name, unique among notifiers")
        kind = item.get("type")
        if kind not in KINDS:
            raise ConfigError(f"{key}.type", f"one of {', '.join(KINDS)}")
        for required in KINDS[kind]:
            if item.get(required) in (None, "", []):
                raise ConfigError(f"{key}.{required}", f"a value (required for type {kind!r})")
        for option, value in item.items():
            if option.endswith("_env") and not (isinstance(value, str) and _ENV_NAME.match(value)):
                raise ConfigError(f"{key}.{option}", "the name of an environment variable, e.g. PD_ROUTING_KEY")
        send_resolved = _bool(item.get("send_resolved", True), f"{key}.send_resolved")
        out[name] = ReceiverSettings(name, kind, dict(item), send_resolved, kind in ACKNOWLEDGING)
    return out


def _parse_timing(table: Mapping[str, Any], key: str, base: Timing) -> Timing:
    group_by = tuple(_strings(table.get("group_by", list(base.group_by)), f"{key}.group_by"))
    if not group_by:
        raise ConfigError(f"{key}.group_by", 'a non-empty list of labels, e.g. ["key"] or ["account"]')
    wait = parse_duration(table.get("group_wait", base.group_wait), f"{key}.group_wait")
    interval = parse_duration(table.get("group_interval", base.group_interval), f"{key}.group_interval")
    repeat = parse_duration(table.get("repeat_interval", base.repeat_interval), f"{key}.repeat_interval")
    if interval <= 0:
        raise ConfigError(f"{key}.group_interval", "a duration greater than zero")
    if repeat < interval:
        raise ConfigError(f"{key}.repeat_interval", "a duration at least group_interval")
    return Timing(group_by, wait, interval, repeat)


def _parse_route(table: Mapping[str, Any], key: str, receivers: Mapping[str, Any], timing: Timing) -> Route:
    names = _names(table.get("receivers"), f"{key}.receivers", receivers)
    if not names:
        raise ConfigError(f"{key}.receivers", "a non-empty list of notifier names")
    severities = _strings(table.get("severities", []), f"{key}.severities")
    if any(s not in SEVERITIES for s in severities):
        raise ConfigError(f"{key}.severities", f"a list of {', '.join(SEVERITIES)}")
    matchers = _matchers(table.get("matchers", []), f"{key}.matchers", allow_empty=True)
    own = _parse_timing(table, key, timing) if any(k in table for k in _TIMING_KEYS) else None
    return Route(tuple(names), frozenset(_strings(table.get("accounts", []), f"{key}.accounts")),
                 frozenset(severities), matchers, _bool(table.get("continue", False), f"{key}.continue"), own)


def _parse_silence(table: Mapping[str, Any], key: str, index: int) -> Silence:
    starts, ends = table.get("starts_at"), table.get("ends_at")
    for name, value in (("starts_at", starts), ("ends_at", ends)):
        if not isinstance(value, datetime) or value.tzinfo is None:
            raise ConfigError(f"{key}.{name}", "a TOML date-time with an offset, e.g. 2026-11-22T22:00:00Z")
    assert isinstance(starts, datetime) and isinstance(ends, datetime)
    if ends <= starts:
        raise ConfigError(f"{key}.ends_at", "a date-time after starts_at")
    comment = table.get("comment", "")
    if not isinstance(comment, str):
        raise ConfigError(f"{key}.comment", "a string")
    silence_id = table.get("id", f"config-{index}")
    matchers = _matchers(table.get("matchers"), f"{key}.matchers")
    return Silence(str(silence_id), matchers, starts, ends, comment, "config")


def _matchers(value: object, key: str, allow_empty: bool = False) -> tuple[Matcher, ...]:
    items = _list(value if value is not None else [], key)
    if not items and not allow_empty:
        raise ConfigError(key, 'a non-empty list of matchers such as ["account=\\"acme\\""]')
    return tuple(parse_matcher(m, f"{key}[{i}]") for i, m in enumerate(items))


def _names(value: object, key: str, receivers: Mapping[str, Any]) -> list[str]:
    names = _strings(value if value is not None else [], key)
    for name in names:
        if name not in receivers:
            raise ConfigError(key, f"names of [[notifiers]] entries ({', '.join(receivers) or 'none defined'}), "
                                   f"not {name!r}")
    return names


def _strings(value: object, key: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(key, "a list of strings")
    return list(value)


def _list(value: object, key: str) -> list[Any]:
    if not isinstance(value, list):
        raise ConfigError(key, "a list (an array of tables)")
    return value


def _table(value: object, key: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(key, "a table")
    return value


def _bool(value: object, key: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(key, "true or false")
    return value
