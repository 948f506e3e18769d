"""The signed webhook connector served on a local port: signatures, durability before 2xx, replies."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from carebox.errors import (
    AuthenticationFailed,
    ConfigError,
    ConnectorUnavailable,
    ReplyRejected,
)
from carebox.ports import IngestBatch, OutboundReply
from connectors._http import Backoff
from connectors._signing import SIGNATURE_HEADER, sign, verify
from connectors.social.webhook import WebhookConnector, from_config, parse_options
from tests.fakes.sink import RecordingSink

SECRET = "s3cret-for-tests"
ITEM = {
    "external_id": "chat-1",
    "author_id": "visitor-9",
    "text": "Your app crashes at login",
    "created_at": "2026-11-22T09:58:00Z",
}


def make_connector(session: aiohttp.ClientSession, **options) -> WebhookConnector:
    base = {"name": "widget", "account": "brand", "secret_env": "HOOK_SECRET", **options}
    opts = parse_options(base, "connectors.widget")
    callback_secret = "cb" if opts.callback_secret_env else None
    # Backoff(base=0): no waiting between retries in tests
    return WebhookConnector(opts, secret=SECRET, session=session, callback_secret=callback_secret, backoff=Backoff(base=0))


def signed(body: bytes, *, secret: str = SECRET, at: float | None = None) -> dict[str, str]:
    return {SIGNATURE_HEADER: sign(secret, body, int(time.time() if at is None else at))}


class FailingSink(RecordingSink):
    """A sink whose store is down."""

    async def put_durable(self, batch: IngestBatch) -> None:
        raise OSError("database is locked")


class GatedSink(RecordingSink):
    """A sink that holds put_durable until released, to see when the answer is sent."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = asyncio.Event()
        self.release = asyncio.Event()

    async def put_durable(self, batch: IngestBatch) -> None:
        self.entered.set()
        await self.release.wait()
        await super().put_durable(batch)


@pytest.fixture
async def session():
    async with aiohttp.ClientSession() as s:
        yield s


async def serve(connector: WebhookConnector, sink) -> TestClient:
    app, hooks = web.Application(), web.Application()
    hooks.add_routes(connector.routes(sink))
    app.add_subapp(f"/hooks/{connector.name}/", hooks)  # as the composition root mounts it
    client = TestClient(TestServer(app))
    await client.start_server()
    return client


@pytest.fixture
async def hook(session):
    sink = RecordingSink()
    client = await serve(make_connector(session), sink)
    yield client, sink
    await client.close()


async def test_signed_mention_is_durable_then_answered_202(hook):
    client, sink = hook
    body = orjson.dumps(ITEM)
    resp = await client.post("/hooks/widget/", data=body, headers=signed(body))
    assert resp.status == 202
    assert await resp.json() == {"accepted": 1, "rejected": 0}
    assert sink.durable == [True]
    (m,) = sink.mentions
    assert (m.network, m.account, m.external_id, m.text) == ("webhook", "brand", "chat-1", ITEM["text"])
    assert sink.batches[0].source == "widget"


async def test_list_with_a_bad_item_stores_both_and_reports_counts(hook):
    client, sink = hook
    body = orjson.dumps([ITEM, {"text": "no id"}])
    resp = await client.post("/hooks/widget/", data=body, headers=signed(body))
    doc = await resp.json()
    assert resp.status == 202 and (doc["accepted"], doc["rejected"]) == (1, 1)
    assert "missing field 'external_id'" in doc["errors"][0]
    assert len(sink.batches) == 1 and len(sink.mentions) == 1
    assert orjson.loads(sink.rejected[0].payload) == {"text": "no id"}


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {SIGNATURE_HEADER: "garbage"},
        {SIGNATURE_HEADER: f"t={int(time.time())},v1=deadbeef"},
        "wrong-secret",
        "stale",
    ],
    ids=["missing", "malformed", "wrong-mac", "wrong-secret", "stale"],
)
async def test_bad_signature_is_401_without_detail_and_stores_nothing(hook, headers):
    client, sink = hook
    body = orjson.dumps(ITEM)
    if headers == "wrong-secret":
        headers = signed(body, secret="other")
    elif headers == "stale":
        headers = signed(body, at=time.time() - 3600)
    resp = await client.post("/hooks/widget/", data=body, headers=headers)
    assert resp.status == 401
    assert await resp.text() == "unauthorized"
    assert sink.batches == []


