"""[incidents] auto_policy: the incidents the detector opens (and, with "all", those opened by hand) switch their
conversations to the incident SLA policy at once, every moved clock gets an SLA event, the switch is audited as done
by the system, and the conversations go back to their own policy when the incident resolves."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
import pytest
import sqlalchemy as sa

from carebox import config
from carebox.errors import ConfigError
from carebox.incidents import OutageWatcher
from carebox.outage import Detector, EpisodeEvent
from carebox.ports import IngestBatch
from carebox.runtime import make_pipeline
from carebox.store import incident_policy as policy_store
from carebox.store import incidents as store
from carebox.store.actions import audit
from carebox.store.incidents import incident_t
from carebox.store.ingest import clock_t, event_t
from tests.conftest import at

POLICIES = [{"name": "social", "calendar": "24/7", "first_response": "1h"},
            {"name": "incident", "calendar": "24/7", "first_response": "15m", "match": {"tags": ["incident"]}}]
T0 = at("2026-11-17T10:00:00+01:00")


class ScriptedDetector(Detector):
    """The real detector, whose episodes are the ones a test scripts (the burst detection is tested elsewhere)."""

    def __init__(self) -> None:
        super().__init__()
        self.script: list[EpisodeEvent] = []

    def tick(self, now: datetime) -> list[EpisodeEvent]:
        super().tick(now)
        events, self.script = self.script, []
        return events


def _event(kind: str, now: datetime) -> EpisodeEvent:
    return EpisodeEvent(kind=kind, account="acme", key=None, at=now, bucket_start=now - timedelta(minutes=1),
                        started_at=T0, severity="major", count=6, baseline=0.4, window=300.0, surprise=9.0,
                        reason="6 complaints in 5 min")


def _settings(auto: str | None) -> config.Settings:
    incidents = {"policy": "incident"} | ({} if auto is None else {"auto_policy": auto})
    return config.parse({"policies": POLICIES, "incidents": incidents}, environ={})


async def _watch(engine, mention, auto: str | None) -> tuple[OutageWatcher, ScriptedDetector, list[dict]]:
    """Two unanswered complaints, and a watcher configured as `carebox serve` configures it."""
    settings = _settings(auto)
    pipeline, book = make_pipeline(settings, engine)
    await pipeline.ingest([IngestBatch("sim", (mention("everything is down", author="a", when=T0.isoformat()),
                                               mention("nothing works!!", author="b", when=T0.isoformat())))], T0)
    detector, armed = ScriptedDetector(), []
    watcher = OutageWatcher(engine, detector)
    watcher.use_policy(book, settings.incidents.policy, armed.extend,
                       auto=settings.incidents.switches_on_open("detector"))
    await watcher.start()
    return watcher, detector, armed


async def _clock_policies(engine) -> list[str]:
    async with engine.connect() as c:
        return [r[0] for r in await c.execute(sa.select(clock_t.c.policy).where(clock_t.c.target == "first_response")
                                              .order_by(clock_t.c.conversation_id))]


async def _audit(engine) -> list[tuple[str, int | None, dict]]:
    async with engine.connect() as c:
        rows = await c.execute(sa.select(audit.c.action, audit.c.user_id, audit.c.detail).order_by(audit.c.id))
        return [(a, u, orjson.loads(d)) for a, u, d in rows]


def test_auto_policy_defaults_to_the_incidents_the_detector_opens_and_a_bad_value_names_the_key():
    assert _settings(None).incidents.auto_policy == "detector"
    assert _settings(None).incidents.switches_on_open("detector") and not _settings(None).incidents.switches_on_open("manual")
    assert _settings("all").incidents.switches_on_open("manual")
    assert not _settings("off").incidents.switches_on_open("detector")
    unset = config.parse({"policies": POLICIES}, environ={}).incidents
    assert not unset.switches_on_open("detector")  # no incident policy named: nothing to switch to
    with pytest.raises(ConfigError, match=r'incidents.auto_policy: expected one of "off", "detector"'):
        _settings("always")


async def test_an_incident_the_detector_opens_switches_its_conversations_at_once_and_back_when_it_resolves(engine, mention):
    watcher, detector, armed = await _watch(engine, mention, None)
    opened_at = T0 + timedelta(minutes=6)
    detector.script = [_event("opened", opened_at)]
    await watcher.tick(opened_at)
    async with engine.connect() as c:
        incident = dict((await c.execute(sa.select(incident_t))).one()._mapping)
        events = (await c.execute(sa.select(event_t.c.detail).where(event_t.c.kind == "policy"))).scalars().all()
    assert incident["policy"] == "incident" and incident["policy_at"] == opened_at
    assert await _clock_policies(engine) == ["incident", "incident"]
    assert len(armed) == 2 and {k["business_due"] for k in armed} == {opened_at + timedelta(minutes=15)}
    assert events == [f"incident #{incident['id']}: policy social -> incident"] * 2  # one SLA event per moved clock
    [(action, who, detail)] = await _audit(engine)
    assert (action, who) == ("incident.policy_on", None) and detail["by"] == "system"
    assert detail["incident_id"] == incident["id"] and "detector opened" in detail["reason"]
    resolved_at = opened_at + timedelta(hours=1)
    detector.script = [_event("resolved", resolved_at)]
    await watcher.tick(resolved_at)
    assert await _clock_policies(engine) == ["social", "social"]
    assert [(a, u, d["by"]) for a, u, d in await _audit(engine)] == [("incident.policy_on", None, "system"),
                                                                      ("incident.policy_off", None, "system")]
    async with engine.connect() as c:
        found = (await c.execute(sa.select(incident_t))).one()
        back = (await c.execute(sa.select(sa.func.count()).select_from(event_t).where(event_t.c.kind == "policy"))).scalar()
    assert found.state == "resolved" and found.policy_until == resolved_at and back == 4


async def test_with_auto_policy_off_the_detectors_incident_waits_for_someone_to_switch(engine, mention):
    watcher, detector, armed = await _watch(engine, mention, "off")
    detector.script = [_event("opened", T0 + timedelta(minutes=6))]
    await watcher.tick(T0 + timedelta(minutes=6))
    async with engine.connect() as c:
        assert (await c.execute(sa.select(incident_t.c.policy))).scalar() is None
    assert await _clock_policies(engine) == ["social", "social"] and armed == [] and await _audit(engine) == []


async def test_an_incident_switched_off_by_hand_is_not_switched_on_again_by_the_system(engine, mention):
    watcher, detector, _armed = await _watch(engine, mention, "detector")
    detector.script = [_event("opened", T0 + timedelta(minutes=6))]
    await watcher.tick(T0 + timedelta(minutes=6))
    [incident_id] = [row["id"] for row in await store.open_incidents(engine)]
    assert await policy_store.switch_off(engine, incident_id, T0 + timedelta(minutes=8))  # someone pressed "back"
    assert not await policy_store.switch_on_automatically(engine, incident_id, "incident", T0 + timedelta(minutes=9),
                                                          "reopened by the detector after a restart")
    await watcher.tick(T0 + timedelta(minutes=10))
    assert await _clock_policies(engine) == ["social", "social"]


@pytest.mark.parametrize("auto", ["all", "detector"])
async def test_an_incident_opened_by_hand_switches_at_once_only_with_auto_policy_all(aiohttp_client, tmp_path, db_url,
                                                                                     mention, auto):
    from tests.integration.test_web import _csrf, _login, make_client
    from web.keys import engine_key, pipeline_key

    doc = {"carebox": {"data_dir": str(tmp_path)}, "database": {"url": db_url}, "policies": POLICIES,
           "incidents": {"policy": "incident", "auto_policy": auto}}
    client = await make_client(aiohttp_client, config.parse(doc, environ={}), users=(("manager", "manager"),))
    engine, now = client.server.app[engine_key], datetime.now(UTC)
    await client.server.app[pipeline_key].ingest(
        [IngestBatch("sim", (mention("my 4G is down", when=(now - timedelta(minutes=2)).isoformat()),))], now)
    await _login(client, username="manager")
    token = await _csrf(client, "/incidents")
    resp = await client.post("/incidents", data={"csrf": token, "account": "acme", "title": "4G down"},
                             allow_redirects=False)
    incident_id = int(resp.headers["Location"].rsplit("/", 1)[1])
    page = await (await client.get(f"/incidents/{incident_id}")).text()
    actions = [(a, u, d.get("by")) for a, u, d in await _audit(engine) if a.startswith("incident.")]
    if auto == "all":
        assert await _clock_policies(engine) == ["incident"] and "are on the incident policy incident since" in page
        assert actions == [("incident.open", 1, None), ("incident.policy_on", None, "system")]
    else:
        assert await _clock_policies(engine) == ["social"] and "Incidents the detector opens switch to it" in page
        assert actions == [("incident.open", 1, None)]


async def test_an_incident_resolved_by_hand_while_the_episode_goes_on_is_not_reopened_nor_fed(engine, mention):
    watcher, detector, _armed = await _watch(engine, mention, "detector")
    detector.script = [_event("opened", T0 + timedelta(minutes=6))]
    await watcher.tick(T0 + timedelta(minutes=6))
    [incident_id] = [row["id"] for row in await store.open_incidents(engine)]
    assert await store.resolve(engine, incident_id, T0 + timedelta(minutes=7))
    await watcher.tick(T0 + timedelta(minutes=7))  # the clocks go back
    pipeline, _book = make_pipeline(_settings("detector"), engine)
    pipeline.observers.append(watcher.observe)
    await pipeline.ingest([IngestBatch("sim", (mention("still down!!", author="c", when=T0.isoformat()),))],
                          T0 + timedelta(minutes=8))
    detector.script = [_event("escalated", T0 + timedelta(minutes=9))]  # the detector's episode is still running
    await watcher.tick(T0 + timedelta(minutes=9))
    async with engine.connect() as c:
        incidents = [tuple(r) for r in await c.execute(sa.select(incident_t.c.id, incident_t.c.state))]
        linked = (await c.execute(sa.select(sa.func.count()).select_from(store.conversation_t)
                                  .where(store.conversation_t.c.incident_id == incident_id))).scalar()
    assert incidents == [(incident_id, "resolved")] and linked == 2  # the new complaint stays out of it
    assert await _clock_policies(engine) == ["social", "social", "social"]
    assert [a for a, _u, _d in await _audit(engine)] == ["incident.policy_on"]


def test_an_incident_title_rounds_a_fractional_window():
    from carebox.incidents import title

    event = _event("opened", T0)
    assert title(event) == "@acme: complaints rising (6 in 5 min, ~0.4 expected)"
    assert "(6 in 1.7 min," in title(EpisodeEvent(**{**{f: getattr(event, f) for f in event.__dataclass_fields__},
                                                     "window": 101.078}))


async def test_an_episode_the_detector_opens_on_an_incident_already_opened_by_hand_joins_it(engine, mention):
    watcher, detector, _armed = await _watch(engine, mention, "detector")
    by_hand, linked = await store.open_by_hand(engine, "acme", None, "Everything is down", T0 + timedelta(minutes=5))
    assert linked == 2
    detector.script = [_event("opened", T0 + timedelta(minutes=6))]
    await watcher.tick(T0 + timedelta(minutes=6))
    async with engine.connect() as c:
        rows = [dict(r._mapping) for r in await c.execute(sa.select(incident_t))]
    assert [(r["id"], r["title"], r["source"], r["severity"], r["peak_count"]) for r in rows] == [
        (by_hand, "Everything is down", "manual", "error", 6)]  # one incident, the person's title, the detector's facts
    assert rows[0]["policy"] == "incident" and await _clock_policies(engine) == ["incident", "incident"]
