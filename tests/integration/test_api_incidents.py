"""/api/v1/incidents with Bearer tokens (no CSRF): what the incident page does — read, open, acknowledge, resolve,
switch the incident SLA policy, split, merge, link and unlink, send the acknowledgement — with the page's roles,
and a 404 for an agent on an incident or conversation of an account they cannot see."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from carebox import config
from carebox.ports import IngestBatch
from carebox.store import actions, queries
from carebox.store import incidents as store
from carebox.store.actions import audit
from carebox.store.ingest import clock_t, conversation_t, event_t
from tests.integration.test_web import make_client
from web import auth
from web.keys import connectors_key, engine_key, pipeline_key

POLICIES = [{"name": "social", "calendar": "24/7", "first_response": "1h"},
            {"name": "incident", "calendar": "24/7", "first_response": "15m", "match": {"tags": ["incident"]}}]
USERS = (("manager", "manager"), ("agent", "agent"), ("elsewhere", "agent"))


@pytest.fixture
async def api(aiohttp_client, tmp_path, db_url):
    """The whole app with an incident SLA policy, and a token per user ("elsewhere" may see x/other only)."""
    doc = {"carebox": {"data_dir": str(tmp_path)}, "database": {"url": db_url}, "policies": POLICIES,
           "incidents": {"policy": "incident", "auto_policy": "off"}}
    client = await make_client(aiohttp_client, config.parse(doc, environ={}), users=USERS)
    engine = client.server.app[engine_key]
    client.tokens = {}
    for name, _role in USERS:
        token = auth.new_token()
        user = await queries.user_by_name(engine, name)
        await actions.add_token(engine, user["id"], "ci", auth.token_hash(token), datetime.now(UTC))
        client.tokens[name] = token
    async with engine.begin() as c:
        await c.execute(sa.update(queries.user).where(queries.user.c.username == "elsewhere")
                        .values(accounts='["x/other"]'))
    return client


async def call(client, who: str, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
    resp = await client.request(method, path, json=body, headers={"Authorization": f"Bearer {client.tokens[who]}"})
    return resp.status, await resp.json()


async def _incident(client, mention, texts=("my 4G is down", "no 4G since 10:00", "4G gone")) -> tuple[int, list[int]]:
    """One conversation per text, all linked to an incident opened by the detector ten minutes ago."""
    app, now = client.server.app, datetime.now(UTC)
    batch = tuple(mention(t, author=f"c{i}", when=(now - timedelta(minutes=5 - i)).isoformat()) for i, t in enumerate(texts))
    await app[pipeline_key].ingest([IngestBatch("sim", batch)], now)
    started = now - timedelta(minutes=10)
    values = {"account": "acme", "cluster_key": "4g", "title": "4G down", "state": "open", "severity": "error",
              "source": "detector", "started_at": started, "detected_at": started, "reason": "4 in 3 min",
              "dedup_key": f"carebox/acme/4g/{started:%Y%m%dT%H%M%S%f}", "series": "[]"}
    incident_id, _ = await store.open_incident(app[engine_key], values, now + timedelta(days=1))
    async with app[engine_key].connect() as c:
        ids = [r[0] for r in await c.execute(sa.select(conversation_t.c.id).order_by(conversation_t.c.id))]
    await store.link_conversations(app[engine_key], incident_id, ids)
    return incident_id, ids


async def _audited(client) -> list[str]:
    async with client.server.app[engine_key].connect() as c:
        return [r[0] for r in await c.execute(sa.select(audit.c.action).where(audit.c.action.like("incident.%"))
                                              .order_by(audit.c.id))]


async def _policies(client, ids) -> list[str]:
    async with client.server.app[engine_key].connect() as c:
        return [r[0] for r in await c.execute(sa.select(clock_t.c.policy).where(clock_t.c.conversation_id.in_(ids))
                                              .order_by(clock_t.c.conversation_id))]


async def test_a_manager_token_reads_opens_acknowledges_and_resolves_incidents_without_a_csrf_token(api, mention):
    incident_id, ids = await _incident(api, mention)
    status, listed = await call(api, "manager", "GET", "/api/v1/incidents")
    assert status == 200 and [(i["id"], i["linked"], i["state"]) for i in listed["items"]] == [(incident_id, 3, "open")]
    status, found = await call(api, "manager", "GET", f"/api/v1/incidents/{incident_id}")
    assert status == 200 and [c["id"] for c in found["conversations"]] == ids and found["policy_active"] is False
    status, opened = await call(api, "manager", "POST", "/api/v1/incidents", {"account": "@acme", "title": "Fibre down"})
    assert status == 201 and opened["source"] == "manual" and opened["account"] == "acme" and opened["linked"] == 0
    status, refused = await call(api, "manager", "POST", "/api/v1/incidents", {"account": "acme", "title": " "})
    assert status == 422 and "title" in refused["error"]
    status, acked = await call(api, "manager", "POST", f"/api/v1/incidents/{incident_id}/acknowledge")
    assert status == 200 and acked["state"] == "acknowledged" and acked["changed"]
    status, again = await call(api, "manager", "POST", f"/api/v1/incidents/{incident_id}/acknowledge")
    assert status == 200 and not again["changed"]
    status, resolved = await call(api, "manager", "POST", f"/api/v1/incidents/{incident_id}/resolve")
    assert status == 200 and resolved["state"] == "resolved" and resolved["resolved_at"] is not None
    assert await _audited(api) == ["incident.open", "incident.acknowledge", "incident.resolve"]


async def test_an_agent_token_switches_the_incident_policy_on_and_off_and_is_refused_manager_actions(api, mention):
    incident_id, ids = await _incident(api, mention)
    status, on = await call(api, "agent", "PUT", f"/api/v1/incidents/{incident_id}/policy", {"active": True})
    assert status == 200 and on["changed"] and on["moved_clocks"] == 3 and on["policy"] == "incident" and on["policy_active"]
    assert await _policies(api, ids) == ["incident"] * 3
    async with api.server.app[engine_key].connect() as c:
        moved = (await c.execute(sa.select(sa.func.count()).select_from(event_t).where(event_t.c.kind == "policy"))).scalar()
    assert moved == 3  # one SLA event per moved clock
    status, twice = await call(api, "agent", "PUT", f"/api/v1/incidents/{incident_id}/policy", {"active": True})
    assert status == 200 and not twice["changed"] and twice["moved_clocks"] == 0
    status, off = await call(api, "agent", "PUT", f"/api/v1/incidents/{incident_id}/policy", {"active": False})
    assert status == 200 and off["changed"] and not off["policy_active"] and off["policy_until"] is not None
    assert await _policies(api, ids) == ["social"] * 3
    status, bad = await call(api, "agent", "PUT", f"/api/v1/incidents/{incident_id}/policy", {"active": "yes"})
    assert status == 400 and "active" in bad["error"]
    for method, path, body in [("POST", "acknowledge", None), ("POST", "resolve", None), ("POST", "merge", {"into": 1}),
                               ("POST", "split", {"conversation_ids": ids[:1], "title": "t"}),
                               ("PUT", f"conversations/{ids[0]}", None), ("DELETE", f"conversations/{ids[0]}", None)]:
        status, _body = await call(api, "agent", method, f"/api/v1/incidents/{incident_id}/{path}", body)
        assert status == 403, path
    assert await call(api, "agent", "POST", "/api/v1/incidents", {"account": "acme", "title": "x"}) == (
        403, {"error": "this action needs the manager role"})
    assert await _audited(api) == ["incident.policy_on", "incident.policy_off"]


async def test_every_window_of_the_incident_policy_is_read_with_who_switched_it_on_and_off(api, mention):
    incident_id, _ids = await _incident(api, mention)
    path = f"/api/v1/incidents/{incident_id}/policy"
    for who, active in (("agent", True), ("manager", False), ("agent", True)):
        assert (await call(api, who, "PUT", path, {"active": active}))[0] == 200
    status, found = await call(api, "agent", "GET", f"/api/v1/incidents/{incident_id}")
    first, second = found["policy_windows"]
    assert status == 200 and found["policy_at"] == second["started_at"] and found["policy_until"] is None
    assert (first["on_by"], first["off_by"], second["on_by"], second["off_by"]) == ("agent", "manager", "agent", None)
    assert first["ended_at"] is not None and second["ended_at"] is None and second["policy"] == "incident"
    status, done = await call(api, "manager", "POST", f"/api/v1/incidents/{incident_id}/resolve")
    assert status == 200 and done["policy_windows"][1]["ended_at"] == done["resolved_at"] == done["policy_until"]
    assert done["policy_windows"][1]["off_by"] == "manager" and done["policy_windows"][1]["off_user_id"] is not None
    status, listed = await call(api, "agent", "GET", "/api/v1/incidents")
    [item] = [i for i in listed["items"] if i["id"] == incident_id]
    assert item["policy_windows"] == done["policy_windows"]


async def test_the_incident_policy_cannot_be_switched_on_a_resolved_incident(api, mention):
    incident_id, ids = await _incident(api, mention)
    await call(api, "manager", "POST", f"/api/v1/incidents/{incident_id}/resolve")
    status, refused = await call(api, "agent", "PUT", f"/api/v1/incidents/{incident_id}/policy", {"active": True})
    assert status == 409 and "resolved" in refused["error"] and await _policies(api, ids) == ["social"] * 3


async def test_split_merge_link_and_unlink_through_the_api_move_conversations_and_their_clocks(api, mention):
    incident_id, ids = await _incident(api, mention)
    await call(api, "manager", "PUT", f"/api/v1/incidents/{incident_id}/policy", {"active": True})
    status, child = await call(api, "manager", "POST", f"/api/v1/incidents/{incident_id}/split",
                               {"conversation_ids": [ids[2]], "title": "4G Paris"})
    assert status == 201 and child["split_from_id"] == incident_id and child["moved"] == 1 and child["policy_active"]
    status, refused = await call(api, "manager", "POST", f"/api/v1/incidents/{incident_id}/split",
                                 {"conversation_ids": [ids[2]], "title": "again"})
    assert status == 409 and "not linked to this incident" in refused["error"].lower()
    status, unlinked = await call(api, "manager", "DELETE", f"/api/v1/incidents/{incident_id}/conversations/{ids[0]}")
    assert status == 200 and unlinked["changed"]
    assert await _policies(api, ids) == ["social", "incident", "incident"]  # unlinked: back on its own policy
    status, _gone = await call(api, "manager", "DELETE", f"/api/v1/incidents/{incident_id}/conversations/{ids[0]}")
    assert status == 404
    status, taken = await call(api, "manager", "PUT", f"/api/v1/incidents/{child['id']}/conversations/{ids[1]}")
    assert status == 409 and f"linked to incident {incident_id}" in taken["error"]
    status, linked = await call(api, "manager", "PUT", f"/api/v1/incidents/{incident_id}/conversations/{ids[0]}")
    assert status == 200 and linked["changed"] and await _policies(api, ids) == ["incident"] * 3
    status, same = await call(api, "manager", "PUT", f"/api/v1/incidents/{incident_id}/conversations/{ids[0]}")
    assert status == 200 and not same["changed"]
    status, merged = await call(api, "manager", "POST", f"/api/v1/incidents/{child['id']}/merge", {"into": incident_id})
    assert status == 200 and merged == {"id": child["id"], "merged_into_id": incident_id, "moved": 1}
    status, found = await call(api, "manager", "GET", f"/api/v1/incidents/{incident_id}")
    assert [c["id"] for c in found["conversations"]] == ids
    status, twice = await call(api, "manager", "POST", f"/api/v1/incidents/{child['id']}/merge", {"into": incident_id})
    assert status == 409 and "already merged" in twice["error"]
    status, unknown = await call(api, "manager", "POST", f"/api/v1/incidents/{incident_id}/merge", {"into": 999})
    assert status == 409 and "no such incident" in unknown["error"].lower()
    assert await _audited(api) == ["incident.policy_on", "incident.split", "incident.unlink", "incident.link",
                                   "incident.merge", "incident.policy_off"]  # the merged one's policy ended with it


async def test_the_acknowledgement_is_previewed_then_sent_once_to_every_linked_conversation_not_yet_answered(api, mention):
    incident_id, ids = await _incident(api, mention)
    status, preview = await call(api, "agent", "GET", f"/api/v1/incidents/{incident_id}/acknowledgement")
    [group] = preview["groups"]
    assert status == 200 and group["network"] == "x" and group["conversation_ids"] == ids and group["limit"] == 280
    assert group["text"] == "Known issue with 4g: our teams are on it. We'll update you here." and not group["over"]
    assert api.server.app[connectors_key]["sim"].posted == []
    status, sent = await call(api, "agent", "POST", f"/api/v1/incidents/{incident_id}/acknowledgement",
                              {"texts": {"x": {group["language"]: "We know about 4G; more soon."}}})
    assert status == 200 and sent == {"sent": ids, "skipped": [], "failed": []}
    assert [p.text for p in api.server.app[connectors_key]["sim"].posted] == ["We know about 4G; more soon."] * 3
    status, again = await call(api, "agent", "POST", f"/api/v1/incidents/{incident_id}/acknowledgement", {})
    assert status == 200 and again == {"sent": [], "skipped": ids, "failed": []}
    status, nothing_left = await call(api, "manager", "GET", f"/api/v1/incidents/{incident_id}/acknowledgement")
    assert nothing_left["groups"] == [] and nothing_left["answered"] == ids
    status, bad = await call(api, "agent", "POST", f"/api/v1/incidents/{incident_id}/acknowledgement", {"texts": ["x"]})
    assert status == 400 and "texts must map a network" in bad["error"]
    assert await _audited(api) == ["incident.bulk_ack", "incident.bulk_ack"]


async def test_a_text_over_the_networks_limit_is_not_sent_and_says_why(api, mention):
    incident_id, ids = await _incident(api, mention, texts=("4G down",))
    status, result = await call(api, "agent", "POST", f"/api/v1/incidents/{incident_id}/acknowledgement",
                                {"texts": {"x": {"en": "y" * 300}}})
    assert status == 200 and result["sent"] == [] and result["failed"] == [
        {"conversation_id": ids[0], "error": "The reply has 300 characters; x accepts 280."}]


async def test_an_agent_who_cannot_see_the_incidents_account_gets_404_on_every_incident_route(api, mention):
    incident_id, ids = await _incident(api, mention)
    routes = [r for r in api.server.app.router.routes() if r.resource is not None
              and r.resource.canonical.startswith("/api/v1/incidents/{id}") and r.method != "HEAD"]
    assert len(routes) == 10
    for route in routes:
        path = route.resource.canonical.replace("{id}", str(incident_id)).replace("{conversation_id}", str(ids[0]))
        body = {"active": True, "into": incident_id, "conversation_ids": ids[:1], "title": "t"}
        status, _body = await call(api, "elsewhere", route.method, path, body)
        assert status == 404, (route.method, path)
    status, listed = await call(api, "elsewhere", "GET", "/api/v1/incidents")
    assert status == 200 and listed["items"] == []
    status, _body = await call(api, "agent", "GET", f"/api/v1/incidents/{incident_id}")  # no list: every account
    assert status == 200
    assert api.server.app[connectors_key]["sim"].posted == [] and await _policies(api, ids) == ["social"] * 3


async def test_a_conversation_outside_the_managers_reach_or_unknown_is_a_404_and_bad_bodies_a_400(api, mention):
    incident_id, _ids = await _incident(api, mention)
    assert (await call(api, "manager", "PUT", f"/api/v1/incidents/{incident_id}/conversations/999"))[0] == 404
    assert (await call(api, "manager", "PUT", f"/api/v1/incidents/{incident_id}/conversations/abc"))[0] == 400
    assert (await call(api, "manager", "PUT", f"/api/v1/incidents/{incident_id}/conversations/{2**64}"))[0] == 404
    assert (await call(api, "manager", "GET", "/api/v1/incidents/999"))[0] == 404
    for body in ({"into": "1"}, {"into": True}, {}):
        assert (await call(api, "manager", "POST", f"/api/v1/incidents/{incident_id}/merge", body))[0] == 400, body
    assert (await call(api, "manager", "POST", f"/api/v1/incidents/{incident_id}/merge", {"into": 2**63}))[0] == 404
    for body in ({"conversation_ids": [], "title": "t"}, {"conversation_ids": ["1"], "title": "t"},
                 {"conversation_ids": [1], "title": 5}):
        assert (await call(api, "manager", "POST", f"/api/v1/incidents/{incident_id}/split", body))[0] == 400, body
    resp = await api.post(f"/api/v1/incidents/{incident_id}/merge", data=b"[1]",
                          headers={"Authorization": f"Bearer {api.tokens['manager']}"})
    assert resp.status == 400