async def test_signature_over_another_body_is_refused(hook):
    client, sink = hook
    resp = await client.post("/hooks/widget/", data=orjson.dumps(ITEM), headers=signed(b"{}"))
    assert resp.status == 401 and sink.batches == []


async def test_body_that_is_not_json_is_dead_lettered_then_400(hook):
    client, sink = hook
    body = b"name=jane&msg=hello"
    resp = await client.post("/hooks/widget/", data=body, headers=signed(body))
    assert resp.status == 400
    assert sink.mentions == [] and sink.durable == [True]
    assert sink.rejected[0].payload == "name=jane&msg=hello"
    assert "not JSON" in sink.rejected[0].reason


async def test_oversized_body_is_413_and_not_stored(session):
    sink = RecordingSink()
    client = await serve(make_connector(session, max_body_bytes=2048), sink)
    try:
        body = orjson.dumps([ITEM] * 100)
        resp = await client.post("/hooks/widget/", data=body, headers=signed(body))
        assert resp.status == 413 and sink.batches == []

        async def chunked():
            yield body  # no Content-Length: the limit is enforced while reading

        resp = await client.post("/hooks/widget/", data=chunked(), headers=signed(body))
        assert resp.status == 413 and sink.batches == []
    finally:
        await client.close()


async def test_store_failure_answers_503_so_the_sender_retries(session):
    conn = make_connector(session)
    client = await serve(conn, FailingSink())
    try:
        body = orjson.dumps(ITEM)
        resp = await client.post("/hooks/widget/", data=body, headers=signed(body))
        assert resp.status == 503
        assert "locked" not in await resp.text()
        assert conn.last_error == "database is locked"
    finally:
        await client.close()


async def test_answer_waits_until_the_batch_is_durable(session):
    sink = GatedSink()
    client = await serve(make_connector(session), sink)
    try:
        body = orjson.dumps(ITEM)
        request = asyncio.create_task(client.post("/hooks/widget/", data=body, headers=signed(body)))
        await sink.entered.wait()
        await asyncio.sleep(0.05)  # give a premature answer every chance to arrive
        assert not request.done()
        sink.release.set()
        resp = await request
        assert resp.status == 202 and len(sink.mentions) == 1
    finally:
        await client.close()


async def test_empty_list_is_accepted_without_a_batch(hook):
    client, sink = hook
    resp = await client.post("/hooks/widget/", data=b"[]", headers=signed(b"[]"))
    assert resp.status == 202 and await resp.json() == {"accepted": 0, "rejected": 0}
    assert sink.batches == []


async def test_run_waits_until_cancelled(session):
    task = asyncio.create_task(make_connector(session).run(RecordingSink(), None))
    await asyncio.sleep(0)
    assert not task.done()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


# ---------------------------------------------------------------- replies


class CallbackReceiver:
    """The sender's side: a tiny app that receives carebox's signed replies."""

    def __init__(self, secret: str) -> None:
        self.secret = secret
        self.posted: list[dict] = []
        self.headers: list[dict] = []
        self.fail_with: list[int] = []  # statuses to answer, one per request, before succeeding
        self.app = web.Application()
        self.app.router.add_post("/replies", self.receive)

    async def receive(self, request: web.Request) -> web.Response:
        body = await request.read()
        if verify(self.secret, request.headers.get(SIGNATURE_HEADER), body, time.time()) is not None:
            return web.Response(status=401)
        self.headers.append(dict(request.headers))
        if self.fail_with:
            status = self.fail_with.pop(0)
            return web.Response(status=status, headers={"Retry-After": "0"} if status == 429 else {})
        self.posted.append(orjson.loads(body))
        return web.json_response({"external_id": f"msg-{len(self.posted)}", "url": "https://widget.example/m/1"})


