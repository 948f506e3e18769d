"""Async use cases: ingest a batch (dedup, thread, triage, SLA clocks, store) and answer from the inbox."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

import orjson
from sqlalchemy.ext.asyncio import AsyncEngine

from carebox import metrics
from carebox.errors import NotFound
from carebox.ports import (
    Connector,
    Direction,
    InboundMention,
    IngestBatch,
    OutboundReply,
    Rejected,
    SentReply,
    Status,
)
from carebox.queue import Envelope, Queue
from carebox.store import actions, queries
from carebox.store import ingest as sql
from carebox.store.engine import write_transaction
from carebox.triage import Triage, TriageInput, Triager
from carebox.triage_pool import TriagePool

log = logging.getLogger(__name__)
SNIPPET = 280
UNKNOWN_ACCOUNT = "unknown"
FIRST_RESPONSE, NEXT_RESPONSE = "first_response", "next_response"
REPEAT_WINDOW = timedelta(days=7)


@dataclass(frozen=True, slots=True)
class ClockPlan:
    """A started SLA clock: which policy and calendar, and when it falls due on both clocks."""

    target: str
    policy: str
    calendar: str
    calendar_version: int
    started_at: datetime
    business_due: datetime
    wall_due: datetime
    warn_at: datetime | None


class ClockPlanner(Protocol):
    """What the pipeline needs from the SLA engine."""

    def start(self, target: str, conversation: Mapping[str, Any], started_at: datetime) -> ClockPlan:
        """Plan a "first_response" or "next_response" clock started by a customer message at `started_at`."""

    def elapsed(self, clock: Mapping[str, Any], end: datetime) -> tuple[float, float]:
        """(business seconds, wall seconds) a clock ran from its start to `end`, pauses excluded."""

    def counts_as_response(self, mention: InboundMention) -> bool:
        """Whether a brand message stops the first-response clock."""

    def resumed(self, clock: Mapping[str, Any], now: datetime) -> dict[str, Any]:
        """A paused clock's new values when it resumes at `now` (the customer wrote while pending)."""


@dataclass(slots=True)
class _Conv:
    row: dict[str, Any]
    new: bool = False
    dirty: bool = False
    clocks: list[dict[str, Any]] = field(default_factory=list)


@dataclass(slots=True)
class _Work:
    """Everything one ingest transaction reads and writes."""

    now: datetime
    sources: dict[tuple[str, str], str] = field(default_factory=dict)
    convs: dict[int, _Conv] = field(default_factory=dict)
    new_convs: list[_Conv] = field(default_factory=list)
    by_customer: dict[tuple[str, str, int], _Conv] = field(default_factory=dict)
    by_external: dict[tuple[str, str], _Conv | None] = field(default_factory=dict)
    mentions: list[tuple[dict[str, Any], _Conv | None]] = field(default_factory=list)
    events: list[tuple[_Conv, dict[str, Any]]] = field(default_factory=list)


