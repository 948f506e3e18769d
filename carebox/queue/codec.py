"""IngestBatch <-> bytes for queues that leave the process (Redis Streams): orjson, versioned, lossless."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson

from carebox.errors import BadPayload
from carebox.ports import Direction, InboundMention, IngestBatch, Rejected

VERSION = 1
_MENTION_FIELDS = tuple(InboundMention.__dataclass_fields__)  # type: ignore[attr-defined]


def _mention(m: InboundMention) -> dict[str, Any]:
    out = {name: getattr(m, name) for name in _MENTION_FIELDS}
    out["created_at"] = m.created_at.isoformat()
    out["direction"] = m.direction.value
    out["raw"] = dict(m.raw) if m.raw is not None else None
    return out


def encode(batch: IngestBatch) -> bytes:
    """The wire form of a batch."""
    return orjson.dumps({
        "v": VERSION, "source": batch.source, "cursor": batch.cursor,
        "mentions": [_mention(m) for m in batch.mentions],
        "rejected": [[r.source, r.payload, r.reason] for r in batch.rejected],
    })


def _unmention(d: dict[str, Any]) -> InboundMention:
    fields = {name: d[name] for name in _MENTION_FIELDS if name in d}
    fields["created_at"] = datetime.fromisoformat(d["created_at"])
    fields["direction"] = Direction(d.get("direction", Direction.INBOUND.value))
    return InboundMention(**fields)


def decode(data: bytes | str) -> IngestBatch:
    """A batch from its wire form; raises BadPayload when it is not one."""
    try:
        doc = orjson.loads(data)
        if doc.get("v") != VERSION:
            raise ValueError(f"unknown batch version {doc.get('v')!r}")
        return IngestBatch(
            source=doc["source"],
            mentions=tuple(_unmention(m) for m in doc["mentions"]),
            rejected=tuple(Rejected(*r) for r in doc["rejected"]),
            cursor=doc["cursor"],
        )
    except (orjson.JSONDecodeError, ValueError, KeyError, TypeError, AttributeError) as err:
        raise BadPayload(f"not a queued batch: {err}") from err
