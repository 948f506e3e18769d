"""Public reply or private message: offered where the network allows both, defaulting to the kind of the customer's
last message; sent through the connector with that kind, in the composer and in the JSON API."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest

from carebox.ports import IngestBatch
from carebox.store import clocks as clock_store
from carebox.store import queries
from tests.integration.test_web import RecordingConnector, _csrf, _login, make_client
from tests.integration.test_web_admin_api import _token
from web.keys import connectors_key, engine_key, pipeline_key

USERS = (("agent", "agent"),)


class BothKinds(RecordingConnector):
    """A recording connector on a network with public replies and private messages (X, Mastodon, Meta)."""

    private_replies = True


@pytest.fixture
async def client(aiohttp_client, settings):
    cli = await make_client(aiohttp_client, settings, users=USERS)
    cli.server.app[connectors_key]["sim"] = BothKinds()
    return cli


async def _ingest(client, mention, **kw) -> None:
    now = datetime.now(UTC)
    await client.server.app[pipeline_key].ingest([IngestBatch("sim", (mention("where is my parcel?", when=now.isoformat(), **kw),))], now)


async def test_a_public_mention_offers_both_kinds_and_a_private_message_is_sent_privately(client, mention):
    await _ingest(client, mention)
    await _login(client)
    page = await (await client.get("/conversations/1")).text()
    assert 'name="kind" value="public" checked' in page and 'value="private"' in page
    token = await _csrf(client, "/conversations/1")
    resp = await client.post("/conversations/1/reply", data={"text": "I sent you a DM", "kind": "private", "csrf": token},
                             allow_redirects=False)
    assert resp.status == 303
    (sent,) = client.server.app[connectors_key]["sim"].posted
    assert sent.public is False and sent.customer_id == "u1"
    out = [m for m in (await queries.conversation(client.server.app[engine_key], 1))["mentions"] if m["direction"] == "out"]
    assert [m["public"] for m in out] == [False]
    # a private acknowledgement does not fulfil the first response under the default rule
    [clock] = await clock_store.running(client.server.app[engine_key])
    assert clock["fulfilled_at"] is None


async def test_the_default_is_a_public_reply_to_a_public_mention(client, mention):
    await _ingest(client, mention)
    await _login(client)
    token = await _csrf(client, "/conversations/1")
    await client.post("/conversations/1/reply", data={"text": "On it", "csrf": token}, allow_redirects=False)
    assert [r.public for r in client.server.app[connectors_key]["sim"].posted] == [True]


async def test_a_private_message_is_answered_privately_with_no_choice(client, mention):
    await _ingest(client, mention, public=False)
    await _login(client)
    page = await (await client.get("/conversations/1")).text()
    assert 'name="kind"' not in page and "Reply privately on X" in page
    token = await _csrf(client, "/conversations/1")
    refused = await client.post("/conversations/1/reply", data={"text": "In public!", "kind": "public", "csrf": token})
    text = await refused.text()
    assert refused.status == 400 and "a private message is answered privately" in text and "In public!" in text
    await client.post("/conversations/1/reply", data={"text": "Check your DMs", "csrf": token}, allow_redirects=False)
    assert [r.public for r in client.server.app[connectors_key]["sim"].posted] == [False]


async def test_a_network_with_one_kind_of_reply_shows_no_choice(client, mention):
    client.server.app[connectors_key]["sim"] = RecordingConnector()  # like Bluesky or e-mail
    await _ingest(client, mention)
    await _login(client)
    page = await (await client.get("/conversations/1")).text()
    assert 'name="kind"' not in page and "Reply publicly on X" in page
    token = await _csrf(client, "/conversations/1")
    refused = await client.post("/conversations/1/reply", data={"text": "psst", "kind": "private", "csrf": token})
    assert refused.status == 400 and client.server.app[connectors_key]["sim"].posted == []


async def test_the_api_takes_public_true_or_false(client, aiohttp_client, mention):
    await _ingest(client, mention)
    token = await _token(client)
    api = await aiohttp_client(client.server)
    auth = {"Authorization": f"Bearer {token}"}
    bad = await api.post("/api/v1/conversations/1/replies", data=orjson.dumps({"text": "x", "public": "no"}), headers=auth)
    assert bad.status == 400
    sent = await api.post("/api/v1/conversations/1/replies", data=orjson.dumps({"text": "DM sent", "public": False}),
                          headers=auth)
    assert sent.status == 201
    assert [r.public for r in client.server.app[connectors_key]["sim"].posted] == [False]


async def test_the_api_refuses_a_public_answer_to_a_private_message(client, aiohttp_client, mention):
    await _ingest(client, mention, public=False)
    token = await _token(client)
    api = await aiohttp_client(client.server)
    auth = {"Authorization": f"Bearer {token}"}
    refused = await api.post("/api/v1/conversations/1/replies", data=orjson.dumps({"text": "x", "public": True}),
                             headers=auth)
    assert refused.status == 422 and client.server.app[connectors_key]["sim"].posted == []
