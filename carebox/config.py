"""TOML configuration -> frozen settings. `parse` is pure; `load` is the only file read."""

from __future__ import annotations

import ipaddress
import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from carebox import alerting, incident_policy, outage, privacy, sla, triage
from carebox.duration import parse_duration
from carebox.errors import ConfigError
from carebox.reports_config import parse_settings as parse_report_settings

ENV_CONFIG = "CAREBOX_CONFIG"
ENV_DATABASE_URL = "CAREBOX_DATABASE_URL"
ENV_QUEUE_URL = "CAREBOX_QUEUE_URL"
QUEUE_SCHEMES = ("memory", "redis", "rediss")
SECTIONS = ("carebox", "database", "queue", "web", "pipeline", "connectors", "calendars", "policies", "sla",
            "triage", "outage", "alerting", "notifiers", "inbox", "reports", "scaleout", "privacy", "incidents")


@dataclass(frozen=True, slots=True)
class WebSettings:
    host: str = "127.0.0.1"
    port: int = 8080
    base_url: str = ""
    secure_cookies: bool = False
    session_max_age_s: float = 12 * 3600.0
    trusted_proxies: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()


@dataclass(frozen=True, slots=True)
class PipelineSettings:
    quiet_gap_s: float = 24 * 3600.0
    batch_size: int = 2000
    batch_wait_s: float = 0.05
    max_pending_batches: int = 64
    triage_workers: int = 0  # parse() resolves the default "auto": one per CPU but one, 0 on one CPU
    triage_batch: int = 64


