"""SQLModel tables: the stored shape of carebox's data. No logic beyond small properties."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

MAX_ROW_ID = 2**63 - 1  # ids are BIGINT: a larger id names no row (and overflows the database driver)


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out, whatever the engine stores."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _at(*, index: bool = False, nullable: bool = True) -> Any:
    return Field(default=None, sa_type=UTCDateTime, index=index, nullable=nullable)


def utcnow() -> datetime:
    """Now, aware UTC (for defaults only; logic takes `now` as an argument)."""
    return datetime.now(UTC)


class Customer(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    display_name: str = ""
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class Identity(SQLModel, table=True):
    __table_args__ = (sa.UniqueConstraint("network", "external_user_id", name="uq_identity_network_user"),)
    id: int | None = Field(default=None, primary_key=True)
    customer_id: int = Field(foreign_key="customer.id", index=True)
    network: str
    external_user_id: str
    handle: str = ""
    display_name: str = ""
    followers: int | None = None
    verified: bool = False


class User(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(unique=True)
    display_name: str = ""
    password_hash: str
    role: str = "agent"
    language: str = "en"
    timezone: str = "Europe/Paris"
    active: bool = True
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    # JSON list of "network/account" an agent may see; [] = every account (migration 0006)
    accounts: str = Field(default="[]", sa_column_kwargs={"server_default": "[]"})


class Conversation(SQLModel, table=True):
    __table_args__ = (
        sa.Index("ix_conversation_status_due", "status", "due_business"),
        sa.Index("ix_conversation_thread", "network", "account", "customer_id", "last_inbound_at"),
    )
    id: int | None = Field(default=None, primary_key=True)
    network: str
    account: str
    source: str = ""
    customer_id: int = Field(foreign_key="customer.id", index=True)
    status: str = "open"
    priority: str = "P3"
    category: str = "other"
    cluster_key: str | None = None
    language: str | None = None
    sentiment_open: float | None = None
    sentiment_last: float | None = None
    assignee_id: int | None = Field(default=None, foreign_key="user.id", index=True)
    snippet: str = ""
    public: bool = True
    thread_key: str | None = None
    policy: str | None = None
    message_count: int = 0
    tags: str = "[]"
    incident_id: int | None = None
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    first_message_at: datetime | None = _at()
    last_message_at: datetime | None = _at()
    last_inbound_at: datetime | None = _at()
    last_outbound_at: datetime | None = _at()
    due_business: datetime | None = _at()
    due_wall: datetime | None = _at()
    first_response_at: datetime | None = _at()
    resolved_at: datetime | None = _at()


class Mention(SQLModel, table=True):
    __table_args__ = (
        sa.UniqueConstraint("network", "external_id", name="uq_mention_network_external"),
        sa.Index("ix_mention_conversation_created", "conversation_id", "created_at"),
    )
    id: int | None = Field(default=None, primary_key=True)
    network: str
    external_id: str
    account: str
    conversation_id: int | None = Field(default=None, foreign_key="conversation.id")
    customer_id: int | None = Field(default=None, foreign_key="customer.id", index=True)
    direction: str = "in"
    author_id: str = ""
    author_handle: str = ""
    author_name: str = ""
    text: str = ""
    created_at: datetime = Field(sa_type=UTCDateTime)
    ingested_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    in_reply_to: str | None = None
    thread_key: str | None = None
    language: str | None = None
    polarity: float | None = None
    category: str | None = None
    cluster_key: str | None = None
    priority: str | None = None
    public: bool = True
    followers: int | None = None
    verified: bool = False
    reposts: int = 0
    is_repost: bool = False
    automated: bool = False
    url: str | None = None
    sent_by_user_id: int | None = Field(default=None, foreign_key="user.id")
    raw: str | None = None


class SlaClock(SQLModel, table=True):
    """One running or finished target clock of a conversation (first response, next response, resolution)."""

    __table_args__ = (sa.Index("ix_slaclock_conversation", "conversation_id", "target"),)
    id: int | None = Field(default=None, primary_key=True)
    conversation_id: int = Field(foreign_key="conversation.id")
    target: str
    policy: str
    calendar: str
    calendar_version: int = 1
    started_at: datetime = Field(sa_type=UTCDateTime)
    business_due: datetime = Field(sa_type=UTCDateTime)
    wall_due: datetime = Field(sa_type=UTCDateTime)
    warn_at: datetime | None = _at()
    state: str = "running"
    paused_at: datetime | None = _at()
    paused_s: float = 0.0
    warned_at: datetime | None = _at()
    breached_at: datetime | None = _at()
    fulfilled_at: datetime | None = _at()
    business_s: float | None = None
    wall_s: float | None = None
    # a clock moved to another target (an incident policy and back, migration 0005): the target counts from
    # `rebased_at`, with `carried_s` business seconds already used
    rebased_at: datetime | None = _at()
    carried_s: float | None = None


class SlaEvent(SQLModel, table=True):
    """The log behind every SLA figure: activate, pause, resume, warn, breach, fulfil."""

    id: int | None = Field(default=None, primary_key=True)
    conversation_id: int = Field(foreign_key="conversation.id", index=True)
    clock_id: int | None = Field(default=None, foreign_key="slaclock.id")
    target: str
    kind: str
    at: datetime = Field(sa_type=UTCDateTime)
    business_s: float | None = None
    wall_s: float | None = None
    business_due: datetime | None = _at()
    wall_due: datetime | None = _at()
    detail: str = ""


class Note(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    conversation_id: int = Field(foreign_key="conversation.id", index=True)
    user_id: int = Field(foreign_key="user.id")
    text: str
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class Cursor(SQLModel, table=True):
    """Where a connector is in its source; committed with the mentions it covers."""

    connector: str = Field(primary_key=True)
    value: str
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class DeadLetter(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    source: str
    payload: str
    reason: str
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    requeued_at: datetime | None = _at()


class AuditEvent(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, index=True)
    user_id: int | None = Field(default=None, foreign_key="user.id")
    action: str
    conversation_id: int | None = Field(default=None, index=True)
    detail: str = ""


class LoginFailure(SQLModel, table=True):
    """A login attempt of the lockout window (counted before its password is checked, removed when it was right)."""

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(index=True)  # SHA-256 of "name|address": a mistyped password in the name field is not kept
    at: datetime = Field(sa_type=UTCDateTime, index=True)


# --- the inbox (issue 7): canned responses, agent profiles, API tokens, dead-letter handling ------------


class CannedResponse(SQLModel, table=True):
    """A reusable answer with {customer_name} / {agent_first_name} variables, per language."""

    id: int | None = Field(default=None, primary_key=True)
    title: str
    language: str = Field(default="en", index=True)
    body: str
    created_by: int | None = Field(default=None, foreign_key="user.id")
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class AgentProfile(SQLModel, table=True):
    """What automatic assignment knows of an agent: availability, capacity, languages, skills."""

    user_id: int = Field(foreign_key="user.id", primary_key=True)
    available: bool = False
    capacity: int = 10
    languages: str = "[]"
    skills: str = "[]"
    last_seen_at: datetime | None = _at()
    last_assigned_at: datetime | None = _at()


class ApiToken(SQLModel, table=True):
    """A Bearer token for /api/v1; only its SHA-256 is stored."""

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="user.id", index=True)
    name: str
    token_hash: str = Field(unique=True)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    last_used_at: datetime | None = _at()
    revoked_at: datetime | None = _at()


class DeadLetterHandling(SQLModel, table=True):
    """What an operator did with a dead letter: requeued or marked as handled."""

    dead_letter_id: int = Field(foreign_key="deadletter.id", primary_key=True)
    outcome: str
    user_id: int | None = Field(default=None, foreign_key="user.id")
    at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


# Inbox indexes on existing tables (declared here so migrations and metadata agree): keyset pagination of the
# saved views in due-time order, the resolved view, and the incident view.
sa.Index("ix_conversation_status_assignee_due", Conversation.__table__.c.status,  # type: ignore[attr-defined]
         Conversation.__table__.c.assignee_id, Conversation.__table__.c.due_business)  # type: ignore[attr-defined]
sa.Index("ix_conversation_status_resolved", Conversation.__table__.c.status,  # type: ignore[attr-defined]
         Conversation.__table__.c.resolved_at)  # type: ignore[attr-defined]
sa.Index("ix_conversation_incident", Conversation.__table__.c.incident_id,  # type: ignore[attr-defined]
         Conversation.__table__.c.status)  # type: ignore[attr-defined]


class Incident(SQLModel, table=True):
    """An outage cluster: complaints about one service (or a whole brand) rising together."""

    __table_args__ = (sa.Index("ix_incident_account_state", "account", "state"),)
    id: int | None = Field(default=None, primary_key=True)
    account: str
    cluster_key: str | None = None
    title: str = ""
    state: str = "open"
    severity: str = "warning"
    source: str = "detector"
    dedup_key: str = Field(unique=True)
    started_at: datetime = Field(sa_type=UTCDateTime)
    detected_at: datetime = Field(sa_type=UTCDateTime)
    acknowledged_at: datetime | None = _at()
    resolved_at: datetime | None = _at()
    peak_count: int = 0
    baseline: float = 0.0
    reason: str = ""
    series: str = "[]"
    merged_into_id: int | None = Field(default=None, foreign_key="incident.id")
    # migration 0005: the incident SLA policy its conversations are on (since policy_at, until policy_until),
    # and the incident it was split from
    policy: str | None = None
    policy_at: datetime | None = _at()
    policy_until: datetime | None = _at()
    split_from_id: int | None = None


class IncidentPolicyWindow(SQLModel, table=True):
    """One stretch of an incident's SLA policy, and who switched it on and off (migration 0010; None: carebox)."""

    id: int | None = Field(default=None, primary_key=True)
    incident_id: int = Field(foreign_key="incident.id", index=True)
    policy: str
    started_at: datetime = Field(sa_type=UTCDateTime)
    ended_at: datetime | None = _at()
    on_user_id: int | None = Field(default=None, foreign_key="user.id")
    off_user_id: int | None = Field(default=None, foreign_key="user.id")


