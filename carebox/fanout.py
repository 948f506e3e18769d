"""Live events across processes: publish a small JSON-able dict, every subscriber of every process gets it.

In-process for the embedded default; Redis pub/sub for scale-out (at most once: a subscriber that is
disconnected misses events, which is fine for live page updates that the next page load corrects); a Unix
socket hub in the main process when embedded mode serves the inbox from several processes (`LocalHub` and its
`LocalFanout` clients), with the same at-most-once, everyone-including-the-publisher semantics as Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
from collections.abc import AsyncIterator, Callable
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


LINE_LIMIT = 16 * 1024 * 1024  # one event per line; a batch of 500 committed complaints is well under this
PEER_BACKLOG = 4 * 1024 * 1024  # a process that stops reading loses events beyond this rather than growing the hub


class LocalHub:
    """The main process's end of the embedded multi-process fan-out: a Unix socket every web process connects
    to; each event (published here or by a web process) reaches every process, the publisher included."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.origin = secrets.token_hex(6)
        self._subs = _Subscribers()
        self._peers: set[asyncio.StreamWriter] = set()
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        """Listen on the socket (only this user may connect)."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        self._server = await asyncio.start_unix_server(self._serve, self.path, limit=LINE_LIMIT)
        os.chmod(self.path, 0o600)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._peers.add(writer)
        try:
            while line := await reader.readline():
                self._relay(line)
        except (ConnectionError, ValueError) as err:  # ValueError: a line over LINE_LIMIT
            log.warning("live fan-out: dropped a web process's connection (%s)", err)
        finally:
            self._peers.discard(writer)
            writer.close()

    @property
    def connected(self) -> int:
        """How many web processes are connected."""
        return len(self._peers)

    def _relay(self, line: bytes) -> None:
        try:
            event = orjson.loads(line)
        except orjson.JSONDecodeError:
            log.warning("live fan-out: ignored a line that is not JSON")
            return
        for peer in list(self._peers):
            if peer.transport.get_write_buffer_size() > PEER_BACKLOG:
                log.debug("live fan-out: a web process is not reading; dropped an event for it")
                continue
            peer.write(line)
        self._subs.deliver(event)

    async def publish(self, event: dict[str, Any]) -> None:
        self.publish_nowait(event)

    def publish_nowait(self, event: dict[str, Any]) -> None:
        self._relay(orjson.dumps({**event, "origin": self.origin}) + b"\n")

    def subscribe(self) -> contextlib.AbstractAsyncContextManager[AsyncIterator[dict[str, Any]]]:
        return self._subs.subscribe()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for peer in list(self._peers):
            peer.close()
        self._subs.queues.clear()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)


class LocalFanout:
    """A web process's end of the main process's `LocalHub`: publishes through the hub and hears every event
    from it. When the hub goes away (the main process ended), `on_lost` is called once."""

    def __init__(self, path: str, on_lost: Callable[[], None], connect_s: float = 10.0) -> None:
        self.path, self.on_lost, self.connect_s = path, on_lost, connect_s
        self.origin = secrets.token_hex(6)
        self._subs = _Subscribers()
        self._writer: asyncio.StreamWriter | None = None
        self._listener: asyncio.Task[None] | None = None
        self._closing = False

    async def start(self) -> None:
        """Connect to the hub (waiting for the main process to listen, up to `connect_s`)."""
        deadline = asyncio.get_running_loop().time() + self.connect_s
        while True:
            try:
                reader, self._writer = await asyncio.open_unix_connection(self.path, limit=LINE_LIMIT)
                break
            except (FileNotFoundError, ConnectionRefusedError):
                if asyncio.get_running_loop().time() > deadline:
                    raise ConnectionError(f"no live fan-out hub at {self.path}") from None
                await asyncio.sleep(0.05)
        self._listener = asyncio.create_task(self._listen(reader), name="fanout:hub")

    async def _listen(self, reader: asyncio.StreamReader) -> None:
        try:
            while line := await reader.readline():
                try:
                    self._subs.deliver(orjson.loads(line))
                except orjson.JSONDecodeError:
                    log.warning("live fan-out: ignored a line that is not JSON")
        except (ConnectionError, ValueError) as err:
            log.warning("live fan-out: lost the hub (%s)", err)
        if not self._closing:
            log.warning("live fan-out: the main process is gone")
            self.on_lost()

    async def publish(self, event: dict[str, Any]) -> None:
        self.publish_nowait(event)

    def publish_nowait(self, event: dict[str, Any]) -> None:
        if self._writer is not None and not self._closing and not self._writer.is_closing():
            self._writer.write(orjson.dumps({**event, "origin": self.origin}) + b"\n")

    def subscribe(self) -> contextlib.AbstractAsyncContextManager[AsyncIterator[dict[str, Any]]]:
        return self._subs.subscribe()

    async def close(self) -> None:
        self._closing = True
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
        if self._writer is not None:
            self._writer.close()
        self._subs.queues.clear()


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