@dataclass(frozen=True, slots=True)
class ConnectorSettings:
    name: str
    type: str
    account: str
    options: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything carebox reads from its configuration file and environment."""

    file: str | None = None
    data_dir: str = "carebox-data"
    database_url: str = ""
    queue_url: str = "memory://"
    timezone: str = "Europe/Paris"
    languages: tuple[str, ...] = ("en", "fr")
    web: WebSettings = field(default_factory=WebSettings)
    pipeline: PipelineSettings = field(default_factory=PipelineSettings)
    connectors: tuple[ConnectorSettings, ...] = ()
    sla: sla.SlaSettings = field(default_factory=lambda: sla.parse_settings({}))
    triage: triage.TriageSettings = field(default_factory=lambda: triage.parse_settings({}))
    outage: outage.DetectorSettings = field(default_factory=lambda: outage.parse_settings({}))
    alerting: alerting.AlertingSettings = field(default_factory=lambda: alerting.parse_settings({}))
    incidents: incident_policy.IncidentSettings = field(default_factory=incident_policy.IncidentSettings)
    privacy: privacy.PrivacySettings = field(default_factory=privacy.PrivacySettings)
    raw: Mapping[str, Any] = field(default_factory=dict)


def _table(doc: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = doc.get(key, {})
    if not isinstance(value, Mapping):
        raise ConfigError(key, "a table ([" + key + "])")
    return value


def _typed(table: Mapping[str, Any], section: str, key: str, kind: type | tuple[type, ...], default: Any) -> Any:
    value = table.get(key, default)
    if isinstance(value, bool) and kind is not bool:
        raise ConfigError(f"{section}.{key}", _KIND_NAMES.get(kind, str(kind)))
    if not isinstance(value, kind):
        raise ConfigError(f"{section}.{key}", _KIND_NAMES.get(kind, str(kind)))
    return value


_KIND_NAMES: dict[Any, str] = {str: "a string", int: "an integer", bool: "true or false", (int, float): "a number"}


def _web(doc: Mapping[str, Any]) -> WebSettings:
    t = _table(doc, "web")
    port = _typed(t, "web", "port", int, 8080)
    if not 0 <= port <= 65535:
        raise ConfigError("web.port", "an integer from 0 to 65535")
    return WebSettings(
        host=_typed(t, "web", "host", str, "127.0.0.1"),
        port=port,
        base_url=_typed(t, "web", "base_url", str, "").rstrip("/"),
        secure_cookies=_typed(t, "web", "secure_cookies", bool, False),
        session_max_age_s=parse_duration(t.get("session_max_age", "12h"), "web.session_max_age"),
        trusted_proxies=_networks(t.get("trusted_proxies", []), "web.trusted_proxies"),
    )


def _networks(value: Any, key: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    expected = 'a list of addresses or networks, e.g. ["127.0.0.1", "10.0.0.0/8", "::1"]'
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ConfigError(key, expected)
    try:
        return tuple(ipaddress.ip_network(item.strip()) for item in value)
    except ValueError as err:
        raise ConfigError(key, f"{expected} ({err})") from err


def _pipeline(doc: Mapping[str, Any]) -> PipelineSettings:
    t = _table(doc, "pipeline")
    batch_size = _typed(t, "pipeline", "batch_size", int, 2000)
    if batch_size < 1:
        raise ConfigError("pipeline.batch_size", "a positive integer")
    pending = _typed(t, "pipeline", "max_pending_batches", int, 64)
    if pending < 1:
        raise ConfigError("pipeline.max_pending_batches", "a positive integer")
    workers = t.get("triage_workers", "auto")
    if workers == "auto":
        workers = max((os.cpu_count() or 1) - 1, 0)  # the ingest process keeps one core for its writes
    elif isinstance(workers, bool) or not isinstance(workers, int) or not 0 <= workers <= 64:
        raise ConfigError("pipeline.triage_workers", 'an integer from 0 to 64 or "auto" (0 = triage in process)')
    triage_batch = _typed(t, "pipeline", "triage_batch", int, 64)
    if triage_batch < 1:
        raise ConfigError("pipeline.triage_batch", "a positive integer")
    return PipelineSettings(
        quiet_gap_s=parse_duration(t.get("quiet_gap", "24h"), "pipeline.quiet_gap"),
        batch_size=batch_size,
        batch_wait_s=parse_duration(t.get("batch_wait", "50ms"), "pipeline.batch_wait"),
        max_pending_batches=pending,
        triage_workers=workers,
        triage_batch=triage_batch,
    )


def _connectors(doc: Mapping[str, Any]) -> tuple[ConnectorSettings, ...]:
    items = doc.get("connectors", [])
    if not isinstance(items, list):
        raise ConfigError("connectors", "an array of tables ([[connectors]])")
    seen: set[str] = set()
    out = []
    for i, item in enumerate(items):
        where = f"connectors[{i}]"
        if not isinstance(item, Mapping):
            raise ConfigError(where, "a table")
        ctype = _typed(item, where, "type", str, "")
        name = _typed(item, where, "name", str, ctype)
        if not ctype:
            raise ConfigError(f"{where}.type", 'a connector type such as "simulator", "x", "mastodon"')
        if name in seen:
            raise ConfigError(f"{where}.name", f"a unique name ({name!r} is used twice)")
        seen.add(name)
        account = _typed(item, where, "account", str, "")
        if not account:
            raise ConfigError(f"{where}.account", "the brand account this connector reads, e.g. \"acme\"")
        out.append(ConnectorSettings(name=name, type=ctype, account=account, options=dict(item)))
    return tuple(out)


def parse(
    doc: Mapping[str, Any],
    *,
    file: str | None = None,
    environ: Mapping[str, str] | None = None,
    read_file: Callable[[str], str] | None = None,
) -> Settings:
    """Settings from a loaded TOML document and the environment overrides; ConfigError names file and key."""
    environ = {} if environ is None else environ
    try:
        unknown = sorted(set(doc) - set(SECTIONS))
        if unknown:
            raise ConfigError(unknown[0], f"a known section ({', '.join(SECTIONS)})")
        core = _table(doc, "carebox")
        data_dir = _typed(core, "carebox", "data_dir", str, "carebox-data")
        languages = core.get("languages", ["en", "fr"])
        if not isinstance(languages, list) or not languages or not all(isinstance(x, str) for x in languages):
            raise ConfigError("carebox.languages", 'a non-empty list of language codes, e.g. ["en", "fr"]')
        db = _table(doc, "database")
        default_db = f"sqlite+aiosqlite:///{Path(data_dir) / 'carebox.db'}"
        database_url = environ.get(ENV_DATABASE_URL) or _typed(db, "database", "url", str, default_db)
        if "://" not in database_url:
            raise ConfigError("database.url", 'an SQLAlchemy URL such as "sqlite+aiosqlite:///carebox.db"')
        queue_url = environ.get(ENV_QUEUE_URL) or _typed(_table(doc, "queue"), "queue", "url", str, "memory://")
        if queue_url.split("://", 1)[0] not in QUEUE_SCHEMES:
            raise ConfigError("queue.url", '"memory://" (embedded) or a redis:// URL')
        sla_settings = sla.parse_settings(doc, read_file=read_file)
        parse_report_settings(doc, sla_settings)  # [reports] is read where reports are made: checked here
        return Settings(
            file=file,
            data_dir=data_dir,
            database_url=database_url,
            queue_url=queue_url,
            timezone=_typed(core, "carebox", "timezone", str, "Europe/Paris"),
            languages=tuple(languages),
            web=_web(doc),
            pipeline=_pipeline(doc),
            connectors=_connectors(doc),
            sla=sla_settings,
            incidents=incident_policy.parse_settings(_table(doc, "incidents"), sla_settings),
            triage=triage.parse_settings(_table(doc, "triage")),
            outage=outage.parse_settings(_table(doc, "outage")),
            alerting=alerting.parse_settings(doc),
            privacy=privacy.parse_settings(doc),
            raw=doc,
        )
    except ConfigError as err:
        raise err.with_file(file) if file else err


def config_path(path: str | None, environ: Mapping[str, str] | None = None) -> str | None:
    """The configuration file to read: the argument, else $CAREBOX_CONFIG, else none."""
    environ = os.environ if environ is None else environ
    return path or environ.get(ENV_CONFIG) or None


def load(path: str | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Read and parse the configuration file (or defaults when there is none)."""
    environ = dict(os.environ if environ is None else environ)
    path = config_path(path, environ)
    if path is None:
        return parse({}, environ=environ)
    base = Path(path).parent

    def read_file(name: str) -> str:
        try:
            return (base / name).read_text(encoding="utf-8")
        except OSError as err:
            raise ConfigError(name, f"a readable file ({err.strerror})", path) from err

    try:
        with open(path, "rb") as fh:
            doc = tomllib.load(fh)
    except OSError as err:
        raise ConfigError("(file)", f"a readable TOML file ({err.strerror})", path) from err
    except tomllib.TOMLDecodeError as err:
        raise ConfigError("(syntax)", f"valid TOML ({err})", path) from err
    return parse(doc, file=path, environ=environ, read_file=read_file)
