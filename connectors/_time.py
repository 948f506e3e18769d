"""Instants in the payloads of outside services: ISO 8601 text to an aware UTC datetime."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from carebox.errors import BadPayload


def parse_iso(value: Any, field: str = "created_at") -> datetime:
    """An aware UTC datetime from ISO 8601 text with a zone (`2024-01-15T10:30:00.000Z`); BadPayload otherwise."""
    if not isinstance(value, str) or not value:
        raise BadPayload(f"{field} missing or not text")
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError as err:
        raise BadPayload(f"{field} is not ISO 8601: {value[:40]!r}") from err
    if parsed.tzinfo is None:
        raise BadPayload(f"{field} has no time zone: {value[:40]!r}")
    try:
        return parsed.astimezone(UTC)
    except (OverflowError, ValueError) as err:
        raise BadPayload(f"{field} is out of range in UTC: {value[:40]!r}") from err
