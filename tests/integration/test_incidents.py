"""An outage burst becomes an incident that groups its conversations and pages ops: trigger, then
resolve, with one dedup key, against a fake PagerDuty speaking Events API v2; the incident keeps the detector's
baseline for its chart, and its conversations' clocks move onto the incident SLA policy and back."""

from __future__ import annotations

from datetime import timedelta

import aiohttp
import orjson
import pytest
import sqlalchemy as sa
from aiohttp.test_utils import TestServer

from carebox import config
from carebox.clocks import ClockBook
from carebox.escalation import timers
from carebox.incidents import OutageWatcher
from carebox.outage import Detector
from carebox.ports import IngestBatch
from carebox.runtime import make_pipeline, make_watcher
from carebox.store import incident_policy as policy_store
from carebox.store import incidents as store
from carebox.store import queries
from carebox.store.incidents import delivery_t, incident_t
from carebox.store.ingest import clock_t, conversation_t, event_t
from tests.conftest import at
from tests.fakes.pagerduty import FakePagerDuty

KEY = "0123456789abcdef0123456789abcdef"
T0 = at("2026-11-17T10:00:00+01:00")


async def test_burst_of_4g_complaints_opens_an_incident_links_conversations_and_pages_then_resolves(
    tmp_path, engine, db_url, mention, monkeypatch
):
    fake = FakePagerDuty()
    server = TestServer(fake.app)
    await server.start_server()
    monkeypatch.setenv("PD_KEY", KEY)
    doc = {"carebox": {"data_dir": str(tmp_path)}, "database": {"url": db_url},
           "alerting": {"group_wait": "0s"},
           "notifiers": [{"name": "ops", "type": "pagerduty", "routing_key_env": "PD_KEY",
                          "url": str(server.make_url("/v2/enqueue"))}]}
    settings = config.parse(doc, environ={})
    pipeline, _ = make_pipeline(settings, engine)
    async with aiohttp.ClientSession() as session:
        watcher = make_watcher(settings, engine, session)
        await watcher.start()
        pipeline.observers.append(watcher.observe)
        now = T0
        for minute in range(90):  # an hour and a half of the usual trickle of complaints
            now += timedelta(minutes=1)
            if minute % 20 == 0:
                usual = mention("waiting 40 minutes on the phone, terrible service", author=f"u{minute}",
                                when=now.isoformat())
                await pipeline.ingest([IngestBatch("sim", (usual,))], now)
            await watcher.tick(now)
        texts = ["my 4G has been down for 10 minutes", "no 4G at all in Lyon since 10:30", "4G network down again??",
                 "is 4G down? nothing loads", "still no 4G, what is going on", "4G dead here too"]
        burst = [mention(texts[i], author=f"c{i}",
                         when=(now + timedelta(seconds=20 * i)).isoformat()) for i in range(6)]
        await pipeline.ingest([IngestBatch("sim", tuple(burst))], now + timedelta(minutes=2))
        opened = []
        for _ in range(5):
            now += timedelta(minutes=1)
            opened += [e for e in await watcher.tick(now) if e.kind == "opened"]
        assert opened, "the burst did not open an episode"
        async with engine.connect() as c:
            [incident] = [dict(r._mapping) for r in await c.execute(sa.select(incident_t))]
            linked = (await c.execute(sa.select(sa.func.count()).select_from(queries.conv)
                                      .where(queries.conv.c.incident_id == incident["id"]))).scalar()
        assert incident["account"] == "acme" and incident["state"] == "open"
        assert incident["cluster_key"] in ("4g", None)  # the 4G cluster, or the brand as a whole
        assert linked == 6
        points = orjson.loads(incident["series"])  # the detector's counts and baseline, for the chart
        assert points and all(len(p) == 3 and p[2] >= 0 for p in points)
        assert points[0][0] >= (incident["started_at"] - timedelta(minutes=60)).timestamp()
        assert [e["event_action"] for e in fake.events] == ["trigger"]
        assert fake.events[0]["dedup_key"] == incident["dedup_key"]
        for _ in range(180):  # calm again: the episode closes, the incident resolves
            now += timedelta(minutes=1)
            await watcher.tick(now)
        async with engine.connect() as c:
            state = (await c.execute(sa.select(incident_t.c.state))).scalar()
            outcomes = [tuple(r) for r in await c.execute(sa.select(delivery_t.c.action, delivery_t.c.outcome))]
    await server.close()
    assert state == "resolved"
    assert [e["event_action"] for e in fake.events] == ["trigger", "resolve"]
    assert {e["dedup_key"] for e in fake.events} == {incident["dedup_key"]}
    assert outcomes == [("trigger", "ok"), ("resolve", "ok")]


POLICIES = [{"name": "social", "calendar": "service-hours", "first_response": "1h"},
            {"name": "incident", "calendar": "24/7", "first_response": "15m", "match": {"tags": ["incident"]}}]
FRIDAY = at("2026-11-20T18:50:00+01:00")


