"""Alerts and the rules the router applies to them: label matchers, silences, inhibit rules, routes, timings,
and the settings that hold them. Pure data; `carebox.alerting` routes, groups and delivers.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from carebox.errors import ConfigError

SEVERITIES = ("critical", "error", "warning", "info")  # most severe first; PagerDuty's names
FIRING = "firing"
RESOLVED = "resolved"
_OPS = ("=~", "!~", "!=", "=")
_MATCHER = re.compile(r'^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*(?:"(.*)"|(.*?))\s*$')


@dataclass(frozen=True, slots=True)
class Alert:
    """An incident or SLA escalation as the router sees it; `cluster` is None for a brand-wide incident."""

    key: str
    account: str
    title: str
    severity: str = "warning"
    status: str = FIRING
    cluster: str | None = None
    body: str = ""
    url: str | None = None
    escalation: int = 0
    labels: Mapping[str, str] = field(default_factory=dict)
    details: Mapping[str, Any] = field(default_factory=dict)
    acknowledged: bool = False  # by a person: receivers that know acknowledgements are told once

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise ValueError(f"severity {self.severity!r} is not one of {', '.join(SEVERITIES)}")
        if self.status not in (FIRING, RESOLVED):
            raise ValueError(f"status {self.status!r} is not {FIRING!r} or {RESOLVED!r}")

    def label_set(self) -> dict[str, str]:
        """The labels matchers see: extra labels plus key, account, severity, cluster ("" = brand-wide)."""
        return {
            **self.labels,
            "key": self.key,
            "account": self.account,
            "severity": self.severity,
            "cluster": self.cluster or "",
        }


@dataclass(frozen=True, slots=True)
class Matcher:
    """One label condition: `=`, `!=`, `=~` (regex, whole value) or `!~`."""

    label: str
    op: str
    value: str

    def matches(self, labels: Mapping[str, str]) -> bool:
        """True when the labels satisfy this condition (a missing label reads as "")."""
        actual = labels.get(self.label, "")
        if self.op == "=":
            return actual == self.value
        if self.op == "!=":
            return actual != self.value
        hit = re.fullmatch(self.value, actual) is not None
        return hit if self.op == "=~" else not hit


def parse_matcher(text: object, key: str) -> Matcher:
    """A Matcher from `label="value"`, `label!=v`, `label=~"re"` or `label!~"re"`."""
    expected = 'a matcher such as account="acme", cluster!="", severity=~"critical|error"'
    match = _MATCHER.match(text) if isinstance(text, str) else None
    if match is None:
        raise ConfigError(key, expected)
    label, op = match.group(1), match.group(2)
    value = match.group(3) if match.group(3) is not None else match.group(4)
    if op in ("=~", "!~"):
        try:
            re.compile(value)
        except re.error as err:
            raise ConfigError(key, f"a valid regular expression ({err})") from err
    return Matcher(label, op, value)


@dataclass(frozen=True, slots=True)
class Silence:
    """Mutes firing alerts matching every matcher between `starts_at` (inclusive) and `ends_at`."""

    id: str
    matchers: tuple[Matcher, ...]
    starts_at: datetime
    ends_at: datetime
    comment: str = ""
    created_by: str = ""

    def mutes(self, labels: Mapping[str, str], now: datetime) -> bool:
        """True when this silence is active at `now` and matches the labels."""
        return self.starts_at <= now < self.ends_at and all(m.matches(labels) for m in self.matchers)


@dataclass(frozen=True, slots=True)
class InhibitRule:
    """A firing alert matching `source` mutes alerts matching `target` that share the `equal` labels."""

    source: tuple[Matcher, ...]
    target: tuple[Matcher, ...]
    equal: tuple[str, ...] = ("account",)


# A brand-wide incident (no cluster) mutes the cluster incidents of the same account.
BRAND_WIDE_INHIBITS_CLUSTERS = InhibitRule(
    source=(Matcher("cluster", "=", ""),), target=(Matcher("cluster", "!=", ""),), equal=("account",)
)


@dataclass(frozen=True, slots=True)
class Timing:
    """How a route groups: the labels, and the waits in seconds."""

    group_by: tuple[str, ...] = ("key",)
    group_wait: float = 30.0
    group_interval: float = 300.0
    repeat_interval: float = 4 * 3600.0


@dataclass(frozen=True, slots=True)
class Route:
    """Sends matching alerts to `receivers`; empty `accounts`/`severities` match any; first match wins."""

    receivers: tuple[str, ...]
    accounts: frozenset[str] = frozenset()
    severities: frozenset[str] = frozenset()
    matchers: tuple[Matcher, ...] = ()
    continue_: bool = False
    timing: Timing | None = None

    def matches(self, alert: Alert) -> bool:
        """True when the alert's account, severity and labels fit this route."""
        if self.accounts and alert.account not in self.accounts:
            return False
        if self.severities and alert.severity not in self.severities:
            return False
        labels = alert.label_set()
        return all(m.matches(labels) for m in self.matchers)


@dataclass(frozen=True, slots=True)
class ReceiverSettings:
    """One `[[notifiers]]` entry: its name, type and raw options (secrets as env-var names)."""

    name: str
    kind: str
    options: Mapping[str, Any]
    send_resolved: bool = True
    send_acknowledged: bool = False  # the receiver has an acknowledge event (PagerDuty's Events API v2)


@dataclass(frozen=True, slots=True)
class AlertingSettings:
    """The parsed `[alerting]` section and `[[notifiers]]` list."""

    receivers: Mapping[str, ReceiverSettings]
    default_receivers: tuple[str, ...]
    routes: tuple[Route, ...] = ()
    timing: Timing = Timing()
    retry_initial: float = 30.0
    retry_max: float = 300.0
    inhibit_rules: tuple[InhibitRule, ...] = (BRAND_WIDE_INHIBITS_CLUSTERS,)
    silences: tuple[Silence, ...] = ()
