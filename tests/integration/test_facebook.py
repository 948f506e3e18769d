"""Facebook/Instagram connectors: webhook deliveries through their routes, replies against a fake Graph API."""

from __future__ import annotations

import logging

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from carebox.errors import (
    AuthenticationFailed,
    ConnectorUnavailable,
    RateLimited,
    ReplyRejected,
)
from carebox.ports import IngestBatch, OutboundReply
from connectors.social import facebook, instagram
from tests.fakes import graph as g
from tests.fakes.sink import RecordingSink

ENV = {"FB_TOKEN": g.PAGE_TOKEN, "FB_SECRET": g.APP_SECRET, "FB_VERIFY": g.VERIFY_TOKEN}


class FailingSink(RecordingSink):
    """A sink whose durable write fails, as when the database is down."""

    async def put_durable(self, batch: IngestBatch) -> None:
        raise OSError("disk full")


@pytest.fixture
def fake():
    return g.FakeGraph()


@pytest.fixture
async def graph_server(fake):
    async with TestServer(fake.app()) as srv:
        yield srv


@pytest.fixture
async def session():
    async with aiohttp.ClientSession() as s:
        yield s


def make(kind, graph_server, session, environ=ENV, **extra):
    name = {"facebook": "fb-acme", "instagram": "ig-acme"}[kind]
    options = {"type": kind, "account": "acme", "token_env": "FB_TOKEN", "app_secret_env": "FB_SECRET",
               "verify_token_env": "FB_VERIFY", "graph_url": str(graph_server.make_url("")).rstrip("/"),
               "api_version": g.VERSION, "messaging": True, **extra}
    if kind == "facebook":
        return facebook.from_config(name, options | {"page_id": g.PAGE_ID}, session=session, environ=environ)
    return instagram.from_config(name, options | {"ig_user_id": g.IG_USER_ID}, session=session, environ=environ)


async def hooks_client(conn, sink):
    """A test client for the app the lead builds: the connector's routes under /hooks/<name>/."""
    sub = web.Application()
    sub.add_routes(conn.routes(sink))
    app = web.Application()
    app.add_subapp(f"/hooks/{conn.name}/", sub)
    client = TestClient(TestServer(app))
    await client.start_server()
    return client


@pytest.fixture
async def fb(graph_server, session):
    return make("facebook", graph_server, session)


async def post(client, conn, body: bytes, signature: str | None = "sign"):
    headers = {"Content-Type": "application/json"}
    if signature is not None:
        headers[facebook.SIGNATURE_HEADER] = g.sign(body) if signature == "sign" else signature
    return await client.post(f"/hooks/{conn.name}/", data=body, headers=headers)


async def test_subscription_handshake_echoes_the_challenge(fb):
    client = await hooks_client(fb, RecordingSink())
    try:
        ok = await client.get(f"/hooks/{fb.name}/", params={
            "hub.mode": "subscribe", "hub.verify_token": g.VERIFY_TOKEN, "hub.challenge": "1158201444"})
        assert (ok.status, await ok.text()) == (200, "1158201444")
        bad = await client.get(f"/hooks/{fb.name}/", params={
            "hub.mode": "subscribe", "hub.verify_token": "guess", "hub.challenge": "1"})
        assert bad.status == 403 and "1" not in await bad.text()
    finally:
        await client.close()


async def test_signed_feed_delivery_is_durable_before_200(fb):
    sink = RecordingSink()
    client = await hooks_client(fb, sink)
    body = g.delivery("page", [g.page_entry([g.feed_comment("880_1", "Plus de fibre"), g.feed_reaction("1_2")])])
    try:
        resp = await post(client, fb, body)
        assert resp.status == 200
    finally:
        await client.close()
    assert sink.durable == [True]
    assert [m.text for m in sink.mentions] == ["Plus de fibre"] and sink.batches[0].source == "fb-acme"
    assert fb.last_ok_at is not None


@pytest.mark.parametrize("signature", [None, "sha256=" + "0" * 64, "sign-with-other-secret"])
async def test_unsigned_or_badly_signed_delivery_is_refused_and_stores_nothing(fb, signature):
    sink = RecordingSink()
    client = await hooks_client(fb, sink)
    body = g.delivery("page", [g.page_entry([g.feed_comment("880_1", "x")])])
    if signature == "sign-with-other-secret":
        signature = g.sign(body, secret="not-the-app-secret")
    try:
        resp = await post(client, fb, body, signature)
        assert resp.status == 403 and await resp.text() == "forbidden"
    finally:
        await client.close()
    assert sink.batches == []


