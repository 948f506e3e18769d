"""Pure Mastodon parsing: notifications, HTML content, Link headers, SSE frames, options."""

from __future__ import annotations

import copy
from datetime import UTC, datetime

import pytest

from carebox.errors import BadPayload, ConfigError
from carebox.ports import Direction
from connectors.social import mastodon as m

# Shape of a `mention` Notification as documented (docs.joinmastodon.org/entities/Notification),
# trimmed of fields carebox does not read.
NOTIFICATION = {
    "id": "34975861",
    "type": "mention",
    "created_at": "2019-11-23T07:49:02.064Z",
    "account": {"id": "971724", "username": "zsc", "acct": "zsc@mastodon.example", "display_name": "Zsc"},
    "status": {
        "id": "103186126728896492",
        "created_at": "2019-11-23T07:49:01.940Z",
        "in_reply_to_id": "103186075217050245",
        "in_reply_to_account_id": "14715",
        "sensitive": False,
        "spoiler_text": "",
        "visibility": "public",
        "language": "en",
        "uri": "https://mastodon.example/users/zsc/statuses/103186126728896492",
        "url": "https://mastodon.example/@zsc/103186126728896492",
        "replies_count": 0,
        "reblogs_count": 2,
        "favourites_count": 0,
        "content": '<p><span class="h-card"><a href="https://fake.social/@brand" class="u-url mention">'
        "@<span>brand</span></a></span> my router has been down since 8&nbsp;am &amp; nobody answers"
        '<br />see <a href="https://example.com/status"><span class="invisible">https://</span>'
        '<span class="">example.com/status</span></a></p><p>thanks</p>',
        "reblog": None,
        "account": {
            "id": "971724",
            "username": "zsc",
            "acct": "zsc@mastodon.example",
            "display_name": "Zsc",
            "bot": False,
            "followers_count": 1213,
        },
        "mentions": [{"id": "1", "username": "brand", "acct": "brand", "url": "https://fake.social/@brand"}],
    },
}


def note(**status_changes):
    """The fixture notification with some status fields changed."""
    obj = copy.deepcopy(NOTIFICATION)
    obj["status"].update(status_changes)
    return obj


def parse(obj, account="brand"):
    return m.parse_notification(obj, account=account, instance_host="fake.social")


def test_mention_maps_every_field_faithfully():
    got = parse(NOTIFICATION)
    assert got.network == "mastodon"
    assert got.account == "brand"
    assert got.external_id == "103186126728896492"
    assert (got.author_id, got.author_handle, got.author_name) == ("971724", "zsc@mastodon.example", "Zsc")
    assert got.followers == 1213
    assert got.reposts == 2 and got.is_repost is False
    assert got.in_reply_to == "103186075217050245"
    assert got.created_at == datetime(2019, 11, 23, 7, 49, 1, 940000, tzinfo=UTC)
    assert got.public is True and got.direction is Direction.INBOUND
    assert got.lang_hint == "en"
    assert got.url == "https://mastodon.example/@zsc/103186126728896492"
    assert got.raw == NOTIFICATION


def test_status_html_becomes_plain_text_with_mentions_entities_and_full_links():
    assert parse(NOTIFICATION).text == (
        "@brand my router has been down since 8\xa0am & nobody answers\n"
        "see https://example.com/status\n\nthanks"
    )


def test_direct_visibility_is_a_private_message():
    assert parse(note(visibility="direct")).public is False


@pytest.mark.parametrize("visibility", ["public", "unlisted", "private"])
def test_other_visibilities_are_not_direct_messages(visibility):
    assert parse(note(visibility=visibility)).public is True


def test_content_warning_is_kept_before_the_text():
    assert parse(note(spoiler_text="outage", content="<p>down again</p>")).text == "outage\n\ndown again"


def test_status_written_by_the_brand_is_outbound():
    obj = note()
    obj["status"]["account"] = {**obj["status"]["account"], "id": "1", "acct": "brand@fake.social"}
    assert parse(obj).direction is Direction.OUTBOUND


def test_bot_accounts_are_marked_automated():
    obj = note()
    obj["status"]["account"]["bot"] = True
    assert parse(obj).automated is True


@pytest.mark.parametrize("kind", ["favourite", "reblog", "follow", "poll", "status", "update"])
def test_notifications_other_than_mentions_are_ignored(kind):
    assert parse({**NOTIFICATION, "type": kind}) is None


@pytest.mark.parametrize(
    ("obj", "reason"),
    [
        ([], "JSON object"),
        ({"type": "mention"}, "'id'"),
        ({**NOTIFICATION, "status": None}, "'status'"),
        (note(content=None), "'content'"),
        (note(created_at="yesterday"), "ISO 8601"),
        (note(created_at="2019-11-23T07:49:01"), "time zone"),
        (note(created_at="0001-01-01T00:00:00+14:00"), "out of range"),  # regression: OverflowError
        (note(id=12), "'id'"),
        (note(account="zsc"), "'account'"),
    ],
)
def test_unusable_notification_raises_bad_payload_with_reason(obj, reason):
    with pytest.raises(BadPayload, match=reason):
        parse(obj)


