"""An incident resolved by hand (or merged away) ends its page exactly once: one PagerDuty `resolve` on the
incident's dedup key and the resolved message on Slack, delivered through the router with its retries, never
re-triggered afterwards; acknowledging by hand sends PagerDuty's `acknowledge` (Slack has no such thing)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import aiohttp
import pytest
import sqlalchemy as sa
from aiohttp.test_utils import TestServer

from carebox import config
from carebox.alerting import Alert, AlertingSettings, ReceiverSettings, Router, Timing
from carebox.incidents import OutageWatcher
from carebox.outage import Detector, EpisodeEvent
from carebox.runtime import make_watcher
from carebox.store import incidents as store
from carebox.store.incidents import delivery_t
from tests.conftest import at
from tests.fakes import slack as fake_slack
from tests.fakes.pagerduty import FakePagerDuty
from tests.fakes.slack import FakeSlack

KEY = "0123456789abcdef0123456789abcdef"
T0 = at("2026-11-17T10:00:00+01:00")


class ScriptedDetector(Detector):
    """The real detector, whose episodes are the ones a test scripts (burst detection is tested elsewhere)."""

    def __init__(self) -> None:
        super().__init__()
        self.script: list[EpisodeEvent] = []

    def tick(self, now: datetime) -> list[EpisodeEvent]:
        super().tick(now)
        events, self.script = self.script, []
        return events


def _event(kind: str, now: datetime, key: str | None = "4g") -> EpisodeEvent:
    return EpisodeEvent(kind=kind, account="acme", key=key, at=now, bucket_start=now - timedelta(minutes=1),
                        started_at=T0, severity="major", count=6, baseline=0.4, window=300.0, surprise=9.0,
                        reason="6 complaints in 5 min")


class Ops:
    """A fake PagerDuty and a fake Slack, and a watcher wired to both as `carebox serve` wires it."""

    def __init__(self, engine: Any, session: aiohttp.ClientSession, pd: TestServer, slack: TestServer,
                 fakes: tuple[FakePagerDuty, FakeSlack], monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("PD_KEY", KEY)
        monkeypatch.setenv("SLACK_URL", str(slack.make_url(fake_slack.PATH)))
        doc = {"alerting": {"group_wait": "0s", "group_interval": "1m", "retry_initial": "30s"},
               "notifiers": [{"name": "pd", "type": "pagerduty", "routing_key_env": "PD_KEY",
                              "url": str(pd.make_url("/v2/enqueue"))},
                             {"name": "chat", "type": "slack", "webhook_url_env": "SLACK_URL"}]}
        self.settings = config.parse(doc, environ={})
        self.engine, self.session = engine, session
        self.pd, self.slack = fakes
        self.detector = ScriptedDetector()
        self.watcher = self.new_watcher()
        self.now = T0

    def new_watcher(self) -> OutageWatcher:
        watcher = make_watcher(self.settings, self.engine, self.session)
        watcher.detector = self.detector
        return watcher

    async def tick(self, minutes: int = 1) -> None:
        for _ in range(minutes):
            self.now += timedelta(minutes=1)
            await self.watcher.tick(self.now)

    async def detector_opens(self, key: str | None = "4g") -> dict[str, Any]:
        self.detector.script = [_event("opened", self.now + timedelta(minutes=1), key)]
        await self.tick()
        [incident] = [i for i in await store.open_incidents(self.engine) if i["cluster_key"] == key]
        return incident

    def pd_actions(self, dedup_key: str) -> list[str]:
        return [e["event_action"] for e in self.pd.events if e["dedup_key"] == dedup_key]

    def slack_texts(self) -> list[str]:
        return [m["text"] for m in self.slack.posted]


@pytest.fixture
async def ops(engine, monkeypatch) -> AsyncIterator[Ops]:
    fakes = FakePagerDuty(), FakeSlack()
    servers = TestServer(fakes[0].app), TestServer(fakes[1].app)
    for server in servers:
        await server.start_server()
    async with aiohttp.ClientSession() as session:
        o = Ops(engine, session, *servers, fakes, monkeypatch)
        await o.watcher.start()
        yield o
    for server in servers:
        await server.close()


async def _log(engine, incident_id: int) -> list[tuple[str, str, str]]:
    async with engine.connect() as c:
        rows = await c.execute(sa.select(delivery_t.c.receiver, delivery_t.c.action, delivery_t.c.outcome)
                               .where(delivery_t.c.incident_id == incident_id).order_by(delivery_t.c.id))
        return [tuple(r) for r in rows]


async def test_resolving_by_hand_sends_one_resolve_on_the_dedup_key_and_never_triggers_again(ops):
    incident = await ops.detector_opens()
    assert ops.pd_actions(incident["dedup_key"]) == ["trigger"]
    assert await store.resolve(ops.engine, incident["id"], ops.now)  # what the page and the API call
    await ops.tick(5 * 60)  # past repeat_interval (4h): nothing re-triggers a resolved incident
    assert ops.pd_actions(incident["dedup_key"]) == ["trigger", "resolve"]
    assert ops.pd.open_incident(incident["dedup_key"]) is None
    assert len(ops.slack.posted) == 2 and "resolved" in ops.slack_texts()[1].lower()
    assert sorted(await _log(ops.engine, incident["id"])) == sorted(
        [("pd", "trigger", "ok"), ("chat", "trigger", "ok"), ("pd", "resolve", "ok"), ("chat", "resolve", "ok")])
    ops.detector.script = [_event("resolved", ops.now + timedelta(minutes=1))]  # the episode ends later
    await ops.tick(10)
    assert ops.pd_actions(incident["dedup_key"]) == ["trigger", "resolve"]


async def test_a_resolve_by_hand_that_fails_is_retried_until_pagerduty_takes_it(ops):
    incident = await ops.detector_opens()
    ops.pd.fail_status = 500
    assert await store.resolve(ops.engine, incident["id"], ops.now)
    await ops.tick(3)
    assert ops.pd_actions(incident["dedup_key"]) == ["trigger"]
    ops.pd.fail_status = None
    await ops.tick(10)
    assert ops.pd_actions(incident["dedup_key"]) == ["trigger", "resolve"]
    log = await _log(ops.engine, incident["id"])
    assert ("pd", "resolve", "failed") in log and log.count(("pd", "resolve", "ok")) == 1


async def test_the_incident_merged_away_resolves_its_page_and_the_target_keeps_firing(ops):
    source = await ops.detector_opens("4g")
    target = await ops.detector_opens(None)
    await store.merge(ops.engine, source["id"], target["id"], ops.now)
    await ops.tick(5)
    assert ops.pd_actions(source["dedup_key"]) == ["trigger", "resolve"]
    assert ops.pd_actions(target["dedup_key"]) == ["trigger"]
    assert ops.pd.open_incident(target["dedup_key"]) is not None


async def test_acknowledging_by_hand_sends_pagerduty_acknowledge_once_and_slack_nothing(ops):
    incident = await ops.detector_opens()
    assert await store.acknowledge(ops.engine, incident["id"], ops.now)
    await ops.tick(5)
    assert ops.pd_actions(incident["dedup_key"]) == ["trigger", "acknowledge"]
    assert ops.pd.open_incident(incident["dedup_key"]).status == "acknowledged"
    assert len(ops.slack.posted) == 1
    assert await store.resolve(ops.engine, incident["id"], ops.now)
    await ops.tick(5)
    assert ops.pd_actions(incident["dedup_key"]) == ["trigger", "acknowledge", "resolve"]


async def test_after_a_restart_a_page_sent_before_is_still_resolved_by_hand_once(ops):
    incident = await ops.detector_opens()
    ops.watcher = ops.new_watcher()  # the process restarts: the router's memory is gone, the store is not
    await ops.watcher.start()
    await ops.tick(2)
    assert ops.pd_actions(incident["dedup_key"]) == ["trigger"]  # not paged twice
    assert await store.resolve(ops.engine, incident["id"], ops.now)
    await ops.tick(5)
    assert ops.pd_actions(incident["dedup_key"]) == ["trigger", "resolve"]


async def test_a_resolve_by_hand_still_undelivered_when_the_process_stops_goes_out_after_the_restart(ops):
    incident = await ops.detector_opens()
    ops.pd.fail_status = 500  # PagerDuty is down when the incident is resolved by hand
    assert await store.resolve(ops.engine, incident["id"], ops.now)
    await ops.tick(2)
    assert ops.pd_actions(incident["dedup_key"]) == ["trigger"]
    assert len(ops.slack.posted) == 2  # Slack took its resolved message
    ops.pd.fail_status = None
    ops.watcher = ops.new_watcher()  # the process restarts before the retry
    await ops.watcher.start()
    await ops.tick(5)
    assert ops.pd_actions(incident["dedup_key"]) == ["trigger", "resolve"]
    assert len(ops.slack.posted) == 2  # and Slack is not told twice


def test_a_group_is_acknowledged_once_and_only_when_every_firing_alert_in_it_is():
    receivers = {"pd": ReceiverSettings("pd", "pagerduty", {}, send_acknowledged=True),
                 "chat": ReceiverSettings("chat", "slack", {})}
    router = Router(AlertingSettings(receivers, ("pd", "chat"), timing=Timing(("account",), 0.0, 60.0)))
    sent: list[tuple[str, str]] = []

    def run(minutes: int) -> None:
        nonlocal now
        for _ in range(minutes):
            now += timedelta(minutes=1)
            for delivery in router.due(now):
                sent.append((delivery.receiver, delivery.notification.action))
                router.delivered(delivery, True, now)

    now = T0
    a, b = Alert("a", "acme", "4G down", "critical", cluster="4g"), Alert("b", "acme", "fibre down", cluster="fibre")
    router.submit(a, now)
    router.submit(b, now)
    run(2)
    router.submit(replace(a, acknowledged=True), now)
    run(3)
    assert sorted(sent) == [("chat", "trigger"), ("pd", "trigger")]  # b still firing unacknowledged
    router.submit(replace(b, acknowledged=True), now)
    run(5)
    assert sorted(sent) == [("chat", "trigger"), ("pd", "acknowledge"), ("pd", "trigger")]
    router.submit(replace(a, status="resolved"), now)
    router.submit(replace(b, status="resolved"), now)
    run(3)
    assert sorted(sent) == [("chat", "resolve"), ("chat", "trigger"), ("pd", "acknowledge"), ("pd", "resolve"),
                            ("pd", "trigger")]


async def test_an_acknowledgement_pagerduty_missed_before_a_restart_goes_after_it_and_only_once(ops):
    incident = await ops.detector_opens()
    ops.pd.fail_status = 500
    assert await store.acknowledge(ops.engine, incident["id"], ops.now)
    await ops.tick(2)
    ops.pd.fail_status = None
    ops.watcher = ops.new_watcher()
    await ops.watcher.start()
    await ops.tick(3)
    ops.watcher = ops.new_watcher()  # a second restart: the acknowledge is in the log now
    await ops.watcher.start()
    await ops.tick(3)
    assert ops.pd_actions(incident["dedup_key"]) == ["trigger", "acknowledge"]
    assert len(ops.slack.posted) == 1
