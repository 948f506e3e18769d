"""Roles on admin pages, canned responses, dead letters, automatic assignment, and the Bearer-token JSON API."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import orjson
import pytest

from carebox.ports import IngestBatch, Rejected
from carebox.store import actions, queries
from tests.integration.test_web import _csrf, _login, make_client
from web.keys import connectors_key, engine_key, pipeline_key

USERS = (("agent", "agent"), ("boss", "manager"), ("root", "admin"), ("ana", "agent"))


@pytest.fixture
async def client(aiohttp_client, settings):
    return await make_client(aiohttp_client, settings, users=USERS)


def _now() -> str:
    return datetime.now(UTC).isoformat()


@pytest.mark.parametrize("path", ["/admin/users", "/admin/connectors", "/admin/canned", "/admin/policies",
                                  "/admin/dead-letters"])
async def test_agents_cannot_open_admin_pages(client, path):
    await _login(client)
    resp = await client.get(path)
    assert resp.status == 403 and "Traceback" not in await resp.text()


async def test_managers_edit_canned_responses_but_only_admins_manage_users(client):
    await _login(client, username="boss")
    token = await _csrf(client, "/admin/canned")
    await client.post("/admin/canned", data={"title": "Hello", "language": "en", "body": "Hi {customer_name}", "csrf": token})
    assert "Hi {customer_name}" in await (await client.get("/admin/canned")).text()
    assert (await client.get("/admin/users")).status == 403
    assert (await client.post("/admin/users", data={"username": "x", "password": "p" * 12, "role": "admin",
                                                    "csrf": token})).status == 403


async def test_admin_creates_a_user_who_can_log_in(client):
    await _login(client, username="root")
    token = await _csrf(client, "/admin/users")
    resp = await client.post("/admin/users", data={"username": "newbie", "password": "long-enough-pw", "role": "agent",
                                                   "csrf": token})
    assert resp.status == 200 and "newbie" in await resp.text()
    assert (await queries.user_by_name(client.server.app[engine_key], "newbie"))["language"] == "auto"


async def test_connector_health_is_shown_to_admins(client):
    client.server.app[connectors_key]["sim"].last_error = "HTTP 401 from x"
    await _login(client, username="root")
    assert "HTTP 401 from x" in await (await client.get("/admin/connectors")).text()


async def test_a_dead_letter_in_the_jsonl_format_is_requeued_into_the_inbox(client):
    payload = orjson.dumps({"network": "x", "account": "acme", "external_id": "dl-1", "author_id": "u9",
                            "author_handle": "u9", "text": "lost in the queue", "created_at": _now()}).decode()
    await client.server.app[pipeline_key].ingest(
        [IngestBatch("sim", (), (Rejected("sim", payload, "pipeline error"), Rejected("sim", "not json", "bad")))],
        datetime.now(UTC))
    await _login(client, username="boss")
    token = await _csrf(client, "/admin/dead-letters/1")
    await client.post("/admin/dead-letters/1", data={"action": "requeue", "csrf": token})
    assert "lost in the queue" in await (await client.get("/?view=open")).text()
    refused = await client.post("/admin/dead-letters/2", data={"action": "requeue", "csrf": token})
    assert refused.status == 400 and "mark it handled" in await refused.text()
    await client.post("/admin/dead-letters/2", data={"action": "handled", "csrf": token})
    outcomes = {d["id"]: d["outcome"] for d in await queries.dead_letters(client.server.app[engine_key])}
    assert outcomes == {1: "requeued", 2: "handled"}


async def test_waiting_conversations_go_to_online_agents_within_capacity_and_are_audited(client, mention):
    app = client.server.app
    now = datetime.now(UTC)
    await app[pipeline_key].ingest([IngestBatch("sim", tuple(mention(f"help {i}", author=f"c{i}", when=_now())
                                                             for i in range(3)))], now)
    await actions.set_profile(app[engine_key], 1, 1, now, available=True, capacity=1, last_seen_at=now)   # agent
    await actions.set_profile(app[engine_key], 4, 4, now, available=True, capacity=5, last_seen_at=now)   # ana
    await actions.set_profile(app[engine_key], 2, 2, now, available=False, capacity=5, last_seen_at=now)  # boss: away
    await _login(client, username="boss")
    token = await _csrf(client, "/")
    await client.post("/assign/auto", data={"csrf": token})
    loads = {r["username"]: r["load"] for r in await queries.agent_profiles(app[engine_key])}
    assert loads["agent"] == 1 and loads["ana"] == 2 and loads["boss"] == 0
    detail = await queries.conversation(app[engine_key], 1)
    assert any(a["action"] == "assign.auto" for a in detail["audit"])


async def _token(client) -> str:
    await _login(client)
    csrf = await _csrf(client, "/me")
    body = await (await client.post("/me/tokens", data={"name": "ci", "csrf": csrf})).text()
    return re.search(r'<code id="new-token">([^<]+)</code>', body).group(1)


async def test_the_api_needs_a_valid_bearer_token_and_serves_its_openapi_document(client, aiohttp_client, mention):
    await client.server.app[pipeline_key].ingest([IngestBatch("sim", (mention("api?", when=_now()),))], datetime.now(UTC))
    token = await _token(client)
    anonymous = await aiohttp_client(client.server)
    refused = await anonymous.get("/api/v1/conversations")
    assert refused.status == 401 and "error" in await refused.json()
    assert (await anonymous.get("/api/v1/conversations", headers={"Authorization": "Bearer nope"})).status == 401
    auth = {"Authorization": f"Bearer {token}"}
    listed = await (await anonymous.get("/api/v1/conversations?view=open", headers=auth)).json()
    assert [c["id"] for c in listed["items"]] == [1] and listed["next"] is None
    spec = await (await anonymous.get("/api/v1/openapi.json", headers=auth)).json()
    assert "/api/v1/conversations/{id}/replies" in spec["paths"]


async def test_the_api_replies_and_assigns_without_a_csrf_token(client, aiohttp_client, mention):
    await client.server.app[pipeline_key].ingest([IngestBatch("sim", (mention("api?", when=_now()),))], datetime.now(UTC))
    token = await _token(client)
    api = await aiohttp_client(client.server)
    auth = {"Authorization": f"Bearer {token}"}
    assigned = await api.put("/api/v1/conversations/1/assignment", data=orjson.dumps({"assignee_id": 4}), headers=auth)
    assert assigned.status == 200
    sent = await api.post("/api/v1/conversations/1/replies", data=orjson.dumps({"text": "On it"}), headers=auth)
    assert sent.status == 201 and (await sent.json())["external_id"] == "reply-1"
    mentions = await (await api.get("/api/v1/conversations/1/mentions", headers=auth)).json()
    assert [m["direction"] for m in mentions["items"]] == ["in", "out"]
    too_long = await api.post("/api/v1/conversations/1/replies", data=orjson.dumps({"text": "x" * 281}), headers=auth)
    assert too_long.status == 422


async def test_conversations_of_an_offline_agent_return_to_the_queue_when_reassignment_is_on(aiohttp_client, tmp_path, db_url, mention):
    from carebox import config

    settings = config.parse({"carebox": {"data_dir": str(tmp_path)}, "database": {"url": db_url},
                             "inbox": {"assignment": {"reassign_when_offline": True}}}, environ={})
    client = await make_client(aiohttp_client, settings, users=USERS)
    app, now = client.server.app, datetime.now(UTC)
    await app[pipeline_key].ingest([IngestBatch("sim", (mention("help", when=_now()),))], now)
    await actions.assign(app[engine_key], 1, 1, 1, now)                       # agent, never seen online
    await actions.set_profile(app[engine_key], 4, 4, now, available=True, last_seen_at=now)  # ana is online
    await _login(client, username="boss")
    await client.post("/assign/auto", data={"csrf": await _csrf(client, "/")})
    detail = await queries.conversation(app[engine_key], 1)
    assert detail["assignee_id"] == 4
    assert [a["action"] for a in detail["audit"]][:2] == ["assign.auto", "assign.release"]
