"""PagerDuty Events API v2 notifier: trigger on open and escalation, resolve on close, one dedup_key per incident."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import aiohttp

from carebox.errors import ConfigError, ReplyRejected
from carebox.ports import Notification
from connectors._http import request_json
from connectors.notify.webhook import env_secret, timeout_of

EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"
SEVERITIES = ("critical", "error", "warning", "info")
SUMMARY_MAX = 1024
DEDUP_KEY_MAX = 255
_ACTIONS = {"trigger": "trigger", "escalate": "trigger", "acknowledge": "acknowledge", "resolve": "resolve"}


def render_event(notification: Notification, routing_key: str, source: str = "carebox") -> dict[str, Any]:
    """The Events API v2 body; acknowledge/resolve carry only the keys, as the spec allows."""
    action = _ACTIONS.get(notification.action, "trigger")
    event: dict[str, Any] = {
        "routing_key": routing_key,
        "event_action": action,
        "dedup_key": notification.key[:DEDUP_KEY_MAX],
    }
    if action != "trigger":
        return event
    severity = notification.severity if notification.severity in SEVERITIES else "warning"
    details = {k: v for k, v in notification.details.items() if v not in (None, "", [], {})}
    if notification.body:
        details["body"] = notification.body
    payload: dict[str, Any] = {"summary": _clip(notification.title or notification.key), "source": source,
                               "severity": severity, "custom_details": details}
    for field in ("account", "cluster"):
        if isinstance(details.get(field), str):
            payload["group" if field == "account" else "component"] = details[field]
    event["payload"] = payload
    event["client"] = "carebox"
    if notification.url:
        event["client_url"] = notification.url
        event["links"] = [{"href": notification.url, "text": "Open incident in carebox"}]
    return event


def _clip(text: str) -> str:
    return text if len(text) <= SUMMARY_MAX else text[: SUMMARY_MAX - 1] + "…"


class PagerDutyNotifier:
    """Sends notifications as Events API v2 events to one routing key."""

    def __init__(
        self,
        name: str,
        session: aiohttp.ClientSession,
        routing_key: str,
        *,
        url: str = EVENTS_URL,
        source: str = "carebox",
        timeout: float = 10.0,
    ) -> None:
        self.name = name
        self._session = session
        self._routing_key = routing_key
        self._url = url
        self._source = source
        self._timeout = timeout

    async def send(self, notification: Notification) -> None:
        """Enqueue one event; 202 is success, 400 ReplyRejected, 429 RateLimited, 5xx ConnectorUnavailable."""
        event = render_event(notification, self._routing_key, self._source)
        answer, _ = await request_json(self._session, self.name, "POST", self._url, json=event,
                                       timeout=self._timeout)
        if not isinstance(answer, dict) or answer.get("status") != "success":
            raise ReplyRejected(self.name, f"unexpected answer: {answer!r:.200}")


def from_config(
    options: Mapping[str, Any], session: aiohttp.ClientSession, environ: Mapping[str, str] | None = None
) -> PagerDutyNotifier:
    """A PagerDutyNotifier from a `[[notifiers]]` table; the routing key is read from the named env var."""
    name = str(options["name"])
    key = env_secret(options, "routing_key_env", os.environ if environ is None else environ)
    if len(key) != 32:
        raise ConfigError(f"notifiers.{name}.routing_key_env", "an environment variable holding a 32-character "
                                                               "Events API v2 integration key")
    url = options.get("url", EVENTS_URL)
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise ConfigError(f"notifiers.{name}.url", "an http(s) URL")
    source = options.get("source", "carebox")
    if not isinstance(source, str) or not source:
        raise ConfigError(f"notifiers.{name}.source", "a non-empty string")
    return PagerDutyNotifier(name, session, key, url=url, source=source, timeout=timeout_of(options))
