"""Async use cases: ingest a batch (dedup, thread, triage, SLA clocks, store) and answer from the inbox."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncEngine

from carebox import metrics
from carebox.errors import NotFound
from carebox.pipeline_thread import (
    FIRST_RESPONSE,
    NEXT_RESPONSE,
    SNIPPET,
    UNKNOWN_ACCOUNT,
    ClockPlan,
    ClockPlanner,
    Threader,
    Work,
    mention_row,
)
from carebox.ports import (
    Connector,
    Direction,
    InboundMention,
    IngestBatch,
    OutboundReply,
    Rejected,
    SentReply,
)
from carebox.queue import Envelope, Queue
from carebox.store import actions, queries
from carebox.store import ingest as sql
from carebox.store.engine import write_transaction
from carebox.triage import Triage, Triager
from carebox.triage_pool import TriagePool

log = logging.getLogger(__name__)
REPEAT_WINDOW = timedelta(days=7)
__all__ = ["FIRST_RESPONSE", "NEXT_RESPONSE", "SNIPPET", "UNKNOWN_ACCOUNT", "ClockPlan", "ClockPlanner", "Pipeline",
           "consume", "mention_to_json", "reply"]
_INBOUND = Direction.INBOUND
_CLOCK_COLUMNS = tuple(c.name for c in sql.clock_t.columns if c.name != "id")
_NO_CLOCK_VALUES = dict.fromkeys(_CLOCK_COLUMNS)
_NEW_ID_TABLES = (sql.customer_t, sql.conversation_t, sql.clock_t)  # the tables whose new ids ingest allocates


class Pipeline:
    """The ingest and reply use cases over one store."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        triager: Triager,
        clocks: ClockPlanner,
        quiet_gap_s: float = 24 * 3600.0,
        on_committed: Callable[[list[dict[str, Any]]], None] | None = None,
        on_clocks: Callable[[list[dict[str, Any]]], None] | None = None,
        triage_pool: TriagePool | None = None,
    ) -> None:
        self.engine = engine
        self.triager = triager
        self.triage_pool = triage_pool
        self.clocks = clocks
        self.quiet_gap = timedelta(seconds=quiet_gap_s)
        self.threader = Threader(clocks, self.quiet_gap)
        self.on_committed = on_committed
        self.observers: list[Callable[[list[dict[str, Any]]], None]] = []
        self.on_clocks = on_clocks

    async def pretriage(self, batches: Sequence[IngestBatch]) -> dict[tuple[str, str], Triage]:
        """First-contact triage of the batches' inbound mentions, on the pool's workers when there is one."""
        inbound: dict[tuple[str, str], InboundMention] = {}
        for b in batches:
            for m in b.mentions:
                if m.direction is _INBOUND:
                    inbound.setdefault((m.network, m.external_id), m)
        if self.triage_pool is None:
            triage = self.triager.triage
            return {key: triage(m.text, followers=m.followers, verified=m.verified, public=m.public,
                                reposts=m.reposts, lang_hint=m.lang_hint) for key, m in inbound.items()}
        rows = [(m.text, m.followers, m.verified, m.public, m.reposts, 0, m.lang_hint) for m in inbound.values()]
        return dict(zip(inbound, await self.triage_pool.triage_rows(rows), strict=True))

    async def ingest(self, batches: Sequence[IngestBatch], now: datetime, *, sent_by: Mapping[str, int] | None = None,
                     triaged: Mapping[tuple[str, str], Triage] | None = None) -> int:
        """Store a group of batches in one transaction with their cursors; returns the mentions added.

        Triage runs before the transaction (`triaged`, from `pretriage`, when the caller did it ahead), so
        the write lock is held for the look-ups and inserts only."""
        if triaged is None:
            triaged = await self.pretriage(batches)
        cursors = {b.source: b.cursor for b in batches if b.cursor is not None}
        rejected = [r for b in batches for r in b.rejected]
        work = Work(now=now)
        fresh: dict[tuple[str, str], InboundMention] = {}
        for b in batches:
            for m in b.mentions:
                key = (m.network, m.external_id)
                fresh.setdefault(key, m)  # the first of duplicates within the group is stored
                work.sources[key] = b.source
        async with write_transaction(self.engine) as conn:
            stored = await sql.mention_conversations(conn, fresh)
            new = sorted((m for key, m in fresh.items() if key not in stored), key=_created_at)
            writes = await sql.Writes.open(conn, _NEW_ID_TABLES if new else ())
            await self._thread(writes, work, new, triaged)
            await self._write(writes, work, sent_by or {})
            await writes.insert_rows(sql.dead_letter_t, [self._dead_letter(r, now) for r in rejected])
            await writes.save_cursors(cursors, now)
            await writes.flush()
        metrics.MENTIONS_INGESTED.inc(len(work.mentions))
        metrics.DEAD_LETTERS.inc(len(rejected))
        if work.mentions:
            rows = [row for row, _ in work.mentions]
            for observer in [*self.observers, *([self.on_committed] if self.on_committed else [])]:
                observer(rows)
        if self.on_clocks:
            touched = [clock for conv in [*work.convs.values(), *work.new_convs] for clock in conv.clocks]
            if touched:
                self.on_clocks(touched)
        return len(work.mentions)

    @staticmethod
    def _dead_letter(r: Rejected, now: datetime) -> dict[str, Any]:
        return {"source": r.source, "payload": r.payload, "reason": r.reason, "created_at": now}

    async def _thread(self, writes: sql.Writes, work: Work, fresh: list[InboundMention],
                      triaged: Mapping[tuple[str, str], Triage]) -> None:
        """Attach every new mention to a conversation, creating conversations as needed."""
        conn = writes.conn
        inbound = [m for m in fresh if m.direction is _INBOUND]
        customers = await sql.customers_for(writes, self._people(inbound), work.now)
        parents = await sql.mention_conversations(
            conn, [(m.network, m.in_reply_to) for m in fresh if m.in_reply_to]
        )
        ids = {cid for cid in parents.values() if cid is not None}
        for key, row in (await sql.latest_open_conversations(conn, customers.values())).items():
            work.by_customer[key] = work.remember(row)
        for row in (await sql.conversations_by_id(conn, ids - set(work.convs))).values():
            work.remember(row)
        for cid, clocks in (await sql.running_clocks(conn, list(work.convs))).items():
            work.convs[cid].clocks = clocks
        for key, cid in parents.items():
            work.by_external[key] = work.convs.get(cid) if cid is not None else None
        since = work.now - REPEAT_WINDOW
        repeats = await sql.recent_conversation_counts(conn, customers.values(), since)
        threader, with_contacts, now = self.threader, self.triager.with_contacts, work.now
        for m in fresh:
            key = (m.network, m.external_id)
            customer_id = customers.get((m.network, m.author_id)) if m.direction is _INBOUND else None
            conv = threader.conversation_for(work, m, customer_id)
            if customer_id is not None:
                first = triaged.get(key)
                if first is None:  # not triaged ahead (cannot happen through ingest; kept for safety)
                    first = self.triager.triage(m.text, followers=m.followers, verified=m.verified, public=m.public,
                                                reposts=m.reposts, lang_hint=m.lang_hint)
                triage = with_contacts(first, repeats.get(customer_id, 0))
                if conv is None:
                    conv = threader.open(work, m, customer_id, triage)
                    if m.created_at >= since:
                        # the count read above misses conversations opened in this transaction: a later
                        # mention of this customer sees this one, as it would in a transaction of its own
                        repeats[customer_id] = repeats.get(customer_id, 0) + 1
                threader.apply_inbound(work, conv, m, triage)
                row = mention_row(m, now, customer_id, triage)
            else:
                if conv is not None:
                    threader.apply_outbound(work, conv, m)
                row = mention_row(m, now, None, None)
            if m.raw is not None:
                row["raw"] = orjson.dumps(m.raw, default=str).decode()
            work.mentions.append((row, conv))
            work.by_external[key] = conv

    @staticmethod
    def _people(inbound: list[InboundMention]) -> list[dict[str, Any]]:
        people: dict[tuple[str, str], dict[str, Any]] = {}
        for m in inbound:
            people[(m.network, m.author_id)] = {
                "network": m.network, "external_user_id": m.author_id, "handle": m.author_handle,
                "display_name": m.author_name, "followers": m.followers, "verified": m.verified,
            }
        return list(people.values())

    async def _write(self, writes: sql.Writes, work: Work, sent_by: Mapping[str, int]) -> None:
        await writes.insert_returning_ids(sql.conversation_t, [c.row for c in work.new_convs])  # sets row["id"]
        await writes.update_by_id(sql.conversation_t, [c.changes() for c in work.convs.values() if c.dirty])
        mention_rows = []
        for row, conv in work.mentions:
            row["conversation_id"] = conv.row["id"] if conv is not None else None
            if sent_by:
                row["sent_by_user_id"] = sent_by.get(row["external_id"])
            mention_rows.append(row)
        await writes.insert_mentions(mention_rows)
        await self._write_clocks(writes, work)

    @staticmethod
    async def _write_clocks(writes: sql.Writes, work: Work) -> None:
        fresh, rows, changed = [], [], []
        for conv in [*work.convs.values(), *work.new_convs]:
            for clock in conv.clocks:
                if clock.pop("new", False):
                    clock.pop("dirty", None)
                    if clock.keys() <= _NO_CLOCK_VALUES.keys():  # the usual case: a dict merge, no per-key lookup
                        row = {**_NO_CLOCK_VALUES, **clock}
                    else:
                        row = {k: clock.get(k) for k in _CLOCK_COLUMNS}
                    row["conversation_id"] = conv.row["id"]
                    fresh.append(clock)
                    rows.append(row)
                elif clock.pop("dirty", False):
                    changed.append({k: clock[k] for k in ("id", *_CLOCK_COLUMNS) if k in clock})
        for clock, clock_id in zip(fresh, await writes.insert_returning_ids(sql.clock_t, rows), strict=True):
            clock["id"] = clock_id
        await writes.update_by_id(sql.clock_t, changed)
        events = []
        for conv, event in work.events:
            clock = event.pop("clock")
            event["conversation_id"], event["clock_id"] = conv.row["id"], clock.get("id")
            events.append(event)
        await writes.insert_rows(sql.event_t, events)


