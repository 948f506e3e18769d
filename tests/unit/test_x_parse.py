"""Pure X API v2 parsing: tweets with user expansions, DM events, pages, stream lines, cursors, options."""

from __future__ import annotations

import copy
from datetime import UTC, datetime

import orjson
import pytest

from carebox.errors import BadPayload, ConfigError, ConnectorUnavailable
from carebox.ports import Direction
from connectors.social import x

BRAND_ID = "1500000000000000001"

# Shape of `GET /2/users/:id/mentions?expansions=author_id&tweet.fields=...&user.fields=...`
# as documented (docs.x.com, "Timelines: user mention timeline"), with one reply in the page.
PAGE = {
    "data": [
        {
            "id": "1460323737035677698",
            "text": "@brand my fibre is down since 8am, anyone?",
            "author_id": "2244994945",
            "created_at": "2021-11-15T19:08:05.000Z",
            "conversation_id": "1460323600000000000",
            "in_reply_to_user_id": BRAND_ID,
            "referenced_tweets": [{"type": "replied_to", "id": "1460323600000000000"}],
            "public_metrics": {"retweet_count": 3, "reply_count": 1, "like_count": 7, "quote_count": 2},
            "lang": "en",
            "edit_history_tweet_ids": ["1460323737035677698"],
        },
        {
            "id": "1460300000000000000",
            "text": "@brand thanks!",
            "author_id": "99",
            "created_at": "2021-11-15T17:40:00.000Z",
            "conversation_id": "1460300000000000000",
            "lang": "und",
        },
    ],
    "includes": {
        "users": [
            {
                "id": "2244994945",
                "name": "Ann Customer",
                "username": "ann",
                "verified": True,
                "public_metrics": {"followers_count": 1234, "following_count": 5, "tweet_count": 9},
            }
        ]
    },
    "meta": {"result_count": 2, "newest_id": "1460323737035677698", "oldest_id": "1460300000000000000",
             "next_token": "7140dibdnow9c7btw3w29grvxfcgvpb9n9coehpk7xz5i"},
}

DM_EVENT = {
    "id": "1580705921830768647",
    "event_type": "MessageCreate",
    "text": "my account number is 123",
    "sender_id": "2244994945",
    "dm_conversation_id": "1500000000000000001-2244994945",
    "created_at": "2022-10-14T00:01:58.000Z",
}


def tweet(**changes):
    obj = copy.deepcopy(PAGE["data"][0])
    obj.update(changes)
    return obj


def users():
    return x.users_by_id(PAGE)


def parse(obj, brand=BRAND_ID):
    return x.parse_tweet(obj, users(), account="brand", brand_user_id=brand)


def test_tweet_maps_every_field_faithfully():
    got = parse(PAGE["data"][0])
    assert (got.network, got.account, got.external_id) == ("x", "brand", "1460323737035677698")
    assert (got.author_id, got.author_handle, got.author_name) == ("2244994945", "ann", "Ann Customer")
    assert got.followers == 1234 and got.verified is True
    assert got.in_reply_to == "1460323600000000000"
    assert got.thread_key == "1460323600000000000"
    assert got.created_at == datetime(2021, 11, 15, 19, 8, 5, tzinfo=UTC)
    assert got.reposts == 5 and got.is_repost is False
    assert got.public is True and got.direction is Direction.INBOUND
    assert got.lang_hint == "en"
    assert got.url == "https://x.com/ann/status/1460323737035677698"
    assert got.raw["data"] == PAGE["data"][0] and got.raw["includes"]["users"][0]["username"] == "ann"


def test_author_missing_from_expansions_falls_back_to_the_author_id():
    got = parse(PAGE["data"][1])
    assert (got.author_handle, got.author_name, got.followers, got.verified) == ("99", "", None, False)
    assert got.in_reply_to is None and got.lang_hint is None


def test_retweet_is_marked_as_repost():
    assert parse(tweet(referenced_tweets=[{"type": "retweeted", "id": "1"}])).is_repost is True


def test_quote_is_not_a_reply():
    assert parse(tweet(referenced_tweets=[{"type": "quoted", "id": "1"}])).in_reply_to is None


def test_tweet_by_the_brand_account_is_outbound():
    assert parse(tweet(), brand="2244994945").direction is Direction.OUTBOUND


