"""The web inbox through aiohttp's test client: login, inbox, reply, assign, resolve, health, metrics."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from argon2 import PasswordHasher

from carebox.ports import IngestBatch, OutboundReply, SentReply
from web.keys import connectors_key, pipeline_key

CSRF = re.compile(r'name="csrf" value="([^"]+)"')


class RecordingConnector:
    """A connector double that records replies, like the simulator."""

    name, network, account = "sim", "x", "acme"

    def __init__(self, fail: Exception | None = None) -> None:
        self.posted: list[OutboundReply] = []
        self.fail = fail

    async def run(self, sink, cursor):  # pragma: no cover - not started in these tests
        return None

    async def send_reply(self, reply: OutboundReply) -> SentReply:
        if self.fail:
            raise self.fail
        self.posted.append(reply)
        return SentReply(external_id=f"reply-{len(self.posted)}", created_at=datetime.now(UTC))


# A real argon2id hash with cheap parameters: the login path is the production one, the test stays fast.
PASSWORD = "s3cret-pass"
CHEAP_HASH = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1).hash(PASSWORD)


async def make_client(aiohttp_client, settings, users=(("agent", "agent"),)):
    """A test client on the whole app (store, pipeline, web) with a recording connector and `users`."""
    from carebox.runtime import build_app
    from carebox.store import actions
    from web.keys import engine_key

    app = await build_app(settings)
    cli = await aiohttp_client(app)
    app[connectors_key]["sim"] = RecordingConnector()
    for name, role in users:
        await actions.add_user(app[engine_key], name, CHEAP_HASH, role, datetime.now(UTC))
    return cli


@pytest.fixture
async def client(aiohttp_client, settings):
    return await make_client(aiohttp_client, settings)


async def _login(client, password: str = PASSWORD, username: str = "agent"):
    page = await client.get("/login")
    token = CSRF.search(await page.text()).group(1)
    return await client.post("/login", data={"username": username, "password": password, "csrf": token}, allow_redirects=False)


async def _csrf(client, path: str) -> str:
    return CSRF.search(await (await client.get(path)).text()).group(1)


async def test_health_and_metrics_are_public(client):
    health = await client.get("/healthz")
    assert health.status == 200 and await health.json() == {"status": "ok"}
    metrics = await client.get("/metrics")
    text = await metrics.text()
    assert "carebox_mentions_ingested_total" in text
    assert 'carebox_connector_up{connector="sim"} 1.0' in text


async def test_inbox_requires_login(client):
    resp = await client.get("/", allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"].startswith("/login")


async def test_wrong_password_is_refused_and_repeated_failures_are_throttled(client):
    for _ in range(5):
        assert (await _login(client, "wrong")).status == 401
    assert (await _login(client)).status == 429


async def test_state_changes_without_csrf_token_are_refused(client):
    assert (await _login(client)).status == 303
    resp = await client.post("/conversations/1/status", data={"status": "resolved"})
    assert resp.status == 403


async def test_agent_takes_a_conversation_replies_and_it_leaves_the_queue(client, mention):
    app = client.server.app
    question = mention("where is my refund??", when="2026-11-17T10:00:00+01:00")
    await app[pipeline_key].ingest([IngestBatch("sim", (question,))], datetime.now(UTC))
    assert (await _login(client)).status == 303
    inbox = await (await client.get("/")).text()
    assert "where is my refund??" in inbox and "/conversations/1" in inbox
    token = await _csrf(client, "/conversations/1")
    assert (await client.post("/conversations/1/assign", data={"assignee": "me", "csrf": token})).status == 200
    assert "agent" in await (await client.get("/?view=mine")).text()
    resp = await client.post("/conversations/1/reply", data={"text": "Hi! Refund sent today.", "csrf": token})
    assert resp.status == 200
    [reply] = app[connectors_key]["sim"].posted
    assert reply.in_reply_to == question.external_id and reply.text == "Hi! Refund sent today."
    assert "where is my refund??" not in await (await client.get("/")).text()
    page = await (await client.get("/conversations/1")).text()
    assert "Hi! Refund sent today." in page and "First response at" in page
    assert (await client.post("/conversations/1/status", data={"status": "resolved", "csrf": token})).status == 200
    assert "where is my refund??" in await (await client.get("/?view=resolved")).text()


async def test_failed_reply_is_shown_and_the_clock_keeps_running(client, mention):
    from carebox.errors import ConnectorUnavailable

    app = client.server.app
    app[connectors_key]["sim"] = RecordingConnector(fail=ConnectorUnavailable("sim", "HTTP 503"))
    await app[pipeline_key].ingest([IngestBatch("sim", (mention("help"),))], datetime.now(UTC))
    await _login(client)
    token = await _csrf(client, "/conversations/1")
    page = await (await client.post("/conversations/1/reply", data={"text": "hello", "csrf": token})).text()
    assert "nothing was sent" in page
    assert "help" in await (await client.get("/")).text()


async def test_html_in_mentions_is_escaped(client, mention):
    app = client.server.app
    await app[pipeline_key].ingest([IngestBatch("sim", (mention("<script>alert(1)</script>"),))], datetime.now(UTC))
    await _login(client)
    body = await (await client.get("/conversations/1")).text()
    assert "<script>alert(1)</script>" not in body and "&lt;script&gt;" in body


async def test_bad_urls_get_an_error_page_not_a_traceback(client):
    await _login(client)
    for path, status in (("/conversations/abc", 400), ("/conversations/999", 404), ("/?view=nope", 404)):
        resp = await client.get(path)
        text = await resp.text()
        assert resp.status == status and "Traceback" not in text and "<h1>" in text


async def test_security_headers_are_set(client):
    resp = await client.get("/login")
    assert "frame-ancestors 'none'" in resp.headers["Content-Security-Policy"]
    assert resp.headers["X-Content-Type-Options"] == "nosniff"


async def test_a_browser_leaving_mid_response_is_not_logged_as_a_server_error(caplog):
    from aiohttp.test_utils import make_mocked_request

    from web.app import error_pages

    async def download(request):
        raise ConnectionResetError("Cannot write to closing transport")

    caplog.set_level("INFO", "web.app")
    with pytest.raises(ConnectionResetError):
        await error_pages(make_mocked_request("GET", "/reports/export.csv"), download)
    assert not [r for r in caplog.records if r.levelname == "ERROR"]
    assert any("client closed the connection" in r.getMessage() for r in caplog.records)
