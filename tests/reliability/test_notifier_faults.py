"""Notifiers under faults: incidents paged through a flaky network (5xx, 429, answers lost after PagerDuty
took the event, a ten-minute outage) reach every receiver, each once per incident with its own dedup key;
and an alert still pending when carebox restarts is not forgotten.

tests/integration/test_notifiers.py already checks one receiver down ten minutes; this extends it to
several incidents, several receivers and random faults, on simulated time."""

from __future__ import annotations

import os
from collections import Counter
from datetime import timedelta

import aiohttp
import pytest
import sqlalchemy as sa
from aiohttp.test_utils import TestServer

from carebox import config
from carebox.alerting import Alert, AlertingSettings, ReceiverSettings, Router
from carebox.ports import IngestBatch
from carebox.runtime import make_pipeline, make_watcher
from carebox.store.incidents import delivery_t
from connectors.notify import send_all
from connectors.notify.pagerduty import PagerDutyNotifier
from connectors.notify.slack import SlackNotifier
from tests.conftest import at
from tests.fakes import slack as fake_slack
from tests.fakes.pagerduty import FakePagerDuty
from tests.fakes.slack import FakeSlack
from tests.reliability.chaos import ChaosProxy, Faults

ROUTING_KEY = "0123456789abcdef0123456789abcdef"
T0 = at("2026-11-20T09:00:00+00:00")
SEEDS = tuple(range(1, 1 + int(os.environ.get("CAREBOX_FAULT_SEEDS", "2"))))
# answers truncated after PagerDuty took the event: the notifier sees a failure and sends it again
LOSSY = Faults(server_error=0.15, rate_limit=0.05, truncate=0.10, slow=0.0, retry_after=(5, 30, 120))
FIGURES: list[dict[str, object]] = []


@pytest.mark.parametrize("seed", SEEDS)
async def test_incidents_paged_through_a_flaky_network_and_an_outage_page_each_incident_once(seed):
    pd, slack = FakePagerDuty(), FakeSlack()
    async with TestServer(pd.app) as pd_server, TestServer(slack.app) as slack_server, aiohttp.ClientSession() as session:
        proxy = ChaosProxy(str(pd_server.make_url("")), seed, LOSSY)
        async with TestServer(proxy.app) as front:
            receivers = {"pd": ReceiverSettings("pd", "pagerduty", {"name": "pd"}),
                         "chat": ReceiverSettings("chat", "slack", {"name": "chat"})}
            router = Router(AlertingSettings(receivers, ("pd", "chat"), retry_initial=10.0, retry_max=60.0))
            notifiers = {"pd": PagerDutyNotifier("pd", session, ROUTING_KEY, url=str(front.make_url("/v2/enqueue"))),
                         "chat": SlackNotifier("chat", session, str(slack_server.make_url(fake_slack.PATH)))}
            keys = [f"carebox/brand{i}/4g/{i}" for i in range(6)]
            for second in range(0, 3 * 3600, 10):
                now = T0 + timedelta(seconds=second)
                slack.down = 1800 <= second < 2400  # chat is down ten minutes while incidents open
                pd.down = 3000 <= second < 3600  # PagerDuty is down ten minutes later
                for i, key in enumerate(keys):
                    opened, resolved = 600 * i, 600 * i + 2400
                    if second in (opened, resolved):
                        status = "firing" if second == opened else "resolved"
                        router.submit(Alert(key, f"brand{i}", f"4G outage {i}", "critical", status, "4g"), now)
                for delivery, error in await send_all(notifiers, router.due(now)):
                    router.delivered(delivery, error is None, now, error)
    triggers = Counter(e["dedup_key"] for e in pd.events if e["event_action"] == "trigger")
    assert sorted(i.dedup_key for i in pd.incidents) == sorted(keys), "one PagerDuty incident per carebox incident"
    assert all(i.status == "resolved" for i in pd.incidents)
    assert set(triggers) == set(keys)
    assert proxy.total_injected >= 5, proxy.injected
    failed = [a for a in router.log if a.outcome != "ok"]
    assert failed, "no delivery failed: the test proved nothing"
    FIGURES.append({"seed": seed, "incidents": len(keys), "faults": dict(proxy.injected), "failed_attempts": len(failed),
                    "resent_triggers": sum(triggers.values()) - len(keys)})


async def test_an_alert_pending_when_carebox_restarts_is_delivered_after_the_restart(tmp_path, engine, db_url,
                                                                                   mention, monkeypatch):
    fake = FakePagerDuty()
    async with TestServer(fake.app) as server, aiohttp.ClientSession() as session:
        monkeypatch.setenv("PD_KEY", ROUTING_KEY)
        doc = {"carebox": {"data_dir": str(tmp_path)}, "database": {"url": db_url}, "alerting": {"group_wait": "0s"},
               "notifiers": [{"name": "ops", "type": "pagerduty", "routing_key_env": "PD_KEY",
                              "url": str(server.make_url("/v2/enqueue"))}]}
        settings = config.parse(doc, environ={})
        pipeline, _ = make_pipeline(settings, engine)
        watcher = make_watcher(settings, engine, session)
        await watcher.start()
        pipeline.observers.append(watcher.observe)
        now = T0
        for minute in range(90):
            now += timedelta(minutes=1)
            if minute % 20 == 0:
                usual = mention("waiting 40 minutes on the phone", author=f"u{minute}", when=now.isoformat())
                await pipeline.ingest([IngestBatch("sim", (usual,))], now)
            await watcher.tick(now)
        fake.down = True  # PagerDuty is down when the burst comes
        texts = ["my 4G has been down for 10 minutes", "no 4G at all in Lyon", "4G network down again??",
                 "is 4G down? nothing loads", "still no 4G, what is going on", "4G dead here too"]
        burst = [mention(t, author=f"c{i}", when=(now + timedelta(seconds=20 * i)).isoformat()) for i, t in enumerate(texts)]
        await pipeline.ingest([IngestBatch("sim", tuple(burst))], now + timedelta(minutes=2))
        for _ in range(5):
            now += timedelta(minutes=1)
            await watcher.tick(now)
        async with engine.connect() as c:
            attempts = [tuple(r) for r in await c.execute(sa.select(delivery_t.c.action, delivery_t.c.outcome))]
        assert ("trigger", "failed") in attempts, "the trigger was not even attempted while PagerDuty was down"
        # carebox restarts (a new process: new router, new watcher), then PagerDuty comes back
        restarted = make_watcher(settings, engine, session)
        await restarted.start()
        fake.down = False
        for _ in range(30):
            now += timedelta(minutes=1)
            await restarted.tick(now)
    assert [e["event_action"] for e in fake.events][:1] == ["trigger"], "the incident was never paged"
