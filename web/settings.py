"""[inbox] settings of the web inbox, parsed purely from the loaded TOML mapping."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from carebox.assignment import AssignmentSettings
from carebox.assignment import parse_settings as parse_assignment
from carebox.duration import parse_duration
from carebox.errors import ConfigError

# Longest reply each network accepts, in characters (what the composer counts down from).
REPLY_LIMITS: Mapping[str, int] = MappingProxyType({
    "x": 280, "bluesky": 300, "mastodon": 500, "instagram": 1000, "facebook": 8000, "email": 50000,
})


@dataclass(frozen=True, slots=True)
class InboxSettings:
    """Page size, what "due soon" means, count caching, reply limits, presence and assignment."""

    page_size: int = 50
    due_soon_s: float = 3600.0
    counts_cache_s: float = 2.0
    typing_ttl_s: float = 8.0
    reply_limits: Mapping[str, int] = field(default_factory=lambda: REPLY_LIMITS)
    assignment: AssignmentSettings = field(default_factory=AssignmentSettings)

    def reply_limit(self, network: str) -> int:
        """The longest reply `network` accepts (5000 when unknown)."""
        return self.reply_limits.get(network, 5000)


def _positive_int(table: Mapping[str, Any], key: str, default: int) -> int:
    value = table.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(f"inbox.{key}", "a whole number, at least 1")
    return value


def parse(doc: Mapping[str, Any]) -> InboxSettings:
    """InboxSettings from the loaded config mapping; ConfigError names the key and what was expected."""
    table = doc.get("inbox", {})
    if not isinstance(table, Mapping):
        raise ConfigError("inbox", "a table")
    page = _positive_int(table, "page_size", 50)
    if page > 500:
        raise ConfigError("inbox.page_size", "at most 500")
    limits = table.get("reply_limits", {})
    if not isinstance(limits, Mapping) or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in limits.values()):
        raise ConfigError("inbox.reply_limits", "a table of network = positive number of characters")
    return InboxSettings(
        page_size=page,
        due_soon_s=parse_duration(table.get("due_soon", "1h"), "inbox.due_soon"),
        counts_cache_s=parse_duration(table.get("counts_cache", "2s"), "inbox.counts_cache"),
        typing_ttl_s=parse_duration(table.get("typing_ttl", "8s"), "inbox.typing_ttl"),
        reply_limits=MappingProxyType({**REPLY_LIMITS, **limits}),
        assignment=parse_assignment(doc),
    )
