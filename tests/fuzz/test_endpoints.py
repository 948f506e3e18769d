"""The webhook endpoints under random bodies, headers and signatures, served on a local port: never a 5xx,
and every payload they refuse to parse is handed to the sink as rejected (so it lands in the dead letters)."""

from __future__ import annotations

import asyncio
import json
import time

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import example, given
from hypothesis import strategies as st

from connectors._signing import SIGNATURE_HEADER, sign
from connectors.social import facebook, instagram, x
from connectors.social.webhook import WebhookConnector, parse_options
from tests.fakes import graph as g
from tests.fakes.sink import RecordingSink
from tests.fakes.x import APP_TOKEN, BRAND_ID, USER_TOKEN, FakeX
from tests.fuzz.strategies import FUZZ, grow, many
from tests.fuzz.test_parsers import FB_DELIVERY, IG_DELIVERY
from tests.integration.test_x import (
    Sleeps,
    polled_since_stream_opened,
    running,
    texts,
    until,
)
from tests.unit import test_webhook_parse as hook_samples

SECRET = "fuzz-secret"
ENV = {"FB_TOKEN": g.PAGE_TOKEN, "FB_SECRET": g.APP_SECRET, "FB_VERIFY": g.VERIFY_TOKEN}
HEADER_VALUES = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=80)


class Served:
    """A connector's routes on a local aiohttp server with a RecordingSink, driven from synchronous tests."""

    def __init__(self, make) -> None:
        self.loop = asyncio.new_event_loop()
        self.sink = RecordingSink()
        self.graph = self.loop.run_until_complete(self._start_graph())
        self.session = self.loop.run_until_complete(self._session())
        self.connector = make(self.session, str(self.graph.make_url("")).rstrip("/"))
        app = web.Application()
        app.add_routes(self.connector.routes(self.sink))
        self.client = TestClient(TestServer(app), loop=self.loop)
        self.loop.run_until_complete(self.client.start_server())

    async def _start_graph(self) -> TestServer:
        server = TestServer(g.FakeGraph().app())
        await server.start_server()
        return server

    async def _session(self) -> aiohttp.ClientSession:
        return aiohttp.ClientSession()

    def deliver(self, body: bytes, headers: dict[str, str]) -> tuple[int, tuple[int, int]]:
        """Post one delivery: its status and the (mentions, rejected) it handed to the sink. The sink is emptied
        first: counting a sink that keeps every batch made each case cost more than the last (quadratic)."""
        self.sink.batches.clear()
        self.sink.durable.clear()
        status = self.post(body, headers)
        return status, (len(self.sink.mentions), len(self.sink.rejected))

    def post(self, body: bytes, headers: dict[str, str]) -> int:
        async def go() -> int:
            async with self.client.post("/", data=body, headers=headers) as resp:
                await resp.read()
                return resp.status

        return self.loop.run_until_complete(go())

    def close(self) -> None:
        self.loop.run_until_complete(self.client.close())
        self.loop.run_until_complete(self.session.close())
        self.loop.run_until_complete(self.graph.close())
        self.loop.close()


def _webhook(session, _graph_url):
    opts = parse_options({"name": "widget", "account": "brand", "secret_env": "HOOK_SECRET"}, "connectors.widget")
    return WebhookConnector(opts, secret=SECRET, session=session)


def _graph(kind):
    def make(session, graph_url):
        options = {"type": kind, "account": "acme", "token_env": "FB_TOKEN", "app_secret_env": "FB_SECRET",
                   "verify_token_env": "FB_VERIFY", "graph_url": graph_url, "api_version": g.VERSION, "messaging": True}
        if kind == "facebook":
            return facebook.from_config("fb", options | {"page_id": g.PAGE_ID}, session=session, environ=ENV)
        return instagram.from_config("ig", options | {"ig_user_id": g.IG_USER_ID}, session=session, environ=ENV)

    return make


@pytest.fixture(scope="module")
def webhook():
    served = Served(_webhook)
    yield served
    served.close()


@pytest.fixture(scope="module")
def fb():
    served = Served(_graph("facebook"))
    yield served
    served.close()


@pytest.fixture(scope="module")
def ig():
    served = Served(_graph("instagram"))
    yield served
    served.close()


def _bodies(seed: int, sample: object, noise: list[bytes]) -> list[bytes]:
    return [json.dumps(v, default=str).encode() for v in grow(seed, sample)] + noise[:3]


@FUZZ
@given(st.integers(0, 2**64), many(st.binary(max_size=200)), many(st.sampled_from(["good", "none", "junk", "old", "other"])),
       many(HEADER_VALUES))
