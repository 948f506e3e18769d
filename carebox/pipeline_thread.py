"""Threading in memory: which conversation a new mention joins, and how it starts, resumes or stops SLA clocks."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, NamedTuple, Protocol

from carebox.ports import InboundMention, Status
from carebox.triage import Triage

SNIPPET = 280
UNKNOWN_ACCOUNT = "unknown"
FIRST_RESPONSE, NEXT_RESPONSE = "first_response", "next_response"
_OPEN, _RESOLVED = Status.OPEN.value, Status.RESOLVED.value


class ClockPlan(NamedTuple):
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
class Conv:
    """A conversation row being changed by this transaction, with its unfinished clocks."""

    row: dict[str, Any]
    new: bool = False
    dirty: bool = False
    clocks: list[dict[str, Any]] = field(default_factory=list)
    stored: dict[str, Any] = field(default_factory=dict)  # the row as read, for `changes`

    def changes(self) -> dict[str, Any]:
        """The id and the columns this transaction changed: an UPDATE that leaves the other columns out does
        not rewrite the indexes that hold only those (the conversation table has seven)."""
        stored = self.stored
        return {"id": self.row["id"], **{k: v for k, v in self.row.items() if stored[k] != v}}


@dataclass(slots=True)
class Work:
    """Everything one ingest transaction reads and writes."""

    now: datetime
    sources: dict[tuple[str, str], str] = field(default_factory=dict)
    convs: dict[int, Conv] = field(default_factory=dict)
    new_convs: list[Conv] = field(default_factory=list)
    by_customer: dict[tuple[str, str, int], Conv] = field(default_factory=dict)
    by_external: dict[tuple[str, str], Conv | None] = field(default_factory=dict)
    mentions: list[tuple[dict[str, Any], Conv | None]] = field(default_factory=list)
    events: list[tuple[Conv, dict[str, Any]]] = field(default_factory=list)

    def remember(self, row: dict[str, Any]) -> Conv:
        """The stored conversation `row`, tracked once per id."""
        conv = self.convs.get(row["id"])
        if conv is None:
            conv = self.convs[row["id"]] = Conv(row, stored=dict(row))
        return conv


def _due(conv: Conv) -> None:
    """The conversation's due times: the earliest of its unfinished clocks."""
    running = [c for c in conv.clocks if c.get("fulfilled_at") is None]
    if running:
        conv.row["due_business"] = min(c["business_due"] for c in running)
        conv.row["due_wall"] = min(c["wall_due"] for c in running)