def test_page_keeps_good_mentions_rejects_bad_ones_and_reports_newest_notification_id():
    bad = {**NOTIFICATION, "id": "34975999", "status": None}
    fav = {**NOTIFICATION, "id": "34975900", "type": "favourite"}
    page = m.parse_notifications([bad, fav, NOTIFICATION], source="masto", account="brand")
    assert [x.external_id for x in page.mentions] == ["103186126728896492"]
    assert len(page.rejected) == 1 and page.rejected[0].source == "masto"
    assert '"34975999"' in page.rejected[0].payload
    assert page.newest_id == "34975999"


def test_page_that_is_not_a_list_is_bad_payload():
    with pytest.raises(BadPayload):
        m.parse_notifications({"error": "nope"}, source="masto", account="brand")


@pytest.mark.parametrize(
    ("ids", "expected"),
    [(("9", "10"), "10"), (("109", "99"), "109"), ((None, "5"), "5"), ((None, None), None)],
)
def test_newest_id_compares_ids_as_numbers_of_varying_length(ids, expected):
    assert m.newest(*ids) == expected


def test_link_header_is_split_by_rel():
    header = (
        '<https://mastodon.example/api/v1/notifications?max_id=34975535>; rel="next", '
        '<https://mastodon.example/api/v1/notifications?min_id=34975861>; rel="prev"'
    )
    assert m.parse_link_header(header) == {
        "next": "https://mastodon.example/api/v1/notifications?max_id=34975535",
        "prev": "https://mastodon.example/api/v1/notifications?min_id=34975861",
    }


def test_missing_link_header_has_no_links():
    assert m.parse_link_header(None) == {}


def test_sse_decoder_joins_data_lines_and_skips_heartbeats():
    decoder = m.SseDecoder()
    lines = [b":thump\n", b"event: notification\n", b'data: {"a":\n', b"data: 1}\n", b"\n", b"\n"]
    events = [e for e in map(decoder.feed, lines) if e is not None]
    assert events == [("notification", '{"a":\n1}')]


def test_sse_event_without_event_field_is_a_message():
    decoder = m.SseDecoder()
    assert decoder.feed(b"data: x\r\n") is None
    assert decoder.feed(b"\r\n") == ("message", "x")


def test_stream_event_other_than_notification_is_ignored():
    assert m.parse_event("delete", "103186126728896492", source="s", account="brand") is None


def test_malformed_stream_notification_becomes_a_reject_with_its_data():
    page = m.parse_event("notification", '{"id": "1", "ty', source="s", account="brand")
    assert page is not None and page.mentions == ()
    assert page.rejected[0].payload == '{"id": "1", "ty'


@pytest.mark.parametrize(
    ("text", "acct", "expected"),
    [
        ("We are on it", "zsc@mastodon.example", "@zsc@mastodon.example We are on it"),
        ("@zsc@mastodon.example we are on it", "zsc@mastodon.example", "@zsc@mastodon.example we are on it"),
        ("Hi @ann, done", "ann", "Hi @ann, done"),
        ("Hi @anna, done", "ann", "@ann Hi @anna, done"),
        ("No handle known", "", "No handle known"),
    ],
)
def test_reply_text_starts_with_the_customer_acct_unless_already_mentioned(text, acct, expected):
    assert m.reply_text(text, acct) == expected


def test_idempotency_key_is_stable_per_reply_and_differs_between_replies():
    assert m.idempotency_key("brand", "1", "hi") == m.idempotency_key("brand", "1", "hi")
    assert m.idempotency_key("brand", "1", "hi") != m.idempotency_key("brand", "2", "hi")


def test_sent_reply_is_read_from_the_status_answer():
    sent = m.parse_sent(NOTIFICATION["status"])
    assert sent.external_id == "103186126728896492"
    assert sent.url == "https://mastodon.example/@zsc/103186126728896492"
    assert sent.created_at.tzinfo is UTC


OPTIONS = {"type": "mastodon", "name": "masto", "account": "@brand", "base_url": "https://fake.social/",
           "token_env": "MASTODON_TOKEN"}


def test_options_have_documented_defaults():
    opts = m.parse_options(OPTIONS, "connectors.masto")
    assert opts.account == "brand" and opts.base_url == "https://fake.social"
    assert (opts.mode, opts.poll_interval, opts.limit, opts.streaming_url) == ("stream", 30.0, 40, None)
    assert opts.instance_host == "fake.social"


@pytest.mark.parametrize(
    ("change", "key"),
    [
        ({"base_url": "fake.social"}, "connectors.masto.base_url"),
        ({"streaming_url": "wss://streaming.fake.social"}, "connectors.masto.streaming_url"),
        ({"token_env": ""}, "connectors.masto.token_env"),
        ({"account": None}, "connectors.masto.account"),
        ({"mode": "webhook"}, "connectors.masto.mode"),
        ({"limit": 500}, "connectors.masto.limit"),
        ({"poll_interval": "soon"}, "connectors.masto.poll_interval"),
    ],
)
def test_bad_option_names_its_key(change, key):
    options = {**OPTIONS, **change}
    options = {k: v for k, v in options.items() if v is not None}
    with pytest.raises(ConfigError) as info:
        m.parse_options(options, "connectors.masto")
    assert info.value.key == key


def test_missing_token_variable_is_a_config_error_naming_token_env():
    with pytest.raises(ConfigError) as info:
        m.from_config("masto", OPTIONS, session=None, environ={})  # type: ignore[arg-type]
    assert info.value.key == "connectors.masto.token_env"
    assert "MASTODON_TOKEN" in info.value.expected