REPLY = OutboundReply(
    network="webhook",
    account="brand",
    in_reply_to="chat-1",
    text="Sorry! A fix ships today.",
    customer_id="visitor-9",
    customer_handle="visitor-9",
    thread_key="chat-1",
)


@pytest.fixture
async def receiver():
    recv = CallbackReceiver("cb")
    server = TestServer(recv.app)
    await server.start_server()
    yield recv, str(server.make_url("/replies"))
    await server.close()


async def test_reply_is_posted_signed_to_the_callback(session, receiver):
    recv, url = receiver
    conn = make_connector(session, callback_url=url, callback_secret_env="CB_SECRET")
    sent = await conn.send_reply(REPLY)
    assert sent.external_id == "msg-1" and sent.url == "https://widget.example/m/1"
    (doc,) = recv.posted
    assert (doc["in_reply_to"], doc["thread_key"], doc["text"]) == ("chat-1", "chat-1", REPLY.text)
    assert recv.headers[0]["Idempotency-Key"] == doc["id"]
    assert conn.last_ok_at is not None and conn.last_error is None


async def test_reply_retries_server_errors_and_rate_limits_with_the_same_idempotency_key(session, receiver):
    recv, url = receiver
    recv.fail_with = [500, 429]
    conn = make_connector(session, callback_url=url, callback_secret_env="CB_SECRET")
    await conn.send_reply(REPLY)
    assert len(recv.posted) == 1
    assert len({h["Idempotency-Key"] for h in recv.headers}) == 1 and len(recv.headers) == 3


async def test_reply_gives_up_as_unavailable_after_the_configured_attempts(session, receiver):
    recv, url = receiver
    recv.fail_with = [503, 503]
    conn = make_connector(session, callback_url=url, callback_secret_env="CB_SECRET", send_attempts=2)
    with pytest.raises(ConnectorUnavailable):
        await conn.send_reply(REPLY)
    assert recv.posted == [] and conn.last_error is not None


@pytest.mark.parametrize(("status", "error"), [(401, AuthenticationFailed), (422, ReplyRejected)])
async def test_reply_refusals_are_not_retried(session, receiver, status, error):
    recv, url = receiver
    recv.fail_with = [status]
    conn = make_connector(session, callback_url=url, callback_secret_env="CB_SECRET")
    with pytest.raises(error):
        await conn.send_reply(REPLY)
    assert len(recv.headers) == 1


async def test_reply_signed_with_the_wrong_secret_is_refused_by_the_receiver(session, receiver):
    _, url = receiver
    conn = make_connector(session, callback_url=url)  # signs with the inbound secret, receiver expects "cb"
    with pytest.raises(AuthenticationFailed):
        await conn.send_reply(REPLY)


async def test_reply_without_callback_is_rejected_clearly(session):
    with pytest.raises(ReplyRejected, match="no callback_url"):
        await make_connector(session).send_reply(REPLY)


async def test_from_config_resolves_secrets_from_the_environment(session, receiver):
    recv, url = receiver
    options = {"type": "webhook", "account": "b", "secret_env": "IN", "callback_url": url, "callback_secret_env": "OUT"}
    conn = from_config("widget", options, session=session, environ={"IN": SECRET, "OUT": "cb"})
    assert (conn.name, conn.network, conn.account) == ("widget", "webhook", "b")
    await conn.send_reply(REPLY)
    assert len(recv.posted) == 1


async def test_missing_secret_in_environment_is_a_config_error(session):
    with pytest.raises(ConfigError) as info:
        from_config("widget", {"account": "b", "secret_env": "NOPE"}, session=session, environ={})
    assert info.value.key == "connectors.widget.secret_env"
