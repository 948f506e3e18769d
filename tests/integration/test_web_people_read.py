"""What people read on the pages: names instead of internal identifiers, French everywhere, feedback after an action."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from carebox.ports import IngestBatch
from carebox.store import actions
from tests.integration.test_web import _csrf, _login, make_client
from web.keys import engine_key, pipeline_key

SEEN = re.compile(r'name="seen" value="(\d+)"')


@pytest.fixture
async def client(aiohttp_client, settings):
    return await make_client(aiohttp_client, settings, users=(("agent", "agent"), ("boss", "manager")))


async def _ingest(client, *mentions) -> None:
    await client.server.app[pipeline_key].ingest([IngestBatch("sim", tuple(mentions))], datetime.now(UTC))


async def _speak_french(client, user_id: int) -> None:
    await actions.update_user(client.server.app[engine_key], user_id, user_id, datetime.now(UTC), language="fr")


async def test_networks_are_named_as_they_spell_themselves(client, mention):
    await _ingest(client, mention("help", when=datetime.now(UTC).isoformat()))
    await _login(client)
    inbox = await (await client.get("/")).text()
    assert '<span class="net net-x">X</span>' in inbox and '<option value="bluesky" >Bluesky</option>' in inbox
    page = await (await client.get("/conversations/1")).text()
    assert '<span class="net net-x">X</span>' in page and "characters left on X" in page and "<li>X: @u1" in page


async def test_the_conversation_page_shows_no_raw_status_or_audit_names(client, mention):
    await _ingest(client, mention("help", when=datetime.now(UTC).isoformat()))
    await _login(client)
    fresh = await (await client.get("/conversations/1")).text()
    assert "Nothing done yet." in fresh and "<li>—</li>" not in fresh
    assert ">Pending</button>" in fresh and ">Resolved</button>" in fresh and "<b>Open</b>" in fresh
    token = await _csrf(client, "/conversations/1")
    await client.post("/conversations/1/assign", data={"assignee": "me", "csrf": token})
    assigned = await (await client.get("/conversations/1")).text()
    assert "· agent · assigned it</li>" in assigned and "· assign</li>" not in assigned


async def test_a_french_agent_reads_one_unassigned_conversation_in_the_singular(client, mention):
    await _ingest(client, mention("help", when=datetime.now(UTC).isoformat()))
    await _login(client)
    await _speak_french(client, 1)
    page = await (await client.get("/conversations/1")).text()
    assert "Pas encore attribuée" in page and "Non attribuées" not in page and "Rien pour l'instant." in page


async def test_the_inbox_confirms_a_reply_and_a_resolution(client, mention):
    await _ingest(client, mention("where is my parcel?", when=datetime.now(UTC).isoformat()))
    await _login(client)
    body = await (await client.get("/conversations/1")).text()
    token, seen = await _csrf(client, "/conversations/1"), SEEN.search(body).group(1)
    sent = await client.post("/conversations/1/reply", data={"text": "On its way!", "seen": seen, "next": "/",
                                                             "csrf": token}, allow_redirects=False)
    assert sent.status == 303 and sent.headers["Location"] == "/?done=replied&done_id=1"
    inbox = await (await client.get(sent.headers["Location"])).text()
    assert 'class="notice" role="status">Reply sent on conversation 1.' in inbox
    assert 'href="/?view=mine"' in inbox  # the confirmation is not carried into the view links
    resolved = await client.post("/conversations/1/status", data={"status": "resolved", "csrf": token},
                                 allow_redirects=False)
    assert resolved.headers["Location"] == "/?done=resolved&done_id=1"
    assert "Conversation 1 resolved." in await (await client.get(resolved.headers["Location"])).text()
    assert 'class="notice"' not in await (await client.get("/?done=deleted&done_id=1")).text()


async def test_the_report_speaks_french_and_names_its_breakdown(client, mention):
    await _ingest(client, mention("help", when="2026-11-17T10:00:00+01:00"))
    await _login(client, username="boss")
    english = await (await client.get("/reports?by=category")).text()
    assert "<h2>By category</h2>" in english and "<th>Category</th>" in english and "<th>account</th>" not in english
    assert '<option value="account" >Account</option>' in english
    await _speak_french(client, 2)
    french = await (await client.get("/reports")).text()
    assert "<h1>Temps de réponse</h1>" in french and "<h2>Par compte</h2>" in french and "Semaine du" in french
    assert "Response times" not in french and "Breakdown" not in french and "Week of" not in french
    assert "<th>16 nov. 2026</th>" in french  # the week starting Monday 16 November, not 2026-11-16
    assert "<td>X</td>" in french


async def test_every_page_declares_an_icon_so_browsers_ask_for_no_favicon(client):
    await _login(client)
    assert '<link rel="icon" href="data:,">' in await (await client.get("/")).text()


async def test_the_drill_down_names_its_figure_and_filters_for_people(client, mention):
    await _ingest(client, mention("help", when="2026-11-17T10:00:00+01:00"))
    await _login(client, username="boss")
    english = await (await client.get("/reports/drill?metric=off_hours&account=acme")).text()
    assert "<h1>Conversations opened outside service hours</h1>" in english and "Account = <b>acme</b>" in english
    await _speak_french(client, 2)
    french = await (await client.get("/reports/drill?metric=all&week=20773")).text()
    assert "<h1>Toutes les conversations</h1>" in french and "Retour au rapport" in french
    assert "<td>(non attribuée)</td>" in french and "(unassigned)" not in french
    by_agent = await (await client.get("/reports?by=agent")).text()
    assert "<th>(non attribuée)</th>" in by_agent and "<h2>Par agent</h2>" in by_agent
    assert "semaine du 16 nov. 2026" in french and "2026-11-16" not in french


async def test_policies_name_their_targets_as_people_say_them(aiohttp_client, tmp_path, db_url):
    from carebox import config
    from tests.integration.test_web_admin_sla import sla_doc

    client = await make_client(aiohttp_client, config.parse(sla_doc(tmp_path, db_url), environ={}),
                               users=(("boss", "manager"),))
    await _login(client, username="boss")
    page = await (await client.get("/admin/policies")).text()
    assert "<li>First response: 2d 12h on service-hours</li>" in page and "first_response" not in page


async def test_admin_pages_name_languages_and_connector_kinds(aiohttp_client, settings):
    client = await make_client(aiohttp_client, settings, users=(("root", "admin"),))
    await _login(client, username="root")
    await _speak_french(client, 1)
    users = await (await client.get("/admin/users")).text()
    assert "<td>Français</td>" in users and "<td>fr</td>" not in users
    connectors = await (await client.get("/admin/connectors")).text()
    assert "<td>Recording</td>" in connectors and "RecordingConnector" not in connectors