class IncidentDelivery(SQLModel, table=True):
    """Every attempt to tell someone about an incident (or an SLA escalation): who, when, what happened."""

    id: int | None = Field(default=None, primary_key=True)
    incident_id: int | None = Field(default=None, foreign_key="incident.id", index=True)
    at: datetime = Field(sa_type=UTCDateTime)
    receiver: str
    action: str
    dedup_key: str
    attempt: int = 1
    outcome: str
    error: str = ""


class CalendarVersion(SQLModel, table=True):
    """Each version of each calendar ever configured, so a running clock can be re-planned on a new one."""

    name: str = Field(primary_key=True)
    version: int = Field(primary_key=True)
    definition: str
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class SlaEdit(SQLModel, table=True):
    """A calendar or policy saved from the web: each save is a new version that overrides the config file."""

    __table_args__ = (sa.UniqueConstraint("kind", "name", "version"),)

    id: int | None = Field(default=None, primary_key=True)
    kind: str  # "calendar" or "policy"
    name: str
    version: int
    definition: str  # the table as it would be written in the config file, as JSON
    created_by: int | None = Field(default=None, foreign_key="user.id")
    created_at: datetime = Field(sa_type=UTCDateTime)


# --- report facts (issue 8): what reports read instead of conversations (carebox/store/report_facts.py) -------