def _created_at(m: InboundMention) -> datetime:
    return m.created_at


async def reply(
    pipeline: Pipeline,
    connector: Connector,
    conversation_id: int,
    text: str,
    user_id: int,
    now: Callable[[], datetime],
    public: bool | None = None,
) -> SentReply:
    """Publish an agent's reply through the conversation's connector, then record it as a response. `public`
    chooses a public reply or a private message; by default the kind of the customer's last message."""
    from carebox.errors import ReplyRejected

    target = await queries.reply_target(pipeline.engine, conversation_id)
    if target is None:
        raise NotFound(f"conversation {conversation_id}")
    conv, last = target["conversation"], target["last_inbound"]
    if last is None:
        raise NotFound(f"no customer message to answer in conversation {conversation_id}")
    if public is None:
        public = bool(last["public"])
    elif public and not last["public"]:
        raise ReplyRejected(connector.name, "a private message is answered privately (there is no public post to reply to)")
    elif not public and not getattr(connector, "private_replies", False):
        raise ReplyRejected(connector.name, f"{conv['network']} has no private replies here")
    outbound = OutboundReply(
        network=conv["network"], account=conv["account"], in_reply_to=last["external_id"], text=text,
        public=public, customer_handle=last["author_handle"], customer_id=last["author_id"],
        thread_key=conv["thread_key"],
    )
    try:
        sent = await connector.send_reply(outbound)
    except Exception:
        metrics.REPLY_FAILURES.inc()
        raise
    metrics.REPLIES_SENT.inc()
    mention = InboundMention(
        network=conv["network"], account=conv["account"], external_id=sent.external_id,
        author_id=conv["account"], author_handle=conv["account"], text=text, created_at=sent.created_at,
        direction=Direction.OUTBOUND, in_reply_to=last["external_id"], thread_key=conv["thread_key"],
        public=public, url=sent.url, raw=dict(sent.raw) or None,
    )
    await pipeline.ingest([IngestBatch(source=connector.name, mentions=(mention,))], now(), sent_by={sent.external_id: user_id})
    await actions.record_audit(pipeline.engine, now(), user_id, "reply", conversation_id, external_id=sent.external_id)
    return sent


