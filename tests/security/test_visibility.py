"""Per-account visibility: an agent limited to some accounts never reads or touches a conversation of another one.

Alice is an agent limited to x/acme (set by an admin on /admin/users); Bob is an agent without a list (every
account). The customer Carol wrote to both x/acme (conversation A) and x/other (conversation B). Every route and
API endpoint about one conversation answers Alice 404 for B (not 403: an id outside her accounts looks like an id
that does not exist), while the same route does not answer 404 for A; and B is in none of her views or counts.
"""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from aiohttp import web

from carebox.ports import IngestBatch
from carebox.store import queries
from tests.integration.test_web import RecordingConnector
from tests.security import (
    STATE_CHANGING,
    add_users,
    api_token,
    build,
    csrf_of,
    login,
    routes,
    second_browser,
    security_settings,
)
from web.keys import connectors_key, engine_key, pipeline_key
from web.live import LiveEvent, announce

A_TEXT, B_TEXT = "my invoice is wrong, acme", "my parcel never came, other"
COUNT = re.compile(r'data-view="(\w+)">[^<]*<span class="count">(\d+)</span>')


@pytest.fixture
async def world(aiohttp_client, tmp_path, mention) -> dict[str, Any]:
    """The app, Alice's and Bob's clients, and the ids of conversations A (x/acme) and B (x/other)."""
    app = await build(security_settings(tmp_path))
    admin = await aiohttp_client(app)
    app[connectors_key]["sim"] = RecordingConnector()  # replies are sent (and recorded), not refused with a 503
    ids = await add_users(app, (("alice", "agent"), ("bob", "agent"), ("admin", "admin")))
    when = datetime.now(UTC).isoformat()
    await app[pipeline_key].ingest([IngestBatch("sim", (mention(A_TEXT, author="carol", when=when),)),
                                    IngestBatch("sim", (mention(B_TEXT, author="carol", when=when, account="other"),))],
                                   datetime.now(UTC))
    async with app[engine_key].connect() as c:
        convs = dict((await c.execute(sa.select(queries.conv.c.account, queries.conv.c.id))).all())
    assert (await login(admin, "admin")).status == 303
    saved = await admin.post("/admin/users", data={"csrf": await csrf_of(admin), "user_id": str(ids["alice"]),
                                                   "role": "agent", "active": "1", "accounts": "x/acme"},
                             allow_redirects=False)
    assert saved.status == 303
    return {"app": app, "admin": admin, "ids": ids, "a": convs["acme"], "b": convs["other"]}


async def _client(aiohttp_client, world, name: str) -> Any:
    """A logged-in browser of `name` on the world's server (its own cookie jar)."""
    session = second_browser(world["admin"])
    await login(session, name)
    return session


async def _status(session: Any, method: str, url: str, csrf: str, token: str) -> int:
    if url.startswith("/api/"):
        resp = await session.request(method, url, json={"text": "hello", "assignee_id": None},
                                     headers={"Authorization": f"Bearer {token}"}, allow_redirects=False)
    elif method in STATE_CHANGING:
        resp = await session.request(method, url, allow_redirects=False, data={
            "csrf": csrf, "text": "hello", "status": "pending", "assignee": "me", "tags": "vip", "state": "viewing"})
    else:
        resp = await session.get(url, allow_redirects=False)
    await resp.read()
    return resp.status


def _conversation_routes(app: web.Application) -> list[tuple[str, str]]:
    """Every route of the router about one conversation, pages, actions and API (a new one is included at once)."""
    return [(r.method, r.path) for r in routes(app) if re.search(r"/conversations/\{id\}", r.path)]


async def test_an_agent_gets_404_for_a_conversation_outside_their_accounts_on_every_route(aiohttp_client, world):
    table = _conversation_routes(world["app"])
    assert len(table) >= 11 and any(p.startswith("/api/") for _, p in table)  # the pages, 6 actions and the API
    async with await _client(aiohttp_client, world, "alice") as alice:
        csrf, token = await csrf_of(alice), await api_token(alice)
        refused = {(m, p): await _status(alice, m, p.replace("{id}", str(world["b"])), csrf, token) for m, p in table}
        assert {k: v for k, v in refused.items() if v != 404} == {}
        allowed = {(m, p): await _status(alice, m, p.replace("{id}", str(world["a"])), csrf, token) for m, p in table}
        assert {k: v for k, v in allowed.items() if v in (403, 404) or v >= 500} == {}  # the same routes do serve A
    async with await _client(aiohttp_client, world, "bob") as bob:  # an agent without a list sees every account
        assert (await bob.get(f"/conversations/{world['b']}")).status == 200


