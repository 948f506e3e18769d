"""Pure Bluesky parsing: notifications to mentions, reply records, facets, cursors, options."""

from __future__ import annotations

import copy
from datetime import UTC, datetime

import pytest

from carebox.errors import BadPayload, ConfigError
from carebox.ports import Direction
from connectors.social import bluesky

# Shaped on a real app.bsky.notification.listNotifications item (reason "reply").
REPLY_NOTE = {
    "uri": "at://did:plc:cust7x2mq4/app.bsky.feed.post/3lbxyzabc2k2a",
    "cid": "bafyreihq2x3yzu7ybgkg3bc5c7mw5n3vl7vbx7ovtm3y5qy6q5ujtodb7i",
    "author": {
        "did": "did:plc:cust7x2mq4",
        "handle": "marie.bsky.social",
        "displayName": "Marie Dupont",
        "avatar": "https://cdn.bsky.app/img/avatar/plain/did:plc:cust7x2mq4/bafkrei@jpeg",
        "viewer": {"muted": False, "blockedBy": False},
        "labels": [],
        "createdAt": "2023-11-02T10:11:12.000Z",
    },
    "reason": "reply",
    "reasonSubject": "at://did:plc:brand4xq2k7vhm3wz/app.bsky.feed.post/3lbroot0000aa",
    "record": {
        "$type": "app.bsky.feed.post",
        "createdAt": "2026-03-02T21:14:05.123Z",
        "langs": ["fr"],
        "reply": {
            "parent": {"cid": "bafyreiparent", "uri": "at://did:plc:brand4xq2k7vhm3wz/app.bsky.feed.post/3lbpar"},
            "root": {"cid": "bafyreiroot", "uri": "at://did:plc:brand4xq2k7vhm3wz/app.bsky.feed.post/3lbroot0000aa"},
        },
        "text": "Toujours pas de réseau à Lyon 3e depuis ce matin 😡",
    },
    "isRead": False,
    "indexedAt": "2026-03-02T21:14:05.642Z",
    "labels": [],
}


def parse(note, **kw):
    return bluesky.parse_notification(note, account="acme.bsky.social", **kw)


def test_reply_notification_maps_author_text_thread_and_parent():
    m = parse(REPLY_NOTE, brand_did="did:plc:brand4xq2k7vhm3wz")
    assert (m.network, m.account, m.external_id) == ("bluesky", "acme.bsky.social", REPLY_NOTE["uri"])
    assert (m.author_id, m.author_handle, m.author_name) == ("did:plc:cust7x2mq4", "marie.bsky.social", "Marie Dupont")
    assert m.text.endswith("😡")
    assert m.created_at == datetime(2026, 3, 2, 21, 14, 5, 123000, tzinfo=UTC)
    assert m.in_reply_to.endswith("/3lbpar")
    assert m.thread_key.endswith("/3lbroot0000aa")
    assert m.url == "https://bsky.app/profile/marie.bsky.social/post/3lbxyzabc2k2a"
    assert (m.direction, m.public, m.lang_hint, m.raw) == (Direction.INBOUND, True, "fr", REPLY_NOTE)


def test_top_level_mention_is_its_own_thread_root():
    note = copy.deepcopy(REPLY_NOTE)
    del note["record"]["reply"]
    m = parse(note)
    assert m.in_reply_to is None and m.thread_key == note["uri"]


def test_post_by_the_brand_itself_is_outbound():
    note = copy.deepcopy(REPLY_NOTE)
    note["author"]["did"] = "did:plc:brand4xq2k7vhm3wz"
    assert parse(note, brand_did="did:plc:brand4xq2k7vhm3wz").direction is Direction.OUTBOUND


def test_bad_created_at_falls_back_to_indexed_at():
    note = copy.deepcopy(REPLY_NOTE)
    note["record"]["createdAt"] = "yesterday"
    assert parse(note).created_at == datetime(2026, 3, 2, 21, 14, 5, 642000, tzinfo=UTC)


@pytest.mark.parametrize(
    "mutate, reason",
    [
        (lambda n: n.pop("uri"), "uri"),
        (lambda n: n.__setitem__("author", "marie"), "author"),
        (lambda n: n["record"].__setitem__("$type", "app.bsky.feed.like"), "app.bsky.feed.post"),
        (lambda n: n["record"].pop("text"), "text"),
        (lambda n: (n["record"].pop("createdAt"), n.pop("indexedAt")), "indexedAt"),
        (lambda n: (n["record"].pop("createdAt"), n.__setitem__("indexedAt", "0001-01-01T00:00:00+14:00")), "range"),
    ],
)
def test_unusable_notification_raises_bad_payload_with_reason(mutate, reason):
    note = copy.deepcopy(REPLY_NOTE)
    mutate(note)
    with pytest.raises(BadPayload, match=reason):
        parse(note)


@pytest.mark.parametrize("odd", [None, [], "text", 42])
def test_non_object_notification_is_bad_payload(odd):
    with pytest.raises(BadPayload):
        parse(odd)


def test_profiles_bring_followers_and_verification():
    m = parse(REPLY_NOTE)
    profiles = [{"did": m.author_id, "followersCount": 5120, "verification": {"verifiedStatus": "valid"}}]
    (enriched,) = bluesky.with_profiles([m], profiles)
    assert (enriched.followers, enriched.verified) == (5120, True)
    assert bluesky.with_profiles([m], [])[0].followers is None


