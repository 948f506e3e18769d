"""Who gets a conversation: round robin or load-balanced with capacity, language and skills, online agents only."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

from carebox.duration import parse_duration
from carebox.errors import ConfigError


class Strategy(StrEnum):
    """How the next agent is chosen among those who can take the work."""

    ROUND_ROBIN = "round_robin"
    LOAD_BALANCED = "load_balanced"


@dataclass(frozen=True, slots=True)
class Agent:
    """An agent as assignment sees them: presence, capacity, current load, languages and skills."""

    id: int
    online: bool
    capacity: int
    load: int = 0
    languages: frozenset[str] = frozenset()
    skills: frozenset[str] = frozenset()
    last_assigned_at: datetime | None = None
    accounts: frozenset[tuple[str, str]] | None = None  # (network, account) they may see; None: every account


@dataclass(frozen=True, slots=True)
class Work:
    """A conversation waiting for an agent: its language and the skills it needs (from category and tags)."""

    conversation_id: int
    language: str | None = None
    skills: frozenset[str] = frozenset()
    account: tuple[str, str] | None = None  # (network, account) the conversation is on


@dataclass(frozen=True, slots=True)
class AssignmentSettings:
    """[inbox.assignment] in the config file."""

    auto: bool = False
    strategy: Strategy = Strategy.LOAD_BALANCED
    default_capacity: int = 10
    presence_ttl_s: float = 300.0
    reassign_when_offline: bool = False


def is_online(available: bool, last_seen_at: datetime | None, now: datetime, ttl_s: float) -> bool:
    """Online: the agent said they are available and was seen within the presence time-to-live."""
    return available and last_seen_at is not None and (now - last_seen_at).total_seconds() <= ttl_s


def can_take(agent: Agent, work: Work) -> bool:
    """Online, below capacity, allowed to see the conversation's account, speaks the language (agents without
    languages speak any) and has every skill."""
    if not agent.online or agent.load >= agent.capacity:
        return False
    if agent.accounts is not None and work.account not in agent.accounts:
        return False
    if work.language and agent.languages and work.language not in agent.languages:
        return False
    return work.skills <= agent.skills


def _round_robin_key(agent: Agent) -> tuple[int, float, int]:
    # never-assigned agents first, then the one who waited longest since their last assignment
    if agent.last_assigned_at is None:
        return (0, 0.0, agent.id)
    return (1, agent.last_assigned_at.timestamp(), agent.id)


def _load_key(agent: Agent) -> tuple[float, tuple[int, float, int]]:
    return (agent.load / agent.capacity if agent.capacity else 1.0, _round_robin_key(agent))


def choose(strategy: Strategy, agents: Iterable[Agent], work: Work) -> Agent | None:
    """The agent who should take `work`, or None when nobody online can."""
    able = [a for a in agents if can_take(a, work)]
    if not able:
        return None
    return min(able, key=_round_robin_key if strategy is Strategy.ROUND_ROBIN else _load_key)


def plan(strategy: Strategy, agents: Sequence[Agent], queue: Sequence[Work], now: datetime) -> dict[int, int]:
    """Assign a queue of work in order (most urgent first): conversation id -> agent id; loads update as it goes."""
    team = {a.id: a for a in agents}
    out: dict[int, int] = {}
    for work in queue:
        agent = choose(strategy, team.values(), work)
        if agent is None:
            continue
        out[work.conversation_id] = agent.id
        team[agent.id] = replace(agent, load=agent.load + 1, last_assigned_at=now)
    return out


def orphaned(assignments: Mapping[int, int], agents: Iterable[Agent]) -> list[int]:
    """Conversations whose assignee is offline (for optional reassignment)."""
    online = {a.id for a in agents if a.online}
    return sorted(cid for cid, agent_id in assignments.items() if agent_id not in online)


def skills_for(category: str | None, tags: Iterable[str]) -> frozenset[str]:
    """Skills a conversation needs: tags written `skill:<name>`; the category is informative only."""
    return frozenset(t.split(":", 1)[1] for t in tags if t.startswith("skill:") and len(t) > 6)


def parse_settings(doc: Mapping[str, Any]) -> AssignmentSettings:
    """[inbox.assignment] from the loaded TOML mapping; ConfigError names the bad key."""
    table = doc.get("inbox", {}).get("assignment", {}) if isinstance(doc.get("inbox", {}), Mapping) else {}
    if not isinstance(table, Mapping):
        raise ConfigError("inbox.assignment", "a table")
    defaults = AssignmentSettings()
    auto = table.get("auto", defaults.auto)
    if not isinstance(auto, bool):
        raise ConfigError("inbox.assignment.auto", "true or false")
    try:
        strategy = Strategy(table.get("strategy", defaults.strategy.value))
    except ValueError:
        raise ConfigError("inbox.assignment.strategy", "round_robin or load_balanced") from None
    capacity = table.get("default_capacity", defaults.default_capacity)
    if not isinstance(capacity, int) or isinstance(capacity, bool) or capacity < 1:
        raise ConfigError("inbox.assignment.default_capacity", "a whole number of conversations, at least 1")
    ttl = parse_duration(table.get("presence_ttl", "5m"), "inbox.assignment.presence_ttl")
    reassign = table.get("reassign_when_offline", defaults.reassign_when_offline)
    if not isinstance(reassign, bool):
        raise ConfigError("inbox.assignment.reassign_when_offline", "true or false")
    return AssignmentSettings(auto, strategy, capacity, ttl, reassign)
