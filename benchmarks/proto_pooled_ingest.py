"""PROTOTYPE, not wired into the product: triage a batch in the process pool before Pipeline.ingest.

The pipeline triages inside its write transaction, one message at a time, because a message's priority
depends on the customer's recent contacts, which it reads in that transaction. This prototype shows the
gain of moving the expensive part (language, sentiment, category) out of the transaction and onto every
core, without changing the pipeline: it triages each taken batch in the pool as a first contact
(recent_contacts=0), and hands the pipeline a Triager that answers from that table; for a repeat customer
it adds the repeat-contact points to the precomputed priority (`reprioritise`, the last signal of
Triager._signals, rebuilt the same way). benchmarks/ingest.py checks the stored triage is identical to the
in-process run's. Stage 1 (take + triage in the pool) runs while stage 2 (ingest) writes the previous batch.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from carebox.pipeline import Pipeline
from carebox.ports import Category, Direction, InboundMention, Priority
from carebox.queue import EmbeddedQueue, Envelope
from carebox.triage import Triage, TriageInput, Triager, TriageSettings
from carebox.triage_pool import TriagePool


def reprioritise(first: Triage, recent_contacts: int, s: TriageSettings) -> Triage:
    """The triage of the same message from a customer with `recent_contacts`, from its first-contact triage."""
    if first.category is Category.SPAM:
        return first
    if recent_contacts >= s.many_contacts:
        value, label = s.many_contacts_points, f"{recent_contacts} recent contacts"
    elif recent_contacts >= s.repeat_contacts > 0:
        value, label = s.repeat_points, "repeat contact"
    else:
        return first
    why, how = first.reason.split("; ", 1)
    body, points_text = how.split(": ", 1)[1].rsplit(" = ", 1)
    parts = [] if body == "no signal" else [body]
    if value:
        parts.append(f"{label} +{value}")
    points = int(points_text) + value
    priority = next((p for p, floor in ((Priority.P1, s.p1), (Priority.P2, s.p2), (Priority.P3, s.p3))
                     if points >= floor), Priority.P4)
    return replace(first, priority=priority,
                   reason=f"{why}; {priority.value}: " + (", ".join(parts) or "no signal") + f" = {points}")


class PrecomputedTriager:
    """A Triager that answers from first-contact results computed in the pool, and computes misses itself."""

    def __init__(self, base: Triager, check_every: int = 50) -> None:
        self.base = base
        self.table: dict[TriageInput, Triage] = {}
        self.hits = 0
        self.misses = 0
        self.check_every = check_every  # every Nth hit is recomputed in process and compared
        self.checked = 0
        self.mismatches = 0

    def triage(self, text: str, **reach: Any) -> Triage:
        """Same signature and answer as Triager.triage."""
        recent = reach.pop("recent_contacts", 0)
        found = self.table.get(TriageInput(text, recent_contacts=0, **reach))
        if found is not None:
            self.hits += 1
            answer = reprioritise(found, recent, self.base.settings)
            if self.check_every and self.hits % self.check_every == 0:
                self.checked += 1
                self.mismatches += answer != self.base.triage(text, recent_contacts=recent, **reach)
            return answer
        self.misses += 1
        return self.base.triage(text, recent_contacts=recent, **reach)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.base, name)


def triage_input(m: InboundMention) -> TriageInput:
    """The input the pipeline would build for a first-contact message."""
    return TriageInput(m.text, followers=m.followers, verified=m.verified, public=m.public, reposts=m.reposts,
                       recent_contacts=0, lang_hint=m.lang_hint)


def inputs_of(envelopes: Sequence[Envelope]) -> list[TriageInput]:
    """Triage inputs of the inbound mentions of taken envelopes."""
    return [triage_input(m) for e in envelopes for m in e.batch.mentions if m.direction is Direction.INBOUND]


async def consume_pooled(queue: EmbeddedQueue, pipeline: Pipeline, pool: TriagePool, *, batch_size: int,
                         wait_s: float, now: Callable[[], datetime]) -> None:
    """Like pipeline.consume, with triage precomputed in the pool one batch ahead of the writes."""
    pre = pipeline.triager
    assert isinstance(pre, PrecomputedTriager)
    staged: asyncio.Queue[tuple[list[Envelope], list[TriageInput], asyncio.Task[list[Triage]]]] = asyncio.Queue(2)

    async def stage_triage() -> None:
        while True:
            envelopes = await queue.take(batch_size, wait_s)
            items = inputs_of(envelopes)
            await staged.put((envelopes, items, asyncio.create_task(pool.triage_many(items))))

    feeder = asyncio.create_task(stage_triage())
    try:
        while True:
            envelopes, items, task = await staged.get()
            pre.table.update(zip(items, await task, strict=True))
            await pipeline.ingest([e.batch for e in envelopes], now())
            pre.table.clear()
            queue.ack(envelopes)
    finally:
        feeder.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await feeder
