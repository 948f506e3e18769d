"""Alert routing, grouping, silences and inhibition in the manner of Prometheus Alertmanager.

Pure: `Router.submit(alert, now)` feeds it, `Router.due(now)` says which receiver gets which
Notification now, `Router.delivered(delivery, ok, now, error)` records the outcome (and schedules a
retry with backoff). Every attempt is kept in `Router.log`; `parse_settings` reads the config.
The alerts, matchers, silences, routes and settings it works with live in `carebox.alerting_rules`.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from carebox.alerting_rules import (
    BRAND_WIDE_INHIBITS_CLUSTERS,
    FIRING,
    RESOLVED,
    SEVERITIES,
    Alert,
    AlertingSettings,
    InhibitRule,
    Matcher,
    ReceiverSettings,
    Route,
    Silence,
    Timing,
    parse_matcher,
)
from carebox.errors import AuthenticationFailed, RateLimited, ReplyRejected
from carebox.ports import Notification

__all__ = [  # the rules are re-exported: callers import them from here
    "BRAND_WIDE_INHIBITS_CLUSTERS", "FIRING", "LOST_AFTER_S", "RESOLVED", "SEVERITIES", "Alert", "AlertingSettings",
    "Attempt", "Delivery", "InhibitRule", "Matcher", "ReceiverSettings", "Route", "Router", "Silence", "Timing",
    "build_notification", "group_key", "parse_matcher", "parse_settings",
]

log = logging.getLogger(__name__)

LOST_AFTER_S = 600.0  # a delivery never reported back is counted as failed after this long


@dataclass(frozen=True, slots=True)
class Delivery:
    """One notification for one receiver, to be sent now and reported back with `Router.delivered`."""

    id: int
    receiver: str
    group: str
    notification: Notification
    attempt: int
    alert_keys: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Attempt:
    """A delivery-log line: when, to whom, what, and how it went ("ok", "failed", "rejected")."""

    at: datetime
    receiver: str
    key: str
    action: str
    attempt: int
    outcome: str
    alert_keys: tuple[str, ...]
    error: str = ""


@dataclass(slots=True)
class _Group:
    """Mutable state of one (receiver, group) pair; never leaves this module."""

    id: str
    receiver: str
    key: str
    timing: Timing
    send_resolved: bool
    next_flush: datetime
    send_acknowledged: bool = False
    acked: frozenset[str] = frozenset()
    alerts: dict[str, Alert] = field(default_factory=dict)
    sent_firing: frozenset[tuple[str, str, int]] = frozenset()
    notified: set[str] = field(default_factory=set)
    last_sent: datetime | None = None
    inflight: Delivery | None = None
    inflight_at: datetime | None = None
    pending: tuple[frozenset[tuple[str, str, int]], frozenset[str], frozenset[str]] = (
        frozenset(), frozenset(), frozenset())
    failures: int = 0
    retry_at: datetime | None = None


def _rank(severity: str) -> int:
    return SEVERITIES.index(severity)


def group_key(alert: Alert, group_by: tuple[str, ...]) -> str:
    """The notification key of the group an alert joins: the alert key itself when grouped by key."""
    if "key" in group_by:
        return alert.key
    labels = alert.label_set()
    return "group:" + ",".join(f"{name}={labels.get(name, '')}" for name in group_by)


def build_notification(group_key_: str, firing: list[Alert], resolved: list[Alert]) -> Notification:
    """The one Notification telling a receiver about a group's firing and newly resolved alerts."""
    alerts = sorted(firing, key=lambda a: (_rank(a.severity), a.key)) + sorted(resolved, key=lambda a: a.key)
    lead = alerts[0]
    if len(alerts) == 1:
        title, body, details = lead.title, lead.body, dict(lead.details)
    else:
        title = f"{len(firing)} firing, {len(resolved)} resolved: {lead.title}"
        body = "\n".join(f"[{a.severity.upper() if a.status == FIRING else 'RESOLVED'}] {a.title}" for a in alerts)
        details = {}
    details["account"] = lead.account
    if lead.cluster:
        details["cluster"] = lead.cluster
    if any(a.escalation for a in alerts):
        details["escalation"] = max(a.escalation for a in alerts)
    if len(alerts) > 1:
        details.update(group=group_key_, firing=[a.key for a in alerts if a.status == FIRING],
                       resolved=[a.key for a in alerts if a.status == RESOLVED])
    return Notification(
        key=group_key_,
        title=title,
        body=body,
        severity=lead.severity,
        action="trigger" if firing else "resolve",
        url=lead.url,
        details=details,
    )


