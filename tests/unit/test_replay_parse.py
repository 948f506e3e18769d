"""Replay's pure readers: TWCS rows and files, JSONL lines and files, format detection."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from pathlib import Path

import pytest

from carebox.errors import BadPayload, ConfigError
from carebox.ports import Direction, InboundMention, Rejected
from connectors.social.replay import (
    count_records,
    detect_format,
    parse_twcs_row,
    parse_twcs_time,
    read_jsonl,
    read_twcs,
    twcs_id,
)

FIXTURE = Path(__file__).parent.parent / "fixtures" / "twcs_small.csv"
BRANDS = frozenset({"AcmeCare", "BetaHelp"})


def row(**overrides: str) -> dict[str, str]:
    base = {
        "tweet_id": "11",
        "author_id": "900001",
        "inbound": "True",
        "created_at": "Mon Nov 06 09:00:00 +0000 2017",
        "text": "@AcmeCare my fibre is down",
        "response_tweet_id": "10",
        "in_response_to_tweet_id": "",
    }
    return base | overrides


def test_customer_row_is_inbound_to_the_brand_it_mentions():
    m = parse_twcs_row(row(), BRANDS)
    assert (m.network, m.account, m.direction, m.author_id, m.author_handle) == (
        "x",
        "AcmeCare",
        Direction.INBOUND,
        "900001",
        "900001",
    )
    assert m.created_at == datetime(2017, 11, 6, 9, 0, tzinfo=UTC)
    assert m.external_id == "11" and m.in_reply_to is None


def test_brand_row_is_outbound_from_its_own_account():
    m = parse_twcs_row(row(author_id="AcmeCare", inbound="False", in_response_to_tweet_id="12.0"), BRANDS)
    assert (m.direction, m.account, m.in_reply_to) == (Direction.OUTBOUND, "AcmeCare", "12")


@pytest.mark.parametrize(
    ("text", "account"),
    [
        ("@AcmeCare help", "AcmeCare"),
        ("@acmecare help", "AcmeCare"),
        ("@friend @BetaHelp @AcmeCare help", "BetaHelp"),
        ("hello @AcmeCare.", "AcmeCare"),
        ("@friend no brand here", "unknown"),
        ("no handle at all", "unknown"),
    ],
)
def test_account_is_the_first_known_brand_handle_in_the_text(text, account):
    assert parse_twcs_row(row(text=text), BRANDS).account == account


@pytest.mark.parametrize(("value", "expected"), [("3", "3"), ("3.0", "3"), (" 42.0 ", "42"), ("007", "7")])
def test_tweet_ids_are_integer_strings(value, expected):
    assert twcs_id(value, "tweet_id") == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Tue Oct 31 22:10:47 +0000 2017", datetime(2017, 10, 31, 22, 10, 47, tzinfo=UTC)),
        ("Wed Jan 03 00:00:01 +0000 2018", datetime(2018, 1, 3, 0, 0, 1, tzinfo=UTC)),
        ("Tue Oct 31 22:10:47 +0200 2017", datetime(2017, 10, 31, 20, 10, 47, tzinfo=UTC)),
    ],
)
def test_twcs_dates_are_read_as_utc(value, expected):
    assert parse_twcs_time(value) == expected


@pytest.mark.parametrize(
    "value",
    ["Tue Oct 31 25:10:47 +0000 2017", "Tue Foo 31 22:10:47 +0000 2017", "Tue Oct 31 22:10 +0000 2017", "",
     "Fri Dec 31 23:59:59 -1200 9999"],
)
def test_malformed_twcs_dates_are_bad_payload(value):
    with pytest.raises(BadPayload, match="created_at"):
        parse_twcs_time(value)


def test_raw_keeps_the_row():
    assert parse_twcs_row(row(), BRANDS).raw["response_tweet_id"] == "10"


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"tweet_id": "abc"}, "tweet_id"),
        ({"tweet_id": ""}, "tweet_id"),
        ({"tweet_id": "\u00b2"}, "tweet_id"),  # regression: '²'.isdigit() then int() raised ValueError
        ({"in_response_to_tweet_id": "1.5"}, "in_response_to_tweet_id"),
        ({"inbound": "maybe"}, "inbound"),
        ({"created_at": "2017-11-06 09:00"}, "created_at"),
        ({"author_id": " "}, "author_id"),
    ],
)
def test_bad_rows_raise_bad_payload_naming_the_column(overrides, reason):
    with pytest.raises(BadPayload, match=reason):
        parse_twcs_row(row(**overrides), BRANDS)


def test_row_missing_a_column_is_bad_payload():
    incomplete = row()
    del incomplete["text"]
    with pytest.raises(BadPayload, match="columns"):
        parse_twcs_row(incomplete, BRANDS)


# ---------------------------------------------------------------- TWCS files


@pytest.fixture(scope="module")
def records() -> list:
    return list(read_twcs(FIXTURE))


def mentions(records: list) -> list[InboundMention]:
    return [r for r in records if isinstance(r, InboundMention)]


def test_twcs_file_is_read_in_time_order_with_ties_by_tweet_id(records):
    assert [m.external_id for m in mentions(records)] == [
        "11",
        "10",
        "12",
        "20",
        "30",
        "21",
        "31",
        "32",
        "40",
    ]


def test_parents_come_before_their_replies(records):
    seen: set[str] = set()
    for m in mentions(records):
        assert m.in_reply_to is None or m.in_reply_to in seen
        seen.add(m.external_id)


def test_index_column_is_ignored(records):
    assert all("" not in m.raw for m in mentions(records))
    assert mentions(records)[0].external_id == "11"


def test_file_without_index_column_reads_the_same(records, tmp_path):
    lines = FIXTURE.read_bytes().split(b"\n")
    stripped = b"\n".join(line.split(b",", 1)[1] if b"," in line else line for line in lines)
    path = tmp_path / "no_index.csv"
    path.write_bytes(stripped)
    assert [m.external_id for m in mentions(list(read_twcs(path)))] == [
        m.external_id for m in mentions(records)
    ]


def test_multi_line_text_stays_one_mention(records):
    m = next(m for m in mentions(records) if m.external_id == "20")
    assert m.text == "@acmecare first line\nsecond line, with a comma"
    assert m.account == "AcmeCare"


def test_bare_carriage_return_stays_inside_the_text(records):
    m = next(m for m in mentions(records) if m.external_id == "30")
    assert "\r\r" in m.text and m.text.endswith("merci de répondre")


def test_brands_are_the_authors_of_outbound_rows(records):
    assert {m.account for m in mentions(records) if m.direction is Direction.OUTBOUND} == BRANDS


def test_customer_reply_naming_no_brand_belongs_to_the_thread_brand(records):
    m = next(m for m in mentions(records) if m.external_id == "32")
    assert (m.text, m.account) == ("ok merci", "BetaHelp")


def test_tweet_mentioning_no_brand_goes_to_unknown(records):
    assert next(m for m in mentions(records) if m.external_id == "40").account == "unknown"


def test_bad_rows_become_rejected_with_line_numbers_and_reading_goes_on(records):
    rejected = [r for r in records if isinstance(r, Rejected)]
    assert len(rejected) == 4 and len(records) == 13
    assert [r.reason.split(":")[0] for r in rejected] == ["line 12", "line 13", "line 14", "line 15"]
    assert all(r.source == "replay:twcs" for r in rejected)
    assert "Not a date" in rejected[0].payload


def test_count_records_matches_what_is_read(records):
    assert count_records(FIXTURE) == len(records)


def test_twcs_from_an_open_binary_file():
    with open(FIXTURE, "rb") as handle:
        assert len(list(read_twcs(handle))) == 13


def test_bytes_that_are_not_utf8_do_not_stop_a_twcs_replay():  # regression: UnicodeDecodeError
    data = FIXTURE.read_bytes().replace(b"my fibre", b"my \xb7fibre")
    assert len(list(read_twcs(io.BytesIO(data)))) == 13


def test_a_damaged_header_turns_rows_into_rejects():  # regression: KeyError 'author_id'
    data = FIXTURE.read_bytes().replace(b"author_id", b"author", 1)
    assert {type(r) for r in read_twcs(io.BytesIO(data))} == {Rejected}


# ---------------------------------------------------------------- JSONL

GOOD = b'{"network":"x","account":"acme","external_id":"1","author_id":"u1","text":"hi","created_at":"2026-01-05T10:00:00Z"}'


def test_jsonl_lines_become_mentions_in_file_order():
    data = GOOD + b"\n" + GOOD.replace(b'"1"', b'"2"') + b"\n"
    got = list(read_jsonl(io.BytesIO(data)))
    assert [m.external_id for m in got] == ["1", "2"]
    assert got[0].created_at == datetime(2026, 1, 5, 10, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b"not json", "not JSON"),
        (b"[1, 2]", "JSON object"),
        (GOOD.replace(b'"text":"hi",', b""), "text"),
        (GOOD.replace(b"2026-01-05T10:00:00Z", b"yesterday"), "created_at"),
        (GOOD.replace(b"2026-01-05T10:00:00Z", b"9999-12-31T23:59:59-12:00"), "out of range"),  # was OverflowError
        (GOOD.replace(b'"network":"x"', b'"direction":"sideways"'), "direction"),
    ],
)
def test_bad_jsonl_lines_become_rejected_and_reading_goes_on(line, reason):
    got = list(read_jsonl(io.BytesIO(GOOD + b"\n" + line + b"\n" + GOOD.replace(b'"1"', b'"3"'))))
    assert [type(r) for r in got] == [InboundMention, Rejected, InboundMention]
    assert got[1].reason.startswith("line 2: ") and reason in got[1].reason
    assert got[1].payload == line.decode() and got[1].source == "replay:jsonl"


def test_blank_jsonl_lines_are_skipped_but_counted_in_line_numbers():
    got = list(read_jsonl(io.BytesIO(b"\n" + GOOD + b"\n\n   \nnope\n")))
    assert isinstance(got[0], InboundMention) and got[1].reason.startswith("line 5: ")


def test_jsonl_defaults_fill_a_missing_network_and_account():
    line = GOOD.replace(b'"network":"x","account":"acme",', b"")
    (m,) = read_jsonl(io.BytesIO(line), network="x", account="acme")
    assert (m.network, m.account) == ("x", "acme")


def test_jsonl_from_a_text_file():
    (m,) = read_jsonl(io.StringIO(GOOD.decode() + "\n"))
    assert m.external_id == "1"


# ---------------------------------------------------------------- format


@pytest.mark.parametrize(
    ("name", "content", "fmt"),
    [
        ("a.jsonl", b"", "jsonl"),
        ("a.ndjson", b"", "jsonl"),
        ("a.csv", b"", "twcs"),
        ("dump.txt", b'\n  {"external_id": "1"}\n', "jsonl"),
        ("dump", b",tweet_id,author_id,inbound\n", "twcs"),
    ],
)
def test_detect_format_from_name_then_content(tmp_path, name, content, fmt):
    path = tmp_path / name
    path.write_bytes(content)
    assert detect_format(path) == fmt


def test_detect_format_gives_up_with_a_config_error(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("hello\n")
    with pytest.raises(ConfigError):
        detect_format(path)
