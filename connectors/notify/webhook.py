"""Signed generic webhook notifier: POST JSON with `X-Carebox-Signature: t=<unix>,v1=<hmac-sha256 hex>`."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import aiohttp
import orjson

from carebox.duration import parse_duration
from carebox.errors import ConfigError, ConnectorUnavailable
from carebox.ports import Notification
from connectors import _signing
from connectors._http import error_for_status

SIGNATURE_HEADER = _signing.SIGNATURE_HEADER
DEFAULT_TOLERANCE_S = 300.0


def render_payload(notification: Notification, sent_at: int) -> dict[str, Any]:
    """The JSON document a webhook receiver gets."""
    return {
        "version": 1,
        "key": notification.key,
        "action": notification.action,
        "severity": notification.severity,
        "title": notification.title,
        "body": notification.body,
        "url": notification.url,
        "details": dict(notification.details),
        "sent_at": sent_at,
    }


def sign_body(secret: str, body: bytes, timestamp: int) -> str:
    """The signature header value for `body` sent at unix time `timestamp`."""
    return _signing.sign(secret, body, timestamp)


def verify_signature(
    secret: str, header: str | None, body: bytes, now: datetime | float, tolerance_s: float = DEFAULT_TOLERANCE_S
) -> bool:
    """True when `header` signs `body` with `secret` and its timestamp is within `tolerance_s` of `now`."""
    return signature_problem(secret, header, body, now, tolerance_s) is None


def signature_problem(
    secret: str, header: str | None, body: bytes, now: datetime | float, tolerance_s: float = DEFAULT_TOLERANCE_S
) -> str | None:
    """None for a valid, fresh signature; otherwise why it is refused (missing, stale, mismatch)."""
    seconds = now.timestamp() if isinstance(now, datetime) else float(now)
    return _signing.verify(secret, header, body, seconds, tolerance_s)


class WebhookNotifier:
    """Posts each notification as signed JSON to one URL."""

    def __init__(
        self,
        name: str,
        session: aiohttp.ClientSession,
        url: str,
        secret: str,
        *,
        timeout: float = 10.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.name = name
        self._session = session
        self._url = url
        self._secret = secret
        self._timeout = timeout
        self._clock = clock

    async def send(self, notification: Notification) -> None:
        """POST the notification; raise a ConnectorError subclass when the receiver fails or refuses."""
        sent_at = int(self._clock())
        body = orjson.dumps(render_payload(notification, sent_at))
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign_body(self._secret, body, sent_at),
            "X-Carebox-Event": notification.action,
            "User-Agent": "carebox-notifier/1",
        }
        await post_text(self._session, self.name, self._url, data=body, headers=headers, timeout=self._timeout)


async def post_text(
    session: aiohttp.ClientSession, connector: str, url: str, *, timeout: float = 10.0, **kwargs: Any
) -> str:
    """POST and return the body as text; errors mapped like `_http.request_json` (receivers may not answer JSON)."""
    # _http.request_json insists on a JSON answer; Slack answers "ok" and webhook receivers anything.
    try:
        async with session.post(url, timeout=aiohttp.ClientTimeout(total=timeout), **kwargs) as resp:
            text = (await resp.read()).decode("utf-8", "replace")
            if resp.status >= 400:
                raise error_for_status(connector, resp.status, resp.headers, text)
            return text
    except (aiohttp.ClientError, TimeoutError) as err:
        raise ConnectorUnavailable(connector, f"{type(err).__name__}: {err}") from err


def from_config(
    options: Mapping[str, Any], session: aiohttp.ClientSession, environ: Mapping[str, str] | None = None
) -> WebhookNotifier:
    """A WebhookNotifier from a `[[notifiers]]` table; the secret is read from the named env var."""
    name = str(options["name"])
    env = os.environ if environ is None else environ
    url = options.get("url")
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise ConfigError(f"notifiers.{name}.url", "an http(s) URL")
    return WebhookNotifier(name, session, url, env_secret(options, "secret_env", env),
                           timeout=timeout_of(options))


def env_secret(options: Mapping[str, Any], option: str, env: Mapping[str, str]) -> str:
    """The value of the environment variable named by `options[option]`; ConfigError when unset."""
    name = str(options.get("name", "?"))
    var = options.get(option)
    value = env.get(var) if isinstance(var, str) else None
    if not value:
        raise ConfigError(f"notifiers.{name}.{option}", f"environment variable {var} to be set and non-empty")
    return value


def timeout_of(options: Mapping[str, Any]) -> float:
    """The `timeout` option of a `[[notifiers]]` table in seconds (default 10s)."""
    return parse_duration(options.get("timeout", 10), f"notifiers.{options.get('name', '?')}.timeout")
