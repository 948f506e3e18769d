"""E-mail notifier over SMTP (aiosmtplib): plain text with an HTML alternative."""

from __future__ import annotations

import html
import os
from collections.abc import Mapping, Sequence
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Any

import aiosmtplib

from carebox.errors import (
    AuthenticationFailed,
    ConfigError,
    ConnectorUnavailable,
    ReplyRejected,
)
from carebox.ports import Notification
from connectors.notify.webhook import env_secret, timeout_of

_SECURITY: dict[str, dict[str, Any]] = {
    "auto": {"start_tls": None},  # STARTTLS when the server offers it
    "starttls": {"start_tls": True},
    "tls": {"use_tls": True},
    "none": {"start_tls": False},
}
_SKIP_DETAILS = {"group", "firing", "resolved"}  # the body already lists a group's alerts


def subject_of(notification: Notification) -> str:
    """The subject line: `[CRITICAL] title` or `[RESOLVED] title`."""
    state = "RESOLVED" if notification.action == "resolve" else notification.severity.upper()
    return f"[{state}] {notification.title}".replace("\n", " ")[:200]


def _rows(notification: Notification) -> list[tuple[str, str]]:
    rows = [("Severity", notification.severity), ("Key", notification.key)]
    for name, value in notification.details.items():
        if name not in _SKIP_DETAILS and value not in (None, "", [], {}):
            text = ", ".join(map(str, value)) if isinstance(value, list | tuple) else str(value)
            rows.append((name.replace("_", " ").capitalize(), text))
    return rows


def render_text(notification: Notification) -> str:
    """The plain-text part."""
    lines = [subject_of(notification), "", notification.body, ""] if notification.body else [
        subject_of(notification), ""]
    lines += [f"{name}: {value}" for name, value in _rows(notification)]
    if notification.url:
        lines += ["", f"Open the incident: {notification.url}"]
    return "\n".join(lines) + "\n"


def render_html(notification: Notification) -> str:
    """The HTML alternative; every value is escaped."""
    e = html.escape
    rows = "".join(f"<tr><th align='left'>{e(n)}</th><td>{e(v)}</td></tr>" for n, v in _rows(notification))
    body = "".join(f"<p>{e(p)}</p>" for p in notification.body.split("\n") if p) if notification.body else ""
    link = f"<p><a href='{e(notification.url)}'>Open the incident</a></p>" if notification.url else ""
    return (f"<html><body><h2>{e(subject_of(notification))}</h2>{body}"
            f"<table>{rows}</table>{link}</body></html>")


def build_message(notification: Notification, sender: str, recipients: Sequence[str]) -> EmailMessage:
    """The multipart/alternative message for a notification."""
    message = EmailMessage()
    message["Subject"] = subject_of(notification)
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    message["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or None)
    message["X-Carebox-Key"] = notification.key
    message.set_content(render_text(notification))
    message.add_alternative(render_html(notification), subtype="html")
    return message


class EmailNotifier:
    """Sends each notification as one e-mail to a fixed list of recipients."""

    def __init__(
        self,
        name: str,
        host: str,
        port: int,
        sender: str,
        recipients: Sequence[str],
        *,
        username: str | None = None,
        password: str | None = None,
        security: str = "auto",
        timeout: float = 10.0,
    ) -> None:
        self.name = name
        self._host, self._port = host, port
        self._sender, self._recipients = sender, tuple(recipients)
        self._username, self._password = username, password
        self._tls = _SECURITY[security]
        self._timeout = timeout

    async def send(self, notification: Notification) -> None:
        """Send the message; SMTP refusals and failures become carebox errors."""
        message = build_message(notification, self._sender, self._recipients)
        try:
            await aiosmtplib.send(message, hostname=self._host, port=self._port, username=self._username,
                                  password=self._password, timeout=self._timeout, **self._tls)
        except aiosmtplib.SMTPAuthenticationError as err:
            raise AuthenticationFailed(self.name, str(err)) from err
        except (aiosmtplib.SMTPRecipientsRefused, aiosmtplib.SMTPSenderRefused) as err:
            raise ReplyRejected(self.name, str(err)) from err
        except aiosmtplib.SMTPResponseException as err:
            # 4xx is transient by definition in SMTP; 5xx is permanent.
            cls = ReplyRejected if err.code >= 500 else ConnectorUnavailable
            raise cls(self.name, f"SMTP {err.code}: {err.message}") from err
        except (aiosmtplib.SMTPException, OSError) as err:
            raise ConnectorUnavailable(self.name, f"{type(err).__name__}: {err}") from err


def from_config(
    options: Mapping[str, Any], session: object = None, environ: Mapping[str, str] | None = None
) -> EmailNotifier:
    """An EmailNotifier from a `[[notifiers]]` table; the SMTP password is read from the named env var."""
    name = str(options["name"])
    key = f"notifiers.{name}"
    host, port, sender = options.get("host"), options.get("port", 587), options.get("sender")
    recipients = options.get("recipients")
    if not isinstance(host, str) or not host:
        raise ConfigError(f"{key}.host", "an SMTP host name")
    if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
        raise ConfigError(f"{key}.port", "a TCP port number")
    if not isinstance(sender, str) or "@" not in sender:
        raise ConfigError(f"{key}.sender", "an e-mail address")
    if not isinstance(recipients, list) or not recipients or not all(isinstance(r, str) and "@" in r
                                                                     for r in recipients):
        raise ConfigError(f"{key}.recipients", "a non-empty list of e-mail addresses")
    security = options.get("security", "auto")
    if security not in _SECURITY:
        raise ConfigError(f"{key}.security", f"one of {', '.join(_SECURITY)}")
    username = options.get("username")
    password = None
    if "password_env" in options:
        password = env_secret(options, "password_env", os.environ if environ is None else environ)
    return EmailNotifier(name, host, port, sender, recipients, username=username, password=password,
                         security=security, timeout=timeout_of(options))