@example(0, [json.dumps({**hook_samples.ITEM, "created_at": "9999-12-31T23:59:59-12:00"}).encode()], ["good"], [""])
def test_signed_webhook_never_answers_5xx_and_every_unparsable_payload_is_rejected(webhook, seed, noise, how, junk):
    bodies = _bodies(seed, [hook_samples.ITEM, hook_samples.ITEM], noise) if seed else noise
    for body, sig, value in zip(bodies, how * 2, junk * 2, strict=False):
        now = int(time.time())
        header = {"good": sign(SECRET, body, now), "none": None, "junk": value, "old": sign(SECRET, body, now - 3600),
                  "other": sign("not-the-secret", body, now)}[sig]
        status, gained = webhook.deliver(body, {SIGNATURE_HEADER: header} if header is not None else {})
        assert status < 500
        if sig != "good":
            assert status == 401 and gained == (0, 0), "an unsigned delivery touched the sink"
        elif status == 400:
            assert gained == (0, 1), "a body that is not JSON must be kept as a dead letter"
        else:  # an empty list is a valid delivery of nothing
            assert status == 202 and sum(gained) >= (body.strip() != b"[]")


def _graph_test(served, seed, noise, how, sample, secret=g.APP_SECRET):
    for body, sig in zip(_bodies(seed, sample, noise), how * 2, strict=False):
        header = {"good": g.sign(body), "none": None, "other": "sha256=" + "0" * 64}[sig]
        status, gained = served.deliver(body, {facebook.SIGNATURE_HEADER: header} if header else {})
        assert status < 500
        if sig != "good":
            assert status == 403 and gained == (0, 0)
        else:
            assert status == 200
            try:
                doc = json.loads(body)
            except ValueError:
                assert gained == (0, 1), "a delivery that is not JSON must be kept as a dead letter"
            else:
                if not isinstance(doc, dict) or doc.get("object") not in ("page", "instagram"):
                    assert gained == (0, 1), "a delivery of the wrong shape must be kept as a dead letter"


@FUZZ
@given(st.integers(0, 2**64), many(st.binary(max_size=200)), many(st.sampled_from(["good", "good", "none", "other"])))
@example(0, [json.dumps({"object": "page", "entry": [{"id": g.PAGE_ID, "changes": 5}]}).encode()], ["good"])
def test_facebook_webhook_never_answers_5xx_and_keeps_every_unparsable_delivery(fb, seed, noise, how):
    _graph_test(fb, seed, noise, how, FB_DELIVERY)


@FUZZ
@given(st.integers(0, 2**64), many(st.binary(max_size=200)), many(st.sampled_from(["good", "good", "none", "other"])))
@example(0, [json.dumps({"object": "instagram", "entry": [{"id": g.IG_USER_ID, "changes": 1}]}).encode()], ["good"])
def test_instagram_webhook_never_answers_5xx_and_keeps_every_unparsable_delivery(ig, seed, noise, how):
    _graph_test(ig, seed, noise, how, IG_DELIVERY)


@FUZZ
@given(many(st.binary(max_size=300)), many(st.sampled_from(["good", "none", "other"])))
def test_facebook_webhook_keeps_random_bytes_as_dead_letters(fb, noise, how):
    _graph_test(fb, 0, noise, how, None)


@FUZZ
@given(many(st.binary(max_size=300)), many(HEADER_VALUES))
def test_signed_webhook_refuses_random_signatures_without_touching_the_sink(webhook, noise, junk):
    for body, header in zip(noise, junk, strict=True):
        assert webhook.deliver(body, {SIGNATURE_HEADER: header}) == (401, (0, 0))
        assert webhook.sink.batches == []


# Regression (fixed): a filtered stream cut mid-line turned the fragment into a dead letter; the connector now drops
# an unterminated final fragment and the catch-up poll of the next connection recovers the tweet.
async def test_x_stream_cut_mid_line_drops_the_fragment_and_the_catch_up_poll_recovers_the_tweet():
    fake = FakeX()
    fake.drop_stream_after = 1
    sink = RecordingSink()
    async with TestServer(fake.app) as upstream, aiohttp.ClientSession() as http:
        table = {"type": "x", "account": "brand", "user_id": BRAND_ID, "token_env": "X_BEARER", "mode": "stream",
                 "base_url": str(upstream.make_url("")), "poll_interval": "10ms", "backoff_base": "1ms"}
        conn = x.XConnector("x-brand", x.parse_options(table, "connectors.x-brand"), session=http,
                            app_token=APP_TOKEN, user_token=USER_TOKEN, sleep=Sleeps())
        async with running(conn, sink):
            await until(lambda: polled_since_stream_opened(fake))
            fake.push_raw(b'{"data": {"id": "1", "tex')  # no line terminator: the connection ends mid-message
            await until(lambda: fake.stream_connections >= 2 and polled_since_stream_opened(fake))
            fake.add_tweet("ann", "@brand after the cut")
            await sink.wait_for(lambda s: len(s.mentions) == 1)
    assert sink.rejected == [] and texts(sink) == ["after the cut"]
