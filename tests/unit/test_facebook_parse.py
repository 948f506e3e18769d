"""Pure Graph webhook handling: signatures, handshake, Facebook and Instagram payloads, options, errors."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest
from multidict import CIMultiDict

from carebox.errors import (
    AuthenticationFailed,
    BadPayload,
    ConfigError,
    ConnectorUnavailable,
    RateLimited,
    ReplyRejected,
)
from carebox.ports import Direction
from connectors.social import facebook, instagram
from tests.fakes import graph as g

FB = facebook.Context("facebook", "Acme Télécom", g.PAGE_ID, 1772486045)
IG = facebook.Context("instagram", "acme.fr", g.IG_USER_ID, 1772486045)


def parse_page(body: bytes, messaging: bool = True):
    return facebook.parse_delivery(orjson.loads(body), FB, "fb-acme", obj="page",
                                   fields=facebook.FACEBOOK_FIELDS, messaging=messaging)


def parse_ig(body: bytes, messaging: bool = True):
    return facebook.parse_delivery(orjson.loads(body), IG, "ig-acme", obj="instagram",
                                   fields=instagram.INSTAGRAM_FIELDS, messaging=messaging)


# ---------------------------------------------------------------- signature and handshake


def test_signature_of_the_raw_body_with_the_app_secret_is_accepted():
    body = g.delivery("page", [g.page_entry([g.feed_comment("1_2", "hi")])])
    assert facebook.verify_signature(g.APP_SECRET, g.sign(body), body)


@pytest.mark.parametrize(
    "header",
    [None, "", "sha1=abc", "sha256=", "sha256=" + "0" * 64, g.sign(b"{}"), g.sign(b"x", secret="other")],
)
def test_missing_or_wrong_signature_is_refused(header):
    assert not facebook.verify_signature(g.APP_SECRET, header, b"x")


@pytest.mark.parametrize(
    "query, expected",
    [
        ({"hub.mode": "subscribe", "hub.verify_token": g.VERIFY_TOKEN, "hub.challenge": "1158201444"}, "1158201444"),
        ({"hub.mode": "subscribe", "hub.verify_token": "guess", "hub.challenge": "1"}, None),
        ({"hub.mode": "unsubscribe", "hub.verify_token": g.VERIFY_TOKEN, "hub.challenge": "1"}, None),
        ({}, None),
    ],
)
def test_handshake_echoes_the_challenge_only_for_our_verify_token(query, expected):
    assert facebook.handshake(query, g.VERIFY_TOKEN) == expected


# ---------------------------------------------------------------- Facebook


def test_feed_comment_maps_author_post_thread_and_parent():
    body = g.delivery("page", [g.page_entry([g.feed_comment(
        "880011223344_9001", "Plus de fibre depuis hier", parent=f"{g.PAGE_ID}_880011223344")])])
    (m,), rejected = parse_page(body)
    assert rejected == []
    assert (m.network, m.account, m.external_id) == ("facebook", "Acme Télécom", "880011223344_9001")
    assert (m.author_id, m.author_handle, m.author_name) == ("6071234567890123", "Marie Dupont", "Marie Dupont")
    assert m.created_at == datetime(2026, 3, 2, 21, 14, 5, tzinfo=UTC)
    assert m.in_reply_to == m.thread_key == f"{g.PAGE_ID}_880011223344"
    assert m.direction is Direction.INBOUND and m.public and m.url.startswith("https://www.facebook.com/")
    assert m.raw["comment_id"] == "880011223344_9001"


def test_comment_written_by_the_page_is_outbound():
    body = g.delivery("page", [g.page_entry([g.feed_comment("1_2", "On regarde", user=g.PAGE_ID, name="Acme")])])
    (m,), _ = parse_page(body)
    assert m.direction is Direction.OUTBOUND


def test_visitor_post_is_a_top_level_mention():
    (m,), _ = parse_page(g.delivery("page", [g.page_entry([g.feed_visitor_post(f"{g.PAGE_ID}_77", "Panne ?")])]))
    assert (m.external_id, m.thread_key, m.in_reply_to, m.author_handle) == (
        f"{g.PAGE_ID}_77", f"{g.PAGE_ID}_77", None, "Paul Martin")


@pytest.mark.parametrize(
    "change",
    [
        g.feed_reaction("1_2"),
        g.feed_comment("1_2", "x", verb="remove"),
        g.feed_visitor_post("1_3", "our own broadcast", user=g.PAGE_ID),
        {"field": "ratings", "value": {}},
        {"field": "feed", "value": {"item": [], "verb": "add"}},  # regression: unhashable item raised TypeError
    ],
)
def test_events_that_are_not_mentions_are_ignored_not_rejected(change):
    assert parse_page(g.delivery("page", [g.page_entry([change])])) == ([], [])


def test_page_mention_without_text_keeps_author_and_ids():
    (m,), _ = parse_page(g.delivery("page", [g.page_entry([g.page_mention(f"{g.PAGE_ID}_55")])]))
    assert (m.external_id, m.author_id, m.author_name, m.text) == (f"{g.PAGE_ID}_55", "6079876543210987",
                                                                    "Luc Bernard", "")
    assert m.created_at == datetime(2026, 3, 2, 21, 14, 5, tzinfo=UTC)  # falls back on the entry time


def test_messenger_message_is_private_threaded_by_customer():
    (m,), _ = parse_page(g.delivery("page", [g.page_entry(messaging=[g.messenger("m_1", "Bonjour ?")])]))
    assert (m.external_id, m.author_id, m.public, m.thread_key) == ("m_1", "7012345678901234", False,
                                                                   "dm:7012345678901234")
    assert m.created_at == datetime(2026, 3, 2, 21, 16, 40, 123000, tzinfo=UTC)  # milliseconds


def test_messenger_echo_is_outbound_in_the_customers_thread():
    (m,), _ = parse_page(g.delivery("page", [g.page_entry(messaging=[g.messenger("m_2", "Bonjour", echo=True)])]))
    assert (m.direction, m.author_id, m.thread_key) == (Direction.OUTBOUND, g.PAGE_ID, "dm:7012345678901234")


def test_messaging_is_ignored_unless_configured_and_receipts_always():
    receipt = {"sender": {"id": "7"}, "recipient": {"id": g.PAGE_ID}, "timestamp": 1, "read": {"watermark": 1}}
    body = g.delivery("page", [g.page_entry(messaging=[g.messenger("m_1", "x"), receipt])])
    assert parse_page(body, messaging=False) == ([], [])
    assert len(parse_page(body)[0]) == 1


def test_one_bad_change_is_rejected_and_the_others_still_parse():
    bad = g.feed_comment("1_2", "x")
    del bad["value"]["from"]
    mentions, (rej,) = parse_page(g.delivery("page", [g.page_entry([bad, g.feed_comment("1_3", "ok")])]))
    assert [m.external_id for m in mentions] == ["1_3"]
    assert rej.source == "fb-acme" and "from" in rej.reason and '"1_2"' in rej.payload


def test_entry_for_another_page_is_rejected():
    _, (rej,) = parse_page(g.delivery("page", [g.page_entry([g.feed_comment("1_2", "x")], page_id="999")]))
    assert "999" in rej.reason


@pytest.mark.parametrize("entry", [{"id": g.PAGE_ID, "changes": 5}, {"id": g.PAGE_ID, "changes": [], "messaging": True}])
def test_entry_whose_changes_or_messaging_is_not_a_list_is_rejected(entry):  # regression: TypeError, webhook 500
    assert facebook.parse_delivery({"object": "page", "entry": [entry]}, FB, "fb", obj="page",
                                   fields=facebook.FACEBOOK_FIELDS, messaging=True)[1][0].reason.endswith("not a list")


@pytest.mark.parametrize("body", [[], {"object": "page"}, {"object": "instagram", "entry": []}, "x"])
def test_delivery_of_the_wrong_shape_is_bad_payload(body):
    with pytest.raises(BadPayload):
        facebook.parse_delivery(body, FB, "fb", obj="page", fields=facebook.FACEBOOK_FIELDS, messaging=False)


@pytest.mark.parametrize(
    "value, expected",
    [
        (1772486045, datetime(2026, 3, 2, 21, 14, 5, tzinfo=UTC)),
        (1772486045123, datetime(2026, 3, 2, 21, 14, 5, 123000, tzinfo=UTC)),
        ("2026-03-02T21:14:05+0000", datetime(2026, 3, 2, 21, 14, 5, tzinfo=UTC)),
        ("1772486045", datetime(2026, 3, 2, 21, 14, 5, tzinfo=UTC)),
    ],
)
def test_graph_times_in_seconds_milliseconds_or_iso_are_utc(value, expected):
    assert facebook.epoch_time(value, "t") == expected


@pytest.mark.parametrize("value", [None, "", "soon", True, -5, 10**30, "2026-03-02T21:14:05",
                                   "\u00b2", 10**400, "9999-12-31T23:59:59-12:00"])  # the last three: regressions
def test_unusable_graph_time_is_bad_payload(value):
    with pytest.raises(BadPayload):
        facebook.epoch_time(value, "t")


# ---------------------------------------------------------------- Instagram


def test_ig_comment_maps_username_media_thread_and_parent():
    body = g.delivery("instagram", [g.ig_entry([g.ig_comment("17865799348089039", "Livraison ?",
                                                             parent="17858893269000001")])])
    (m,), _ = parse_ig(body)
    assert (m.network, m.external_id, m.author_handle) == ("instagram", "17865799348089039", "marie.dpt")
    assert (m.in_reply_to, m.thread_key) == ("17858893269000001", "17920238422030506")


def test_ig_top_level_comment_replies_to_the_media():
    (m,), _ = parse_ig(g.delivery("instagram", [g.ig_entry([g.ig_comment("1", "x")])]))
    assert m.in_reply_to == m.thread_key == "17920238422030506"


def test_ig_comment_mention_uses_the_fetched_details():
    change = g.ig_mention("17920238422030506", "17873440459141021")
    change["value"]["details"] = {"id": "17873440459141021", "text": "@acme.fr remboursez-moi",
                                  "timestamp": "2026-03-02T21:20:00+0000", "username": "luc.b",
                                  "media": {"id": "17920238422030506", "permalink": "https://www.instagram.com/p/C1/"}}
    (m,), _ = parse_ig(g.delivery("instagram", [g.ig_entry([change])]))
    assert (m.external_id, m.author_handle, m.text) == ("17873440459141021", "luc.b", "@acme.fr remboursez-moi")
    assert (m.in_reply_to, m.url) == ("17920238422030506", "https://www.instagram.com/p/C1/")


def test_ig_mention_without_details_is_rejected_with_its_ids():
    _, (rej,) = parse_ig(g.delivery("instagram", [g.ig_entry([g.ig_mention("179", "178")])]))
    assert "details" in rej.reason and '"179"' in rej.payload


# ---------------------------------------------------------------- Graph errors and options


@pytest.mark.parametrize(
    "status, body, error",
    [
        (400, b'{"error": {"message": "expired", "type": "OAuthException", "code": 190}}', AuthenticationFailed),
        (403, b'{"error": {"message": "(#10) perms", "code": 10}}', AuthenticationFailed),
        (400, b'{"error": {"message": "(#4) app limit", "code": 4}}', RateLimited),
        (403, b'{"error": {"message": "(#32) page limit", "code": 32}}', RateLimited),
        (500, b'{"error": {"message": "unknown", "code": 1}}', ConnectorUnavailable),
        (400, b'{"error": {"message": "(#100) bad id", "code": 100}}', ReplyRejected),
        (502, b"<html>Bad gateway</html>", ConnectorUnavailable),
        (429, b"", RateLimited),
        (400, b'{"error": {"message": "outside window", "code": 10, "error_subcode": 2018278}}', ReplyRejected),
    ],
)
def test_graph_error_code_wins_over_http_status(status, body, error):
    assert type(facebook.graph_error("fb", status, CIMultiDict(), body)) is error


FB_OPTS = {"type": "facebook", "name": "fb-acme", "account": "Acme", "page_id": g.PAGE_ID,
           "token_env": "FB_TOKEN", "app_secret_env": "FB_SECRET", "verify_token_env": "FB_VERIFY"}


def test_options_defaults():
    o = facebook.parse_options(FB_OPTS, "connectors.fb-acme")
    assert (o.api_version, o.graph_url, o.messaging, o.fetch_missing) == (
        "v21.0", "https://graph.facebook.com", False, True)


@pytest.mark.parametrize(
    "patch, key",
    [
        ({"page_id": "acme"}, "connectors.fb-acme.page_id"),
        ({"api_version": "21"}, "connectors.fb-acme.api_version"),
        ({"token_env": ""}, "connectors.fb-acme.token_env"),
        ({"messaging": "yes"}, "connectors.fb-acme.messaging"),
        ({"graph_url": "graph.facebook.com"}, "connectors.fb-acme.graph_url"),
    ],
)
def test_bad_option_names_its_key(patch, key):
    with pytest.raises(ConfigError) as err:
        facebook.parse_options({**FB_OPTS, **patch}, "connectors.fb-acme")
    assert err.value.key == key


def test_missing_secret_variable_names_its_option():
    with pytest.raises(ConfigError) as err:
        facebook.from_config("fb-acme", FB_OPTS, session=None, environ={"FB_TOKEN": "t", "FB_VERIFY": "v"})
    assert err.value.key == "connectors.fb-acme.app_secret_env"


def test_instagram_options_use_the_ig_user_id():
    with pytest.raises(ConfigError) as err:
        instagram.from_config("ig-acme", FB_OPTS, session=None, environ={})
    assert err.value.key == "connectors.ig-acme.ig_user_id"


def test_facebook_from_config_hands_instagram_entries_to_instagram():
    env = {"FB_TOKEN": "t", "FB_SECRET": "s", "FB_VERIFY": "v"}
    options = {**FB_OPTS, "type": "instagram", "ig_user_id": g.IG_USER_ID}
    conn = facebook.from_config("ig-acme", options, session=None, environ=env)
    assert (conn.network, conn.options.own_id) == ("instagram", g.IG_USER_ID)


def test_documented_config_fragment_parses():
    import tomllib
    from pathlib import Path

    path = Path(__file__).parents[2] / "docs/config-fragments/connectors-bluesky-facebook.toml"
    entries = {c["type"]: c for c in tomllib.loads(path.read_text())["connectors"]}
    env = {"FB_PAGE_TOKEN": "t", "META_APP_SECRET": "s", "META_VERIFY_TOKEN": "v"}
    fb = facebook.from_config("fb-acme", entries["facebook"], session=None, environ=env)
    ig = facebook.from_config("ig-acme", entries["instagram"], session=None, environ=env)
    assert (fb.network, ig.network, ig.options.own_id) == ("facebook", "instagram", "17841405822304914")