class Router:
    """Routes alerts to receivers and decides, from the clock it is given, what to send when."""

    def __init__(self, settings: AlertingSettings, log_limit: int = 10_000) -> None:
        self.settings = settings
        self._groups: dict[str, _Group] = {}
        self._firing: dict[str, Alert] = {}
        self._targets: dict[str, set[str]] = {}
        self._silences: dict[str, Silence] = {s.id: s for s in settings.silences}
        self._log: deque[Attempt] = deque(maxlen=log_limit)
        self._next_id = 1
        self._inhibit_index: list[dict[tuple[str, ...], list[str]]] | None = None

    @property
    def log(self) -> tuple[Attempt, ...]:
        """The latest delivery attempts (up to `log_limit`), oldest first; the store keeps the history."""
        return tuple(self._log)

    def attempts_for(self, alert_key: str) -> list[Attempt]:
        """The delivery attempts that carried one alert (for the incident page)."""
        return [a for a in self._log if alert_key in a.alert_keys]

    @property
    def silences(self) -> tuple[Silence, ...]:
        """The silences known, active or not."""
        return tuple(self._silences.values())

    def add_silence(self, silence: Silence) -> None:
        """Add or replace a silence."""
        self._silences[silence.id] = silence

    def expire_silence(self, silence_id: str, now: datetime) -> None:
        """End a silence at `now`."""
        old = self._silences.get(silence_id)
        if old is not None:
            self._silences[silence_id] = Silence(old.id, old.matchers, old.starts_at, now, old.comment, old.created_by)

    def muted_by(self, alert: Alert, now: datetime) -> str | None:
        """Why a firing alert is muted now ("silence <id>" or "inhibited by <key>"), or None."""
        labels = alert.label_set()
        for silence in self._silences.values():
            if silence.mutes(labels, now):
                return f"silence {silence.id}"
        for rule, sources in zip(self.settings.inhibit_rules, self._inhibitors(), strict=True):
            if not all(m.matches(labels) for m in rule.target):
                continue
            for key in sources.get(tuple(labels.get(n, "") for n in rule.equal), ()):
                if key != alert.key:
                    return f"inhibited by {key}"
        return None

    def _inhibitors(self) -> list[dict[tuple[str, ...], list[str]]]:
        # Per rule: firing source alerts indexed by their `equal` labels; rebuilt after each submit.
        if self._inhibit_index is None:
            self._inhibit_index = []
            for rule in self.settings.inhibit_rules:
                index: dict[tuple[str, ...], list[str]] = {}
                for source in self._firing.values():
                    src = source.label_set()
                    if all(m.matches(src) for m in rule.source):
                        index.setdefault(tuple(src.get(n, "") for n in rule.equal), []).append(source.key)
                self._inhibit_index.append(index)
        return self._inhibit_index

    def routes_for(self, alert: Alert) -> list[tuple[str, Timing]]:
        """The (receiver, timing) pairs an alert goes to, by account and severity."""
        out: list[tuple[str, Timing]] = []
        for route in self.settings.routes:
            if route.matches(alert):
                out += [(r, route.timing or self.settings.timing) for r in route.receivers]
                if not route.continue_:
                    break
        if not out:
            out = [(r, self.settings.timing) for r in self.settings.default_receivers]
        return out

    def submit(self, alert: Alert, now: datetime) -> None:
        """Take a new or updated alert; a resolve reaches every receiver the alert was sent to."""
        targets = self._targets.setdefault(alert.key, set())
        for receiver, timing in self.routes_for(alert):
            gkey = group_key(alert, timing.group_by)
            gid = f"{receiver}/{gkey}"
            if gid not in self._groups:
                if alert.status == RESOLVED:
                    continue
                send_resolved, send_acked = self._receiver_sends(receiver)
                self._groups[gid] = _Group(gid, receiver, gkey, timing, send_resolved, now + _s(timing.group_wait),
                                           send_acked)
            targets.add(gid)
        for gid in targets:
            group = self._groups.get(gid)
            if group is not None:
                group.alerts[alert.key] = alert
        self._inhibit_index = None
        if alert.status == FIRING:
            self._firing[alert.key] = alert
        else:
            self._firing.pop(alert.key, None)
            self._targets.pop(alert.key, None)

    def _receiver_sends(self, receiver: str) -> tuple[bool, bool]:
        settings = self.settings.receivers.get(receiver)
        return (settings.send_resolved, settings.send_acknowledged) if settings else (True, False)

    def is_firing(self, key: str) -> bool:
        """Whether an alert with this key was submitted firing and not resolved since."""
        return key in self._firing

    def restore(self, alert: Alert, now: datetime, receivers: Collection[str] | None = None) -> None:
        """Take a firing alert that a previous process delivered to `receivers` (None: every one it routes to; the
        store says so): they count as told, so it is not sent again before `repeat_interval`, and its
        acknowledgement and resolve still reach them."""
        targets = self._targets.setdefault(alert.key, set())
        for receiver, timing in self.routes_for(alert):
            if receivers is not None and receiver not in receivers:
                continue
            gkey = group_key(alert, timing.group_by)
            gid = f"{receiver}/{gkey}"
            group = self._groups.get(gid)
            if group is None:
                send_resolved, send_acked = self._receiver_sends(receiver)
                group = self._groups[gid] = _Group(gid, receiver, gkey, timing, send_resolved,
                                                   now + _s(timing.group_interval), send_acked, last_sent=now)
            group.alerts[alert.key] = alert
            group.sent_firing |= {(alert.key, alert.severity, alert.escalation)}
            group.notified.add(alert.key)
            if alert.acknowledged:
                group.acked |= {alert.key}
            targets.add(gid)
        if targets:
            self._firing[alert.key] = alert
            self._inhibit_index = None

    def next_wakeup(self) -> datetime | None:
        """The earliest time `due` may have something to send (for the scheduler)."""
        times = [_wake(g) for g in self._groups.values() if g.inflight is None]
        return min(times) if times else None

    def due(self, now: datetime) -> list[Delivery]:
        """The deliveries to make now; each must be reported back through `delivered`."""
        out = []
        for group in list(self._groups.values()):
            lost = group.inflight
            if lost is not None and group.inflight_at and now - group.inflight_at >= _s(LOST_AFTER_S):
                self.delivered(lost, False, now, "no outcome reported; counted as failed")
            if group.id in self._groups and group.inflight is None and _wake(group) <= now:
                delivery = self._flush(group, now)
                if delivery is not None:
                    out.append(delivery)
        return out

    def _flush(self, group: _Group, now: datetime) -> Delivery | None:
        group.next_flush = now + _s(group.timing.group_interval)
        for alert in list(group.alerts.values()):
            if alert.status == RESOLVED and (alert.key not in group.notified or not group.send_resolved):
                del group.alerts[alert.key]
                group.notified.discard(alert.key)
        firing = [a for a in group.alerts.values() if a.status == FIRING and self.muted_by(a, now) is None]
        resolved = [a for a in group.alerts.values() if a.status == RESOLVED]
        fire_set = frozenset((a.key, a.severity, a.escalation) for a in firing)
        res_set = frozenset(a.key for a in resolved)
        keys = frozenset(a.key for a in firing)
        # an acknowledge (once) when every firing alert of the group is acknowledged and was told as it stands
        ack = (group.send_acknowledged and bool(keys) and all(a.acknowledged for a in firing)
               and not keys <= group.acked and fire_set <= group.sent_firing and not res_set)
        repeat = (
            bool(firing)
            and group.last_sent is not None
            and now - group.last_sent >= _s(group.timing.repeat_interval)
        )
        if not (fire_set - group.sent_firing or res_set or repeat or ack):
            if not group.alerts:
                del self._groups[group.id]
            group.failures, group.retry_at = 0, None
            return None
        notification = build_notification(group.key, firing, resolved)
        if ack and not repeat:
            notification = replace(notification, action="acknowledge")
        delivery = Delivery(
            id=self._next_id,
            receiver=group.receiver,
            group=group.id,
            notification=notification,
            attempt=group.failures + 1,
            alert_keys=tuple(sorted(a.key for a in firing + resolved)),
        )
        self._next_id += 1
        acked = keys if notification.action == "acknowledge" else frozenset()
        group.inflight, group.inflight_at, group.pending = delivery, now, (fire_set, res_set, acked)
        return delivery

    def delivered(
        self, delivery: Delivery, ok: bool, now: datetime, error: BaseException | str | None = None
    ) -> None:
        """Record the outcome of a delivery; a failure is retried with backoff, a refusal is not."""
        permanent = isinstance(error, AuthenticationFailed | ReplyRejected)
        outcome = "ok" if ok else "rejected" if permanent else "failed"
        self._log.append(
            Attempt(now, delivery.receiver, delivery.notification.key, delivery.notification.action,
                    delivery.attempt, outcome, delivery.alert_keys, "" if ok else str(error or "unknown error"))
        )
        group = self._groups.get(delivery.group)
        if group is None or group.inflight is None or group.inflight.id != delivery.id:
            return
        group.inflight = None
        if not ok and not permanent:
            group.failures += 1
            wait = error.retry_after if isinstance(error, RateLimited) else min(
                self.settings.retry_max, self.settings.retry_initial * 2 ** (group.failures - 1)
            )
            group.retry_at = now + _s(wait)
            log.info("delivery to %s failed (attempt %d), retrying in %ss: %s",
                     group.receiver, delivery.attempt, wait, error)
            return
        if permanent:
            log.warning("delivery to %s refused, not retried: %s", group.receiver, error)
        fire_set, res_set, acked = group.pending
        group.sent_firing = fire_set
        group.acked |= acked
        group.notified |= {key for key, _, _ in fire_set}
        for key in res_set:
            group.notified.discard(key)
            if key in group.alerts and group.alerts[key].status == RESOLVED:
                del group.alerts[key]
        group.last_sent, group.failures, group.retry_at = now, 0, None
        group.next_flush = now + _s(group.timing.group_interval)
        if not group.alerts:
            del self._groups[group.id]


def _wake(group: _Group) -> datetime:
    return group.retry_at if group.failures and group.retry_at else group.next_flush


def _s(seconds: float) -> timedelta:
    return timedelta(seconds=seconds)


def parse_settings(raw: Mapping[str, Any]) -> AlertingSettings:
    """AlertingSettings from the loaded TOML mapping (see carebox.alerting_config)."""
    from carebox.alerting_config import (
        parse_settings as parse,  # the config builds on this module's types
    )

    return parse(raw)