Taken = tuple[list[Envelope], dict[tuple[str, str], Triage] | None]
STOPPED = "pipeline stopped before storing this batch"
# A batch allocates many short-lived containers: collecting the youngest generation every 700 allocations
# (Python's default) costs ~10% of the ingest's CPU with batches of 2,000 (docs/benchmarks-ingest.md).
YOUNG_GC_THRESHOLD = 50_000


class _YoungCollections:
    """Python's youngest-generation threshold, raised while any consume() loop runs in this process."""

    def __init__(self) -> None:
        self.running = 0
        self.saved = gc.get_threshold()

    @contextlib.contextmanager
    def fewer(self) -> Iterator[None]:
        if not self.running:
            self.saved = gc.get_threshold()
            gc.set_threshold(YOUNG_GC_THRESHOLD, *self.saved[1:])
        self.running += 1
        try:
            yield
        finally:
            self.running -= 1
            if not self.running:
                gc.set_threshold(*self.saved)


_young_collections = _YoungCollections()


async def consume(queue: Queue, pipeline: Pipeline, *, batch_size: int, wait_s: float, now: Callable[[], datetime]) -> None:
    """Move batches from the queue into the store until cancelled; a batch that cannot be stored is dead-lettered.

    With a triage pool, the next batch is taken and triaged on the workers while this one is written."""
    ahead: asyncio.Task[Taken] | None = None
    with _young_collections.fewer():
        try:
            while True:
                if ahead is None:
                    ahead = asyncio.create_task(_take(queue, pipeline, batch_size, wait_s))
                envelopes, triaged = await ahead
                ahead = asyncio.create_task(_take(queue, pipeline, batch_size, wait_s)) if pipeline.triage_pool else None
                metrics.QUEUE_DEPTH.set(len(queue))
                try:
                    await pipeline.ingest([e.batch for e in envelopes], now(), triaged=triaged)
                except asyncio.CancelledError:
                    queue.fail(envelopes, ConnectionAbortedError(STOPPED))  # rolled back: the producers retry
                    raise
                except Exception:
                    log.exception("ingest of %d batches failed; retrying one by one", len(envelopes))
                    for envelope in envelopes:
                        await _ingest_alone(queue, pipeline, envelope, now)
                else:
                    queue.ack(envelopes)
        finally:
            if ahead is not None:
                await _abandon(queue, ahead)