@pytest.mark.parametrize(
    ("obj", "reason"),
    [
        ("text", "JSON object"),
        ({k: v for k, v in PAGE["data"][0].items() if k != "id"}, "'id'"),
        (tweet(author_id=None), "'author_id'"),
        (tweet(text=None), "'text'"),
        (tweet(created_at=None), "created_at"),
        (tweet(created_at="Mon Nov 15 19:08:05 +0000 2021"), "ISO 8601"),
        (tweet(created_at="2021-11-15T19:08:05"), "time zone"),
        (tweet(created_at="9999-12-31T23:59:59-12:00"), "out of range"),  # regression: OverflowError
    ],
)
def test_unusable_tweet_raises_bad_payload_with_reason(obj, reason):
    with pytest.raises(BadPayload, match=reason):
        parse(obj)


def test_page_rejects_bad_items_keeps_good_ones_and_reads_meta():
    body = copy.deepcopy(PAGE)
    body["data"].append({"id": "1460399999999999999", "text": "no author"})
    page = x.parse_page(body, source="x-brand", account="brand", brand_user_id=BRAND_ID)
    assert [m.external_id for m in page.mentions] == ["1460323737035677698", "1460300000000000000"]
    assert page.rejected[0].source == "x-brand" and "author_id" in page.rejected[0].reason
    assert page.newest_id == "1460399999999999999"
    assert page.oldest_id == "1460300000000000000"
    assert page.next_token == PAGE["meta"]["next_token"]


def test_page_skips_items_already_handed_over_even_unusable_ones():
    body = copy.deepcopy(PAGE)
    body["data"].append({"id": "1460200000000000000", "text": "old and broken"})
    page = x.parse_page(body, source="s", account="brand", brand_user_id=BRAND_ID, after="1460300000000000000")
    assert [m.external_id for m in page.mentions] == ["1460323737035677698"]
    assert page.rejected == ()
    assert page.oldest_id == "1460200000000000000"


def test_empty_page_has_no_mentions_and_no_ids():
    page = x.parse_page({"meta": {"result_count": 0}}, source="s", account="brand", brand_user_id=BRAND_ID)
    assert (page.mentions, page.rejected, page.newest_id, page.next_token) == ((), (), None, None)


@pytest.mark.parametrize("body", [[], "x", {"data": {"id": "1"}}])
def test_page_of_the_wrong_shape_is_bad_payload(body):
    with pytest.raises(BadPayload):
        x.parse_page(body, source="s", account="brand", brand_user_id=BRAND_ID)


def test_dm_event_is_a_private_message_in_its_conversation():
    got = x.parse_dm_event(DM_EVENT, users(), account="brand", brand_user_id=BRAND_ID)
    assert got is not None
    assert got.public is False and got.thread_key == "1500000000000000001-2244994945"
    assert (got.author_handle, got.text, got.in_reply_to) == ("ann", "my account number is 123", None)


def test_dm_sent_by_the_brand_is_outbound():
    event = {**DM_EVENT, "sender_id": BRAND_ID}
    assert x.parse_dm_event(event, {}, account="brand", brand_user_id=BRAND_ID).direction is Direction.OUTBOUND


@pytest.mark.parametrize("kind", ["ParticipantsJoin", "ParticipantsLeave"])
def test_dm_events_that_are_not_messages_are_skipped(kind):
    assert x.parse_dm_event({**DM_EVENT, "event_type": kind}, {}, account="b", brand_user_id=BRAND_ID) is None


def test_stream_keep_alive_is_nothing():
    assert x.parse_stream_line(b"\r\n", source="s", account="brand", brand_user_id=BRAND_ID) is None


def test_stream_line_is_one_mention():
    line = b'{"data": %s, "includes": {"users": []}, "matching_rules": [{"id": "1", "tag": "t"}]}' % (
        orjson.dumps(PAGE["data"][1]))
    page = x.parse_stream_line(line, source="s", account="brand", brand_user_id=BRAND_ID)
    assert page is not None and [m.external_id for m in page.mentions] == ["1460300000000000000"]


@pytest.mark.parametrize("line", [b'{"data": {"id": "1", "tex', b'{"data": {"text": "no id"}}', b"[1, 2]"])
def test_unusable_stream_line_becomes_a_reject_with_the_line(line):
    page = x.parse_stream_line(line, source="s", account="brand", brand_user_id=BRAND_ID)
    assert page is not None and page.mentions == ()
    assert page.rejected[0].source == "s"


