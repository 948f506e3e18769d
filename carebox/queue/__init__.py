"""Queues between connectors and the pipeline: the embedded one, and Redis Streams for scale-out."""

from __future__ import annotations

from typing import Protocol

from carebox.ports import IngestBatch, MentionSink
from carebox.queue.embedded import EmbeddedQueue, Envelope

__all__ = ["EmbeddedQueue", "Envelope", "Queue", "make_queue"]


class Queue(MentionSink, Protocol):
    """The consumer side of a queue: take batches, then acknowledge or fail them."""

    async def take(self, max_mentions: int, wait_s: float) -> list[Envelope]:
        """Wait for at least one batch, then gather more for up to `wait_s` or `max_mentions`."""

    def ack(self, envelopes: list[Envelope]) -> None:
        """The envelopes are durable in the store."""

    def fail(self, envelopes: list[Envelope], error: BaseException) -> None:
        """The envelopes could not be stored."""

    def put_nowait_batch(self, batch: IngestBatch) -> Envelope:
        """Enqueue without waiting (for tests and replays with their own flow control)."""


def make_queue(url: str, *, max_batches: int = 64, options: object | None = None) -> Queue:
    """The queue a `queue_url` names: memory:// (embedded, default) or redis://host:port/db (Redis Streams)."""
    if url.startswith(("redis://", "rediss://", "unix://")):
        from carebox.queue.redis import RedisQueue, StreamOptions

        return RedisQueue.from_url(url, options if isinstance(options, StreamOptions) else StreamOptions())  # type: ignore[return-value]
    return EmbeddedQueue(max_batches)  # type: ignore[return-value]
