"""Live events across processes: publish a small JSON-able dict, every subscriber of every process gets it.

In-process for the embedded default; Redis pub/sub for scale-out (at most once: a subscriber that is
disconnected misses events, which is fine for live page updates that the next page load corrects).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import AsyncIterator
from typing import Any, Protocol

import orjson

log = logging.getLogger(__name__)
BUFFER = 1000


class Fanout(Protocol):
    """Publish events to every subscriber of every process; each event carries the `origin` of its
    publisher, so a process can skip what it published itself."""

    origin: str

    async def publish(self, event: dict[str, Any]) -> None:
        """Send one event (a JSON-able dict) to every subscriber."""

    def publish_nowait(self, event: dict[str, Any]) -> None:
        """Send one event from synchronous code (e.g. an after-commit callback); never blocks."""

    def subscribe(self) -> contextlib.AbstractAsyncContextManager[AsyncIterator[dict[str, Any]]]:
        """An iterator of every event published while the context is open."""

    async def close(self) -> None:
        """Stop and release connections."""


class _Subscribers:
    def __init__(self) -> None:
        self.queues: set[asyncio.Queue[dict[str, Any]]] = set()

    def deliver(self, event: dict[str, Any]) -> None:
        for queue in self.queues:
            try:
                queue.put_nowait(event)
            except asyncio.QueueFull:
                log.debug("slow live subscriber: dropped an event")

    @contextlib.asynccontextmanager
    async def subscribe(self) -> AsyncIterator[AsyncIterator[dict[str, Any]]]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(BUFFER)
        self.queues.add(queue)

        async def events() -> AsyncIterator[dict[str, Any]]:
            while True:
                yield await queue.get()

        try:
            yield events()
        finally:
            self.queues.discard(queue)


class InProcessFanout:
    """Subscribers of this process only (embedded mode)."""

    def __init__(self) -> None:
        self._subs = _Subscribers()
        self.origin = secrets.token_hex(6)

    async def publish(self, event: dict[str, Any]) -> None:
        self._subs.deliver({**event, "origin": self.origin})

    def publish_nowait(self, event: dict[str, Any]) -> None:
        self._subs.deliver({**event, "origin": self.origin})

    def subscribe(self) -> contextlib.AbstractAsyncContextManager[AsyncIterator[dict[str, Any]]]:
        return self._subs.subscribe()

    async def close(self) -> None:
        self._subs.queues.clear()


class RedisFanout:
    """Redis pub/sub on one channel; one listening connection per process relays to local subscribers."""

    def __init__(self, url: str, channel: str) -> None:
        from redis import asyncio as aioredis

        self.redis = aioredis.Redis.from_url(url)
        self.channel = channel
        self.origin = secrets.token_hex(6)
        self._subs = _Subscribers()
        self._listener: asyncio.Task[None] | None = None
        self._pending: set[asyncio.Task[None]] = set()
        self._ready = asyncio.Event()

    async def start(self) -> None:
        """Start relaying the channel to this process's subscribers."""
        if self._listener is None:
            self._listener = asyncio.create_task(self._listen(), name="fanout:listen")
            await asyncio.wait_for(self._ready.wait(), 10)

    async def _listen(self) -> None:
        delay = 0.5
        while True:
            try:
                async with self.redis.pubsub(ignore_subscribe_messages=True) as pubsub:
                    await pubsub.subscribe(self.channel)
                    self._ready.set()
                    delay = 0.5
                    async for message in pubsub.listen():
                        if message.get("type") == "message":
                            self._subs.deliver(orjson.loads(message["data"]))
            except asyncio.CancelledError:
                raise
            except Exception as err:  # noqa: BLE001 - Redis went away: live updates pause, then resume
                log.warning("live fan-out disconnected (%s); reconnecting in %.1fs", err, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

    async def publish(self, event: dict[str, Any]) -> None:
        try:
            await self.redis.publish(self.channel, orjson.dumps({**event, "origin": self.origin}))
        except Exception as err:  # noqa: BLE001 - a live update is never worth failing the caller
            log.warning("live event not published: %s", err)

    def publish_nowait(self, event: dict[str, Any]) -> None:
        task = asyncio.get_running_loop().create_task(self.publish(event))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    def subscribe(self) -> contextlib.AbstractAsyncContextManager[AsyncIterator[dict[str, Any]]]:
        return self._subs.subscribe()

    async def close(self) -> None:
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
        await self.redis.aclose()


def make_fanout(url: str, channel: str) -> Fanout:
    """Redis pub/sub for a redis:// URL, in-process otherwise."""
    if url.startswith(("redis://", "rediss://", "unix://")):
        return RedisFanout(url, channel)
    return InProcessFanout()


# The after-commit rows a worker shares: web processes need the conversation and direction, the
# scheduler leader's outage watcher needs the complaints' text and author.
_ROW_KEYS = ("conversation_id", "direction", "network", "external_id", "account", "author_id", "category",
             "cluster_key", "is_repost")
_WATCHED = frozenset({"complaint", "outage"})


def committed_event(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The live event announcing committed mention rows (compact: text only for complaints)."""
    out = []
    for row in rows:
        item = {k: row.get(k) for k in _ROW_KEYS}
        item["created_at"] = row["created_at"].isoformat() if row.get("created_at") else None
        if row.get("category") in _WATCHED:
            item["text"] = row.get("text")
        out.append(item)
    return {"kind": "committed", "rows": out}


def rows_of(event: dict[str, Any]) -> list[dict[str, Any]]:
    """The mention rows of a "committed" event, with datetimes restored."""
    from datetime import datetime

    rows = []
    for item in event.get("rows", []):
        row = dict(item)
        if row.get("created_at"):
            row["created_at"] = datetime.fromisoformat(row["created_at"])
        row.setdefault("text", "")
        rows.append(row)
    return rows
