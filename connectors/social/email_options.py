"""The `[[connectors]]` options of the e-mail connector: validated into EmailOptions, ConfigError naming the key."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from carebox.duration import parse_duration
from carebox.errors import ConfigError
from connectors.social.email_message import _ADDRESS

_SECURITY = ("none", "starttls", "tls")
_INBOUND = ("imap", "smtp")


@dataclass(frozen=True, slots=True)
class EmailOptions:
    """The `[[connectors]]` options of one e-mail connector."""

    name: str
    account: str
    inbound: str = "imap"
    from_name: str = ""
    imap_host: str = ""
    imap_port: int = 993
    imap_security: str = "tls"
    imap_username: str = ""
    imap_password_env: str = ""
    imap_timeout: float = 30.0
    mailbox: str = "INBOX"
    poll_interval: float = 60.0
    idle: bool = True
    start_at: str = "new"
    batch_size: int = 50
    recipients: tuple[str, ...] = ()
    listen_host: str = "127.0.0.1"
    listen_port: int = 2525
    max_message_bytes: int = 10 * 1024 * 1024
    smtp_host: str = "localhost"
    smtp_port: int = 587
    smtp_security: str = "starttls"
    smtp_username: str = ""
    smtp_password_env: str = ""
    smtp_timeout: float = 30.0
    send_attempts: int = 3
    reply_subject: str = "Re: your message"


# ---------------------------------------------------------------- parsing


def _opt_str(options: Mapping[str, Any], key: str, prefix: str, default: str | None = None) -> str:
    value = options.get(key, default)
    if not isinstance(value, str) or (default is None and not value.strip()):
        raise ConfigError(f"{prefix}.{key}", "a non-empty string" if default is None else "a string")
    return value


def _opt_bool(options: Mapping[str, Any], key: str, prefix: str, default: bool) -> bool:
    value = options.get(key, default)
    if not isinstance(value, bool):
        raise ConfigError(f"{prefix}.{key}", "true or false")
    return value


def _opt_int(options: Mapping[str, Any], key: str, prefix: str, default: int, low: int, high: int) -> int:
    value = options.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(f"{prefix}.{key}", f"an integer from {low} to {high}")
    return value


def _imap_options(options: Mapping[str, Any], prefix: str, account: str) -> dict[str, Any]:
    """The inbound choice and, for IMAP, the mailbox options."""
    inbound = options.get("inbound")
    if inbound not in _INBOUND:
        raise ConfigError(f"{prefix}.inbound", '"imap" (poll a mailbox) or "smtp" (receive relayed mail)')
    if inbound == "smtp":
        return {"inbound": inbound}
    security = _opt_str(options, "imap_security", prefix, "tls")
    if security not in ("none", "tls"):
        raise ConfigError(f"{prefix}.imap_security", 'one of "none", "tls"')
    start_at = _opt_str(options, "start_at", prefix, "new")
    if start_at not in ("new", "all"):
        raise ConfigError(f"{prefix}.start_at", '"new" (mail arriving from now on) or "all" (the whole mailbox)')
    poll = parse_duration(options.get("poll_interval", "1m"), f"{prefix}.poll_interval")
    if poll <= 0:
        raise ConfigError(f"{prefix}.poll_interval", "a positive duration such as \"1m\"")
    return {
        "inbound": inbound,
        "imap_host": _opt_str(options, "imap_host", prefix),
        "imap_port": _opt_int(options, "imap_port", prefix, 993 if security == "tls" else 143, 1, 65535),
        "imap_security": security,
        "imap_username": _opt_str(options, "imap_username", prefix, account) or account,
        "imap_password_env": _opt_str(options, "imap_password_env", prefix),
        "imap_timeout": parse_duration(options.get("imap_timeout", 30), f"{prefix}.imap_timeout"),
        "mailbox": _opt_str(options, "mailbox", prefix, "INBOX") or "INBOX",
        "poll_interval": poll,
        "idle": _opt_bool(options, "idle", prefix, True),
        "start_at": start_at,
        "batch_size": _opt_int(options, "batch_size", prefix, 50, 1, 1000),
    }


def parse_options(options: Mapping[str, Any], key: str) -> EmailOptions:
    """EmailOptions from a `[[connectors]]` entry; ConfigError naming `key`.<option> otherwise."""
    name = _opt_str(options, "name", key)
    prefix = f"connectors.{name}"
    account = _opt_str(options, "account", prefix)
    if not _ADDRESS.match(account):
        raise ConfigError(f"{prefix}.account", "the brand's e-mail address, e.g. support@brand.example")
    recipients = options.get("recipients", [account])
    if not isinstance(recipients, list) or not recipients or not all(
        isinstance(r, str) and _ADDRESS.match(r) for r in recipients
    ):
        raise ConfigError(f"{prefix}.recipients", "a non-empty list of e-mail addresses")
    security = _opt_str(options, "smtp_security", prefix, "starttls")
    if security not in _SECURITY:
        raise ConfigError(f"{prefix}.smtp_security", 'one of "none", "starttls", "tls"')
    username = _opt_str(options, "smtp_username", prefix, "")
    password_env = _opt_str(options, "smtp_password_env", prefix, "")
    if username and not password_env:
        raise ConfigError(f"{prefix}.smtp_password_env", "the environment variable holding the SMTP password")
    return EmailOptions(
        name=name,
        account=account,
        **_imap_options(options, prefix, account),
        from_name=_opt_str(options, "from_name", prefix, ""),
        recipients=tuple(r.lower() for r in recipients),
        listen_host=_opt_str(options, "listen_host", prefix, "127.0.0.1"),
        listen_port=_opt_int(options, "listen_port", prefix, 2525, 0, 65535),
        max_message_bytes=_opt_int(options, "max_message_bytes", prefix, 10 * 1024 * 1024, 1024, 1 << 30),
        smtp_host=_opt_str(options, "smtp_host", prefix, "localhost"),
        smtp_port=_opt_int(options, "smtp_port", prefix, 465 if security == "tls" else 587, 1, 65535),
        smtp_security=security,
        smtp_username=username,
        smtp_password_env=password_env,
        smtp_timeout=parse_duration(options.get("smtp_timeout", 30), f"{prefix}.smtp_timeout"),
        send_attempts=_opt_int(options, "send_attempts", prefix, 3, 1, 10),
        reply_subject=_opt_str(options, "reply_subject", prefix, "Re: your message"),
    )
