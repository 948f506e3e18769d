from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from carebox.calendar import ALWAYS_OPEN, parse_calendar
from carebox.sla import (
    FALLBACK_POLICY,
    ClockStatus,
    ConversationFacts,
    EscalationStep,
    Message,
    Policy,
    ReplyKind,
    ResponseRule,
    SlaSettings,
    Target,
    TargetKind,
    Trigger,
    counts_as_response,
    escalations,
    evaluate,
    evaluate_all,
    fulfil,
    match_reasons,
    parse_settings,
    pause,
    rebase,
    response_clocks,
    resume,
    start_clock,
)
from carebox.sla_explain import explain_due

try:  # on a failure hypothesis imports libcst, whose DeprecationWarning would turn the report into an INTERNALERROR
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import libcst.metadata  # noqa: F401
except ImportError:
    pass

PARIS = ZoneInfo("Europe/Paris")
H = 3600
FIRST = TargetKind.FIRST_RESPONSE
SETTINGS = parse_settings({})
CALENDARS = SETTINGS.calendars
ONE_HOUR = Target(FIRST, H, "service-hours", warn_lead_s=15 * 60)
ONE_HOUR_24_7 = Target(FIRST, H, None, warn_lead_pct=25)


def paris(*args: int) -> datetime:
    return datetime(*args, tzinfo=PARIS)


FRIDAY_1850 = paris(2026, 11, 20, 18, 50)
MONDAY_0950 = paris(2026, 11, 23, 9, 50)


def test_friday_evening_mention_is_due_monday_on_business_clock_and_friday_on_the_customers():
    policy = SETTINGS.match_policy(ConversationFacts(network="x"))
    target = policy.target(FIRST)
    state = evaluate(start_clock(target, policy.name, FRIDAY_1850), CALENDARS, FRIDAY_1850)
    assert (policy.name, state.business_due, state.wall_due) == ("social", MONDAY_0950, paris(2026, 11, 20, 19, 50))
    customer = evaluate(start_clock(SETTINGS.expectation_target(), policy.name, FRIDAY_1850), CALENDARS, MONDAY_0950)
    assert customer.wall_due == paris(2026, 11, 20, 19, 50)
    assert customer.state == ClockStatus.BREACHED
    at_due = evaluate(start_clock(target, policy.name, FRIDAY_1850), CALENDARS, MONDAY_0950)
    assert at_due.wall_waited_s == 63 * H
    assert (at_due.business_used_s, at_due.business_left_s, at_due.breached) == (H, 0, False)


@pytest.mark.parametrize(
    ("now", "state"),
    [
        (FRIDAY_1850, ClockStatus.RUNNING),
        (paris(2026, 11, 21, 12, 0), ClockStatus.RUNNING),
        (paris(2026, 11, 23, 9, 35), ClockStatus.WARNING),
        (MONDAY_0950, ClockStatus.WARNING),  # due at 09:50 exactly: not yet late
        (paris(2026, 11, 23, 9, 51), ClockStatus.BREACHED),
    ],
)
def test_clock_state_moves_from_running_to_warning_to_breached(now, state):
    assert evaluate(start_clock(ONE_HOUR, "social", FRIDAY_1850), CALENDARS, now).state == state


def test_a_warning_that_would_fall_outside_service_hours_waits_for_the_next_opening():
    # 20 minutes due, warned 10 minutes before: the warning falls on Friday's 19:00 close
    start = paris(2026, 11, 20, 18, 50)
    target = Target(FIRST, 20 * 60, "service-hours", warn_lead_s=10 * 60)
    state = evaluate(start_clock(target, "social", start), CALENDARS, start)
    assert state.business_due == paris(2026, 11, 23, 9, 10)
    assert state.warn_at == paris(2026, 11, 23, 9, 0)


def test_a_24_7_policy_warns_at_night():
    state = evaluate(start_clock(ONE_HOUR_24_7, "night", FRIDAY_1850), CALENDARS, FRIDAY_1850)
    assert state.warn_at == paris(2026, 11, 20, 19, 35)


