"""The conversation page: collision hold, canned responses, length limits, tags, presence, live events, French."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime

import pytest

from carebox.ports import Direction, IngestBatch
from carebox.store import actions
from tests.integration.test_web import _csrf, _login, make_client
from web.keys import connectors_key, engine_key, pipeline_key

SEEN = re.compile(r'name="seen" value="(\d+)"')


@pytest.fixture
async def client(aiohttp_client, settings):
    return await make_client(aiohttp_client, settings, users=(("agent", "agent"), ("other", "agent")))


def _now() -> str:
    return datetime.now(UTC).isoformat()


async def _ingest(client, *mentions) -> None:
    await client.server.app[pipeline_key].ingest([IngestBatch("sim", tuple(mentions))], datetime.now(UTC))


async def _page(client, path="/conversations/1"):
    body = await (await client.get(path)).text()
    return body, re.search(r'name="csrf" value="([^"]+)"', body).group(1), int(SEEN.search(body).group(1))


async def test_reply_is_held_when_the_customer_wrote_since_the_page_loaded_and_sent_when_confirmed(client, mention):
    await _ingest(client, mention("my parcel is lost", when=_now()))
    await _login(client)
    _, token, seen = await _page(client)
    await _ingest(client, mention("actually it was stolen!", when=_now()))
    held = await client.post("/conversations/1/reply", data={"text": "Sorry to hear that", "seen": seen, "csrf": token})
    body = await held.text()
    assert held.status == 409 and "Your reply is on hold" in body and "actually it was stolen!" in body
    assert "Sorry to hear that" in body  # the draft is kept
    assert client.server.app[connectors_key]["sim"].posted == []
    sent = await client.post("/conversations/1/reply", data={"text": "Sorry to hear that", "seen": seen, "force": "1",
                                                             "csrf": token}, allow_redirects=False)
    assert sent.status == 303 and len(client.server.app[connectors_key]["sim"].posted) == 1


async def test_reply_is_held_when_another_agent_answered_but_not_for_my_own_earlier_reply(client, mention):
    await _ingest(client, mention("hello?", when=_now()))
    await _login(client)
    _, token, seen = await _page(client)
    ok = await client.post("/conversations/1/reply", data={"text": "Hi!", "seen": seen, "csrf": token}, allow_redirects=False)
    assert ok.status == 303
    again = await client.post("/conversations/1/reply", data={"text": "Anything else?", "seen": seen, "csrf": token},
                              allow_redirects=False)
    assert again.status == 303  # my own reply does not hold me
    _, token, seen = await _page(client)
    reply = mention("we are on it", when=_now(), direction=Direction.OUTBOUND, in_reply_to="1")
    await client.server.app[pipeline_key].ingest([IngestBatch("sim", (reply,))], datetime.now(UTC), sent_by={reply.external_id: 2})
    held = await client.post("/conversations/1/reply", data={"text": "Hi again", "seen": seen, "csrf": token})
    assert held.status == 409 and "other replied" in await held.text()


async def test_reply_longer_than_the_network_allows_is_refused_and_kept(client, mention):
    await _ingest(client, mention("help", when=_now()))
    await _login(client)
    _, token, _ = await _page(client)
    resp = await client.post("/conversations/1/reply", data={"text": "x" * 281, "csrf": token})
    body = await resp.text()
    assert resp.status == 400 and "x accepts 280" in body and "x" * 281 in body
    assert client.server.app[connectors_key]["sim"].posted == []


async def test_canned_responses_fill_the_customer_and_agent_names_in_the_conversation_language_first(client, mention):
    app = client.server.app
    now = datetime.now(UTC)
    await actions.add_canned(app[engine_key], "Thanks", "en", "Thanks {customer_name}, {agent_first_name} here.", 1, now)
    await actions.add_canned(app[engine_key], "Merci", "fr", "Merci {customer_name}, ici {agent_first_name}.", 1, now)
    await actions.update_user(app[engine_key], 1, 1, now, display_name="Camille Dupont")
    await _ingest(client, mention("bonjour, ma box ne marche plus depuis ce matin", when=_now(), author_name="Jeanne",
                                  lang_hint="fr"))
    await _login(client)
    body, _, _ = await _page(client)
    options = re.findall(r'data-text="([^"]+)"', body)
    assert options[0] == "Merci Jeanne, ici Camille." and "Thanks Jeanne, Camille here." in options


async def test_tags_are_saved_audited_and_filterable(client, mention):
    await _ingest(client, mention("help", when=_now()))
    await _login(client)
    token = await _csrf(client, "/conversations/1")
    await client.post("/conversations/1/tags", data={"tags": "VIP, billing ,vip", "csrf": token})
    body = await (await client.get("/conversations/1")).text()
    assert 'value="billing, vip"' in body and "tags" in body
    assert "/conversations/1" in await (await client.get("/?view=open&tag=vip")).text()


async def test_who_is_viewing_and_typing_is_shared_and_sent_live(client, aiohttp_client, mention):
    await _ingest(client, mention("help", when=_now()))
    await _login(client)
    other = await aiohttp_client(client.server)
    await _login(other, username="other")
    token = await _csrf(client, "/conversations/1")
    other_token = await _csrf(other, "/conversations/1")
    stream = await client.get("/events")
    assert stream.headers["Content-Type"].startswith("text/event-stream")
    await other.post("/conversations/1/presence", data={"state": "typing"}, headers={"X-CSRF-Token": other_token})
    event = await _next_event(stream, "presence")
    assert '"username":"other"' in event and '"state":"typing"' in event
    page = await (await client.get("/conversations/1")).text()
    assert "other is typing" in page
    assert (await client.post("/conversations/1/presence", data={"state": "bogus"}, headers={"X-CSRF-Token": token})).status == 400
    stream.close()


async def _next_event(stream, kind: str) -> str:
    async def read() -> str:
        buffer = ""
        while True:
            line = (await stream.content.readline()).decode()
            buffer += line
            if line == "\n":
                if f"event: {kind}\n" in buffer:
                    return buffer
                buffer = ""
    return await asyncio.wait_for(read(), 5)


async def test_new_mentions_and_assignments_are_pushed_with_the_assignee(client, mention):
    await _login(client)
    stream = await client.get("/events")
    await _ingest(client, mention("is anyone there?", when=_now()))
    assert '"conversation_id":1' in await _next_event(stream, "mention")
    token = await _csrf(client, "/conversations/1")
    await client.post("/conversations/1/assign", data={"assignee": "me", "csrf": token})
    assert '"assignee_id":1' in await _next_event(stream, "assign")
    stream.close()


async def test_the_interface_speaks_french_by_choice_or_by_browser(client, mention):
    await _ingest(client, mention("help", when=_now()))
    login = await (await client.get("/login", headers={"Accept-Language": "fr-FR,fr;q=0.9,en;q=0.5"})).text()
    assert "Connexion" in login and 'lang="fr"' in login
    await _login(client)
    assert "Awaiting reply" in await (await client.get("/")).text()
    await actions.update_user(client.server.app[engine_key], 1, 1, datetime.now(UTC), language="fr", timezone="America/Montreal")
    inbox = await (await client.get("/", headers={"Accept-Language": "en"})).text()
    assert "En attente de réponse" in inbox and "Boîte de réception" in inbox
    page = await (await client.get("/conversations/1")).text()
    assert "Répondre publiquement sur X" in page and "caractères restants" in page
