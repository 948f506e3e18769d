"""Incidents in the inbox: the list and incident pages, manager actions, merge and split, the complaints chart
against the detector's baseline, the incident SLA policy, and one templated acknowledgement per network and
language to every linked open conversation (agents may switch the policy and send it)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import orjson
import pytest
import sqlalchemy as sa
from markupsafe import escape

from carebox import config
from carebox.errors import ReplyRejected
from carebox.ports import IngestBatch
from carebox.store import incidents as store
from carebox.store import queries
from carebox.store.actions import audit
from carebox.store.ingest import clock_t, conversation_t
from tests.integration.test_web import _csrf, _login, make_client
from web.incidents import ack_text, chart
from web.keys import connectors_key, engine_key, pipeline_key

CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@pytest.fixture
async def client(aiohttp_client, settings):
    return await make_client(aiohttp_client, settings, users=(("manager", "manager"), ("agent", "agent")))


async def _incident(client, mention, texts=("my 4G is down", "no 4G since 10:00"), languages=None,
                    started=None) -> tuple[int, list[int]]:
    """Ingest one conversation per text (one author each) and link them all to a new incident."""
    app, now = client.server.app, datetime.now(UTC)
    started = started or now - timedelta(minutes=10)
    langs = languages or ["en"] * len(texts)
    batch = tuple(mention(t, author=f"c{i}", when=(now - timedelta(minutes=5 - i)).isoformat(), lang_hint=lang)
                  for i, (t, lang) in enumerate(zip(texts, langs, strict=True)))
    await app[pipeline_key].ingest([IngestBatch("sim", batch)], now)
    engine = app[engine_key]
    values = {"account": "acme", "cluster_key": "4g", "title": "4G down", "state": "open", "severity": "error",
              "source": "detector", "started_at": started, "detected_at": started + timedelta(minutes=2),
              "dedup_key": f"carebox/acme/4g/{started:%Y%m%dT%H%M%S%f}", "reason": "4 in 3 min", "series": "[]"}
    incident_id, _ = await store.open_incident(engine, values, now + timedelta(days=1))  # link nothing by itself
    async with engine.connect() as c:
        ids = [r[0] for r in await c.execute(sa.select(conversation_t.c.id).order_by(conversation_t.c.id))]
    await store.link_conversations(engine, incident_id, ids)
    return incident_id, ids


async def _state(client, incident_id: int) -> dict:
    return await store.incident(client.server.app[engine_key], incident_id)


async def _audited(client) -> list[str]:
    async with client.server.app[engine_key].connect() as c:
        return [r[0] for r in await c.execute(sa.select(audit.c.action).where(audit.c.action.like("incident.%")).order_by(audit.c.id))]


async def test_incident_list_and_page_show_conversations_chart_and_delivery_log_to_a_manager(client, mention):
    incident_id, ids = await _incident(client, mention)
    now = datetime.now(UTC)
    await store.log_deliveries(client.server.app[engine_key], [
        {"incident_id": incident_id, "at": now, "receiver": "ops-pd", "action": "trigger", "dedup_key": "k",
         "attempt": 1, "outcome": "failed", "error": "HTTP 503 from receiver"},
        {"incident_id": incident_id, "at": now, "receiver": "ops-pd", "action": "trigger", "dedup_key": "k",
         "attempt": 2, "outcome": "ok", "error": ""}])
    await _login(client, username="manager")
    listing = await (await client.get("/incidents")).text()
    assert f'href="/incidents/{incident_id}"' in listing and "4G down" in listing
    assert re.search(r'<td class="num">2</td><td class="num">1 / <span class="error-text">1</span>', listing)
    page = await client.get(f"/incidents/{incident_id}")
    body = await page.text()
    assert page.status == 200
    assert all(f'href="/conversations/{cid}"' in body for cid in ids)
    assert "<svg" in body and body.count('class="bar"') == 2 and "HTTP 503 from receiver" in body and "ops-pd" in body
    assert "style=" not in body.split("<svg", 1)[1].split("</svg>", 1)[0]  # CSP: attributes only
    assert f'action="/incidents/{incident_id}/acknowledge"' in body
    conversation = await (await client.get(f"/conversations/{ids[0]}")).text()
    assert f'href="/incidents/{incident_id}"' in conversation  # the inbox badge leads to its incident


async def test_incident_pages_speak_french_to_a_french_manager(client, mention):
    incident_id, _ = await _incident(client, mention)
    async with client.server.app[engine_key].begin() as c:
        await c.execute(sa.update(queries.user).values(language="fr"))
    await _login(client, username="manager")
    assert "Conversations liées" in await (await client.get(f"/incidents/{incident_id}")).text()
    assert "Ouvrir un incident à la main" in await (await client.get("/incidents")).text()


async def test_agent_may_acknowledge_customers_but_is_refused_every_manager_action(client, mention):
    incident_id, ids = await _incident(client, mention)
    await _login(client, username="agent")
    body = await (await client.get(f"/incidents/{incident_id}")).text()
    assert "4G down" in body and "/acknowledge" not in body and "/split" not in body and "/unlink" not in body
    assert f'action="/incidents/{incident_id}/bulk-ack"' in body  # answering customers is an agent's work
    token = CSRF.search(body).group(1)
    for path, data in [("acknowledge", {}), ("resolve", {}), ("merge", {"target": "1"}),
                       ("unlink", {"conversation": str(ids[0])}), ("split", {"conversation": str(ids[0]), "title": "t"})]:
        resp = await client.post(f"/incidents/{incident_id}/{path}", data={"csrf": token, **data}, allow_redirects=False)
        assert resp.status == 403, path
    resp = await client.post("/incidents", data={"csrf": token, "account": "acme", "title": "x"}, allow_redirects=False)
    assert resp.status == 403
    assert (await _state(client, incident_id))["state"] == "open"
    assert client.server.app[connectors_key]["sim"].posted == []


async def test_acknowledge_then_resolve_change_the_incident_and_are_audited(client, mention):
    incident_id, _ = await _incident(client, mention)
    await _login(client, username="manager")
    token = await _csrf(client, f"/incidents/{incident_id}")
    ack = await client.post(f"/incidents/{incident_id}/acknowledge", data={"csrf": token}, allow_redirects=False)
    assert ack.status == 303 and ack.headers["Location"] == f"/incidents/{incident_id}"
    found = await _state(client, incident_id)
    assert found["state"] == "acknowledged" and found["acknowledged_at"] is not None
    await client.post(f"/incidents/{incident_id}/resolve", data={"csrf": token}, allow_redirects=False)
    found = await _state(client, incident_id)
    assert found["state"] == "resolved" and found["resolved_at"] is not None
    assert await _audited(client) == ["incident.acknowledge", "incident.resolve"]


async def test_action_without_csrf_token_is_refused(client, mention):
    incident_id, _ = await _incident(client, mention)
    await _login(client, username="manager")
    resp = await client.post(f"/incidents/{incident_id}/acknowledge", data={}, allow_redirects=False)
    assert resp.status == 403 and (await _state(client, incident_id))["state"] == "open"


async def test_merge_moves_conversations_to_the_target_and_resolves_the_source_as_merged(client, mention):
    source, ids = await _incident(client, mention)
    engine, now = client.server.app[engine_key], datetime.now(UTC)
    target, _ = await store.open_by_hand(engine, "acme", None, "brand-wide outage", now + timedelta(days=1))
    await _login(client, username="manager")
    token = await _csrf(client, f"/incidents/{source}")
    resp = await client.post(f"/incidents/{source}/merge", data={"csrf": token, "target": str(target)},
                             allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == f"/incidents/{target}"
    merged, into = await _state(client, source), await _state(client, target)
    assert merged["merged_into_id"] == target and merged["state"] == "resolved" and merged["conversations"] == []
    assert [c["id"] for c in into["conversations"]] == ids
    await client.server.app[pipeline_key].ingest([IngestBatch("sim", (mention("4G gone", author="late", when=now.isoformat()),))], now)
    async with engine.connect() as c:
        late = (await c.execute(sa.select(sa.func.max(conversation_t.c.id)))).scalar()
    await store.link_conversations(engine, source, [late])  # the detector still knows the old incident
    assert [c["id"] for c in (await _state(client, target))["conversations"]] == [*ids, late]
    again = await client.post(f"/incidents/{source}/merge", data={"csrf": token, "target": str(target)})
    assert again.status == 200 and "already merged" in await again.text()
    self_merge = await client.post(f"/incidents/{target}/merge", data={"csrf": token, "target": str(target)})
    assert "cannot be merged into itself" in await self_merge.text()
    assert await _audited(client) == ["incident.merge"]


async def test_unlink_splits_one_conversation_off_the_incident(client, mention):
    incident_id, ids = await _incident(client, mention)
    await _login(client, username="manager")
    token = await _csrf(client, f"/incidents/{incident_id}")
    resp = await client.post(f"/incidents/{incident_id}/unlink", data={"csrf": token, "conversation": str(ids[0])},
                             allow_redirects=False)
    assert resp.status == 303
    assert [c["id"] for c in (await _state(client, incident_id))["conversations"]] == ids[1:]
    again = await client.post(f"/incidents/{incident_id}/unlink", data={"csrf": token, "conversation": str(ids[0])})
    assert "not linked to this incident" in await again.text()
    assert await _audited(client) == ["incident.unlink"]


async def test_open_by_hand_links_the_matching_open_conversations_and_needs_a_title(client, mention):
    await client.server.app[pipeline_key].ingest(
        [IngestBatch("sim", (mention("my 4G is down", when=datetime.now(UTC).isoformat()),))], datetime.now(UTC))
    await _login(client, username="manager")
    token = await _csrf(client, "/incidents")
    refused = await client.post("/incidents", data={"csrf": token, "account": "acme", "title": " "})
    assert "needs an account and a title" in await refused.text()
    resp = await client.post("/incidents", data={"csrf": token, "account": "@acme", "title": "Everything is down"},
                             allow_redirects=False)
    incident_id = int(resp.headers["Location"].rsplit("/", 1)[1])
    found = await _state(client, incident_id)
    assert found["source"] == "manual" and found["account"] == "acme" and found["cluster_key"] is None
    assert len(found["conversations"]) == 1
    assert await _audited(client) == ["incident.open"]


async def test_bulk_acknowledgement_replies_once_per_open_linked_conversation_in_its_language_and_stops_first_response_clocks(
    client, mention
):
    incident_id, ids = await _incident(client, mention, texts=("my 4G is down", "plus de 4G depuis ce matin",
                                                               "4G still dead"), languages=["en", "fr", "en"])
    engine = client.server.app[engine_key]
    async with engine.begin() as c:  # the third was resolved meanwhile: not an open conversation any more
        await c.execute(conversation_t.update().where(conversation_t.c.id == ids[2]).values(status="resolved"))
    await _login(client, username="manager")
    page = await (await client.get(f"/incidents/{incident_id}")).text()
    assert escape(ack_text("en", "4g", "x")) in page and escape(ack_text("fr", "4g", "x")) in page
    token = CSRF.search(page).group(1)
    resp = await client.post(f"/incidents/{incident_id}/bulk-ack", data={
        "csrf": token, "text_x_en": ack_text("en", "4g", "x"), "text_x_fr": ack_text("fr", "4g", "x")})
    assert resp.status == 200 and "Sent to 2 conversations." in await resp.text()
    posted = client.server.app[connectors_key]["sim"].posted
    assert sorted(p.text for p in posted) == sorted([ack_text("en", "4g", "x"), ack_text("fr", "4g", "x")])
    async with engine.connect() as c:
        answered = {r[0]: r[1] for r in await c.execute(sa.select(conversation_t.c.id, conversation_t.c.first_response_at))}
        clocks = [r.fulfilled_at for r in await c.execute(sa.select(clock_t.c.fulfilled_at).where(
            clock_t.c.conversation_id.in_(ids[:2]), clock_t.c.target == "first_response"))]
    assert answered[ids[0]] is not None and answered[ids[1]] is not None
    assert len(clocks) == 2 and None not in clocks
    again = await client.post(f"/incidents/{incident_id}/bulk-ack", data={"csrf": token, "text_x_en": "x", "text_x_fr": "x"})
    body = await again.text()
    assert "Sent to 0 conversations." in body and "already answered since the incident started" in body
    assert len(posted) == 2  # nobody gets the acknowledgement twice


async def test_bulk_acknowledgement_lists_the_conversations_whose_send_failed(client, mention):
    incident_id, ids = await _incident(client, mention)
    client.server.app[connectors_key]["sim"].fail = ReplyRejected("sim", "duplicate status")
    await _login(client, username="manager")
    token = await _csrf(client, f"/incidents/{incident_id}")
    resp = await client.post(f"/incidents/{incident_id}/bulk-ack", data={"csrf": token, "text_en": "We know."})
    body = await resp.text()
    assert resp.status == 502 and "Not sent:" in body and all(f'href="/conversations/{cid}">#{cid}</a>:' in body for cid in ids)
    async with client.server.app[engine_key].connect() as c:
        assert (await c.execute(sa.select(sa.func.count()).select_from(conversation_t)
                                .where(conversation_t.c.first_response_at.is_not(None)))).scalar() == 0


@pytest.mark.parametrize("path", ["/incidents/abc", "/incidents/999", "/incidents/99999999999999999999999", "/incidents/-1"])
async def test_bad_or_unknown_incident_ids_get_a_clear_page_without_a_stack_trace(client, path):
    await _login(client, username="manager")
    resp = await client.get(path)
    body = await resp.text()
    assert resp.status in (400, 404) and "Traceback" not in body


async def test_actions_on_an_unknown_incident_are_not_found(client):
    await _login(client, username="manager")
    token = await _csrf(client, "/incidents")
    for path in ("acknowledge", "resolve", "bulk-ack"):
        resp = await client.post(f"/incidents/999/{path}", data={"csrf": token}, allow_redirects=False)
        assert resp.status == 404, path
    resp = await client.post("/incidents/999/merge", data={"csrf": token, "target": "abc"}, allow_redirects=False)
    assert resp.status == 400


def test_chart_counts_complaints_per_minute_and_places_markers_in_range():
    since = datetime(2026, 11, 17, 9, 0, tzinfo=UTC)
    times = [since + timedelta(minutes=61, seconds=s) for s in (1, 20, 40)] + [since + timedelta(minutes=62)]
    drawn = chart(times, since, since + timedelta(minutes=70),
                  {"started": since + timedelta(minutes=60), "resolved": None, "later": since + timedelta(hours=3)})
    assert [(b.count, b.at.minute) for b in drawn.bars] == [(3, 1), (1, 2)]
    assert drawn.peak == 3 and drawn.total == 4 and [label for _, label in drawn.markers] == ["started"]
    assert drawn.bars[0].h > drawn.bars[1].h and not drawn.clipped


def test_chart_stops_after_twelve_hours():
    since = datetime(2026, 11, 17, 9, 0, tzinfo=UTC)
    assert chart([], since, since + timedelta(days=3), {}).clipped


def test_acknowledgement_template_follows_the_conversation_network_and_language_and_names_the_service():
    assert ack_text("fr", "4g").startswith("Nous avons connaissance d'un incident sur 4g ")
    assert ack_text("en", None) == ("We're aware of an issue affecting our service and our teams are on it. "
                                    "We'll update you here.")
    assert "notre service" in ack_text("fr-CA", None) and "our service" in ack_text("de", None)
    assert ack_text("en", "4g", "x") == "Known issue with 4g: our teams are on it. We'll update you here."
    assert ack_text("en", "4g", "mastodon") == ack_text("en", "4g")  # no short form of its own
    longest = "x" * 100  # cluster keys are cut at 100 characters
    assert all(len(ack_text(lang, longest, net)) <= limit for net, limit in (("x", 280), ("bluesky", 300))
               for lang in ("en", "fr"))


INCIDENT_POLICIES = [{"name": "social", "calendar": "24/7", "first_response": "1h"},
                     {"name": "incident", "calendar": "24/7", "first_response": "15m", "match": {"tags": ["incident"]}}]


@pytest.fixture
async def policy_client(aiohttp_client, tmp_path, db_url):
    doc = {"carebox": {"data_dir": str(tmp_path)}, "database": {"url": db_url}, "policies": INCIDENT_POLICIES,
           "incidents": {"policy": "incident", "acknowledgement": {"mastodon": {"en": "Mastodon: {service} is down."}}}}
    return await make_client(aiohttp_client, config.parse(doc, environ={}), users=(("manager", "manager"), ("agent", "agent")))


async def _clocks(client, ids) -> list[dict]:
    async with client.server.app[engine_key].connect() as c:
        return [dict(r._mapping) for r in await c.execute(
            sa.select(clock_t).where(clock_t.c.conversation_id.in_(ids)).order_by(clock_t.c.conversation_id))]


async def test_an_agent_switches_the_incident_policy_and_resolving_the_incident_switches_back_with_time_carried(
    policy_client, mention
):
    client = policy_client
    incident_id, ids = await _incident(client, mention)
    before = await _clocks(client, ids)
    assert [k["policy"] for k in before] == ["social", "social"]
    await _login(client, username="agent")
    page = await (await client.get(f"/incidents/{incident_id}")).text()
    assert "first_response 15m (24/7)" in page and 'value="on"' in page
    token = CSRF.search(page).group(1)
    resp = await client.post(f"/incidents/{incident_id}/policy", data={"csrf": token, "action": "on"}, allow_redirects=False)
    assert resp.status == 303
    found = await _state(client, incident_id)
    switched_at = found["policy_at"]
    assert found["policy"] == "incident" and switched_at is not None and found["policy_until"] is None
    moved = await _clocks(client, ids)
    for old, new in zip(before, moved, strict=True):
        assert new["policy"] == "incident" and new["rebased_at"] == switched_at and new["started_at"] == old["started_at"]
        assert new["business_due"] == switched_at + timedelta(minutes=15)  # counted from the switch, on 24/7
    async with client.server.app[engine_key].connect() as c:
        convs = {r.id: r for r in await c.execute(sa.select(conversation_t).where(conversation_t.c.id.in_(ids)))}
    assert {convs[i].policy for i in ids} == {"incident"}
    assert convs[ids[0]].due_business == switched_at + timedelta(minutes=15)
    conversation = await (await client.get(f"/conversations/{ids[0]}")).text()
    assert "Incident policy incident applies since" in conversation and "its SLA policy incident applies" in conversation
    assert await _audited(client) == ["incident.policy_on"]
    assert (await client.post(f"/incidents/{incident_id}/resolve", data={"csrf": token}, allow_redirects=False)).status == 403
    await _login(client, username="manager")
    token = await _csrf(client, f"/incidents/{incident_id}")
    await client.post(f"/incidents/{incident_id}/resolve", data={"csrf": token}, allow_redirects=False)
    found = await _state(client, incident_id)
    assert found["policy_until"] == found["resolved_at"]
    back = await _clocks(client, ids)
    for old, new in zip(before, back, strict=True):
        used = (switched_at - old["started_at"]).total_seconds()  # the hour of 'social' used before the switch
        assert new["policy"] == "social" and new["rebased_at"] == found["resolved_at"]
        assert new["carried_s"] == pytest.approx(used, abs=0.01)
        expected = found["resolved_at"] + timedelta(seconds=3600 - used)
        assert abs((new["business_due"] - expected).total_seconds()) < 0.01
    page = await (await client.get(f"/incidents/{incident_id}")).text()
    assert "applied from" in page


async def test_switching_without_a_configured_incident_policy_says_so_and_changes_nothing(client, mention):
    incident_id, ids = await _incident(client, mention)
    await _login(client, username="agent")
    page = await (await client.get(f"/incidents/{incident_id}")).text()
    assert "No incident SLA policy is configured" in page
    token = CSRF.search(page).group(1)
    resp = await client.post(f"/incidents/{incident_id}/policy", data={"csrf": token, "action": "on"})
    assert "No incident SLA policy is configured" in await resp.text()
    assert (await _state(client, incident_id))["policy"] is None
    assert {k["policy"] for k in await _clocks(client, ids)} == {"social"}


async def test_acknowledgement_has_one_text_per_network_and_language_with_a_preview_and_refuses_what_is_too_long(
    policy_client, mention
):
    client = policy_client
    incident_id, ids = await _incident(client, mention, texts=("my 4G is down", "plus de 4G ici", "4G dead"),
                                       languages=["en", "fr", "en"])
    async with client.server.app[engine_key].begin() as c:  # the third came in on Mastodon
        await c.execute(conversation_t.update().where(conversation_t.c.id == ids[2]).values(network="mastodon"))
    await _login(client, username="agent")
    page = await (await client.get(f"/incidents/{incident_id}")).text()
    assert page.count('class="ack-group') == 3
    assert 'name="text_x_en"' in page and 'name="text_x_fr"' in page and 'name="text_mastodon_en"' in page
    assert "Mastodon: 4g is down." in page  # the configured template of that network
    assert "of 280 characters" in page and "of 500 characters" in page
    token = CSRF.search(page).group(1)
    too_long = "y" * 300
    preview = await client.post(f"/incidents/{incident_id}/bulk-ack", data={
        "csrf": token, "preview": "1", "text_x_en": too_long, "text_x_fr": "Incident connu.",
        "text_mastodon_en": "We know."})
    body = await preview.text()
    assert preview.status == 200 and "Preview:" in body and "too long for x" in body and "300 of 280 characters" in body
    assert client.server.app[connectors_key]["sim"].posted == []  # a preview sends nothing
    sent = await client.post(f"/incidents/{incident_id}/bulk-ack", data={
        "csrf": token, "text_x_en": too_long, "text_x_fr": "Incident connu.", "text_mastodon_en": "We know."})
    body = await sent.text()
    assert "Sent to 2 conversations." in body and "The reply has 300 characters; x accepts 280." in body
    assert sorted(p.text for p in client.server.app[connectors_key]["sim"].posted) == ["Incident connu.", "We know."]
    assert await _audited(client) == ["incident.bulk_ack"]


async def test_split_moves_the_ticked_conversations_to_a_new_incident_that_keeps_the_policy_in_force(
    policy_client, mention
):
    client = policy_client
    incident_id, ids = await _incident(client, mention, texts=("4G down", "4G down here", "4G gone in Paris"))
    await _login(client, username="manager")
    token = await _csrf(client, f"/incidents/{incident_id}")
    await client.post(f"/incidents/{incident_id}/policy", data={"csrf": token, "action": "on"}, allow_redirects=False)
    page = await (await client.get(f"/incidents/{incident_id}")).text()
    assert 'form="split-form"' in page and f'action="/incidents/{incident_id}/split"' in page
    none = await client.post(f"/incidents/{incident_id}/split", data={"csrf": token, "title": "Paris"})
    assert "Choose the conversations" in await none.text()
    every = await client.post(f"/incidents/{incident_id}/split", data=[("csrf", token), ("title", "Paris"),
                                                                       *(("conversation", str(i)) for i in ids)])
    assert "at least one conversation on this incident" in await every.text()
    resp = await client.post(f"/incidents/{incident_id}/split", data=[("csrf", token), ("title", "4G Paris"),
                                                                      ("conversation", str(ids[2]))],
                             allow_redirects=False)
    assert resp.status == 303
    new_id = int(resp.headers["Location"].rsplit("/", 1)[1])
    parent, child = await _state(client, incident_id), await _state(client, new_id)
    assert [c["id"] for c in parent["conversations"]] == ids[:2] and [c["id"] for c in child["conversations"]] == [ids[2]]
    assert child["split_from_id"] == incident_id and child["source"] == "split" and child["title"] == "4G Paris"
    assert child["policy"] == "incident" and child["policy_at"] == parent["policy_at"] and child["state"] == "open"
    assert parent["started_at"] - timedelta(hours=1) <= child["started_at"] <= datetime.now(UTC)
    assert {k["policy"] for k in await _clocks(client, ids)} == {"incident"}  # nothing moved back
    page = await (await client.get(f"/incidents/{new_id}")).text()
    assert f'href="/incidents/{incident_id}"' in page and "Split from" in page
    assert await _audited(client) == ["incident.policy_on", "incident.split"]


async def test_the_chart_draws_the_detectors_expected_count_stored_with_the_incident(client, mention):
    incident_id, _ = await _incident(client, mention)
    found = await _state(client, incident_id)
    start = int((found["started_at"] - timedelta(minutes=5)).timestamp()) // 60 * 60
    series = [[start + 60 * i, 1, 0.5] for i in range(10)]
    await store.save_series(client.server.app[engine_key], {incident_id: orjson.dumps(series).decode()})
    await _login(client, username="manager")
    body = await (await client.get(f"/incidents/{incident_id}")).text()
    assert body.count('class="baseline"') == 1 and "up to 0.5 a minute" in body


def test_chart_baseline_is_drawn_per_minute_and_breaks_where_the_detector_has_no_data():
    since = datetime(2026, 11, 17, 9, 0, tzinfo=UTC)
    t0 = int(since.timestamp())
    expected = [[t0 + 60 * i, 0, 2.0] for i in range(5)] + [[t0 + 60 * i, 0, 4.0] for i in range(20, 25)]
    drawn = chart([since + timedelta(minutes=1)], since, since + timedelta(minutes=30), {}, expected)
    assert len(drawn.baseline) == 2 and all(len(line.split()) == 5 for line in drawn.baseline)
    assert drawn.expected_peak == 4.0 and drawn.peak == 4  # the axis makes room for the baseline
    five_minute = [[t0 + 300 * i, 0, 10.0] for i in range(4)]  # 5-minute buckets: 2 complaints a minute
    assert chart([], since, since + timedelta(minutes=30), {}, five_minute).expected_peak == 2.0


async def test_an_agent_limited_to_other_accounts_gets_404_for_the_incident_and_does_not_see_it_listed(client, mention):
    incident_id, _ids = await _incident(client, mention)
    async with client.server.app[engine_key].begin() as c:
        await c.execute(sa.update(queries.user).where(queries.user.c.username == "agent").values(accounts='["x/other"]'))
    await _login(client, username="agent")
    assert (await client.get(f"/incidents/{incident_id}")).status == 404
    assert f'href="/incidents/{incident_id}"' not in await (await client.get("/incidents")).text()
    token = await _csrf(client, "/incidents")
    for path in ("bulk-ack", "policy", "resolve"):
        resp = await client.post(f"/incidents/{incident_id}/{path}", data={"csrf": token}, allow_redirects=False)
        assert resp.status == 404, path
    assert client.server.app[connectors_key]["sim"].posted == []
