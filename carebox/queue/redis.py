"""The Redis Streams queue for scale-out: any number of producers and pipeline consumers on one stream.

Each batch is one stream entry (XADD of its orjson form). The pipeline workers form one consumer group:
XREADGROUP hands every entry to one worker; the worker XACKs and XDELs it once the store has committed
it (so the stream holds only unprocessed work). Entries a dead worker left pending are taken over by
XAUTOCLAIM after the visibility timeout; an entry delivered `max_deliveries` times becomes a dead letter
(handed to the pipeline as a rejected payload, stored with its reason). Redelivery is harmless because
the ingest is idempotent (unique mentions, cursors committed with them).
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
from dataclasses import dataclass
from typing import Any

from redis import asyncio as aioredis
from redis.exceptions import RedisError, ResponseError

from carebox.errors import BadPayload, ConnectorUnavailable
from carebox.ports import IngestBatch, Rejected
from carebox.queue import codec

log = logging.getLogger(__name__)
FIELD = b"b"
READ_COUNT = 64


@dataclass(frozen=True, slots=True)
class StreamOptions:
    """Names and limits of the ingest stream."""

    stream: str = "carebox:ingest"
    group: str = "pipeline"
    visibility_s: float = 60.0
    max_deliveries: int = 5
    max_len: int = 100_000
    block_s: float = 1.0


@dataclass(eq=False, slots=True)
class StreamEnvelope:
    """A batch read from the stream, with its entry id and how often it was delivered."""

    batch: IngestBatch
    entry_id: bytes
    deliveries: int = 1

    @property
    def size(self) -> int:
        return len(self.batch.mentions) + len(self.batch.rejected)


def consumer_name() -> str:
    """A name unique to this process (host, pid, random), so a restarted worker never inherits a dead one's entries."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


def _dead(entry_id: bytes, payload: bytes | None, reason: str, source: str = "queue") -> IngestBatch:
    text = (payload or b"").decode("utf-8", "replace")
    return IngestBatch(source=source, rejected=(Rejected(source, text, f"{reason} (stream entry {entry_id.decode()})"),))