async def test_signed_body_that_is_not_json_is_dead_lettered_and_acknowledged(fb):
    sink = RecordingSink()
    client = await hooks_client(fb, sink)
    try:
        resp = await post(client, fb, b'{"object": "page", "entry": [')
        assert resp.status == 200
    finally:
        await client.close()
    (rej,) = sink.rejected
    assert "not JSON" in rej.reason and rej.payload == '{"object": "page", "entry": ['


async def test_delivery_is_not_acknowledged_when_the_sink_cannot_make_it_durable(fb):
    client = await hooks_client(fb, FailingSink())
    try:
        resp = await post(client, fb, g.delivery("page", [g.page_entry([g.feed_comment("880_1", "x")])]))
        assert resp.status == 500
    finally:
        await client.close()


async def test_page_mention_text_is_fetched_from_the_graph(fb, fake):
    fake.objects[f"{g.PAGE_ID}_55"] = {"message": "@Acme Télécom panne à Lyon", "created_time":
                                       "2026-03-02T21:30:00+0000", "permalink_url": "https://www.facebook.com/p/55"}
    sink = RecordingSink()
    await fb.handle_delivery(body := g.delivery("page", [g.page_entry([g.page_mention(f"{g.PAGE_ID}_55")])]),
                             g.sign(body), sink)
    (m,) = sink.mentions
    assert (m.text, m.url, m.created_at.hour) == ("@Acme Télécom panne à Lyon", "https://www.facebook.com/p/55", 21)


async def test_messenger_dm_arrives_private_and_reply_goes_through_the_send_api(fb, fake):
    sink = RecordingSink()
    body = g.delivery("page", [g.page_entry(messaging=[g.messenger("m_1", "Ma box clignote")])])
    await fb.handle_delivery(body, g.sign(body), sink)
    (m,) = sink.mentions
    sent = await fb.send_reply(OutboundReply(network="facebook", account="acme", in_reply_to=m.external_id,
                                             text="Pouvez-vous redémarrer ?", public=False, thread_key=m.thread_key))
    assert fake.posted == [{"edge": "messages", "target": "7012345678901234", "message": "Pouvez-vous redémarrer ?",
                            "id": sent.external_id}]


async def test_comment_reply_is_posted_under_the_comment(fb, fake):
    fake.objects["880_1"] = {"message": "Plus de fibre"}
    sent = await fb.send_reply(OutboundReply(network="facebook", account="acme", in_reply_to="880_1", text="On regarde"))
    assert fake.posted == [{"edge": "comments", "target": "880_1", "message": "On regarde", "id": sent.external_id}]
    assert sent.url == f"https://www.facebook.com/{sent.external_id}"


async def test_instagram_reply_to_a_reply_goes_under_the_top_level_comment(graph_server, session, fake):
    ig = make("instagram", graph_server, session)
    fake.objects["1786_top"] = {"id": "1786_top", "text": "Livraison ?"}
    fake.objects["1786_sub"] = {"id": "1786_sub", "text": "Moi aussi", "parent_id": "1786_top"}
    await ig.send_reply(OutboundReply(network="instagram", account="acme", in_reply_to="1786_sub", text="DM envoyé"))
    assert [(p["edge"], p["target"]) for p in fake.posted] == [("replies", "1786_top")]


async def test_instagram_comment_and_mention_deliveries(graph_server, session, fake):
    ig = make("instagram", graph_server, session)
    fake.objects["1787"] = {"id": "1787", "text": "@acme.fr toujours rien", "timestamp": "2026-03-02T22:00:00+0000",
                            "username": "luc.b", "media": {"id": "1792", "permalink": "https://www.instagram.com/p/C1/"}}
    body = g.delivery("instagram", [g.ig_entry([g.ig_comment("1786", "Livraison ?"), g.ig_mention("1792", "1787"),
                                                g.ig_mention("1792", "missing")])])
    sink = RecordingSink()
    resp = await ig.handle_delivery(body, g.sign(body), sink)
    assert resp.status == 200
    assert [(m.network, m.external_id, m.author_handle) for m in sink.mentions] == [
        ("instagram", "1786", "marie.dpt"), ("instagram", "1787", "luc.b")]
    (rej,) = sink.rejected
    assert '"missing"' in rej.payload


