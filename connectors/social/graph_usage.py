"""Graph API usage headers: how long Meta asks a throttled app or page to wait before calling again."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

# Usage headers whose entries may carry `estimated_time_to_regain_access` (minutes) once a limit is hit
# (https://developers.facebook.com/docs/graph-api/overview/rate-limiting); X-App-Usage carries percentages only.
USAGE_HEADERS = ("X-Business-Use-Case-Usage", "X-Page-Usage", "X-Ad-Account-Usage")


def _minutes(obj: Any, depth: int = 4) -> list[float]:
    """Every `estimated_time_to_regain_access` in a usage header's JSON (a few levels of dicts and lists)."""
    if depth == 0:
        return []
    if isinstance(obj, Mapping):
        found = obj.get("estimated_time_to_regain_access")
        own = [float(found)] if isinstance(found, int | float) and not isinstance(found, bool) else []
        return own + [m for v in obj.values() for m in _minutes(v, depth - 1)]
    if isinstance(obj, list):
        return [m for v in obj for m in _minutes(v, depth - 1)]
    return []


def regain_wait(headers: Any) -> float | None:
    """Seconds until Graph lets calls through again, from its usage headers (the longest estimate), or None."""
    waits: list[float] = []
    for name in USAGE_HEADERS:
        try:
            waits += _minutes(orjson.loads(headers.get(name) or "null"))
        except orjson.JSONDecodeError:
            continue
    finite = [m for m in waits if 0 < m < 100_000]
    return max(finite) * 60 if finite else None
