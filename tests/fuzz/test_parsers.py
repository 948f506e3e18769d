"""Every connector parse_* function, fed hostile payloads, either returns a mention (or a page, or None) or
raises BadPayload (ConfigError for options): never another exception, so nothing crashes a connector."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import example, given, note
from hypothesis import strategies as st

from carebox.errors import BadPayload, CareboxError, ConfigError
from carebox.ports import InboundMention, Rejected
from connectors.social import (
    bluesky,
    email,
    facebook,
    instagram,
    jsonl,
    mastodon,
    replay_twcs,
    webhook,
    x,
)
from tests.fakes import graph as g
from tests.fuzz.strategies import FUZZ, NASTY, grow, many, payloads
from tests.unit import test_bluesky_parse as bsky_samples
from tests.unit import test_email_parse as mail_samples
from tests.unit import test_mastodon_parse as masto_samples
from tests.unit import test_webhook_parse as hook_samples
from tests.unit import test_x_parse as x_samples

BRAND = x_samples.BRAND_ID
FB = facebook.Context("facebook", "acme", g.PAGE_ID, 1772486045)
IG = facebook.Context("instagram", "acme.fr", g.IG_USER_ID, 1772486045)
FB_DELIVERY = {"object": "page", "entry": [g.page_entry(
    [g.feed_comment("c1", "my fibre is down"), g.page_mention("p1"), g.feed_visitor_post("p2", "help")],
    [g.messenger("m1", "hello")])]}
IG_DELIVERY = {"object": "instagram", "entry": [g.ig_entry([g.ig_comment("c2", "no network"), g.ig_mention("m2", "c3")])]}
# Crashes this file found, now fixed (each @example below replays one): X ids that are not ASCII-digit text or
# overflow a snowflake time; ISO dates that overflow in UTC ('9999-12-31T23:59:59-12:00'); Graph entries whose
# changes/messaging are not lists, feed items that are not text, epoch times in Unicode digits; TWCS ids like '²'.
MAILS = [mail_samples.GMAIL_REPLY, mail_samples.NEW_THREAD, mail_samples.HTML_ONLY, mail_samples.MULTIPART]
TWCS_ROW = {"tweet_id": "119237", "author_id": "105834", "inbound": "True", "created_at": "Wed Oct 11 06:55:44 +0000 2017",
            "text": "@AcmeCare my phone is dead", "response_tweet_id": "119236", "in_response_to_tweet_id": ""}


def _raises_only(allowed: type[BaseException], call: Any, *args: Any) -> None:
    try:
        call(*args)
    except allowed:
        pass
    except Exception:
        note(f"{getattr(call, '__qualname__', call)} crashed on {args!r:.3000}")
        raise


def _check(result: Any) -> None:
    """Whatever a parser returns is well formed: aware times, strings where strings belong."""
    for m in _mentions(result):
        assert isinstance(m, InboundMention)
        assert m.created_at.tzinfo is not None
        assert isinstance(m.external_id, str) and isinstance(m.text, str)
    for r in _rejects(result):
        assert isinstance(r, Rejected) and isinstance(r.reason, str) and r.reason


def _mentions(result: Any) -> list[Any]:
    if isinstance(result, InboundMention):
        return [result]
    if isinstance(result, tuple) and len(result) == 2:
        return list(result[0])
    return list(getattr(result, "mentions", ()))


def _rejects(result: Any) -> list[Any]:
    if isinstance(result, tuple) and len(result) == 2:
        return list(result[1])
    return list(getattr(result, "rejected", ()))


def _survives(parse: Any, *args: Any, **kwargs: Any) -> None:
    try:
        result = parse(*args, **kwargs)
    except BadPayload as err:
        assert isinstance(err.reason, str) and err.reason
        return
    except Exception:
        note(f"{getattr(parse, '__qualname__', parse)} crashed on {args!r:.3000}")
        raise
    _check(result)


@FUZZ
@given(payloads(x_samples.PAGE), st.booleans())
@example([{"meta": {"result_count": 1, "newest_id": 1}}, {"meta": {"result_count": 1, "newest_id": "\u00b2"}}], False)
def test_x_parse_page_never_crashes(bodies, dms):
    for body in bodies:
        _survives(x.parse_page, body, source="x", account="brand", brand_user_id=BRAND, dms=dms)


@FUZZ
@given(payloads(x_samples.PAGE["data"][0]), payloads(x_samples.PAGE["includes"]["users"][0]))
@example([{**x_samples.PAGE["data"][0], "created_at": "9999-12-31T23:59:59-12:00"}], [x_samples.PAGE["includes"]["users"][0]])
def test_x_parse_tweet_never_crashes(tweets, authors):
    for tweet, author in zip(tweets, authors, strict=True):
        users = {str(author.get("id")): author} if isinstance(author, dict) else {}
        _survives(x.parse_tweet, tweet, users, account="brand", brand_user_id=BRAND)


@FUZZ
@given(payloads(x_samples.DM_EVENT))
@example([{**x_samples.DM_EVENT, "created_at": "9999-12-31T23:59:59-12:00"}])
def test_x_parse_dm_event_never_crashes(events):
    for event in events:
        _survives(x.parse_dm_event, event, {}, account="brand", brand_user_id=BRAND)


@FUZZ
@given(many(st.binary(max_size=300)), payloads({"data": x_samples.PAGE["data"][0], "includes": x_samples.PAGE["includes"]}))
@example([b'{"data": {"id": "\\u00b2", "author_id": "1", "text": "hi", "created_at": "2021-11-15T19:08:05.000Z"}}'], [])
def test_x_parse_stream_line_never_crashes(noise, bodies):
    for line in [*noise, *(_dumps(b).encode() for b in bodies)]:
        _survives(x.parse_stream_line, line, source="x", account="brand", brand_user_id=BRAND)


@FUZZ
@given(many(st.none() | st.text(max_size=80) | NASTY.filter(lambda v: isinstance(v, str))))
def test_x_and_email_cursors_never_crash(texts):
    for text in texts:
        x.parse_cursor(text)
        email.parse_cursor(text)


@FUZZ
@given(payloads({"data": {"id": "1", "text": "ok"}}))
@example([{"data": {"id": "9" * 400, "text": "ok"}}])
def test_x_parse_sent_raises_only_connector_errors(bodies):
    for body in bodies:
        _raises_only(CareboxError, x.parse_sent, body, "brand")


@FUZZ
@given(payloads(masto_samples.NOTIFICATION))
def test_mastodon_parse_notification_never_crashes(objs):
    for obj in objs:
        _survives(mastodon.parse_notification, obj, account="brand", instance_host="fake.social")


@FUZZ
@given(payloads([masto_samples.NOTIFICATION, masto_samples.NOTIFICATION]))
def test_mastodon_parse_notifications_never_crashes(bodies):
    for body in bodies:
        _survives(mastodon.parse_notifications, body, source="masto", account="brand", instance_host="fake.social")


@FUZZ
@given(many(st.sampled_from(["notification", "update", "delete", "", "x"]) | st.text(max_size=10)),
       many(st.text(max_size=200)), payloads(masto_samples.NOTIFICATION))
def test_mastodon_parse_event_never_crashes(events, noise, objs):
    for event, text, obj in zip(events, noise, objs, strict=True):
        for data in (text, _dumps(obj)):
            _survives(mastodon.parse_event, event, data, source="masto", account="brand", instance_host="fake.social")


@FUZZ
@given(many(st.none() | st.text(max_size=120)))
def test_mastodon_parse_link_header_never_crashes(values):
    for value in values:
        assert isinstance(mastodon.parse_link_header(value), dict)


@FUZZ
@given(payloads(masto_samples.NOTIFICATION["status"]))
@example([{**masto_samples.NOTIFICATION["status"], "created_at": "9999-12-31T23:59:59-12:00"}])
def test_mastodon_parse_sent_raises_only_carebox_errors(bodies):
    for body in bodies:
        _raises_only(CareboxError, mastodon.parse_sent, body)


@FUZZ
@given(payloads(bsky_samples.REPLY_NOTE))
@example([{**bsky_samples.REPLY_NOTE, "record": {**bsky_samples.REPLY_NOTE["record"], "createdAt": "0001-01-01T00:00:00+14:00"}}])
def test_bluesky_parse_notification_never_crashes(notes):
    for n in notes:
        _survives(bluesky.parse_notification, n, account="acme.bsky.social", brand_did="did:plc:brand4xq2k7vhm3wz")


@FUZZ
@given(payloads(FB_DELIVERY), st.booleans())
@example([{"object": "page", "entry": [{"id": g.PAGE_ID, "changes": 5}]}], False)
def test_facebook_parse_delivery_never_crashes(bodies, messaging):
    for body in bodies:
        _survives(facebook.parse_delivery, body, FB, "fb", obj="page", fields=facebook.FACEBOOK_FIELDS, messaging=messaging)


@FUZZ
@given(payloads(IG_DELIVERY), st.booleans())
@example([{"object": "instagram", "entry": [{"id": g.IG_USER_ID, "changes": True}]}], False)
def test_instagram_parse_delivery_never_crashes(bodies, messaging):
    for body in bodies:
        _survives(facebook.parse_delivery, body, IG, "ig", obj="instagram", fields=instagram.INSTAGRAM_FIELDS,
                  messaging=messaging)


@FUZZ
@given(payloads(g.feed_comment("c1", "down")["value"]))
@example([{"item": [], "verb": "add"}])
def test_facebook_parse_feed_change_never_crashes(values):
    for value in values:
        _survives(facebook.parse_feed_change, value, FB)


@FUZZ
@given(payloads(g.page_mention("p1")["value"]), payloads(g.messenger("m1", "hi")))
def test_facebook_mention_and_messaging_parsers_never_crash(tagged, events):
    for value, event in zip(tagged, events, strict=True):
        _survives(facebook.parse_page_mention, value, FB)
        _survives(facebook.parse_messaging, event, FB)


@FUZZ
@given(payloads(g.ig_comment("c2", "no network")["value"]), payloads(g.ig_mention("m2", "c3")["value"]))
def test_instagram_change_parsers_never_crash(comments, tagged):
    for comment, value in zip(comments, tagged, strict=True):
        _survives(instagram.parse_ig_comment, comment, IG)
        _survives(instagram.parse_ig_mention, value, IG)


@FUZZ
@given(many(st.binary(max_size=600)), many(st.sampled_from(MAILS)), many(st.binary(max_size=40)))
def test_email_parse_message_never_crashes(noise, mails, splices):
    for raw in [*noise, *(m[: len(m) // 2] + s + m[len(m) // 2:] for m, s in zip(mails, splices, strict=True))]:
        _survives(email.parse_message, raw, account="support@brand.example", received_at=datetime(2026, 11, 22, tzinfo=UTC))


@FUZZ
@given(payloads(hook_samples.ITEM), payloads([hook_samples.ITEM, hook_samples.ITEM]))
def test_webhook_parse_delivery_never_crashes(items, lists):
    for item in [*items, *lists]:
        _survives(webhook.parse_delivery, _dumps(item).encode(), source="widget", network="webhook", account="brand")


@FUZZ
@given(payloads({"network": "x", "account": "acme", "external_id": "1", "author_id": "u1", "text": "hi",
                 "created_at": "2026-01-05T10:00:00Z", "followers": 10, "direction": "in", "raw": {"a": 1}}))
def test_jsonl_parse_mention_and_line_never_crash(objs):
    for obj in objs:
        _survives(jsonl.parse_mention, obj)
        _survives(jsonl.parse_line, _dumps(obj))


@FUZZ
@given(payloads(TWCS_ROW))
@example([{**TWCS_ROW, "tweet_id": "\u00b2"}])
def test_twcs_parse_row_never_crashes(rows):
    for row in rows:
        row = row if isinstance(row, dict) else {}
        row = {str(k): ("" if v is None else str(v)) for k, v in row.items()}  # csv.DictReader yields strings
        _survives(replay_twcs.parse_twcs_row, row, frozenset({"AcmeCare"}))


TIME_PARSERS = {
    "x.parse_time": x.parse_time,
    "mastodon.parse_time": mastodon.parse_time,
    "jsonl.parse_time": jsonl.parse_time,
    "replay_twcs.parse_twcs_time": lambda v: replay_twcs.parse_twcs_time(v if v is None else str(v)),  # CSV cells
    "bluesky.parse_datetime": lambda v: bluesky.parse_datetime(v, "createdAt"),
    "facebook.epoch_time": lambda v: facebook.epoch_time(v, "time"),
}
TIMES = st.none() | st.text(max_size=40) | NASTY | st.integers() | st.floats() | st.datetimes(
    timezones=st.timezones()).map(lambda d: d.isoformat())


# one hypothesis test per parameter (not a nested one): its statistics reach the report, so the benchmark counts its cases
@pytest.mark.parametrize("name", sorted(TIME_PARSERS))
@FUZZ
@given(values=many(TIMES))
@example(values=["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-12:00", "\u00b2", 10**400])
def test_time_parsers_raise_only_bad_payload(name, values):
    for value in values:
        _survives(TIME_PARSERS[name], value)


OPTION_SAMPLES = [
    (x.parse_options, x_samples.OPTIONS),
    (mastodon.parse_options, masto_samples.OPTIONS),
    (bluesky.parse_options, bsky_samples.BASE),
    (lambda o, k: facebook.parse_options(o, k), {"type": "facebook", "name": "fb", "account": "Acme", "page_id": g.PAGE_ID,
                                                 "token_env": "T", "app_secret_env": "S", "verify_token_env": "V"}),
    (email.parse_options, {"name": "mail", "account": "support@brand.example", "inbound": "imap",
                           "imap_host": "imap.example.net", "imap_password_env": "PW"}),
    (webhook.parse_options, {"name": "widget", "account": "brand", "secret_env": "HOOK_SECRET"}),
]


@pytest.mark.parametrize(("parse", "sample"), OPTION_SAMPLES, ids=["x", "mastodon", "bluesky", "facebook", "email", "webhook"])
@FUZZ
@given(seed=st.integers(0, 2**64))  # what payloads(sample) draws: BATCH options grown from one seed
def test_connector_options_raise_only_config_error(parse, sample, seed):
    for options in grow(seed, sample):
        options = options if isinstance(options, dict) else {"value": options}
        try:
            parse(options, "connectors.fuzz")
        except ConfigError as err:
            assert err.key.startswith("connectors")


def _dumps(value: Any) -> str:
    import json

    return json.dumps(value, default=str, allow_nan=True)
