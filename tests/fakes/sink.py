"""A MentionSink for tests: records every batch it is given, in order."""

from __future__ import annotations

import asyncio

from carebox.ports import InboundMention, IngestBatch, Rejected


class RecordingSink:
    """Implements put/put_durable by appending to `batches`; `changed` is set on every batch."""

    def __init__(self) -> None:
        self.batches: list[IngestBatch] = []
        self.durable: list[bool] = []
        self.changed = asyncio.Event()

    async def put(self, batch: IngestBatch) -> None:
        """Record a batch (not durable)."""
        self._record(batch, durable=False)

    async def put_durable(self, batch: IngestBatch) -> None:
        """Record a batch (durable)."""
        self._record(batch, durable=True)

    def _record(self, batch: IngestBatch, *, durable: bool) -> None:
        self.batches.append(batch)
        self.durable.append(durable)
        self.changed.set()

    @property
    def mentions(self) -> list[InboundMention]:
        """Every mention recorded, in order."""
        return [m for b in self.batches for m in b.mentions]

    @property
    def rejected(self) -> list[Rejected]:
        """Every rejected payload recorded, in order."""
        return [r for b in self.batches for r in b.rejected]

    @property
    def cursor(self) -> str | None:
        """The last cursor handed over (None before the first batch that carries one)."""
        for batch in reversed(self.batches):
            if batch.cursor is not None:
                return batch.cursor
        return None

    async def wait_for(self, predicate, timeout: float = 5.0) -> None:
        """Wait until `predicate(self)` is true; TimeoutError after `timeout` seconds."""
        async with asyncio.timeout(timeout):
            while not predicate(self):
                self.changed.clear()
                await self.changed.wait()
