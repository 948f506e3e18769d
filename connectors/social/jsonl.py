"""carebox's own mention format (JSON objects, one per line in files): used by the simulator, replay and webhooks."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import orjson

from carebox.errors import BadPayload
from carebox.ports import Direction, InboundMention
from connectors._time import parse_iso

_REQUIRED = ("external_id", "author_id", "text", "created_at")
_BOOLS = ("public", "verified", "is_repost", "automated")
_OPTIONAL_STR = ("in_reply_to", "thread_key", "lang_hint", "url")


def mention_to_dict(m: InboundMention) -> dict[str, Any]:
    """The JSON-ready form of a mention (created_at in ISO 8601 UTC); the inverse of parse_mention."""
    out: dict[str, Any] = {
        "network": m.network,
        "account": m.account,
        "external_id": m.external_id,
        "author_id": m.author_id,
        "author_handle": m.author_handle,
        "author_name": m.author_name,
        "text": m.text,
        "created_at": m.created_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "direction": m.direction.value,
        "public": m.public,
        "verified": m.verified,
        "reposts": m.reposts,
        "is_repost": m.is_repost,
        "automated": m.automated,
    }
    if m.followers is not None:
        out["followers"] = m.followers
    for key in _OPTIONAL_STR:
        if getattr(m, key) is not None:
            out[key] = getattr(m, key)
    return out


def dumps(m: InboundMention) -> bytes:
    """One JSONL line (without the newline)."""
    return orjson.dumps(mention_to_dict(m))


def parse_time(value: Any) -> datetime:
    """An aware UTC datetime from ISO 8601 text or epoch seconds; BadPayload otherwise."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return datetime.fromtimestamp(value, UTC)
        except (OverflowError, OSError, ValueError) as err:
            raise BadPayload(f"created_at out of range: {value!r}") from err
    if not isinstance(value, str):
        raise BadPayload(f"created_at must be ISO 8601 text or epoch seconds, got {type(value).__name__}")
    return parse_iso(value)


def _text(obj: Mapping[str, Any], key: str, default: str | None = None) -> str:
    value = obj.get(key, default)
    if value is None:
        raise BadPayload(f"missing field {key!r}")
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str):
        raise BadPayload(f"field {key!r} must be text")
    return value


def parse_mention(obj: Any, *, network: str | None = None, account: str | None = None) -> InboundMention:
    """An InboundMention from carebox's JSON shape; `network`/`account` are defaults when absent."""
    if not isinstance(obj, Mapping):
        raise BadPayload("a mention must be a JSON object")
    for key in _REQUIRED:
        if key not in obj or obj[key] in (None, ""):
            raise BadPayload(f"missing field {key!r}")
    try:
        direction = Direction(obj.get("direction", "in"))
    except ValueError as err:
        raise BadPayload("direction must be 'in' or 'out'") from err
    followers = obj.get("followers")
    reposts = obj.get("reposts", 0)
    for key, value in (("followers", followers), ("reposts", reposts)):
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
            raise BadPayload(f"field {key!r} must be a non-negative integer")
    for key in _BOOLS:
        if key in obj and not isinstance(obj[key], bool):
            raise BadPayload(f"field {key!r} must be true or false")
    optional = {}
    for key in _OPTIONAL_STR:
        if obj.get(key) is not None:
            optional[key] = _text(obj, key)
    text = _text(obj, "text")
    author_id = _text(obj, "author_id")
    return InboundMention(
        network=_text(obj, "network", network),
        account=_text(obj, "account", account),
        external_id=_text(obj, "external_id"),
        author_id=author_id,
        author_handle=_text(obj, "author_handle", author_id),
        author_name=_text(obj, "author_name", ""),
        text=text,
        created_at=parse_time(obj["created_at"]),
        direction=direction,
        public=obj.get("public", True),
        followers=followers,
        verified=obj.get("verified", False),
        reposts=reposts or 0,
        is_repost=obj.get("is_repost", False),
        automated=obj.get("automated", False),
        raw=dict(obj),
        **optional,
    )


def parse_line(line: bytes | str, *, network: str | None = None, account: str | None = None) -> InboundMention:
    """Parse one JSONL line; BadPayload when it is not JSON or not a mention."""
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError as err:
        raise BadPayload(f"not JSON: {err}") from err
    return parse_mention(obj, network=network, account=account)


def payload_text(obj: Any) -> str:
    """Any decoded JSON value as text for a dead letter: never fails (big integers, odd types included)."""
    try:
        return orjson.dumps(obj, default=str).decode()
    except TypeError:  # orjson refuses integers beyond 64 bits; the standard library does not
        return json.dumps(obj, default=str, ensure_ascii=False)
