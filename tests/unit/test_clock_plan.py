"""The ingest's shortcuts plan exactly what the SLA engine would: clocks started by ClockBook, triage sent as tuples."""

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from carebox import sla
from carebox.calendar import ALWAYS_OPEN
from carebox.clocks import ClockBook
from carebox.sla import (
    ConversationFacts,
    Policy,
    Target,
    TargetKind,
    evaluate,
    parse_settings,
    start_clock,
)
from carebox.sla_clock import planned_due
from carebox.triage import Triager
from carebox.triage_pool import from_row, to_row

FIRST, NEXT = TargetKind.FIRST_RESPONSE, TargetKind.NEXT_RESPONSE
BASE = parse_settings({})
OFFICE = BASE.calendars["service-hours"]
TARGETS = [
    Target(FIRST, 3600, "service-hours", warn_lead_pct=20),
    Target(FIRST, 900, "service-hours", warn_lead_s=300),
    Target(NEXT, 7200, "service-hours"),
    Target(FIRST, 1800, None, warn_lead_s=600),
]
VIP = Policy("vip", (TARGETS[1], TARGETS[2]), priorities=frozenset({"P1"}))
SOCIAL = Policy("social", (TARGETS[0],), tags=frozenset({"twitter"}))
CATCH_ALL = Policy("rest", (TARGETS[3],))
SETTINGS = replace(BASE, policies=(VIP, SOCIAL, CATCH_ALL))
INSTANTS = st.datetimes(datetime(2026, 11, 16), datetime(2027, 1, 10), timezones=st.just(UTC))


@settings(max_examples=300, deadline=None)
@given(at=INSTANTS, target=st.sampled_from(TARGETS))
def test_planned_due_is_what_evaluate_gives_a_clock_just_started(at, target):
    cal = OFFICE if target.calendar else ALWAYS_OPEN
    state = evaluate(start_clock(target, "p", at), SETTINGS.calendars, at)
    assert planned_due(target, cal, at) == (state.business_due, state.warn_at)


def _expected(book_settings: sla.SlaSettings, kind: str, row: dict, at: datetime) -> tuple:
    """The plan the slow path made before the shortcut: match the policy, evaluate a fresh clock."""
    tags = row.get("tags") or "[]"
    facts = ConversationFacts(row["network"], row["account"], row.get("priority") or "", row.get("category") or "",
                              row.get("language") or "", frozenset(json.loads(tags) if isinstance(tags, str) else tags))
    policy = book_settings.match_policy(facts)
    wall_due = at + timedelta(seconds=book_settings.customer_expectation_s)
    goal = policy.target(TargetKind(kind))
    if goal is None:
        return (kind, policy.name, ALWAYS_OPEN.name, 1, at, wall_due, wall_due, None)
    cal = book_settings.calendar_for(goal)
    state = evaluate(start_clock(goal, policy.name, at, cal.version), book_settings.calendars, at)
    return (kind, policy.name, cal.name, cal.version, at, state.business_due, wall_due, state.warn_at)


ROWS = [
    {"network": "x", "account": "acme", "priority": "P1", "category": "outage", "language": "en", "tags": "[]"},
    {"network": "x", "account": "acme", "priority": "P3", "category": "question", "language": "fr", "tags": '["twitter"]'},
    {"network": "x", "account": "acme", "priority": "P3", "category": "question", "language": "fr", "tags": ["twitter"]},
    {"network": "mastodon", "account": "acme", "priority": None, "category": None, "language": None, "tags": None},
]


@pytest.mark.parametrize("row", ROWS, ids=lambda r: f"{r['priority']}-{r['tags']!r}")
@pytest.mark.parametrize("kind", ["first_response", "next_response"])
def test_clock_book_start_plans_what_the_matched_policy_and_evaluate_give(row, kind):
    book = ClockBook(SETTINGS)
    for at in (datetime(2026, 11, 20, 17, 50, tzinfo=UTC), datetime(2026, 11, 21, 10, tzinfo=UTC),
               datetime(2026, 11, 23, 8, 59, tzinfo=UTC)):
        for _ in range(2):  # the second start of the same shape comes from the remembered plan
            assert tuple(book.start(kind, row, at)) == _expected(SETTINGS, kind, row, at)


def test_clock_book_forgets_remembered_plans_when_the_settings_change():
    book = ClockBook(SETTINGS)
    row, at = ROWS[0], datetime(2026, 11, 23, 10, tzinfo=UTC)
    assert book.start("first_response", row, at).policy == "vip"
    faster = replace(SETTINGS, policies=(replace(VIP, targets=(Target(FIRST, 60, None),)), CATCH_ALL),
                     customer_expectation_s=120.0)
    book.use(faster)
    plan = book.start("first_response", row, at)
    assert (plan.business_due, plan.wall_due) == (at + timedelta(seconds=60), at + timedelta(seconds=120))


def test_an_unknown_target_is_refused_even_once_plans_are_remembered():
    book = ClockBook(SETTINGS)
    book.start("first_response", ROWS[0], datetime(2026, 11, 23, 10, tzinfo=UTC))
    with pytest.raises(ValueError):
        book.start("first_respons", ROWS[0], datetime(2026, 11, 23, 10, tzinfo=UTC))


@pytest.mark.parametrize("text", ["my 4g network is down since this morning", "merci pour votre aide !",
                                  "win a free iphone http://a http://b http://c", ""])
def test_a_triage_result_survives_the_tuple_sent_between_processes(text):
    result = Triager().triage(text, followers=50_000, verified=True, reposts=30)
    assert from_row(to_row(result)) == result