def _book() -> ClockBook:
    return ClockBook(config.parse({"policies": POLICIES, "incidents": {"policy": "incident"}}, environ={}).sla)


def test_a_clock_moved_to_the_incident_policy_counts_its_target_from_the_switch_and_keeps_what_it_had_used():
    book = _book()
    plan = book.start("first_response", {"network": "x", "account": "acme"}, FRIDAY)
    clock = {"id": 1, "target": "first_response", "policy": plan.policy, "calendar": plan.calendar,
             "calendar_version": 1, "started_at": FRIDAY, "business_due": plan.business_due, "wall_due": plan.wall_due,
             "warn_at": plan.warn_at, "fulfilled_at": None, "warned_at": None, "breached_at": None, "status": "open"}
    assert plan.business_due == at("2026-11-23T09:50:00+01:00")  # the worked example of docs/sla.md
    moved = {**clock, **book.moved(clock, "incident", FRIDAY + timedelta(minutes=5))}
    assert moved["policy"] == "incident" and moved["business_due"] == at("2026-11-20T19:10:00+01:00")
    assert book.evaluate(moved, FRIDAY).business_due == moved["business_due"]  # what the scheduler arms
    assert [t.at for t in timers(book, moved, FRIDAY) if t.kind == "breach"] == [moved["business_due"]]
    back = {**moved, **book.returned(moved, {"network": "x", "account": "acme"}, at("2026-11-20T19:30:00+01:00"))}
    assert back["policy"] == "social" and back["carried_s"] == 300.0  # 18:50 to 18:55 on Friday's hours
    assert back["business_due"] == at("2026-11-23T09:55:00+01:00")  # 55 minutes left, from Monday's opening
    assert book.evaluate(back, FRIDAY).business_due == back["business_due"]
    assert book.elapsed(moved, FRIDAY + timedelta(minutes=15)) == (600.0, 900.0)  # 10 min since the switch
    assert book.elapsed(back, at("2026-11-23T09:05:00+01:00"))[0] == 600.0  # 5 min before, 5 min on Monday
    assert book.moved(clock, "no such policy", FRIDAY) is None


@pytest.mark.parametrize("hold", ["pending", "breached"])
async def test_reconcile_moves_conversations_linked_later_leaves_paused_or_breached_clocks_and_moves_back_on_resolve(
    engine, mention, hold
):
    settings = config.parse({"policies": POLICIES, "incidents": {"policy": "incident"}}, environ={})
    pipeline, book = make_pipeline(settings, engine)
    t0 = at("2026-11-17T10:00:00+01:00")
    await pipeline.ingest([IngestBatch("sim", (mention("4G down", author="a", when=t0.isoformat()),
                                               mention("no 4G", author="b", when=t0.isoformat())))], t0)
    async with engine.begin() as c:
        first, held = [r[0] for r in await c.execute(sa.select(conversation_t.c.id).order_by(conversation_t.c.id))]
        if hold == "pending":
            await c.execute(clock_t.update().where(clock_t.c.conversation_id == held).values(paused_at=t0))
        else:
            await c.execute(clock_t.update().where(clock_t.c.conversation_id == held).values(breached_at=t0))
    incident_id, _ = await store.open_by_hand(engine, "acme", None, "4G down", t0 + timedelta(hours=3))
    switched = t0 + timedelta(minutes=10)
    assert await policy_store.switch_on(engine, incident_id, "incident", switched)
    assert not await policy_store.switch_on(engine, incident_id, "incident", switched)  # already in force
    armed: list[dict] = []
    watcher = OutageWatcher(engine, Detector())
    watcher.use_policy(book, "incident", armed.extend)
    await store.link_conversations(engine, incident_id, [first, held])  # linked after the switch
    await watcher.reconcile(switched + timedelta(minutes=2))
    assert [k["conversation_id"] for k in armed] == [first]  # re-armed for the scheduler
    async with engine.connect() as c:
        policies = dict((await c.execute(sa.select(clock_t.c.conversation_id, clock_t.c.policy))).all())
        events = (await c.execute(sa.select(event_t.c.detail).where(event_t.c.kind == "policy"))).scalars().all()
    assert policies == {first: "incident", held: "social"}
    assert events == [f"incident #{incident_id}: policy social -> incident"]
    assert await watcher.reconcile(switched + timedelta(minutes=3)) == []  # nothing left to move
    resolved = switched + timedelta(minutes=30)
    assert await store.resolve(engine, incident_id, resolved)
    await watcher.reconcile(resolved)
    async with engine.connect() as c:
        back = dict((await c.execute(sa.select(clock_t.c.conversation_id, clock_t.c.policy))).all())
        found = (await c.execute(sa.select(store.incident_t).where(store.incident_t.c.id == incident_id))).first()
        conv_policy = (await c.execute(sa.select(conversation_t.c.policy).where(conversation_t.c.id == first))).scalar()
    assert back == {first: "social", held: "social"} and conv_policy == "social"
    assert found.policy_until == resolved and found.policy == "incident"  # the window stays stored for reports
