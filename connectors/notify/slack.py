"""Slack incoming-webhook notifier: readable Block Kit blocks with a link button, plain-text fallback."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import aiohttp
import orjson

from carebox.errors import ConfigError, ConnectorUnavailable
from carebox.ports import Notification
from connectors.notify.webhook import env_secret, post_text, timeout_of

_EMOJI = {"critical": ":rotating_light:", "error": ":red_circle:", "warning": ":warning:",
          "info": ":information_source:"}
_HEADER_MAX = 150  # Slack's limit for a header block's plain_text
_TEXT_MAX = 3000  # Slack's limit for a section's text
_FIELD_MAX = 2000
_SKIP_DETAILS = {"group", "firing", "resolved"}  # the body already lists a group's alerts


def render_message(notification: Notification) -> dict[str, Any]:
    """The Slack message for a notification: header, summary, fields, link button; `text` as fallback."""
    resolved = notification.action == "resolve"
    emoji = ":white_check_mark:" if resolved else _EMOJI.get(notification.severity, ":bell:")
    state = "RESOLVED" if resolved else notification.severity.upper()
    headline = f"{state}: {notification.title}"
    fields = [_field("Severity", notification.severity), _field("Status", "resolved" if resolved else "firing")]
    for name, value in notification.details.items():
        if name not in _SKIP_DETAILS and value not in (None, "", [], {}) and len(fields) < 10:
            fields.append(_field(name.replace("_", " ").capitalize(), value))
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": _clip(f"{emoji} {headline}", _HEADER_MAX),
                                    "emoji": True}},
    ]
    if notification.body:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": _clip(_escape(notification.body),
                                                                                     _TEXT_MAX)}})
    blocks.append({"type": "section", "fields": fields})
    if notification.url:
        blocks.append({"type": "actions", "elements": [{
            "type": "button", "text": {"type": "plain_text", "text": "Open incident"},
            "url": notification.url, "action_id": "open_incident",
        }]})
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": f"carebox · `{notification.key}`"}]})
    fallback = f"{headline} — {notification.url}" if notification.url else headline
    return {"text": _clip(fallback, _TEXT_MAX), "blocks": blocks}


def _field(name: str, value: object) -> dict[str, str]:
    text = ", ".join(map(str, value)) if isinstance(value, list | tuple) else str(value)
    return {"type": "mrkdwn", "text": _clip(f"*{name}*\n{_escape(text)}", _FIELD_MAX)}


def _escape(text: str) -> str:
    # Slack mrkdwn needs only these three escaped.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


class SlackNotifier:
    """Posts each notification to one Slack incoming webhook."""

    def __init__(self, name: str, session: aiohttp.ClientSession, webhook_url: str, *, timeout: float = 10.0) -> None:
        self.name = name
        self._session = session
        self._url = webhook_url
        self._timeout = timeout

    async def send(self, notification: Notification) -> None:
        """POST the message; Slack answers 200 "ok", anything else becomes a ConnectorError."""
        body = orjson.dumps(render_message(notification))
        text = await post_text(self._session, self.name, self._url, data=body,
                               headers={"Content-Type": "application/json"}, timeout=self._timeout)
        if text.strip() != "ok":
            raise ConnectorUnavailable(self.name, f"unexpected answer: {text[:200]}")


def from_config(
    options: Mapping[str, Any], session: aiohttp.ClientSession, environ: Mapping[str, str] | None = None
) -> SlackNotifier:
    """A SlackNotifier from a `[[notifiers]]` table; the webhook URL (a secret) is read from the named env var."""
    name = str(options["name"])
    url = env_secret(options, "webhook_url_env", os.environ if environ is None else environ)
    if not url.startswith(("http://", "https://")):
        raise ConfigError(f"notifiers.{name}.webhook_url_env", "an environment variable holding an http(s) URL")
    return SlackNotifier(name, session, url, timeout=timeout_of(options))