@pytest.mark.parametrize(
    "text, start, end",
    [
        ("@marie.bsky.social merci !", 0, 18),
        ("Bonjour @marie.bsky.social", 8, 26),
        ("Désolé 😡 @marie.bsky.social", 14, 32),  # é is 2 bytes, the emoji 4: offsets are UTF-8 bytes
    ],
)
def test_mention_facet_uses_utf8_byte_offsets(text, start, end):
    (facet,) = bluesky.mention_facets(text, "marie.bsky.social", "did:plc:cust7x2mq4")
    assert facet["index"] == {"byteStart": start, "byteEnd": end}
    assert text.encode()[start:end].decode() == "@marie.bsky.social"
    assert facet["features"] == [{"$type": "app.bsky.richtext.facet#mention", "did": "did:plc:cust7x2mq4"}]


def test_longer_handle_sharing_a_prefix_is_not_faceted():
    assert bluesky.mention_facets("@marie.bsky.socialite hi", "marie.bsky.social", "did:plc:x") == []


def test_reply_to_a_reply_keeps_the_parents_root():
    parent = {"uri": "at://c/app.bsky.feed.post/p", "cid": "cidp", "record": REPLY_NOTE["record"]}
    rec = bluesky.build_reply_record("ok", parent, customer_handle="", customer_did="",
                                     created_at=datetime(2026, 3, 2, 22, tzinfo=UTC))
    assert rec["reply"]["parent"] == {"uri": "at://c/app.bsky.feed.post/p", "cid": "cidp"}
    assert rec["reply"]["root"] == REPLY_NOTE["record"]["reply"]["root"]
    assert rec["createdAt"] == "2026-03-02T22:00:00.000Z" and "facets" not in rec


def test_reply_to_a_top_level_post_uses_it_as_root_and_parent():
    parent = {"uri": "at://c/app.bsky.feed.post/p", "cid": "cidp", "record": {"text": "hi"}}
    rec = bluesky.build_reply_record("@m.bsky.social ok", parent, customer_handle="m.bsky.social",
                                     customer_did="did:plc:m", created_at=datetime(2026, 3, 2, tzinfo=UTC))
    assert rec["reply"]["root"] == rec["reply"]["parent"] == {"uri": "at://c/app.bsky.feed.post/p", "cid": "cidp"}
    assert rec["facets"][0]["index"] == {"byteStart": 0, "byteEnd": 14}


def test_cursor_round_trips_and_advances_to_newest_instant():
    notes = [
        {"uri": "at://a/1", "indexedAt": "2026-03-02T10:00:00.000Z"},
        {"uri": "at://a/2", "indexedAt": "2026-03-02T10:00:01.000Z"},
        {"uri": "at://a/3", "indexedAt": "2026-03-02T10:00:01.000Z"},
    ]
    state = bluesky.advance_cursor(None, notes)
    assert state == (datetime(2026, 3, 2, 10, 0, 1, tzinfo=UTC), frozenset({"at://a/2", "at://a/3"}))
    assert bluesky.decode_cursor(bluesky.encode_cursor(*state)) == state
    assert bluesky.advance_cursor(state, []) == state


@pytest.mark.parametrize("bad", ["", "garbage", '{"u": []}', '{"t": "not a time"}', "[1]"])
def test_unreadable_cursor_is_ignored(bad):
    assert bluesky.decode_cursor(bad) is None


BASE = {"type": "bluesky", "name": "bsky-acme", "account": "@acme.bsky.social", "app_password_env": "BSKY_PW"}


def test_options_defaults():
    o = bluesky.parse_options(BASE, "connectors.bsky-acme")
    assert (o.account, o.identifier, o.service_url, o.poll_interval) == (
        "acme.bsky.social", "acme.bsky.social", "https://bsky.social", 30.0)
    assert o.reasons == ("mention", "reply", "quote") and o.fetch_profiles


@pytest.mark.parametrize(
    "patch, key",
    [
        ({"account": ""}, "connectors.bsky-acme.account"),
        ({"app_password_env": None}, "connectors.bsky-acme.app_password_env"),
        ({"reasons": ["like"]}, "connectors.bsky-acme.reasons"),
        ({"page_limit": 101}, "connectors.bsky-acme.page_limit"),
        ({"poll_interval": "soon"}, "connectors.bsky-acme.poll_interval"),
        ({"service_url": "bsky.social"}, "connectors.bsky-acme.service_url"),
        ({"fetch_profiles": "yes"}, "connectors.bsky-acme.fetch_profiles"),
    ],
)
def test_bad_option_names_its_key(patch, key):
    with pytest.raises(ConfigError) as err:
        bluesky.parse_options({**BASE, **patch}, "connectors.bsky-acme")
    assert err.value.key == key


def test_missing_password_variable_is_a_config_error():
    with pytest.raises(ConfigError) as err:
        bluesky.from_config("bsky-acme", BASE, session=None, environ={})
    assert err.value.key == "connectors.bsky-acme.app_password_env"


def test_documented_config_fragment_parses():
    import tomllib
    from pathlib import Path

    path = Path(__file__).parents[2] / "docs/config-fragments/connectors-bluesky-facebook.toml"
    (entry,) = [c for c in tomllib.loads(path.read_text())["connectors"] if c["type"] == "bluesky"]
    assert bluesky.parse_options(entry, f"connectors.{entry['name']}") == bluesky.parse_options(
        {k: entry[k] for k in ("type", "name", "account", "app_password_env")}, f"connectors.{entry['name']}")