def test_a_pause_stops_both_clocks_and_moves_the_due_times():
    clock = start_clock(ONE_HOUR, "social", paris(2026, 11, 23, 10, 0))
    clock = resume(pause(clock, paris(2026, 11, 23, 10, 20)), paris(2026, 11, 23, 12, 20))
    state = evaluate(clock, CALENDARS, paris(2026, 11, 23, 12, 30))
    assert state.business_due == paris(2026, 11, 23, 13, 0)
    assert state.wall_due == paris(2026, 11, 23, 13, 0)
    assert (state.business_used_s, state.wall_waited_s) == (30 * 60, 30 * 60)


def test_a_paused_clock_is_planned_as_if_resumed_now_and_never_breaches_while_paused():
    clock = pause(start_clock(ONE_HOUR, "social", paris(2026, 11, 23, 10, 0)), paris(2026, 11, 23, 10, 20))
    state = evaluate(clock, CALENDARS, paris(2026, 11, 23, 15, 0))
    assert state.state == ClockStatus.PAUSED
    assert state.business_due == paris(2026, 11, 23, 15, 40)
    assert escalations(state, CALENDARS["service-hours"]) == []


def test_a_clock_breached_before_its_pause_stays_breached():
    clock = pause(start_clock(ONE_HOUR, "social", paris(2026, 11, 23, 10, 0)), paris(2026, 11, 23, 12, 0))
    state = evaluate(clock, CALENDARS, paris(2026, 11, 23, 15, 0))
    assert (state.state, state.business_due) == (ClockStatus.BREACHED, paris(2026, 11, 23, 11, 0))


def test_a_pause_over_the_weekend_costs_no_business_time():
    clock = start_clock(ONE_HOUR, "social", FRIDAY_1850)
    clock = resume(pause(clock, paris(2026, 11, 21, 10, 0)), paris(2026, 11, 22, 10, 0))
    assert evaluate(clock, CALENDARS, FRIDAY_1850).business_due == MONDAY_0950


@pytest.mark.parametrize(
    ("fulfilled_at", "breached"),
    [(paris(2026, 11, 23, 9, 50), False), (paris(2026, 11, 23, 9, 51), True)],
)
def test_a_fulfilled_clock_stops_and_remembers_whether_it_was_late(fulfilled_at, breached):
    clock = fulfil(start_clock(ONE_HOUR, "social", FRIDAY_1850), fulfilled_at)
    state = evaluate(clock, CALENDARS, paris(2026, 11, 30, 12, 0))
    assert (state.state, state.breached) == (ClockStatus.FULFILLED, breached)
    assert fulfil(clock, paris(2026, 11, 24)) == clock  # the first response wins
    assert escalations(state, CALENDARS["service-hours"]) == []


def test_fulfilling_a_paused_clock_closes_the_pause():
    clock = pause(start_clock(ONE_HOUR, "social", paris(2026, 11, 23, 10, 0)), paris(2026, 11, 23, 10, 20))
    clock = fulfil(clock, paris(2026, 11, 23, 11, 0))
    assert clock.paused == ((paris(2026, 11, 23, 10, 20), paris(2026, 11, 23, 11, 0)),)
    assert evaluate(clock, CALENDARS, paris(2026, 11, 23, 12, 0)).business_used_s == 20 * 60


def test_a_new_calendar_version_keeps_the_time_used_and_plans_the_rest_on_the_new_hours():
    v1 = CALENDARS["service-hours"]
    v2 = parse_calendar("service-hours", {"timezone": "Europe/Paris", "hours": {"mon-sat": ["08:00-20:00"]},
                                          "holidays": "FR", "version": 2})
    clock = start_clock(ONE_HOUR, "social", paris(2026, 11, 20, 18, 40), v1.version)
    clock = rebase(clock, v1, v2, paris(2026, 11, 20, 19, 30))
    assert (clock.calendar_version, clock.carried_s) == (2, 20 * 60)
    state = evaluate(clock, {"service-hours": v2}, paris(2026, 11, 20, 19, 30))
    assert state.business_due == paris(2026, 11, 21, 8, 10)  # 30 minutes on Friday until 20:00, 10 on Saturday
    assert state.business_used_s == 20 * 60


