import tomllib
from datetime import date
from pathlib import Path

import pytest

from carebox.calendar import Calendar
from carebox.errors import ConfigError
from carebox.sla import (
    DEFAULT_LADDER,
    ConversationFacts,
    EscalationStep,
    ResponseRule,
    Target,
    TargetKind,
    Trigger,
    parse_settings,
)

FRAGMENT = Path(__file__).resolve().parents[2] / "docs" / "config-fragments" / "sla.toml"
SERVICE_HOURS = {"timezone": "Europe/Paris", "hours": {"mon-fri": ["09:00-19:00"]}, "holidays": "FR"}


def test_an_empty_document_gives_service_hours_and_the_social_policy():
    settings = parse_settings({})
    cal = settings.calendars["service-hours"]
    assert isinstance(cal, Calendar)
    assert (cal.timezone, cal.holiday_country, cal.weekly[0], cal.weekly[5]) == (
        "Europe/Paris", "FR", ((9 * 3600, 19 * 3600),), ()
    )
    social = settings.match_policy(ConversationFacts("x"))
    assert social.name == "social"
    assert social.target(TargetKind.FIRST_RESPONSE) == Target(TargetKind.FIRST_RESPONSE, 3600, "service-hours",
                                                             None, 20.0)
    assert settings.customer_expectation_s == 3600
    assert social.pausing_statuses == {"pending"}
    assert settings.ladder == DEFAULT_LADDER


def test_the_config_fragment_defines_exactly_the_defaults():
    doc = tomllib.loads(FRAGMENT.read_text())
    assert parse_settings(doc) == parse_settings({})


def test_a_full_document_is_parsed():
    doc = {
        "calendars": {
            "service-hours": SERVICE_HOURS, "night": {"timezone": "UTC", "hours": {"mon-sun": "22:00-06:00"}},
        },
        "sla": {
            "customer_expectation": "30m",
            "pausing_statuses": ["pending", "open"],
            "responses": {"default": {"private_reply_fulfils_first_response": True},
                          "x": {"private_reply_fulfils_first_response": False}},
            "escalation": [{"trigger": "breach", "notify": "manager", "after": "1h"}],
        },
        "policies": [
            {"name": "vip", "calendar": "24/7", "first_response": "15m", "resolution": "1d", "warn": "5m",
             "match": {"tags": ["vip"], "priorities": ["P1", "P2"]}},
            {"name": "social", "calendar": "service-hours", "pausing_statuses": ["pending"],
             "first_response": {"target": "1h", "warn": "50%"},
             "next_response": {"target": "2h", "calendar": "night", "warn": False}},
        ],
    }
    settings = parse_settings(doc)
    vip, social = settings.policies
    assert vip.target(TargetKind.FIRST_RESPONSE) == Target(TargetKind.FIRST_RESPONSE, 900, None, 300, None)
    assert vip.target(TargetKind.RESOLUTION).seconds == 86400
    assert (vip.tags, vip.priorities, vip.pausing_statuses) == ({"vip"}, {"P1", "P2"}, {"pending", "open"})
    assert social.target(TargetKind.FIRST_RESPONSE).warn_lead() == 1800
    assert social.target(TargetKind.NEXT_RESPONSE) == Target(TargetKind.NEXT_RESPONSE, 7200, "night", None, None)
    assert social.pausing_statuses == {"pending"}
    assert settings.customer_expectation_s == 1800
    assert settings.response_rule("x") == ResponseRule(private_reply_fulfils_first_response=False)
    assert settings.response_rule("mastodon") == ResponseRule(private_reply_fulfils_first_response=True)
    assert settings.ladder == (EscalationStep(Trigger.BREACH, "manager", 3600),)
    assert settings.match_policy(ConversationFacts("x", priority="P1", tags=frozenset({"vip"}))).name == "vip"