class RedisQueue:
    """Queue protocol over a Redis stream and consumer group."""

    def __init__(self, client: aioredis.Redis, options: StreamOptions = StreamOptions(), *, consumer: str | None = None) -> None:
        self.redis, self.options = client, options
        self.consumer = consumer or consumer_name()
        self._to_ack: list[bytes] = []
        self._depth = 0
        self._group_ready = False
        self._last_reclaim = 0.0

    @classmethod
    def from_url(cls, url: str, options: StreamOptions = StreamOptions(), *, consumer: str | None = None) -> RedisQueue:
        """A queue on the Redis at `url` (redis://host:port/db)."""
        return cls(aioredis.Redis.from_url(url), options, consumer=consumer)

    def __len__(self) -> int:
        return self._depth

    async def close(self) -> None:
        """Acknowledge what is pending and close the connection pool."""
        try:
            await self.flush()
        except RedisError as err:
            log.warning("acknowledgements not sent at close (%s): those batches will be redelivered", err)
        finally:
            await self.redis.aclose()

    async def ensure_group(self) -> None:
        """Create the stream and consumer group if they do not exist yet."""
        if self._group_ready:
            return
        try:
            await self.redis.xgroup_create(self.options.stream, self.options.group, id="0", mkstream=True)
        except ResponseError as err:
            if "BUSYGROUP" not in str(err):
                raise
        self._group_ready = True

    # producer side

    async def put(self, batch: IngestBatch) -> None:
        """Append the batch to the stream, waiting while the stream is full (backpressure)."""
        await self._wait_for_room()
        await self._xadd(batch)

    async def put_durable(self, batch: IngestBatch) -> None:
        """Append the batch; returns once Redis acknowledged the XADD (Redis is then the durable buffer)."""
        await self._xadd(batch)

    def put_nowait_batch(self, batch: IngestBatch) -> StreamEnvelope:
        """Not offered: a stream append is I/O and must be awaited (use put)."""
        raise TypeError("RedisQueue.put_nowait_batch is not supported; await put() instead")

    async def _xadd(self, batch: IngestBatch) -> None:
        try:
            await self.redis.xadd(self.options.stream, {FIELD: codec.encode(batch)})
        except RedisError as err:
            raise ConnectorUnavailable("queue", f"redis XADD failed: {err}") from err

    async def _wait_for_room(self) -> None:
        delay = 0.05
        while (depth := await self.redis.xlen(self.options.stream)) >= self.options.max_len:
            self._depth = depth
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)

    # consumer side

    async def take(self, max_mentions: int, wait_s: float) -> list[StreamEnvelope]:
        """Wait for at least one batch (reclaimed stalled ones first), then gather more for up to `wait_s`.
        While Redis is unreachable it waits and retries (what was read stays pending, so nothing is lost)."""
        delay = 0.5
        while True:
            try:
                taken = await self._take(max_mentions, wait_s)
            except RedisError as err:
                if delay == 0.5:
                    log.warning("queue unavailable (%s); retrying", err)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
                continue
            if delay > 0.5:
                log.info("queue back")
            return taken

    async def _take(self, max_mentions: int, wait_s: float) -> list[StreamEnvelope]:
        await self.ensure_group()
        await self.flush()
        loop = asyncio.get_running_loop()
        taken: list[StreamEnvelope] = []
        while not taken:
            if loop.time() - self._last_reclaim >= self.options.visibility_s / 4:
                self._last_reclaim = loop.time()
                taken = await self.reclaim()
            if not taken:
                taken = await self._read(min(READ_COUNT, max_mentions), int(self.options.block_s * 1000))
        deadline = loop.time() + wait_s
        size = sum(e.size for e in taken)
        while size < max_mentions:
            remaining_ms = int((deadline - loop.time()) * 1000)
            if remaining_ms <= 0:
                break
            more = await self._read(min(READ_COUNT, max_mentions - size), remaining_ms)
            if not more:
                break
            taken.extend(more)
            size += sum(e.size for e in more)
        self._depth = await self.redis.xlen(self.options.stream)
        return taken

    async def _read(self, count: int, block_ms: int) -> list[StreamEnvelope]:
        reply = await self.redis.xreadgroup(self.options.group, self.consumer, {self.options.stream: ">"},
                                            count=count, block=max(block_ms, 1))
        out: list[StreamEnvelope] = []
        for _stream, entries in reply or []:
            out.extend(self._envelope(entry_id, fields, 1) for entry_id, fields in entries)
        return out

    def _envelope(self, entry_id: bytes, fields: dict[bytes, bytes] | None, deliveries: int) -> StreamEnvelope:
        payload = (fields or {}).get(FIELD)
        if payload is None:
            return StreamEnvelope(_dead(entry_id, None, "stream entry without a batch"), entry_id, deliveries)
        try:
            return StreamEnvelope(codec.decode(payload), entry_id, deliveries)
        except BadPayload as err:
            return StreamEnvelope(_dead(entry_id, payload, str(err)), entry_id, deliveries)

    async def reclaim(self) -> list[StreamEnvelope]:
        """Take over entries idle past the visibility timeout; dead-letter those delivered too often."""
        opts = self.options
        reply = await self.redis.xautoclaim(opts.stream, opts.group, self.consumer,
                                            min_idle_time=int(opts.visibility_s * 1000), start_id="0-0", count=READ_COUNT)
        claimed = [(entry_id, fields) for entry_id, fields in reply[1] if entry_id is not None]
        if len(reply) > 2 and reply[2]:
            # entries deleted while pending (trimmed by hand): nothing to store, just forget them
            await self.redis.xack(opts.stream, opts.group, *reply[2])
        if not claimed:
            return []
        counts = await self._deliveries([entry_id for entry_id, _ in claimed])
        out = []
        for entry_id, fields in claimed:
            deliveries = counts.get(entry_id, 1)
            envelope = self._envelope(entry_id, fields, deliveries)
            if deliveries > opts.max_deliveries:
                reason = f"delivered {deliveries - 1} times without being stored"
                log.warning("stream entry %s dead-lettered: %s", entry_id.decode(), reason)
                envelope = StreamEnvelope(self._dead_batch(envelope, reason), entry_id, deliveries)
            out.append(envelope)
        log.info("reclaimed %d stalled stream entries", len(out))
        return out

    async def _deliveries(self, ids: list[bytes]) -> dict[bytes, int]:
        async with self.redis.pipeline(transaction=False) as pipe:
            for entry_id in ids:
                pipe.xpending_range(self.options.stream, self.options.group, min=entry_id, max=entry_id, count=1)
            replies = await pipe.execute()
        return {row["message_id"]: int(row["times_delivered"]) for rows in replies for row in rows}

    @staticmethod
    def _dead_batch(envelope: StreamEnvelope, reason: str) -> IngestBatch:
        batch = envelope.batch
        payload = codec.encode(IngestBatch(batch.source, batch.mentions, (), batch.cursor)).decode()
        dead = (Rejected(batch.source, payload, reason),) if batch.mentions else ()
        return IngestBatch(batch.source, (), batch.rejected + dead, None)

    def ack(self, envelopes: list[StreamEnvelope]) -> None:
        """The batches are durable in the store: XACK and XDEL them at the next flush."""
        self._to_ack.extend(e.entry_id for e in envelopes)

    def fail(self, envelopes: list[StreamEnvelope], error: BaseException) -> None:
        """Leave the entries pending: after the visibility timeout they are reclaimed and retried."""
        log.warning("%d stream entries left for redelivery: %s", len(envelopes), error)

    async def flush(self) -> None:
        """Send the acknowledgements gathered since the last flush (and trim the acknowledged entries)."""
        if not self._to_ack:
            return
        ids = list(self._to_ack)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.xack(self.options.stream, self.options.group, *ids)
            pipe.xdel(self.options.stream, *ids)
            await pipe.execute()
        del self._to_ack[: len(ids)]

    async def stats(self) -> dict[str, Any]:
        """Stream length and pending entries of the group (for health and metrics)."""
        await self.ensure_group()
        pending = await self.redis.xpending(self.options.stream, self.options.group)
        return {"length": await self.redis.xlen(self.options.stream), "pending": int(pending["pending"])}
