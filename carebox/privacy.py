"""Personal-data rules: retention settings, purge cut-offs and what an erased row looks like."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from carebox.duration import parse_duration
from carebox.errors import ConfigError

DAY_S = 86_400
MIN_PURGE_EVERY_S, MAX_PURGE_EVERY_S = 60.0, 30.0 * DAY_S
# Values written over personal fields; counts, categories, priorities and instants are kept so reports stay true.
ERASED_MENTION: Mapping[str, Any] = {
    "author_id": "", "author_handle": "", "author_name": "", "text": "", "url": None, "raw": None,
    "followers": None, "in_reply_to": None, "thread_key": None,
}
ERASED_CONVERSATION: Mapping[str, Any] = {"snippet": "", "thread_key": None}
ERASED_CUSTOMER: Mapping[str, Any] = {"display_name": ""}
ERASED_NOTE_TEXT = "[erased]"
# Waits between tries of a purge, erase or export audit that found SQLite locked by another writer (each try
# already waits the store's busy_timeout): about a minute in all, then the scheduled purge is left to its next
# run and a command says it did nothing. The same schedule as the timed SLA writes (escalation.LOCKED_RETRY_S).
LOCKED_RETRY_S = (0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0)


@dataclass(frozen=True, slots=True)
class PrivacySettings:
    """Retention of personal data; 0 days means kept until erased on request. The leader purges every
    `purge_every_s` while a limit is set."""

    mention_days: int = 0
    raw_days: int = 0
    purge_every_s: float = float(DAY_S)

    @property
    def retains(self) -> bool:
        """True when a retention limit is set, so that a scheduled purge has something to do."""
        return bool(self.mention_days or self.raw_days)


@dataclass(frozen=True, slots=True)
class Cutoffs:
    """Instants before which mentions are anonymised and raw payloads dropped (None: keep)."""

    mentions_before: datetime | None
    raw_before: datetime | None


def _days(table: Mapping[str, Any], key: str) -> int:
    value = table.get(key, 0)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 36_500:
        raise ConfigError(f"privacy.{key}", "a whole number of days from 0 (keep) to 36500")
    return value


def parse_settings(doc: Mapping[str, Any]) -> PrivacySettings:
    """PrivacySettings from the loaded TOML document (its [privacy] table); ConfigError when bad."""
    table = doc.get("privacy", {})
    if not isinstance(table, Mapping):
        raise ConfigError("privacy", "a table ([privacy])")
    unknown = sorted(set(table) - {"mention_days", "raw_days", "purge_every"})
    if unknown:
        raise ConfigError(f"privacy.{unknown[0]}", "one of mention_days, raw_days, purge_every")
    mention_days, raw_days = _days(table, "mention_days"), _days(table, "raw_days")
    if mention_days and raw_days > mention_days:
        raise ConfigError("privacy.raw_days", f"at most mention_days ({mention_days}): raw payloads go sooner")
    every = parse_duration(table.get("purge_every", "1d"), "privacy.purge_every")
    if not MIN_PURGE_EVERY_S <= every <= MAX_PURGE_EVERY_S:
        raise ConfigError("privacy.purge_every", 'a duration from "1m" to "30d", such as "1d" or "6h"')
    return PrivacySettings(mention_days=mention_days, raw_days=raw_days, purge_every_s=every)


def effective(settings: PrivacySettings, mention_days: int | None = None, raw_days: int | None = None) -> PrivacySettings:
    """Settings with command-line overrides applied (None keeps the configured value); ConfigError when bad."""
    doc = {"mention_days": settings.mention_days if mention_days is None else mention_days,
           "raw_days": settings.raw_days if raw_days is None else raw_days, "purge_every": settings.purge_every_s}
    return parse_settings({"privacy": doc})


def cutoffs(settings: PrivacySettings, now: datetime) -> Cutoffs:
    """The purge instants for `now`; raw payloads go at the sooner of the two limits."""
    mentions = now - timedelta(days=settings.mention_days) if settings.mention_days else None
    raw = now - timedelta(days=settings.raw_days) if settings.raw_days else None
    if mentions is not None and (raw is None or mentions > raw):
        raw = mentions
    return Cutoffs(mentions_before=mentions, raw_before=raw)


def next_purge(settings: PrivacySettings, last: datetime | None, now: datetime) -> datetime:
    """When the scheduled purge runs next: one period after the last purge, or now when none is that recent.
    Counted from the last purge, not from the process start, so frequent restarts cannot postpone it forever."""
    if last is None:
        return now
    return max(now, last + timedelta(seconds=settings.purge_every_s))