ROWID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # a BIGINT key on SQLite would not be the rowid


class ConversationFact(SQLModel, table=True):
    """One conversation as the report sees it, on the report calendar, refreshed from watermarks (no FK: the
    retention purge may delete the conversation first; the refresh then drops the row)."""

    __tablename__ = "conversation_facts"
    conversation_id: int = Field(primary_key=True, sa_type=ROWID, sa_column_kwargs={"autoincrement": False})
    first_at: datetime = Field(sa_type=UTCDateTime)  # first message (the period is `since <= first_at < until`)
    day: int  # local day number on the report calendar
    week: int  # local day number of that week's Monday
    how: int  # local hour of week, 0 = Monday 00:00
    off: int  # 1 when the first message arrived outside service hours
    account: str
    network: str
    agent: str
    priority: str
    category: str
    language: str
    customer_id: int = Field(sa_type=sa.BigInteger)
    incident_id: int | None = Field(default=None, sa_type=sa.BigInteger)
    inc: int  # 1 when linked to an incident
    answered: int
    met: int
    late: int  # contract, answered after the business due time
    open_contract: int  # contract, first-response clock running (breached once its due time passes)
    within: int  # answered within the customer expectation (wall clock)
    wall_s: float | None = None
    business_s: float | None = None
    pending_due: datetime | None = _at()  # business due time of a running contract clock
    unanswered_at: datetime | None = _at()  # first message of an unanswered conversation
    sentiment_open: float | None = None
    sentiment_last: float | None = None
    resolution_s: float | None = None
    res_business_s: float | None = None
    nrt_n: int = 0
    nrt_wall_sum: float | None = None
    nrt_business_sum: float | None = None


