"""SLA policies: targets, matching, what counts as a response, the escalation ladder, the settings."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from carebox.calendar import ALWAYS_OPEN, Calendar


class TargetKind(StrEnum):
    """Which promise a clock measures."""

    FIRST_RESPONSE = "first_response"
    NEXT_RESPONSE = "next_response"
    RESOLUTION = "resolution"
    CUSTOMER_EXPECTATION = "customer_expectation"


class ReplyKind(StrEnum):
    """How an outbound message was sent; only some count as a response."""

    PUBLIC = "public"
    PRIVATE = "private"
    AUTOMATED = "automated"
    NOTE = "note"


class Trigger(StrEnum):
    """What starts an escalation step."""

    WARNING = "warning"
    BREACH = "breach"


@dataclass(frozen=True, slots=True)
class Target:
    """One promise: `seconds` of time on a named calendar (None = 24/7), warned `warn lead` before."""

    kind: TargetKind
    seconds: float
    calendar: str | None = None
    warn_lead_s: float | None = None
    warn_lead_pct: float | None = None

    def warn_lead(self) -> float | None:
        """Seconds before the due time at which to warn, if any."""
        if self.warn_lead_pct is not None:
            return self.seconds * self.warn_lead_pct / 100.0
        return self.warn_lead_s


@dataclass(frozen=True, slots=True)
class ConversationFacts:
    """What policy matching looks at."""

    network: str
    account: str = ""
    priority: str = ""
    category: str = ""
    language: str = ""
    tags: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Policy:
    """Targets for conversations whose facts match every non-empty condition (tags: any in common)."""

    name: str
    targets: tuple[Target, ...] = ()
    networks: frozenset[str] = frozenset()
    accounts: frozenset[str] = frozenset()
    priorities: frozenset[str] = frozenset()
    categories: frozenset[str] = frozenset()
    languages: frozenset[str] = frozenset()
    tags: frozenset[str] = frozenset()
    pausing_statuses: frozenset[str] = frozenset({"pending"})

    def target(self, kind: TargetKind) -> Target | None:
        """The target of this kind, if the policy sets one."""
        return next((t for t in self.targets if t.kind == kind), None)


_CONDITIONS = (
    ("networks", "network"), ("accounts", "account"), ("priorities", "priority"),
    ("categories", "category"), ("languages", "language"),
)


@dataclass(frozen=True, slots=True)
class MatchReason:
    """One condition of a policy that held: `fact` ("network", ..., "tags") had `values`, among `allowed`."""

    fact: str
    values: tuple[str, ...]
    allowed: tuple[str, ...]

    def __str__(self) -> str:
        """The English phrase, e.g. "network 'x' is in ['x']"."""
        if self.fact == "tags":
            return f"tags {list(self.values)} are among {list(self.allowed)}"
        return f"{self.fact} {self.values[0]!r} is in {list(self.allowed)}"


NO_CONDITIONS = "it has no conditions (matches every conversation)"


def policy_match(policy: Policy, facts: ConversationFacts) -> tuple[MatchReason, ...] | None:
    """The conditions of `policy` that `facts` meet (none when it has none), or None when one fails."""
    reasons = []
    for attr, fact in _CONDITIONS:
        allowed: frozenset[str] = getattr(policy, attr)
        value = getattr(facts, fact)
        if allowed:
            if value not in allowed:
                return None
            reasons.append(MatchReason(fact, (value,), tuple(sorted(allowed))))
    if policy.tags:
        common = policy.tags & facts.tags
        if not common:
            return None
        reasons.append(MatchReason("tags", tuple(sorted(common)), tuple(sorted(policy.tags))))
    return tuple(reasons)


def match_reasons(policy: Policy, facts: ConversationFacts) -> list[str] | None:
    """Why `policy` matches `facts` (one English phrase per condition), or None when it does not."""
    reasons = policy_match(policy, facts)
    if reasons is None:
        return None
    return [str(reason) for reason in reasons] or [NO_CONDITIONS]


FALLBACK_POLICY = Policy(name="none")


@dataclass(frozen=True, slots=True)
class ResponseRule:
    """What counts as a response on one network."""

    public_reply_counts: bool = True
    private_reply_fulfils_first_response: bool = False


def counts_as_response(rule: ResponseRule, reply: ReplyKind, kind: TargetKind) -> bool:
    """Whether a reply of this kind fulfils a clock of this kind; automated replies and notes never do."""
    if kind == TargetKind.RESOLUTION or reply in (ReplyKind.AUTOMATED, ReplyKind.NOTE):
        return False
    if reply == ReplyKind.PUBLIC:
        return rule.public_reply_counts
    if kind == TargetKind.FIRST_RESPONSE:
        return rule.private_reply_fulfils_first_response
    return True  # once in private, a private reply answers the next message and the customer


@dataclass(frozen=True, slots=True)
class EscalationStep:
    """Notify `notify` `after_s` business seconds after the trigger (held to service hours)."""

    trigger: Trigger
    notify: str
    after_s: float = 0.0


DEFAULT_LADDER = (
    EscalationStep(Trigger.WARNING, "assignee"),
    EscalationStep(Trigger.BREACH, "team_lead"),
    EscalationStep(Trigger.BREACH, "manager", 1800.0),
)


@dataclass(frozen=True, slots=True)
class SlaSettings:
    """Everything the SLA engine needs, parsed from config."""

    calendars: Mapping[str, Calendar]
    policies: tuple[Policy, ...]
    customer_expectation_s: float = 3600.0
    response_rules: Mapping[str, ResponseRule] = field(default_factory=dict)
    default_response_rule: ResponseRule = ResponseRule()
    ladder: tuple[EscalationStep, ...] = DEFAULT_LADDER

    def match_policy(self, facts: ConversationFacts) -> Policy:
        """The first policy whose conditions all hold; FALLBACK_POLICY (no targets) when none does."""
        for policy in self.policies:
            if match_reasons(policy, facts) is not None:
                return policy
        return FALLBACK_POLICY

    def policy(self, name: str) -> Policy:
        """The policy called `name`; KeyError when there is none."""
        for policy in self.policies:
            if policy.name == name:
                return policy
        raise KeyError(name)

    def calendar_for(self, target: Target) -> Calendar:
        """The calendar a target runs on (ALWAYS_OPEN for 24/7 targets)."""
        return ALWAYS_OPEN if target.calendar is None else self.calendars[target.calendar]

    def response_rule(self, network: str) -> ResponseRule:
        """What counts as a response on `network`."""
        return self.response_rules.get(network, self.default_response_rule)

    def expectation_target(self) -> Target:
        """The customer-expectation target tracked for every conversation (24/7)."""
        return Target(TargetKind.CUSTOMER_EXPECTATION, self.customer_expectation_s)