def test_first_matching_policy_wins_in_order():
    settings = SlaSettings(
        calendars=CALENDARS,
        policies=(
            Policy("vip", networks=frozenset({"x"}), tags=frozenset({"vip", "press"})),
            Policy("urgent", priorities=frozenset({"P1"})),
            Policy("french", languages=frozenset({"fr"}), networks=frozenset({"x", "mastodon"})),
            Policy("social"),
        ),
    )
    cases = [
        (ConversationFacts("x", tags=frozenset({"press"}), priority="P1"), "vip"),
        (ConversationFacts("mastodon", tags=frozenset({"press"}), priority="P1"), "urgent"),
        (ConversationFacts("mastodon", language="fr"), "french"),
        (ConversationFacts("bluesky", language="fr"), "social"),
    ]
    assert [settings.match_policy(facts).name for facts, _ in cases] == [name for _, name in cases]


def test_without_a_catch_all_policy_unmatched_conversations_get_the_fallback():
    settings = SlaSettings(calendars=CALENDARS, policies=(Policy("x-only", networks=frozenset({"x"})),))
    assert settings.match_policy(ConversationFacts("email")) is FALLBACK_POLICY
    assert FALLBACK_POLICY.targets == ()


def test_match_reasons_name_each_condition_that_held():
    policy = Policy("fr-x", networks=frozenset({"x"}), languages=frozenset({"fr"}))
    assert match_reasons(policy, ConversationFacts("x", language="fr")) == [
        "network 'x' is in ['x']", "language 'fr' is in ['fr']",
    ]
    assert match_reasons(policy, ConversationFacts("x", language="en")) is None


@pytest.mark.parametrize(
    ("rule", "reply", "kind", "counts"),
    [
        (ResponseRule(), ReplyKind.PUBLIC, FIRST, True),
        (ResponseRule(), ReplyKind.PRIVATE, FIRST, False),  # an acknowledgement only
        (ResponseRule(private_reply_fulfils_first_response=True), ReplyKind.PRIVATE, FIRST, True),
        (ResponseRule(), ReplyKind.PRIVATE, TargetKind.NEXT_RESPONSE, True),
        (ResponseRule(), ReplyKind.AUTOMATED, FIRST, False),
        (ResponseRule(private_reply_fulfils_first_response=True), ReplyKind.AUTOMATED, FIRST, False),
        (ResponseRule(), ReplyKind.NOTE, FIRST, False),
        (ResponseRule(), ReplyKind.NOTE, TargetKind.CUSTOMER_EXPECTATION, False),
        (ResponseRule(), ReplyKind.PUBLIC, TargetKind.RESOLUTION, False),
        (ResponseRule(public_reply_counts=False), ReplyKind.PUBLIC, FIRST, False),
    ],
)
def test_what_counts_as_a_response(rule, reply, kind, counts):
    assert counts_as_response(rule, reply, kind) is counts


def test_escalation_ladder_warns_the_assignee_then_the_team_lead_then_the_manager_in_service_hours():
    state = evaluate(start_clock(ONE_HOUR, "social", FRIDAY_1850), CALENDARS, FRIDAY_1850)
    steps = escalations(state, CALENDARS["service-hours"])
    assert [(at, step.notify) for at, step in steps] == [
        (paris(2026, 11, 23, 9, 35), "assignee"),
        (paris(2026, 11, 23, 9, 50), "team_lead"),
        (paris(2026, 11, 23, 10, 20), "manager"),
    ]


def test_a_breach_at_closing_time_pages_nobody_until_the_next_opening():
    start = paris(2026, 11, 20, 18, 0)
    state = evaluate(start_clock(ONE_HOUR, "social", start), CALENDARS, start)
    ladder = (EscalationStep(Trigger.BREACH, "team_lead"), EscalationStep(Trigger.BREACH, "manager", 1800))
    assert state.business_due == paris(2026, 11, 20, 19, 0)
    assert [at for at, _ in escalations(state, CALENDARS["service-hours"], ladder)] == [
        paris(2026, 11, 23, 9, 0), paris(2026, 11, 23, 9, 30),
    ]


def test_a_24_7_policy_escalates_at_night():
    state = evaluate(start_clock(ONE_HOUR_24_7, "night", FRIDAY_1850), CALENDARS, FRIDAY_1850)
    assert [at for at, _ in escalations(state, ALWAYS_OPEN)] == [
        paris(2026, 11, 20, 19, 35), paris(2026, 11, 20, 19, 50), paris(2026, 11, 20, 20, 20),
    ]


