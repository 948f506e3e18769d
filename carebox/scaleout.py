"""The [scaleout] table: leases, the Redis stream and live-update fan-out (pure parsing, no I/O)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from carebox.duration import parse_duration
from carebox.errors import ConfigError

SECTION = "scaleout"


@dataclass(frozen=True, slots=True)
class ScaleoutSettings:
    """How processes share work: lease length, stream limits, fan-out channel."""

    lease_s: float = 10.0
    stream: str = "carebox:ingest"
    group: str = "pipeline"
    visibility_s: float = 60.0
    max_deliveries: int = 5
    max_stream_len: int = 10_000
    fanout_channel: str = "carebox:live"
    fanout_url: str = ""


def _duration(table: Mapping[str, Any], key: str, default: float, low: float, high: float) -> float:
    if key not in table:
        return default
    seconds = parse_duration(table[key], f"{SECTION}.{key}")
    if not low <= seconds <= high:
        raise ConfigError(f"{SECTION}.{key}", f"a duration from {low:g}s to {high:g}s")
    return seconds


def _int(table: Mapping[str, Any], key: str, default: int, low: int, high: int) -> int:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(f"{SECTION}.{key}", f"an integer from {low} to {high}")
    return value


def _name(table: Mapping[str, Any], key: str, default: str, *, empty: bool = False) -> str:
    value = table.get(key, default)
    if not isinstance(value, str) or (not empty and not value.strip()):
        raise ConfigError(f"{SECTION}.{key}", "a string" if empty else "a non-empty string")
    return value


def parse(doc: Mapping[str, Any]) -> ScaleoutSettings:
    """ScaleoutSettings from the whole TOML document (its [scaleout] table, all keys optional)."""
    table = doc.get(SECTION, {})
    if not isinstance(table, Mapping):
        raise ConfigError(SECTION, "a table ([scaleout])")
    known = set(ScaleoutSettings.__dataclass_fields__)  # type: ignore[attr-defined]
    unknown = sorted(set(table) - known)
    if unknown:
        raise ConfigError(f"{SECTION}.{unknown[0]}", f"one of {', '.join(sorted(known))}")
    fanout_url = _name(table, "fanout_url", "", empty=True)
    if fanout_url and not fanout_url.startswith(("redis://", "rediss://", "unix://", "memory://")):
        raise ConfigError(f"{SECTION}.fanout_url", 'a redis:// URL or "memory://"')
    return ScaleoutSettings(
        lease_s=_duration(table, "lease_s", 10.0, 1.0, 600.0),
        stream=_name(table, "stream", "carebox:ingest"),
        group=_name(table, "group", "pipeline"),
        visibility_s=_duration(table, "visibility_s", 60.0, 1.0, 86_400.0),
        max_deliveries=_int(table, "max_deliveries", 5, 1, 1000),
        max_stream_len=_int(table, "max_stream_len", 10_000, 1, 10_000_000),
        fanout_channel=_name(table, "fanout_channel", "carebox:live"),
        fanout_url=fanout_url,
    )
