"""Boundary types: the enums and frozen dataclasses that cross between carebox and its adapters.

Standard library only, so the pure rule modules may import it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol


class Direction(StrEnum):
    """Who wrote a mention: the customer (inbound) or the brand (outbound)."""

    INBOUND = "in"
    OUTBOUND = "out"


class Status(StrEnum):
    """Conversation status; `pending` means waiting on the customer."""

    OPEN = "open"
    PENDING = "pending"
    RESOLVED = "resolved"


class Priority(StrEnum):
    """P1 is the most urgent."""

    P1 = "P1"
    P2 = "P2"
    P3 = "P3"
    P4 = "P4"


class Category(StrEnum):
    """What a customer message is about, as triage sees it."""

    OUTAGE = "outage"
    COMPLAINT = "complaint"
    QUESTION = "question"
    PRAISE = "praise"
    SPAM = "spam"
    OTHER = "other"


class Role(StrEnum):
    """Agents answer and assign; managers also edit policies and see reports; admins manage users."""

    AGENT = "agent"
    MANAGER = "manager"
    ADMIN = "admin"


@dataclass(frozen=True, slots=True)
class InboundMention:
    """One post or message read from a network, normalised; `created_at` is timezone-aware UTC.

    `direction` is OUTBOUND for the brand's own posts seen on the network (e.g. replies made
    outside carebox, or the brand side of a replayed TWCS file): they count as responses.
    """

    network: str
    account: str
    external_id: str
    author_id: str
    author_handle: str
    text: str
    created_at: datetime
    direction: Direction = Direction.INBOUND
    in_reply_to: str | None = None
    thread_key: str | None = None
    author_name: str = ""
    public: bool = True
    followers: int | None = None
    verified: bool = False
    reposts: int = 0
    is_repost: bool = False
    automated: bool = False
    lang_hint: str | None = None
    url: str | None = None
    raw: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Rejected:
    """A payload a connector could not parse: it is stored as a dead letter with its reason."""

    source: str
    payload: str
    reason: str


@dataclass(frozen=True, slots=True)
class IngestBatch:
    """What a connector hands to the queue: mentions, rejects, and the cursor they bring it to.

    The cursor is committed in the same transaction as the mentions it covers.
    """

    source: str
    mentions: tuple[InboundMention, ...] = ()
    rejected: tuple[Rejected, ...] = ()
    cursor: str | None = None


@dataclass(frozen=True, slots=True)
class OutboundReply:
    """A reply an agent asks a connector to publish."""

    network: str
    account: str
    in_reply_to: str
    text: str
    public: bool = True
    customer_handle: str = ""
    customer_id: str = ""
    thread_key: str | None = None


@dataclass(frozen=True, slots=True)
class SentReply:
    """The network's confirmation of a published reply."""

    external_id: str
    created_at: datetime
    url: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict)


class MentionSink(Protocol):
    """Where connectors put what they read (the queue)."""

    async def put(self, batch: IngestBatch) -> None:
        """Enqueue a batch; returns when the queue has taken it (not yet durable)."""

    async def put_durable(self, batch: IngestBatch) -> None:
        """Enqueue a batch and return only once it is durable (for webhooks answering 2xx)."""


class Connector(Protocol):
    """An adapter to one account on one network: reads mentions, publishes replies."""

    name: str
    network: str
    account: str

    async def run(self, sink: MentionSink, cursor: str | None) -> None:
        """Read mentions from `cursor` on and put them into `sink` until cancelled."""

    async def send_reply(self, reply: OutboundReply) -> SentReply:
        """Publish a reply; raise a ConnectorError subclass when the network refuses or fails."""


@dataclass(frozen=True, slots=True)
class Notification:
    """Something to tell people outside the inbox: an SLA escalation or an incident alert."""

    key: str
    title: str
    body: str
    severity: str = "warning"
    action: str = "trigger"
    url: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)


class Notifier(Protocol):
    """Delivers notifications (in-app, webhook, Slack, PagerDuty, e-mail)."""

    name: str

    async def send(self, notification: Notification) -> None:
        """Deliver one notification; raise a ConnectorError subclass on failure."""