def test_explain_due_tells_the_friday_story():
    facts = ConversationFacts("x")
    clock = start_clock(SETTINGS.match_policy(facts).target(FIRST), "social", FRIDAY_1850)
    lines = explain_due(SETTINGS, clock, facts=facts)
    assert lines == [
        "policy 'social' matched because it has no conditions (matches every conversation) (the first policy)",
        "target first_response: 1h 00m of business time on calendar 'service-hours' version 1 (Europe/Paris)",
        "clock started Fri 2026-11-20 18:50 CET (the customer's message)",
        "counted Fri 2026-11-20 18:50 CET to 19:00 (10m)",
        "counted Mon 2026-11-23 09:00 CET to 09:50 (50m)",
        "skipped Sat 2026-11-21: no opening hours on Saturdays",
        "skipped Sun 2026-11-22: no opening hours on Sundays",
        "business due Mon 2026-11-23 09:50 CET; wall-clock due Fri 2026-11-20 19:50 CET (1h 00m of wall time)",
        "customer expectation (1h 00m, 24/7) due Fri 2026-11-20 19:50 CET",
        "at the business due time the customer has waited 63h (2d 15h)",
    ]


def test_explain_due_names_holidays_and_pauses():
    clock = start_clock(ONE_HOUR, "social", paris(2026, 12, 24, 18, 30))
    clock = resume(pause(clock, paris(2026, 12, 24, 18, 40)), paris(2026, 12, 24, 20, 0))
    lines = explain_due(SETTINGS, clock)
    assert "policy 'social' (chosen by name)" in lines
    assert "paused Thu 2026-12-24 18:40 CET to Thu 2026-12-24 20:00 CET: 20m of business time not counted" in lines
    assert "skipped Fri 2026-12-25: public holiday Christmas Day (FR)" in lines
    assert (
        "business due Mon 2026-12-28 09:50 CET; wall-clock due Thu 2026-12-24 20:50 CET (1h 00m of wall time)"
    ) in lines


def test_evaluate_returns_utc_instants():
    state = evaluate(start_clock(ONE_HOUR, "social", FRIDAY_1850), CALENDARS, FRIDAY_1850)
    assert state.business_due.tzinfo is UTC and state.wall_due.tzinfo is UTC


def test_re_evaluating_a_clock_gives_the_same_answer_as_a_fresh_one():
    clock = start_clock(ONE_HOUR, "social", FRIDAY_1850)
    first = evaluate(clock, CALENDARS, FRIDAY_1850)
    later = evaluate(clock, CALENDARS, MONDAY_0950)
    fresh = evaluate(start_clock(ONE_HOUR, "social", FRIDAY_1850), CALENDARS, MONDAY_0950)
    assert later == fresh and later.business_due == first.business_due
    assert later.business_used_s == H and first.business_used_s == 0


def test_a_new_calendar_object_is_not_answered_from_the_old_plan():
    clock = start_clock(ONE_HOUR, "social", FRIDAY_1850)
    evaluate(clock, CALENDARS, FRIDAY_1850)
    saturday = parse_calendar("service-hours", {"timezone": "Europe/Paris", "hours": {"mon-sat": "09:00-19:00"},
                                                "version": 2})
    assert evaluate(clock, {"service-hours": saturday}, FRIDAY_1850).business_due == paris(2026, 11, 21, 9, 50)


def test_an_open_pause_keeps_moving_the_planned_due_time():
    clock = pause(start_clock(ONE_HOUR, "social", paris(2026, 11, 23, 10, 0)), paris(2026, 11, 23, 10, 20))
    assert evaluate(clock, CALENDARS, paris(2026, 11, 23, 11, 0)).business_due == paris(2026, 11, 23, 11, 40)
    assert evaluate(clock, CALENDARS, paris(2026, 11, 23, 12, 0)).business_due == paris(2026, 11, 23, 12, 40)


def test_evaluate_all_matches_evaluate_one_by_one():
    clocks = [start_clock(ONE_HOUR, "social", FRIDAY_1850 + timedelta(hours=h)) for h in range(0, 80, 7)]
    clocks.append(pause(clocks[0], paris(2026, 11, 23, 9, 0)))
    clocks.append(start_clock(ONE_HOUR_24_7, "night", FRIDAY_1850))
    assert evaluate_all(clocks, CALENDARS, MONDAY_0950) == [evaluate(c, CALENDARS, MONDAY_0950) for c in clocks]