class ReportNextResponse(SQLModel, table=True):
    """A fulfilled next-response clock of a conversation in conversation_facts (for its percentiles)."""

    __tablename__ = "report_next_responses"
    clock_id: int = Field(primary_key=True, sa_type=ROWID, sa_column_kwargs={"autoincrement": False})
    conversation_id: int = Field(sa_type=sa.BigInteger, index=True)
    wall_s: float | None = None
    business_s: float | None = None


class ReportCell(SQLModel, table=True):
    """Additive sums of conversation_facts per (dimension, value, local day, incident flag)."""

    __tablename__ = "report_cells"
    dim: str = Field(primary_key=True)
    value: str = Field(primary_key=True)
    day: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    inc: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    conversations: int = 0
    answered: int = 0
    n_wall: int = 0
    wall_sum: float | None = None
    n_business: int = 0
    business_sum: float | None = None
    met: int = 0
    late: int = 0
    open_contract: int = 0
    within: int = 0
    off: int = 0
    off_answered: int = 0
    off_wait: float | None = None
    wait_outside: float | None = None
    sent_open_n: int = 0
    sent_open_sum: float | None = None
    sent_last_n: int = 0
    sent_last_sum: float | None = None
    resolved: int = 0
    resolution_sum: float | None = None
    res_business_n: int = 0
    res_business_sum: float | None = None
    nrt_n: int = 0
    nrt_wall_sum: float | None = None
    nrt_business_sum: float | None = None
    net_min: str | None = None
    net_max: str | None = None


class ReportFactsState(SQLModel, table=True):
    """Where the facts refresh stands: the settings fingerprint and the last ids it has read."""

    __tablename__ = "report_facts_state"
    id: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    fingerprint: str
    conversation_wm: int = Field(default=0, sa_type=sa.BigInteger)
    mention_wm: int = Field(default=0, sa_type=sa.BigInteger)
    slaevent_wm: int = Field(default=0, sa_type=sa.BigInteger)
    auditevent_wm: int = Field(default=0, sa_type=sa.BigInteger)
    conversations: int = Field(default=0, sa_type=sa.BigInteger)  # conversation rows then (a drop means deletions)
    refreshed_at: datetime = Field(sa_type=UTCDateTime)


# Indexes of conversation_facts: one walk per percentile along (group, clock); `day` and `inc` ride along so
# that a period or the incident filter is checked inside the index.
REPORT_FACT_WALKS = {
    "": ("wall_s", "business_s", "resolution_s", "res_business_s", "customer_id"),
    **{d: ("wall_s", "business_s", "resolution_s", "res_business_s", "customer_id")
       for d in ("account", "network", "agent", "priority", "category", "language")},
    "day": ("wall_s", "business_s"), "week": ("wall_s", "business_s"), "how": ("wall_s",),
}
_facts = ConversationFact.__table__  # type: ignore[attr-defined]
# Partial where the column may be NULL (every query on them says `IS NOT NULL` or compares): a conversation not yet
# answered or resolved writes no entry there. ix_cf_day_wall_s stays whole: it also finds the rows of a day.
for _dim, _cols in REPORT_FACT_WALKS.items():
    for _col in _cols:
        sa.Index(f"ix_cf_{_dim or 'all'}_{_col}", *[_facts.c[c] for c in dict.fromkeys((_dim, _col, "day", "inc")) if c],
                 sqlite_where=(_facts.c[_col].is_not(None) if _facts.c[_col].nullable and (_dim, _col) != ("day", "wall_s")
                               else None))
sa.Index("ix_cf_pending_due", _facts.c.pending_due, sqlite_where=_facts.c.pending_due.is_not(None))
sa.Index("ix_cf_unanswered_at", _facts.c.unanswered_at, sqlite_where=_facts.c.unanswered_at.is_not(None))
sa.Index("ix_cf_incident", _facts.c.incident_id, sqlite_where=_facts.c.incident_id.is_not(None))