def _priority_min(a: str | None, b: str) -> str:
    return b if a is None else min(a, b)


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
        self.on_committed = on_committed
        self.observers: list[Callable[[list[dict[str, Any]]], None]] = []
        self.on_clocks = on_clocks

    async def pretriage(self, batches: Sequence[IngestBatch]) -> dict[tuple[str, str], Triage]:
        """First-contact triage of the batches' inbound mentions, on the pool's workers when there is one."""
        inbound: dict[tuple[str, str], InboundMention] = {}
        for b in batches:
            for m in b.mentions:
                if m.direction is Direction.INBOUND:
                    inbound.setdefault((m.network, m.external_id), m)
        items = [TriageInput(m.text, m.followers, m.verified, m.public, m.reposts, 0, m.lang_hint)
                 for m in inbound.values()]
        if self.triage_pool is None:
            return dict(zip(inbound, self.triager.triage_many(items), strict=True))
        return dict(zip(inbound, await self.triage_pool.triage_many(items), strict=True))

    async def ingest(self, batches: Sequence[IngestBatch], now: datetime, *, sent_by: Mapping[str, int] | None = None,
                     triaged: Mapping[tuple[str, str], Triage] | None = None) -> int:
        """Store a group of batches in one transaction with their cursors; returns the mentions added.

        Triage runs before the transaction (`triaged`, from `pretriage`, when the caller did it ahead), so
        the write lock is held for the look-ups and inserts only."""
        if triaged is None:
            triaged = await self.pretriage(batches)
        cursors = {b.source: b.cursor for b in batches if b.cursor is not None}
        rejected = [r for b in batches for r in b.rejected]
        fresh = self._dedup_in_batch([m for b in batches for m in b.mentions])
        work = _Work(now=now, sources={(m.network, m.external_id): b.source for b in batches for m in b.mentions})
        async with write_transaction(self.engine) as conn:
            stored = await sql.mention_conversations(conn, [(m.network, m.external_id) for m in fresh])
            fresh = [m for m in fresh if (m.network, m.external_id) not in stored]
            fresh.sort(key=lambda m: m.created_at)
            await self._thread(conn, work, fresh, triaged)
            await self._write(conn, work, sent_by or {})
            await sql.insert_rows(conn, sql.dead_letter_t, [self._dead_letter(r, now) for r in rejected])
            await sql.save_cursors(conn, cursors, now)
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
    def _dedup_in_batch(mentions: list[InboundMention]) -> list[InboundMention]:
        seen: dict[tuple[str, str], InboundMention] = {}
        for m in mentions:
            seen.setdefault((m.network, m.external_id), m)
        return list(seen.values())

    @staticmethod
    def _dead_letter(r: Rejected, now: datetime) -> dict[str, Any]:
        return {"source": r.source, "payload": r.payload, "reason": r.reason, "created_at": now}

    async def _thread(self, conn: Any, work: _Work, fresh: list[InboundMention],
                      triaged: Mapping[tuple[str, str], Triage]) -> None:
        """Attach every new mention to a conversation, creating conversations as needed."""
        inbound = [m for m in fresh if m.direction is Direction.INBOUND]
        customers = await sql.customers_for(conn, self._people(inbound), work.now)
        parents = await sql.mention_conversations(
            conn, [(m.network, m.in_reply_to) for m in fresh if m.in_reply_to]
        )
        ids = {cid for cid in parents.values() if cid is not None}
        for key, row in (await sql.latest_open_conversations(conn, customers.values())).items():
            conv = self._remember(work, row)
            work.by_customer[key] = conv
        for cid, row in (await sql.conversations_by_id(conn, ids - set(work.convs))).items():
            self._remember(work, row)
        for cid, clocks in (await sql.running_clocks(conn, list(work.convs))).items():
            work.convs[cid].clocks = clocks
        for key, cid in parents.items():
            work.by_external[key] = work.convs.get(cid) if cid is not None else None
        repeats = await sql.recent_conversation_counts(conn, customers.values(), work.now - REPEAT_WINDOW)
        for m in fresh:
            customer_id = customers.get((m.network, m.author_id)) if m.direction is Direction.INBOUND else None
            conv = self._conversation_for(work, m, customer_id)
            if m.direction is Direction.INBOUND and customer_id is not None:
                first = triaged.get((m.network, m.external_id))
                if first is None:  # not triaged ahead (cannot happen through ingest; kept for safety)
                    first = self.triager.triage(m.text, followers=m.followers, verified=m.verified, public=m.public,
                                                reposts=m.reposts, lang_hint=m.lang_hint)
                triage = self.triager.with_contacts(first, repeats.get(customer_id, 0))
                if conv is None:
                    conv = self._open(work, m, customer_id, triage)
                self._apply_inbound(work, conv, m, triage)
                work.mentions.append((self._mention_row(m, work.now, customer_id, triage), conv))
            else:
                if conv is not None:
                    self._apply_outbound(work, conv, m)
                work.mentions.append((self._mention_row(m, work.now, None, None), conv))
            work.by_external[(m.network, m.external_id)] = conv

    @staticmethod
    def _people(inbound: list[InboundMention]) -> list[dict[str, Any]]:
        people: dict[tuple[str, str], dict[str, Any]] = {}
        for m in inbound:
            people[(m.network, m.author_id)] = {
                "network": m.network, "external_user_id": m.author_id, "handle": m.author_handle,
                "display_name": m.author_name, "followers": m.followers, "verified": m.verified,
            }
        return list(people.values())

    @staticmethod
    def _remember(work: _Work, row: dict[str, Any]) -> _Conv:
        conv = work.convs.get(row["id"])
        if conv is None:
            conv = work.convs[row["id"]] = _Conv(row)
        return conv

    def _conversation_for(self, work: _Work, m: InboundMention, customer_id: int | None) -> _Conv | None:
        """Reply-to chain first; otherwise the same customer, network and account within the quiet gap."""
        if m.in_reply_to:
            parent = work.by_external.get((m.network, m.in_reply_to))
            if parent is not None:
                return parent
        if customer_id is None:
            return None
        conv = work.by_customer.get((m.network, m.account, customer_id))
        if conv is None or conv.row["status"] == Status.RESOLVED:
            return None
        last = conv.row["last_message_at"] or conv.row["created_at"]
        return conv if m.created_at - last <= self.quiet_gap else None

    def _open(self, work: _Work, m: InboundMention, customer_id: int, triage: Triage) -> _Conv:
        row = {
            "network": m.network, "account": m.account,
            "source": work.sources.get((m.network, m.external_id), ""), "customer_id": customer_id,
            "status": Status.OPEN.value, "priority": triage.priority.value, "category": triage.category.value,
            "cluster_key": triage.cluster_key, "language": triage.language, "sentiment_open": triage.polarity,
            "sentiment_last": triage.polarity, "assignee_id": None, "snippet": m.text[:SNIPPET],
            "public": m.public, "thread_key": m.thread_key, "policy": None, "message_count": 0, "tags": "[]",
            "incident_id": None, "created_at": work.now, "first_message_at": None, "last_message_at": None,
            "last_inbound_at": None, "last_outbound_at": None, "due_business": None, "due_wall": None,
            "first_response_at": None, "resolved_at": None,
        }
        conv = _Conv(row, new=True)
        work.new_convs.append(conv)
        work.by_customer[(m.network, m.account, customer_id)] = conv
        return conv

    def _apply_inbound(self, work: _Work, conv: _Conv, m: InboundMention, triage: Triage) -> None:
        row = conv.row
        conv.dirty = True
        row["message_count"] += 1
        row["last_message_at"] = max(filter(None, (row["last_message_at"], m.created_at)))
        row["last_inbound_at"] = m.created_at
        row["sentiment_last"] = triage.polarity
        row["priority"] = _priority_min(row["priority"], triage.priority.value)
        if row["category"] in ("other", "praise") and triage.category.value not in ("other", "spam"):
            row["category"], row["cluster_key"] = triage.category.value, triage.cluster_key
        row["snippet"] = m.text[:SNIPPET]
        if row["status"] != Status.OPEN:
            row["status"], row["resolved_at"] = Status.OPEN.value, None
            self._resume_clocks(work, conv, m.created_at)
        if row["first_message_at"] is None:
            row["first_message_at"] = m.created_at
            self._start_clock(work, conv, self.clocks.start(FIRST_RESPONSE, row, m.created_at))
        elif row["last_outbound_at"] is not None and not any(c.get("fulfilled_at") is None for c in conv.clocks):
            # the customer writes again after an agent's reply: the next-response clock starts
            self._start_clock(work, conv, self.clocks.start(NEXT_RESPONSE, row, m.created_at))

    def _resume_clocks(self, work: _Work, conv: _Conv, at: datetime) -> None:
        """The customer answered while the conversation was pending: its paused clocks run again."""
        for clock in conv.clocks:
            if clock.get("paused_at") is not None and clock.get("fulfilled_at") is None:
                clock.update(self.clocks.resumed(clock, at), dirty=True)
                work.events.append((conv, {"target": clock["target"], "kind": "resume", "at": at,
                                           "business_due": clock["business_due"], "wall_due": clock["wall_due"],
                                           "business_s": None, "wall_s": None, "detail": "customer wrote",
                                           "clock": clock}))
        running = [c for c in conv.clocks if c.get("fulfilled_at") is None]
        if running:
            conv.row["due_business"] = min(c["business_due"] for c in running)
            conv.row["due_wall"] = min(c["wall_due"] for c in running)

    def _start_clock(self, work: _Work, conv: _Conv, plan: ClockPlan) -> None:
        clock = {
            "target": plan.target, "policy": plan.policy, "calendar": plan.calendar,
            "calendar_version": plan.calendar_version, "started_at": plan.started_at,
            "business_due": plan.business_due, "wall_due": plan.wall_due, "warn_at": plan.warn_at,
            "state": "running", "paused_s": 0.0, "new": True,
        }
        conv.clocks.append(clock)
        conv.row["policy"] = plan.policy
        running = [c for c in conv.clocks if c.get("fulfilled_at") is None]
        conv.row["due_business"] = min(c["business_due"] for c in running)
        conv.row["due_wall"] = min(c["wall_due"] for c in running)
        work.events.append((conv, {"target": plan.target, "kind": "activate", "at": plan.started_at,
                                   "business_due": plan.business_due, "wall_due": plan.wall_due,
                                   "business_s": 0.0, "wall_s": 0.0, "detail": f"policy {plan.policy}", "clock": clock}))

    def _apply_outbound(self, work: _Work, conv: _Conv, m: InboundMention) -> None:
        row = conv.row
        conv.dirty = True
        row["message_count"] += 1
        row["last_message_at"] = max(filter(None, (row["last_message_at"], m.created_at)))
        row["last_outbound_at"] = m.created_at
        if row["account"] == UNKNOWN_ACCOUNT:
            row["account"] = m.account  # e.g. a TWCS opener that named no brand: the brand that answers owns it
        if not self.clocks.counts_as_response(m):
            return
        for clock in conv.clocks:
            if clock.get("fulfilled_at") is None and clock["started_at"] <= m.created_at:
                business_s, wall_s = self.clocks.elapsed(clock, m.created_at)
                clock.update(fulfilled_at=m.created_at, business_s=business_s, wall_s=wall_s, state="fulfilled",
                             dirty=True)
                work.events.append((conv, {"target": clock["target"], "kind": "fulfil", "at": m.created_at,
                                           "business_s": business_s, "wall_s": wall_s,
                                           "business_due": clock["business_due"], "wall_due": clock["wall_due"],
                                           "detail": f"response {m.external_id}", "clock": clock}))
        if row["first_response_at"] is None:
            row["first_response_at"] = m.created_at
        row["due_business"] = row["due_wall"] = None

    @staticmethod
    def _mention_row(m: InboundMention, now: datetime, customer_id: int | None, triage: Triage | None) -> dict[str, Any]:
        return {
            "network": m.network, "external_id": m.external_id, "account": m.account,
            "customer_id": customer_id, "direction": m.direction.value, "author_id": m.author_id,
            "author_handle": m.author_handle, "author_name": m.author_name, "text": m.text,
            "created_at": m.created_at, "ingested_at": now, "in_reply_to": m.in_reply_to,
            "thread_key": m.thread_key, "language": triage.language if triage else None,
            "polarity": triage.polarity if triage else None,
            "category": triage.category.value if triage else None,
            "cluster_key": triage.cluster_key if triage else None,
            "priority": triage.priority.value if triage else None, "public": m.public,
            "followers": m.followers, "verified": m.verified, "reposts": m.reposts, "is_repost": m.is_repost,
            "automated": m.automated, "url": m.url, "sent_by_user_id": None,
            "raw": orjson.dumps(m.raw, default=str).decode() if m.raw is not None else None,
        }

    async def _write(self, conn: Any, work: _Work, sent_by: Mapping[str, int]) -> None:
        new_rows = [c.row for c in work.new_convs]
        for conv, cid in zip(work.new_convs, await sql.insert_returning_ids(conn, sql.conversation_t, new_rows)):
            conv.row["id"] = cid
        await sql.update_by_id(conn, sql.conversation_t, [c.row for c in work.convs.values() if c.dirty])
        mention_rows = []
        for row, conv in work.mentions:
            row["conversation_id"] = conv.row["id"] if conv is not None else None
            row["sent_by_user_id"] = sent_by.get(row["external_id"])
            mention_rows.append(row)
        await sql.insert_mentions(conn, mention_rows)
        await self._write_clocks(conn, work)

    async def _write_clocks(self, conn: Any, work: _Work) -> None:
        columns = set(sql.clock_t.c.keys()) - {"id"}
        fresh, changed = [], []
        for conv in [*work.convs.values(), *work.new_convs]:
            for clock in conv.clocks:
                if clock.pop("new", False):
                    clock.pop("dirty", None)
                    fresh.append((clock, {**{k: clock.get(k) for k in columns}, "conversation_id": conv.row["id"]}))
                elif clock.pop("dirty", False):
                    changed.append({k: v for k, v in clock.items() if k in columns or k == "id"})
        for (clock, _), clock_id in zip(fresh, await sql.insert_returning_ids(conn, sql.clock_t, [r for _, r in fresh]), strict=True):
            clock["id"] = clock_id
        await sql.update_by_id(conn, sql.clock_t, changed)
        events = []
        for conv, event in work.events:
            clock = event.pop("clock")
            events.append({**event, "conversation_id": conv.row["id"], "clock_id": clock.get("id")})
        await sql.insert_rows(conn, sql.event_t, events)


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


async def consume(queue: Queue, pipeline: Pipeline, *, batch_size: int, wait_s: float, now: Callable[[], datetime]) -> None:
    """Move batches from the queue into the store until cancelled; a batch that cannot be stored is dead-lettered.

    With a triage pool, the next batch is taken and triaged on the workers while this one is written."""
    ahead: asyncio.Task[Taken] | None = None
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
