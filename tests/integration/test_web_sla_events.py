"""The conversation page's SLA events read as sentences, in the reader's language (not "first_response activate")."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from carebox.ports import IngestBatch
from carebox.store import queries
from tests.integration.test_web import _login, make_client
from web.keys import engine_key, pipeline_key

SEEN = re.compile(r'name="seen" value="(\d+)"')
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@pytest.fixture
async def client(aiohttp_client, settings):
    return await make_client(aiohttp_client, settings, users=(("agent", "agent"),))


def _events(page: str) -> list[str]:
    return [re.sub(r"<[^>]+>", "", li) for li in re.findall(r'<li class="sla-event [a-z_]+">(.*?)</li>', page, re.DOTALL)]


async def test_the_sla_events_of_a_conversation_read_as_sentences_in_english_and_french(client, mention):
    now = datetime.now(UTC)
    await client.server.app[pipeline_key].ingest([IngestBatch("sim", (mention("my parcel is lost", when=now.isoformat()),))],
                                                 now)
    await _login(client)
    page = await (await client.get("/conversations/1")).text()
    [started] = _events(page)
    assert re.search(r"· First response: clock started, due .+ \(the customer expects an answer by .+\)$", started), started
    assert "first_response activate" not in page
    token, seen = CSRF.search(page).group(1), SEEN.search(page).group(1)
    await client.post("/conversations/1/reply", data={"text": "On it!", "seen": seen, "csrf": token}, allow_redirects=False)
    async with client.server.app[engine_key].begin() as c:
        await c.execute(sa.update(queries.user).where(queries.user.c.username == "agent").values(language="fr"))
    events = _events(await (await client.get("/conversations/1")).text())
    assert any("Première réponse : délai démarré, échéance " in e for e in events), events
    assert any(re.search(r"Première réponse : répondu après \d+ (s|min) \(temps ouvré \d+ (s|min)\)$", e) for e in events), events