def test_stream_error_message_means_reconnect():
    line = b'{"errors": [{"title": "operational-disconnect", "disconnect_type": "UpstreamOperationalDisconnect"}]}'
    with pytest.raises(ConnectorUnavailable):
        x.parse_stream_line(line, source="s", account="brand", brand_user_id=BRAND_ID)


@pytest.mark.parametrize(
    ("cursor", "text"),
    [
        (x.XCursor(), None),
        (x.XCursor(mentions="1460323737035677698"), "1460323737035677698"),
        (x.XCursor(mentions="15", dms="16"), "m:15,dm:16"),
        (x.XCursor(mentions=None, dms="16"), "m:,dm:16"),
    ],
)
def test_cursor_round_trips_through_its_text(cursor, text):
    assert x.format_cursor(cursor) == text
    assert x.parse_cursor(text) == cursor


def test_ids_compare_as_numbers_not_text():
    assert x.newest("999", "1000") == "1000"
    assert x.newest(None, "garbage") is None
    assert [x.id_key(v) for v in (1, True, "\u00b2", "9" * 400)] == [-1] * 4  # regression: crashed on these


def test_sent_answer_with_an_absurd_id_is_bad_payload():
    with pytest.raises(BadPayload, match="no id"):  # regression: OverflowError in snowflake_time
        x.parse_sent({"data": {"id": "9" * 400, "text": "ok"}}, "brand")


def test_snowflake_time_reads_the_creation_instant_from_an_id():
    # the fixture tweet with this id says created_at 2021-11-15T19:08:05.000Z
    assert x.snowflake_time("1460323737035677698") == datetime(2021, 11, 15, 19, 8, 5, 69000, tzinfo=UTC)


def test_sent_tweet_is_read_from_the_post_answer():
    sent = x.parse_sent({"data": {"id": "1460323737035677698", "text": "hi"}}, "brand")
    assert sent.external_id == "1460323737035677698"
    assert sent.url == "https://x.com/brand/status/1460323737035677698"


def test_sent_dm_is_read_from_the_dm_answer():
    sent = x.parse_sent({"data": {"dm_conversation_id": "1-2", "dm_event_id": "1580705921830768647"}}, "b")
    assert sent.external_id == "1580705921830768647" and sent.url is None


OPTIONS = {"type": "x", "name": "x-brand", "account": "@brand", "user_id": BRAND_ID, "token_env": "X_BEARER"}


def test_options_have_documented_defaults():
    opts = x.parse_options(OPTIONS, "connectors.x-brand")
    assert (opts.account, opts.base_url, opts.mode, opts.poll_interval) == ("brand", "https://api.x.com", "poll", 60.0)
    assert (opts.dms, opts.max_results, opts.stream_rule, opts.user_token_env) == (False, 100, "@brand", None)


@pytest.mark.parametrize(
    ("change", "key"),
    [
        ({"user_id": "brand"}, "connectors.x-brand.user_id"),
        ({"user_id": None}, "connectors.x-brand.user_id"),
        ({"token_env": None}, "connectors.x-brand.token_env"),
        ({"mode": "firehose"}, "connectors.x-brand.mode"),
        ({"dms": "yes"}, "connectors.x-brand.dms"),
        ({"max_results": 500}, "connectors.x-brand.max_results"),
        ({"poll_interval": "often"}, "connectors.x-brand.poll_interval"),
    ],
)
def test_bad_option_names_its_key(change, key):
    options = {k: v for k, v in {**OPTIONS, **change}.items() if v is not None}
    with pytest.raises(ConfigError) as info:
        x.parse_options(options, "connectors.x-brand")
    assert info.value.key == key


@pytest.mark.parametrize(
    ("options", "environ", "key"),
    [
        (OPTIONS, {}, "connectors.x-brand.token_env"),
        ({**OPTIONS, "user_token_env": "X_USER"}, {"X_BEARER": "t"}, "connectors.x-brand.user_token_env"),
    ],
)
def test_missing_token_variable_is_a_config_error_naming_the_option(options, environ, key):
    with pytest.raises(ConfigError) as info:
        x.from_config("x-brand", options, session=None, environ=environ)  # type: ignore[arg-type]
    assert info.value.key == key