class Threader:
    """Attach mentions to conversations and run their clocks, in memory (the store reads and writes around it)."""

    def __init__(self, clocks: ClockPlanner, quiet_gap: timedelta) -> None:
        self.clocks = clocks
        self.quiet_gap = quiet_gap

    def conversation_for(self, work: Work, m: InboundMention, customer_id: int | None) -> Conv | None:
        """Reply-to chain first; otherwise the same customer, network and account within the quiet gap."""
        if m.in_reply_to:
            parent = work.by_external.get((m.network, m.in_reply_to))
            if parent is not None:
                return parent
        if customer_id is None:
            return None
        conv = work.by_customer.get((m.network, m.account, customer_id))
        if conv is None or conv.row["status"] == _RESOLVED:
            return None
        last = conv.row["last_message_at"] or conv.row["created_at"]
        return conv if m.created_at - last <= self.quiet_gap else None

    def open(self, work: Work, m: InboundMention, customer_id: int, triage: Triage) -> Conv:
        """A new conversation opened by this customer message."""
        row = {
            "network": m.network, "account": m.account,
            "source": work.sources.get((m.network, m.external_id), ""), "customer_id": customer_id,
            "status": _OPEN, "priority": triage.priority.value, "category": triage.category.value,
            "cluster_key": triage.cluster_key, "language": triage.language, "sentiment_open": triage.polarity,
            "sentiment_last": triage.polarity, "assignee_id": None, "snippet": m.text[:SNIPPET],
            "public": m.public, "thread_key": m.thread_key, "policy": None, "message_count": 0, "tags": "[]",
            "incident_id": None, "created_at": work.now, "first_message_at": None, "last_message_at": None,
            "last_inbound_at": None, "last_outbound_at": None, "due_business": None, "due_wall": None,
            "first_response_at": None, "resolved_at": None,
        }
        conv = Conv(row, new=True)
        work.new_convs.append(conv)
        work.by_customer[(m.network, m.account, customer_id)] = conv
        return conv

    def apply_inbound(self, work: Work, conv: Conv, m: InboundMention, triage: Triage) -> None:
        """A customer message: counts, tone, priority, category; reopens, resumes or starts clocks."""
        row = conv.row
        conv.dirty = True
        at = m.created_at
        row["message_count"] += 1
        last = row["last_message_at"]
        row["last_message_at"] = at if last is None or at > last else last
        row["last_inbound_at"] = at
        row["sentiment_last"] = triage.polarity
        priority = triage.priority.value
        if row["priority"] is None or priority < row["priority"]:
            row["priority"] = priority
        if row["category"] in ("other", "praise"):
            category = triage.category.value
            if category not in ("other", "spam"):
                row["category"], row["cluster_key"] = category, triage.cluster_key
        row["snippet"] = m.text[:SNIPPET]
        if row["status"] != _OPEN:
            row["status"], row["resolved_at"] = _OPEN, None
            self._resume_clocks(work, conv, at)
        if row["first_message_at"] is None:
            row["first_message_at"] = at
            self._start_clock(work, conv, self.clocks.start(FIRST_RESPONSE, row, at))
        elif row["last_outbound_at"] is not None and not any(c.get("fulfilled_at") is None for c in conv.clocks):
            # the customer writes again after an agent's reply: the next-response clock starts
            self._start_clock(work, conv, self.clocks.start(NEXT_RESPONSE, row, at))

    def _resume_clocks(self, work: Work, conv: Conv, at: datetime) -> None:
        """The customer answered while the conversation was pending: its paused clocks run again."""
        for clock in conv.clocks:
            if clock.get("paused_at") is not None and clock.get("fulfilled_at") is None:
                clock.update(self.clocks.resumed(clock, at), dirty=True)
                work.events.append((conv, {"target": clock["target"], "kind": "resume", "at": at,
                                           "business_due": clock["business_due"], "wall_due": clock["wall_due"],
                                           "business_s": None, "wall_s": None, "detail": "customer wrote",
                                           "clock": clock}))
        _due(conv)

    @staticmethod
    def _start_clock(work: Work, conv: Conv, plan: ClockPlan) -> None:
        clock = {
            "target": plan.target, "policy": plan.policy, "calendar": plan.calendar,
            "calendar_version": plan.calendar_version, "started_at": plan.started_at,
            "business_due": plan.business_due, "wall_due": plan.wall_due, "warn_at": plan.warn_at,
            "state": "running", "paused_s": 0.0, "new": True,
        }
        conv.clocks.append(clock)
        conv.row["policy"] = plan.policy
        _due(conv)
        work.events.append((conv, {"target": plan.target, "kind": "activate", "at": plan.started_at,
                                   "business_due": plan.business_due, "wall_due": plan.wall_due,
                                   "business_s": 0.0, "wall_s": 0.0, "detail": f"policy {plan.policy}", "clock": clock}))

    def apply_outbound(self, work: Work, conv: Conv, m: InboundMention) -> None:
        """A brand message: counts; when it counts as a response, fulfils the clocks it answers."""
        row = conv.row
        conv.dirty = True
        row["message_count"] += 1
        last = row["last_message_at"]
        row["last_message_at"] = m.created_at if last is None or m.created_at > last else last
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


def mention_row(m: InboundMention, now: datetime, customer_id: int | None, triage: Triage | None) -> dict[str, Any]:
    """The mention table row of `m` (its `raw` payload still to be encoded, its conversation still to be set)."""
    if triage is None:
        language = polarity = category = cluster_key = priority = None
    else:
        language, polarity, cluster_key = triage.language, triage.polarity, triage.cluster_key
        category, priority = triage.category.value, triage.priority.value
    return {
        "network": m.network, "external_id": m.external_id, "account": m.account,
        "customer_id": customer_id, "direction": m.direction.value, "author_id": m.author_id,
        "author_handle": m.author_handle, "author_name": m.author_name, "text": m.text,
        "created_at": m.created_at, "ingested_at": now, "in_reply_to": m.in_reply_to,
        "thread_key": m.thread_key, "language": language, "polarity": polarity, "category": category,
        "cluster_key": cluster_key, "priority": priority, "public": m.public,
        "followers": m.followers, "verified": m.verified, "reposts": m.reposts, "is_repost": m.is_repost,
        "automated": m.automated, "url": m.url, "sent_by_user_id": None, "raw": m.raw,
    }