async def test_page_delivery_sent_to_the_instagram_hook_is_dead_lettered(graph_server, session):
    ig = make("instagram", graph_server, session)
    body = g.delivery("page", [g.page_entry([g.feed_comment("1_2", "x")])])
    sink = RecordingSink()
    await ig.handle_delivery(body, g.sign(body), sink)
    assert sink.mentions == [] and "expected 'instagram'" in sink.rejected[0].reason


async def test_expired_page_token_is_authentication_failed_and_shown_in_health(graph_server, session, fake, caplog):
    fb = make("facebook", graph_server, session, environ=ENV | {"FB_TOKEN": "expired"})
    fake.objects["880_1"] = {}
    with caplog.at_level(logging.INFO, logger="connectors.social.facebook"), pytest.raises(AuthenticationFailed):
        await fb.send_reply(OutboundReply(network="facebook", account="acme", in_reply_to="880_1", text="x"))
    assert "190" in fb.last_error and fake.posted == []
    assert sum("unavailable" in r.getMessage() for r in caplog.records) == 1


async def test_graph_rate_limit_code_is_rate_limited_then_health_comes_back(fb, fake):
    fake.objects["880_1"] = {}
    fake.fail_next(400, 4)
    reply = OutboundReply(network="facebook", account="acme", in_reply_to="880_1", text="x")
    with pytest.raises(RateLimited):
        await fb.send_reply(reply)
    assert fb.last_error is not None
    await fb.send_reply(reply)
    assert fb.last_error is None and len(fake.posted) == 1


async def test_reply_to_a_deleted_comment_is_rejected(fb):
    with pytest.raises(ReplyRejected):
        await fb.send_reply(OutboundReply(network="facebook", account="acme", in_reply_to="gone_1", text="x"))


async def test_private_reply_in_a_dm_without_customer_id_is_rejected(fb, fake):
    with pytest.raises(ReplyRejected):
        await fb.send_reply(OutboundReply(network="facebook", account="acme", in_reply_to="m_1", text="x", public=False,
                                          thread_key="dm:"))
    assert fake.posted == []


async def test_a_comment_is_answered_privately_through_the_send_api_once_only(fb, fake):
    fake.objects["880_1"] = {"message": "Mon numéro client est 12345", "from": {"id": "6071234567890123"}}
    reply = OutboundReply(network="facebook", account="acme", in_reply_to="880_1", text="Je vous écris en privé",
                          public=False, customer_id="6071234567890123", thread_key=f"{g.PAGE_ID}_880")
    sent = await fb.send_reply(reply)
    assert fake.posted == [{"edge": "messages", "target": "6071234567890123", "message": "Je vous écris en privé",
                            "id": sent.external_id, "private_reply_to": "880_1"}]
    assert sent.url is None  # a private message has no public link
    with pytest.raises(ReplyRejected, match="10900"):  # Graph allows one private reply per comment
        await fb.send_reply(reply)


async def test_a_visitor_post_is_answered_privately_by_its_post_id(fb, fake):
    post = f"{g.PAGE_ID}_990"
    fake.objects[post] = {"message": "Problème de facture", "from": {"id": "6070000000000001"}}
    await fb.send_reply(OutboundReply(network="facebook", account="acme", in_reply_to=post, text="En privé",
                                      public=False, thread_key=post))
    assert fake.posted[0]["private_reply_to"] == post and fake.posted[0]["target"] == "6070000000000001"


async def test_an_instagram_comment_is_answered_privately_by_comment_id(graph_server, session, fake):
    ig = make("instagram", graph_server, session)
    fake.objects["1786"] = {"id": "1786", "text": "Livraison ?", "from": {"id": "17841401112223334"}}
    await ig.send_reply(OutboundReply(network="instagram", account="acme", in_reply_to="1786", text="Je vous écris",
                                      public=False, thread_key="17920238422030506"))
    assert [(p["edge"], p["private_reply_to"]) for p in fake.posted] == [("messages", "1786")]


async def test_slow_graph_api_times_out_as_unavailable(graph_server, session, fake):
    fb = make("facebook", graph_server, session, timeout=0.05)
    fake.objects["880_1"] = {}
    fake.delay = 0.5
    with pytest.raises(ConnectorUnavailable, match="Timeout"):
        await fb.send_reply(OutboundReply(network="facebook", account="acme", in_reply_to="880_1", text="x"))
    assert fb.last_error is not None