async def test_an_agent_sees_no_conversation_of_another_account_in_any_view_count_search_or_list(aiohttp_client, world):
    async with await _client(aiohttp_client, world, "alice") as alice, await _client(aiohttp_client, world, "bob") as bob:
        for view in queries.VIEWS:
            mine = await (await alice.get(f"/?view={view}")).text()
            everyone = await (await bob.get(f"/?view={view}")).text()
            assert f"/conversations/{world['b']}" not in mine
            if view == "open":
                assert f"/conversations/{world['a']}" in mine and f"/conversations/{world['b']}" in everyone
        alice_counts = dict(COUNT.findall(await (await alice.get("/?view=open")).text()))
        bob_counts = dict(COUNT.findall(await (await bob.get("/?view=open")).text()))
        assert set(alice_counts) == set(queries.VIEWS)
        assert (alice_counts["open"], bob_counts["open"]) == ("1", "2")
        assert all(int(alice_counts[v]) <= 1 for v in queries.VIEWS)
        assert "/conversations/" not in await (await alice.get("/?view=open&q=parcel")).text()  # B's words
        assert f"/conversations/{world['b']}" in await (await bob.get("/?view=open&q=parcel")).text()
        token = await api_token(alice)
        listed = await (await alice.get("/api/v1/conversations?view=open", headers={"Authorization": f"Bearer {token}"})).json()
        assert [c["id"] for c in listed["items"]] == [world["a"]]


async def test_the_customer_history_shows_only_the_agents_accounts(aiohttp_client, world):
    async with await _client(aiohttp_client, world, "alice") as alice, await _client(aiohttp_client, world, "bob") as bob:
        assert B_TEXT not in await (await alice.get(f"/conversations/{world['a']}")).text()
        assert B_TEXT in await (await bob.get(f"/conversations/{world['a']}")).text()  # same customer, other account


async def test_live_events_of_other_accounts_never_reach_the_agent(aiohttp_client, world):
    async with await _client(aiohttp_client, world, "alice") as alice:
        stream = await alice.get("/events")
        assert stream.status == 200
        await stream.content.readuntil(b"connected\n\n")
        announce(world["app"], LiveEvent("note", world["b"], {"by": 0}))
        announce(world["app"], LiveEvent("note", world["a"], {"by": 0}))
        received = b""
        while f'"conversation_id":{world["a"]}'.encode() not in received:
            received += await asyncio.wait_for(stream.content.readuntil(b"\n\n"), 5)
        assert f'"conversation_id":{world["b"]}'.encode() not in received
        stream.close()


async def test_an_admin_sets_the_accounts_audited_and_a_bad_entry_is_refused_without_change(aiohttp_client, world):
    admin, engine = world["admin"], world["app"][engine_key]
    async with engine.connect() as c:
        detail = (await c.execute(sa.select(queries.audit.c.detail).where(queries.audit.c.action == "user.update"))).scalars().all()
    assert any('"accounts":"[\\"x/acme\\"]"' in d for d in detail)
    page = await admin.post("/admin/users", data={"csrf": await csrf_of(admin), "user_id": str(world["ids"]["alice"]),
                                                  "role": "agent", "active": "1", "accounts": "x/acme, acme"})
    assert page.status == 400 and "network/account" in await page.text()
    alice = await queries.user_by_id(engine, world["ids"]["alice"])
    assert alice["accounts"] == '["x/acme"]'


async def test_nobody_can_give_an_agent_a_conversation_of_an_account_they_cannot_see(aiohttp_client, world):
    async with await _client(aiohttp_client, world, "bob") as bob:
        resp = await bob.post(f"/conversations/{world['b']}/assign", allow_redirects=False,
                              data={"csrf": await csrf_of(bob), "assignee": str(world["ids"]["alice"])})
        assert resp.status == 400
        resp = await bob.post(f"/conversations/{world['a']}/assign", allow_redirects=False,
                              data={"csrf": await csrf_of(bob), "assignee": str(world["ids"]["alice"])})
        assert resp.status == 303


async def test_automatic_assignment_never_gives_an_agent_a_conversation_of_an_account_they_cannot_see(world):
    from carebox.store import actions
    from web.assigning import auto_assign
    from web.keys import now_key

    app, alice = world["app"], world["ids"]["alice"]
    engine, now = app[engine_key], app[now_key]()
    await actions.set_profile(engine, alice, alice, now, available=True)  # Alice alone online: Bob never came
    await actions.touch_presence(engine, alice, now)
    assert await auto_assign(app, force=True) == 1
    async with engine.connect() as c:
        assignees = dict((await c.execute(sa.select(queries.conv.c.account, queries.conv.c.assignee_id))).all())
    assert assignees == {"acme": alice, "other": None}


async def test_an_incident_page_shows_an_agent_only_the_linked_conversations_of_their_accounts(aiohttp_client, world):
    from carebox.store import incidents

    engine = world["app"][engine_key]
    incident_id, _ = await incidents.open_by_hand(engine, "acme", "parcel", "Parcels lost", datetime.now(UTC))
    await incidents.link_conversations(engine, incident_id, [world["a"], world["b"]])
    async with await _client(aiohttp_client, world, "alice") as alice:
        page = await (await alice.get(f"/incidents/{incident_id}")).text()
        assert A_TEXT in page and B_TEXT not in page
    async with await _client(aiohttp_client, world, "bob") as bob:
        page = await (await bob.get(f"/incidents/{incident_id}")).text()
        assert A_TEXT in page and B_TEXT in page