@settings(max_examples=100, deadline=None, derandomize=True, database=None)
@given(st.integers(0, 7 * 86400), st.integers(0, 3 * 86400), st.integers(0, 3 * 86400), st.integers(0, 86400))
def test_used_plus_left_is_the_target_and_a_pause_only_ever_delays(start_s, pause_s, pause_len, now_s):
    start = paris(2026, 11, 16) + timedelta(seconds=start_s)
    began = start + timedelta(seconds=pause_s)
    now = began + timedelta(seconds=now_s)
    plain = evaluate(start_clock(ONE_HOUR, "social", start), CALENDARS, now)
    clock = resume(pause(start_clock(ONE_HOUR, "social", start), began), began + timedelta(seconds=pause_len))
    paused = evaluate(clock, CALENDARS, now)
    assert plain.business_used_s + plain.business_left_s == H
    assert paused.business_used_s <= plain.business_used_s
    assert paused.business_due >= plain.business_due and paused.wall_due >= plain.wall_due


def _m(hour: int, minute: int, inbound: bool, reply: ReplyKind | None = None) -> Message:
    return Message(paris(2026, 11, 23, hour, minute), inbound, reply)


NEXT = TargetKind.NEXT_RESPONSE


@pytest.mark.parametrize(
    ("messages", "rule", "clocks"),
    [
        # the clock starts at the customer's first message; a second message does not restart it
        ([_m(10, 0, True), _m(10, 5, True), _m(10, 30, False, ReplyKind.PUBLIC)], ResponseRule(),
         [(FIRST, paris(2026, 11, 23, 10, 0), paris(2026, 11, 23, 10, 30))]),
        # next response starts at the customer message that follows an agent reply
        ([_m(10, 0, True), _m(10, 30, False, ReplyKind.PUBLIC), _m(11, 0, True), _m(11, 10, True)], ResponseRule(),
         [(FIRST, paris(2026, 11, 23, 10, 0), paris(2026, 11, 23, 10, 30)), (NEXT, paris(2026, 11, 23, 11, 0), None)]),
        # automated replies and notes never count
        ([_m(10, 0, True), _m(10, 1, False, ReplyKind.AUTOMATED), _m(10, 2, False, ReplyKind.NOTE)], ResponseRule(),
         [(FIRST, paris(2026, 11, 23, 10, 0), None)]),
        # a private reply is only an acknowledgement unless configured to fulfil the first response
        ([_m(10, 0, True), _m(10, 10, False, ReplyKind.PRIVATE), _m(10, 40, False, ReplyKind.PUBLIC)], ResponseRule(),
         [(FIRST, paris(2026, 11, 23, 10, 0), paris(2026, 11, 23, 10, 40))]),
        ([_m(10, 0, True), _m(10, 10, False, ReplyKind.PRIVATE)],
         ResponseRule(private_reply_fulfils_first_response=True),
         [(FIRST, paris(2026, 11, 23, 10, 0), paris(2026, 11, 23, 10, 10))]),
        # an outbound message before any customer message starts nothing
        ([_m(9, 0, False, ReplyKind.PUBLIC), _m(10, 0, True)], ResponseRule(),
         [(FIRST, paris(2026, 11, 23, 10, 0), None)]),
    ],
)
def test_response_clocks_start_at_customer_messages_and_stop_at_replies_that_count(messages, rule, clocks):
    assert response_clocks(messages, rule) == clocks


def test_explain_due_says_when_a_calendar_change_carried_time_over():
    v1 = CALENDARS["service-hours"]
    v2 = parse_calendar("service-hours", {"timezone": "Europe/Paris", "hours": {"mon-sat": ["08:00-20:00"]},
                                          "version": 2})
    clock = rebase(start_clock(ONE_HOUR, "social", paris(2026, 11, 20, 18, 40)), v1, v2, paris(2026, 11, 20, 19, 30))
    settings = SlaSettings(calendars={"service-hours": v2}, policies=SETTINGS.policies)
    lines = explain_due(settings, clock)
    assert (
        "the calendar changed at Fri 2026-11-20 19:30 CET: 20m used on earlier versions are kept; "
        "the rest is planned on version 2"
    ) in lines
    assert (
        "business due Sat 2026-11-21 08:10 CET; wall-clock due Fri 2026-11-20 19:40 CET (1h 00m of wall time)"
    ) in lines
