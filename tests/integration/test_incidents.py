"""An outage burst becomes an incident that groups its conversations and pages ops: trigger, then
resolve, with one dedup key, against a fake PagerDuty speaking Events API v2."""

from __future__ import annotations

from datetime import timedelta

import aiohttp
import sqlalchemy as sa
from aiohttp.test_utils import TestServer

from carebox import config
from carebox.ports import IngestBatch
from carebox.runtime import make_pipeline, make_watcher
from carebox.store import queries
from carebox.store.incidents import delivery_t, incident_t
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
