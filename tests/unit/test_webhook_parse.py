"""Pure webhook parsing: delivery bodies -> mentions and dead letters, reply payloads, options."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from carebox.errors import BadPayload, ConfigError
from carebox.ports import Direction, OutboundReply
from connectors.social.webhook import parse_delivery, parse_options, reply_payload

ITEM = {
    "external_id": "form-1842",
    "author_id": "cust-77",
    "author_handle": "jane@example.org",
    "author_name": "Jane Doe",
    "text": "The chat widget says my parcel is lost",
    "created_at": "2026-11-22T09:58:00Z",
    "public": False,
}


def parse(body: bytes):
    return parse_delivery(body, source="widget", network="webhook", account="brand")


def test_one_object_is_one_mention_with_configured_network_and_account():
    mentions, rejected = parse(orjson.dumps(ITEM))
    assert rejected == ()
    (m,) = mentions
    assert (m.network, m.account, m.external_id, m.author_id) == ("webhook", "brand", "form-1842", "cust-77")
    assert m.created_at == datetime(2026, 11, 22, 9, 58, tzinfo=UTC)
    assert m.public is False and m.direction is Direction.INBOUND
    assert m.raw == ITEM


def test_a_list_gives_one_mention_per_item_in_order():
    body = orjson.dumps([ITEM, {**ITEM, "external_id": "form-1843", "direction": "out"}])
    mentions, _ = parse(body)
    assert [m.external_id for m in mentions] == ["form-1842", "form-1843"]
    assert mentions[1].direction is Direction.OUTBOUND


def test_items_may_name_their_own_network_and_account():
    (m,), _ = parse(orjson.dumps({**ITEM, "network": "trustpilot", "account": "brand-fr"}))
    assert (m.network, m.account) == ("trustpilot", "brand-fr")


@pytest.mark.parametrize(
    ("item", "reason"),
    [
        ({k: v for k, v in ITEM.items() if k != "text"}, "item 1: missing field 'text'"),
        ({**ITEM, "created_at": "yesterday"}, "item 1: created_at is not ISO 8601"),
        ({**ITEM, "created_at": "2026-11-22T09:58:00"}, "item 1: created_at has no time zone"),
        ({**ITEM, "followers": -1}, "item 1: field 'followers' must be a non-negative integer"),
        ({**ITEM, "direction": "sideways"}, "item 1: direction must be 'in' or 'out'"),
        ("just a string", "item 1: a mention must be a JSON object"),
        (42, "item 1: a mention must be a JSON object"),
    ],
)
def test_bad_items_become_dead_letters_with_reason_and_payload(item, reason):
    mentions, rejected = parse(orjson.dumps([ITEM, item]))
    assert [m.external_id for m in mentions] == ["form-1842"]
    (dead,) = rejected
    assert dead.source == "widget"
    assert dead.reason.startswith(reason)
    assert orjson.loads(dead.payload) == item


def test_a_json_scalar_body_is_one_dead_letter_not_an_error():
    mentions, rejected = parse(b"null")
    assert mentions == () and len(rejected) == 1


def test_an_empty_list_is_nothing():
    assert parse(b"[]") == ((), ())


@pytest.mark.parametrize("body", [b"", b"not json", b"{'single': 'quotes'}", b"\xff\xfe"])
def test_a_body_that_is_not_json_is_a_bad_payload(body):
    with pytest.raises(BadPayload, match="not JSON"):
        parse(body)


def test_reply_payload_carries_threading_fields():
    reply = OutboundReply(
        network="webhook",
        account="brand",
        in_reply_to="form-1842",
        text="Sorry, we are checking",
        public=False,
        customer_handle="jane@example.org",
        customer_id="cust-77",
        thread_key="form-1842",
    )
    doc = reply_payload(reply, "r-1", datetime(2026, 11, 22, 10, 0, tzinfo=UTC))
    assert doc == {
        "type": "reply",
        "id": "r-1",
        "network": "webhook",
        "account": "brand",
        "in_reply_to": "form-1842",
        "thread_key": "form-1842",
        "text": "Sorry, we are checking",
        "public": False,
        "customer_id": "cust-77",
        "customer_handle": "jane@example.org",
        "created_at": "2026-11-22T10:00:00Z",
    }


def test_options_defaults():
    opts = parse_options({"name": "widget", "account": "brand", "secret_env": "S"}, "connectors.widget")
    assert (opts.network, opts.tolerance_s, opts.max_body_bytes, opts.callback_url) == ("webhook", 300.0, 1048576, "")


@pytest.mark.parametrize(
    ("options", "key"),
    [
        ({"account": "b", "secret_env": "S"}, "connectors.w.name"),
        ({"name": "w", "secret_env": "S"}, "connectors.w.account"),
        ({"name": "w", "account": "b"}, "connectors.w.secret_env"),
        ({"name": "w", "account": "b", "secret_env": "S", "tolerance": "never"}, "connectors.w.tolerance"),
        ({"name": "w", "account": "b", "secret_env": "S", "tolerance": 0}, "connectors.w.tolerance"),
        ({"name": "w", "account": "b", "secret_env": "S", "max_body_bytes": 10}, "connectors.w.max_body_bytes"),
        ({"name": "w", "account": "b", "secret_env": "S", "callback_url": "ftp://x"}, "connectors.w.callback_url"),
        ({"name": "w", "account": "b", "secret_env": "S", "send_attempts": 0}, "connectors.w.send_attempts"),
        ({"name": "w", "account": "b", "secret_env": "S", "callback_timeout": []}, "connectors.w.callback_timeout"),
    ],
)
def test_bad_options_name_the_key(options, key):
    with pytest.raises(ConfigError) as info:
        parse_options(options, "connectors.w")
    assert info.value.key == key


def test_documented_config_fragment_parses():
    import tomllib
    from pathlib import Path

    path = Path(__file__).parents[2] / "docs/config-fragments/connectors-email-webhook.toml"
    entries = [c for c in tomllib.loads(path.read_text())["connectors"] if c["type"] == "webhook"]
    assert [parse_options(e, "connectors.x").name for e in entries] == ["chat-widget"]


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=20,
)
_ITEMISH = st.fixed_dictionaries(
    {k: _JSON for k in ("external_id", "author_id", "text", "created_at")},
    optional={k: _JSON for k in ("followers", "reposts", "public", "direction", "in_reply_to", "network")},
)


@settings(max_examples=100, deadline=None)
@given(st.lists(_ITEMISH | _JSON, max_size=4))
def test_any_json_delivery_splits_into_mentions_and_dead_letters_without_crashing(items):
    mentions, rejected = parse(orjson.dumps(items, option=orjson.OPT_NON_STR_KEYS))
    assert len(mentions) + len(rejected) == len(items)


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=500))
def test_arbitrary_bytes_are_mentions_dead_letters_or_bad_payload(body):
    try:
        parse(body)
    except BadPayload:
        pass
