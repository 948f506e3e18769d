"""One ISO 8601 parser for every connector: the union of what X, Mastodon, JSONL and Bluesky accepted."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from carebox.errors import BadPayload
from connectors._time import parse_iso
from connectors.social import bluesky, jsonl, mastodon, x

T = datetime(2024, 1, 15, 10, 30, tzinfo=UTC)

ACCEPTED = [
    ("2024-01-15T10:30:00.000Z", T),  # X API v2
    ("2024-01-15T10:30:00Z", T),  # carebox JSONL, webhooks
    ("2024-01-15T10:30:00.064Z", T.replace(microsecond=64000)),  # Mastodon
    ("2024-01-15T10:30:00.123456Z", T.replace(microsecond=123456)),  # Bluesky indexedAt
    ("2024-01-15T10:30:00.1234567Z", T.replace(microsecond=123456)),  # more digits than microseconds
    ("2024-01-15T10:30:00+00:00", T),
    ("2024-01-15T11:30:00+01:00", T),
    ("2024-01-15T05:30:00-05:00", T),
    ("2024-01-15T10:30:00+0000", T),
    ("2024-01-15 10:30:00Z", T),
    ("2024-01-15T10:30Z", T),
    ("20240115T103000Z", T),
    ("  2024-01-15T10:30:00Z\n", T),  # JSONL and Bluesky stripped white space; now everyone does
    ("2024-W03-1T10:30:00Z", T),
]

REJECTED = [
    (None, "created_at missing or not text"),
    (1705314600, "created_at missing or not text"),
    (True, "created_at missing or not text"),
    ("", "created_at missing or not text"),
    ("yesterday", "created_at is not ISO 8601: 'yesterday'"),
    ("Mon Jan 15 10:30:00 +0000 2024", "is not ISO 8601"),  # X API v1.1
    ("2024-01-15T10:30:00z", "is not ISO 8601"),
    ("2024-01-15T10:30:00ZZ", "is not ISO 8601"),
    ("2024-01-15Z", "is not ISO 8601"),
    ("\u00b2", "is not ISO 8601"),
    ("2024-01-15T10:30:00", "created_at has no time zone"),
    ("2024-01-15", "has no time zone"),
    ("0001-01-01T00:00:00+14:00", "created_at is out of range in UTC"),
    ("9999-12-31T23:59:59-12:00", "is out of range in UTC"),
]


@pytest.mark.parametrize(("text", "expected"), ACCEPTED)
def test_iso_text_with_a_zone_is_read_as_the_same_instant_in_utc(text, expected):
    parsed = parse_iso(text)
    assert parsed == expected and parsed.tzinfo is UTC


@pytest.mark.parametrize(("value", "reason"), REJECTED)
def test_anything_else_is_a_bad_payload_that_says_why(value, reason):
    with pytest.raises(BadPayload) as info:
        parse_iso(value)
    assert reason in info.value.reason


def test_the_error_names_the_field_it_was_given():
    with pytest.raises(BadPayload, match="indexedAt has no time zone"):
        parse_iso("2024-01-15T10:30:00", "indexedAt")


@pytest.mark.parametrize("parse", [x.parse_time, mastodon.parse_time, jsonl.parse_time,
                                   lambda v: bluesky.parse_datetime(v, "created_at")])
@pytest.mark.parametrize(("text", "expected"), ACCEPTED)
def test_the_connectors_former_names_parse_alike(parse, text, expected):
    assert parse(text) == expected


def test_jsonl_still_takes_epoch_seconds_and_says_so_for_other_types():
    assert jsonl.parse_time(1705314600) == T
    with pytest.raises(BadPayload, match="ISO 8601 text or epoch seconds, got list"):
        jsonl.parse_time([])

