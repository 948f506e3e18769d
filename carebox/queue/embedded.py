"""The embedded queue: bounded, in memory, with durability acknowledged by the store's commit.

Why in memory is safe: a pull connector's cursor is committed in the same transaction as the
mentions it covers, so after a crash the connector re-reads from the last committed cursor and
whatever was only in memory is fetched again; a push source (webhook) waits in `put_durable`
until the commit, so it answers 2xx only for what is on disk.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from carebox.ports import IngestBatch


@dataclass(eq=False, slots=True)
class Envelope:
    """A batch in the queue, with the future resolved when it is durable."""

    batch: IngestBatch
    done: asyncio.Future[None] = field(default_factory=lambda: asyncio.get_running_loop().create_future())

    @property
    def size(self) -> int:
        return len(self.batch.mentions) + len(self.batch.rejected)


class EmbeddedQueue:
    """A bounded asyncio queue of envelopes; producers wait when the pipeline falls behind."""

    def __init__(self, max_batches: int = 64) -> None:
        self._queue: asyncio.Queue[Envelope] = asyncio.Queue(max_batches)

    def __len__(self) -> int:
        return self._queue.qsize()

    async def put(self, batch: IngestBatch) -> None:
        """Enqueue; returns when the queue has room (backpressure), not when durable."""
        await self._queue.put(Envelope(batch))

    async def put_durable(self, batch: IngestBatch) -> None:
        """Enqueue and wait until the pipeline has committed the batch; re-raises its failure."""
        envelope = Envelope(batch)
        await self._queue.put(envelope)
        await asyncio.shield(envelope.done)

    def put_nowait_batch(self, batch: IngestBatch) -> Envelope:
        """Enqueue without waiting; raises asyncio.QueueFull when full."""
        envelope = Envelope(batch)
        self._queue.put_nowait(envelope)
        return envelope

    async def take(self, max_mentions: int, wait_s: float) -> list[Envelope]:
        """Wait for one envelope, then gather more for up to `wait_s` or until `max_mentions`."""
        first = await self._queue.get()
        taken, size = [first], first.size
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        while size < max_mentions:
            try:
                envelope = self._queue.get_nowait()
            except asyncio.QueueEmpty:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    envelope = await asyncio.wait_for(self._queue.get(), remaining)
                except TimeoutError:
                    break
            taken.append(envelope)
            size += envelope.size
        return taken

    def ack(self, envelopes: list[Envelope]) -> None:
        """Mark the envelopes durable, waking any producer waiting in put_durable."""
        for envelope in envelopes:
            if not envelope.done.done():
                envelope.done.set_result(None)

    def fail(self, envelopes: list[Envelope], error: BaseException) -> None:
        """Tell waiting producers their batch could not be stored."""
        for envelope in envelopes:
            if not envelope.done.done():
                envelope.done.set_exception(error)
                envelope.done.exception()  # mark retrieved: a fire-and-forget producer may never look
