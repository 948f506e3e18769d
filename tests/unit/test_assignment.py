"""Automatic assignment rules: presence, capacity, language, skills, round robin and load balancing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from carebox.assignment import (
    Agent,
    Strategy,
    Work,
    can_take,
    choose,
    is_online,
    orphaned,
    parse_settings,
    plan,
    skills_for,
)
from carebox.errors import ConfigError

NOW = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
W = Work(1)


def agent(i: int, **kw) -> Agent:
    return Agent(**{"id": i, "online": True, "capacity": 5, **kw})


@pytest.mark.parametrize(("who", "work", "ok"), [
    (agent(1), W, True),
    (agent(1, online=False), W, False),
    (agent(1, load=5), W, False),
    (agent(1, languages=frozenset({"fr"})), Work(1, "en"), False),
    (agent(1, languages=frozenset({"fr", "en"})), Work(1, "en"), True),
    (agent(1), Work(1, "de"), True),  # no languages set: takes any
    (agent(1, skills=frozenset({"billing"})), Work(1, skills=frozenset({"billing"})), True),
    (agent(1), Work(1, skills=frozenset({"billing"})), False),
    (agent(1, accounts=frozenset({("x", "acme")})), Work(1, account=("x", "acme")), True),
    (agent(1, accounts=frozenset({("x", "acme")})), Work(1, account=("x", "other")), False),
    (agent(1, accounts=frozenset({("x", "acme")})), Work(1, account=("mastodon", "acme")), False),
    (agent(1), Work(1, account=("x", "other")), True),  # no list: every account
])
def test_an_agent_takes_work_only_online_below_capacity_on_their_accounts_with_the_language_and_every_skill(who, work, ok):
    assert can_take(who, work) is ok


@pytest.mark.parametrize(("available", "seen_ago_s", "online"), [
    (True, 10, True), (True, 301, False), (False, 10, False), (True, None, False),
])
def test_online_means_available_and_seen_within_the_presence_ttl(available, seen_ago_s, online):
    seen = None if seen_ago_s is None else NOW - timedelta(seconds=seen_ago_s)
    assert is_online(available, seen, NOW, 300.0) is online


def test_load_balancing_picks_the_lowest_load_relative_to_capacity():
    team = [agent(1, load=2, capacity=4), agent(2, load=3, capacity=10), agent(3, load=0, capacity=1, online=False)]
    assert choose(Strategy.LOAD_BALANCED, team, W).id == 2


def test_round_robin_picks_who_waited_longest_since_their_last_assignment_new_agents_first():
    team = [agent(1, last_assigned_at=NOW - timedelta(minutes=5)), agent(2, last_assigned_at=NOW - timedelta(minutes=9)),
            agent(3)]
    assert choose(Strategy.ROUND_ROBIN, team, W).id == 3
    assert choose(Strategy.ROUND_ROBIN, team[:2], W).id == 2


def test_nobody_gets_work_when_no_one_online_can_take_it():
    assert choose(Strategy.LOAD_BALANCED, [agent(1, online=False), agent(2, load=5)], W) is None


def test_a_plan_spreads_a_queue_in_turn_and_stops_at_capacity():
    team = [agent(1, capacity=1), agent(2, capacity=2)]
    queue = [Work(i) for i in range(10, 15)]
    assert plan(Strategy.ROUND_ROBIN, team, queue, NOW) == {10: 1, 11: 2, 12: 2}


def test_a_plan_matches_language_before_load():
    team = [agent(1, languages=frozenset({"fr"}), load=4), agent(2, languages=frozenset({"en"}))]
    assert plan(Strategy.LOAD_BALANCED, team, [Work(7, "fr"), Work(8, "en")], NOW) == {7: 1, 8: 2}


def test_conversations_of_offline_agents_are_orphaned():
    assert orphaned({1: 10, 2: 11, 3: 10}, [agent(10, online=False), agent(11)]) == [1, 3]


def test_skills_come_from_skill_tags():
    assert skills_for("complaint", ["vip", "skill:billing", "skill:"]) == frozenset({"billing"})


@pytest.mark.parametrize(("table", "key"), [
    ({"strategy": "random"}, "inbox.assignment.strategy"),
    ({"auto": "yes"}, "inbox.assignment.auto"),
    ({"default_capacity": 0}, "inbox.assignment.default_capacity"),
    ({"presence_ttl": "soon"}, "inbox.assignment.presence_ttl"),
    ({"reassign_when_offline": 1}, "inbox.assignment.reassign_when_offline"),
])
def test_bad_assignment_settings_name_the_key(table, key):
    with pytest.raises(ConfigError) as err:
        parse_settings({"inbox": {"assignment": table}})
    assert err.value.key == key


def test_assignment_settings_default_to_manual_load_balanced():
    settings = parse_settings({})
    assert settings.auto is False and settings.strategy is Strategy.LOAD_BALANCED and settings.presence_ttl_s == 300.0