async def _take(queue: Queue, pipeline: Pipeline, batch_size: int, wait_s: float) -> Taken:
    """Take envelopes and triage them; a triage failure leaves it to `ingest` (then to dead letters)."""
    envelopes = await queue.take(batch_size, wait_s)
    try:
        return envelopes, await pipeline.pretriage([e.batch for e in envelopes])
    except asyncio.CancelledError:
        queue.fail(envelopes, ConnectionAbortedError(STOPPED))
        raise
    except Exception:  # the batch is kept: ingest triages again and reports what fails
        log.exception("triage ahead of %d batches failed; ingest will triage them", len(envelopes))
        return envelopes, None


async def _abandon(queue: Queue, ahead: asyncio.Task[Taken]) -> None:
    """On shutdown: batches taken ahead and not stored are failed (their producers retry), never dropped silently."""
    ahead.cancel()  # no effect when the take is already done
    try:
        envelopes, _ = await ahead
    except (asyncio.CancelledError, Exception):  # noqa: BLE001 - nothing was taken, or the take failed
        return
    queue.fail(envelopes, ConnectionAbortedError(STOPPED))


async def _ingest_alone(queue: Queue, pipeline: Pipeline, envelope: Envelope, now: Callable[[], datetime]) -> None:
    """Store one batch on its own; when it still fails, keep its mentions as dead letters with the reason."""
    try:
        await pipeline.ingest([envelope.batch], now())
    except Exception as err:  # noqa: BLE001
        batch = envelope.batch
        reason = f"pipeline error: {type(err).__name__}: {err}"[:500]
        dead = tuple(Rejected(batch.source, orjson.dumps(mention_to_json(m)).decode(), reason) for m in batch.mentions)
        try:
            await pipeline.ingest([IngestBatch(batch.source, (), batch.rejected + dead, batch.cursor)], now())
        except Exception as final:  # noqa: BLE001 - the store itself is failing: tell the producer
            queue.fail([envelope], final)
            return
    queue.ack([envelope])


def mention_to_json(m: InboundMention) -> dict[str, Any]:
    """A dead-letter friendly dict of a mention."""
    out = {k: getattr(m, k) for k in m.__slots__ if k != "raw"}  # type: ignore[attr-defined]
    out["created_at"] = m.created_at.isoformat()
    out["direction"] = m.direction.value
    return out