@pytest.mark.parametrize(
    ("doc", "key"),
    [
        ({"policies": [{"name": "p", "calendar": "office", "first_response": "1h"}]}, "policies.p.calendar"),
        ({"policies": [{"name": "p", "first_response": {"target": "1h", "calendar": "nope"}}]},
         "policies.p.first_response.calendar"),
        ({"policies": [{"name": "p", "first_response": "soon"}]}, "policies.p.first_response"),
        ({"policies": [{"name": "p", "first_response": "0s"}]}, "policies.p.first_response"),
        ({"policies": [{"name": "p", "first_response": "1h", "warn": "120%"}]}, "policies.p.warn"),
        ({"policies": [{"name": "p", "first_response": {"target": "1h", "warn": "x%"}}]},
         "policies.p.first_response.warn"),
        ({"policies": [{"name": "p", "match": {"priorities": ["P9"]}}]}, "policies.p.match.priorities"),
        ({"policies": [{"name": "p", "match": {"categories": ["rant"]}}]}, "policies.p.match.categories"),
        ({"policies": [{"name": "p", "match": {"network": ["x"]}}]}, "policies.p.match.network"),
        ({"policies": [{"name": "p", "first_reply": "1h"}]}, "policies.p.first_reply"),
        ({"policies": [{"name": "p"}, {"name": "p"}]}, "policies.p.name"),
        ({"policies": [{"first_response": "1h"}]}, "policies[0].name"),
        ({"policies": {"name": "p"}}, "policies"),
        ({"calendars": {"c": {"timezone": "Mars/Olympus", "hours": {"mon": "09:00-17:00"}}}},
         "calendars.c.timezone"),
        ({"calendars": {"c": {"hours": {"mon": "09:00-17:00"}, "holidays": "ZZ"}}}, "calendars.c.holidays"),
        ({"calendars": {"c": {"hours": {"mon": ["09:00-13:00", "12:00-17:00"]}}}}, "calendars.c.hours.mon"),
        ({"calendars": {"c": {"timezone": "Europe/Paris"}}}, "calendars.c.hours"),
        ({"calendars": {"24/7": {"always_open": True}}}, "calendars.24/7"),
        ({"sla": {"customer_expectation": "0m"}}, "sla.customer_expectation"),
        ({"sla": {"pausing_statuses": ["resolved"]}}, "sla.pausing_statuses"),
        ({"sla": {"responses": {"x": {"public_reply_counts": "yes"}}}}, "sla.responses.x.public_reply_counts"),
        ({"sla": {"responses": {"x": {"dm_counts": True}}}}, "sla.responses.x.dm_counts"),
        ({"sla": {"escalation": [{"trigger": "later", "notify": "boss"}]}}, "sla.escalation[0].trigger"),
        ({"sla": {"escalation": [{"trigger": "breach", "notify": "boss", "after": "x"}]}}, "sla.escalation[0].after"),
    ],
)
def test_settings_that_cannot_work_are_rejected_at_load_naming_the_key(doc, key):
    with pytest.raises(ConfigError) as info:
        parse_settings(doc)
    assert info.value.key == key


def test_a_policy_on_a_calendar_defined_in_the_same_document_is_accepted():
    doc = {"calendars": {"office": SERVICE_HOURS}, "policies": [{"name": "p", "calendar": "office",
                                                                   "first_response": "1h"}]}
    assert parse_settings(doc).policies[0].target(TargetKind.FIRST_RESPONSE).calendar == "office"


def test_the_loader_s_file_reader_reaches_ical_calendars():
    ics = ("BEGIN:VCALENDAR\nVERSION:2.0\nBEGIN:VEVENT\nUID:1\nDTSTART;VALUE=DATE:20261127\nEND:VEVENT\n"
           "END:VCALENDAR\n")
    doc = {"calendars": {"service-hours": {**SERVICE_HOURS, "ical": "team.ics"}}}
    settings = parse_settings(doc, read_file={"team.ics": ics}.__getitem__)
    assert date(2026, 11, 27) in settings.calendars["service-hours"].closed_dates
