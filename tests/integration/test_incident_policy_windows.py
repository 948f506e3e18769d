"""Every window of an incident's SLA policy is kept, with who switched it on and off: switching off and on again
does not overwrite the first window, the detector's switches are carebox's, a split inherits its parent's windows,
the incident page tells it in both languages, and migration 0010 turns each existing incident policy into one window."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from carebox import config
from carebox.store import actions, queries
from carebox.store import incident_policy as policy_store
from carebox.store import incidents as store
from carebox.store.engine import make_engine
from carebox.store.migrate import upgrade
from tests.conftest import create_pg_database, drop_pg_database, need_postgres, pg_url
from tests.integration.test_incidents_auto import T0, _event, _watch
from tests.integration.test_web import _csrf, _login, make_client
from tests.integration.test_web_incidents import INCIDENT_POLICIES, _incident
from web.keys import engine_key


@pytest.fixture
async def client(aiohttp_client, tmp_path, db_url):
    doc = {"carebox": {"data_dir": str(tmp_path)}, "database": {"url": db_url}, "policies": INCIDENT_POLICIES,
           "incidents": {"policy": "incident", "auto_policy": "off"}}
    return await make_client(aiohttp_client, config.parse(doc, environ={}), users=(("manager", "manager"), ("agent", "agent")))


async def _switch(client, incident_id: int, who: str, action: str) -> None:
    await _login(client, username=who)
    token = await _csrf(client, f"/incidents/{incident_id}")
    resp = await client.post(f"/incidents/{incident_id}/policy", data={"csrf": token, "action": action},
                             allow_redirects=False)
    assert resp.status == 303


async def _windows(client, incident_id: int) -> list[dict]:
    return (await policy_store.windows(client.server.app[engine_key], [incident_id]))[incident_id]


async def test_switching_the_incident_policy_off_and_on_again_keeps_the_first_window_and_who_switched(client, mention):
    incident_id, _ids = await _incident(client, mention)
    await _switch(client, incident_id, "agent", "on")
    await _switch(client, incident_id, "manager", "off")
    await _switch(client, incident_id, "agent", "on")
    first, second = await _windows(client, incident_id)
    found = await store.incident(client.server.app[engine_key], incident_id)
    assert (first["on_by"], first["off_by"], second["on_by"], second["off_by"]) == ("agent", "manager", "agent", None)
    assert first["started_at"] <= first["ended_at"] <= second["started_at"] == found["policy_at"]
    assert second["ended_at"] is None and found["policy_until"] is None
    page = await (await client.get(f"/incidents/{incident_id}")).text()
    assert "are on the incident policy incident since" in page and "Switched on by agent." in page
    assert "Earlier windows of the incident policy" in page and "Switched on by agent, off by manager." in page
    await _login(client, username="manager")
    await client.post(f"/incidents/{incident_id}/resolve", data={"csrf": await _csrf(client, f"/incidents/{incident_id}")})
    resolved = await store.incident(client.server.app[engine_key], incident_id)
    assert [(w["ended_at"], w["off_by"]) for w in await _windows(client, incident_id)][1] == (resolved["resolved_at"], "manager")
    async with client.server.app[engine_key].begin() as c:
        await c.execute(sa.update(queries.user).where(queries.user.c.username == "manager").values(language="fr"))
    page = await (await client.get(f"/incidents/{incident_id}")).text()
    assert "Périodes de la politique d’incident" in page and page.count("Activée par agent, désactivée par manager.") == 2


async def test_a_split_incident_inherits_the_windows_of_its_parent(client, mention):
    incident_id, ids = await _incident(client, mention)
    await _switch(client, incident_id, "agent", "on")
    await _login(client, username="manager")
    token = await _csrf(client, f"/incidents/{incident_id}")
    resp = await client.post(f"/incidents/{incident_id}/split", data=[("csrf", token), ("title", "4G Paris"),
                                                                      ("conversation", str(ids[1]))], allow_redirects=False)
    new_id = int(resp.headers["Location"].rsplit("/", 1)[1])
    assert await _windows(client, new_id) == await _windows(client, incident_id)
    assert [w["on_by"] for w in await _windows(client, new_id)] == ["agent"]


async def test_the_detectors_switch_on_and_off_is_a_window_of_carebox_shown_as_by_the_detector(engine, mention):
    watcher, detector, _armed = await _watch(engine, mention, "detector")
    opened_at, resolved_at = T0 + timedelta(minutes=6), T0 + timedelta(hours=1)
    detector.script = [_event("opened", opened_at)]
    await watcher.tick(opened_at)
    [incident_id] = [row["id"] for row in await store.open_incidents(engine)]
    detector.script = [_event("resolved", resolved_at)]
    await watcher.tick(resolved_at)
    assert (await policy_store.windows(engine, [incident_id]))[incident_id] == [
        {"policy": "incident", "started_at": opened_at, "ended_at": resolved_at, "on_user_id": None, "on_by": None,
         "off_user_id": None, "off_by": None}]


async def test_the_page_says_the_detector_switched_the_policy_on(client, mention):
    incident_id, _ids = await _incident(client, mention)
    now = (await store.incident(client.server.app[engine_key], incident_id))["detected_at"]
    assert await policy_store.switch_on_automatically(client.server.app[engine_key], incident_id, "incident", now, "test")
    await _login(client, username="agent")
    page = await (await client.get(f"/incidents/{incident_id}")).text()
    assert "Switched on by the detector." in page and "Earlier windows" not in page


@pytest.fixture(params=["sqlite", "postgres"])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database of its own, not migrated yet (the migration is run step by step)."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'old.db'}"
        return
    need_postgres()
    name = create_pg_database("carebox_windows")
    try:
        yield pg_url(name)
    finally:
        drop_pg_database(name)


async def test_migration_0010_gives_each_incident_policy_one_window_with_who_the_audit_log_names(empty_url):
    await upgrade(empty_url, "0009")
    engine = make_engine(empty_url)
    on_at, off_at, auto_at = T0, T0 + timedelta(minutes=30), T0 + timedelta(minutes=5)
    try:
        alice = await actions.add_user(engine, "alice", "x", "agent", T0, display_name="Alice")
        ids = []
        for n, policy in enumerate(({"policy": "incident", "policy_at": on_at, "policy_until": off_at},
                                    {"policy": "incident", "policy_at": auto_at}, {})):
            values = {"account": "acme", "title": "4G down", "started_at": T0, "detected_at": T0, "source": "detector",
                      "dedup_key": f"k{n}", "series": "[]", **policy}
            ids.append((await store.open_incident(engine, values, T0 + timedelta(days=1)))[0])
        hand, auto, never = ids
        await actions.record_audit(engine, on_at, alice, "incident.policy_on", incident_id=hand, policy="incident")
        await actions.record_audit(engine, off_at, alice, "incident.policy_off", incident_id=hand, policy="incident")
        await actions.record_audit(engine, auto_at, None, "incident.policy_on", incident_id=auto, by="system")
        await actions.record_audit(engine, on_at, alice, "incident.policy_on", incident_id=never)  # not at its policy_at
    finally:
        await engine.dispose()
    await upgrade(empty_url)
    engine = make_engine(empty_url)
    try:
        found = await policy_store.windows(engine, ids)
    finally:
        await engine.dispose()
    assert found[hand] == [{"policy": "incident", "started_at": on_at, "ended_at": off_at, "on_user_id": alice,
                            "on_by": "Alice", "off_user_id": alice, "off_by": "Alice"}]
    assert found[auto] == [{"policy": "incident", "started_at": auto_at, "ended_at": None, "on_user_id": None,
                            "on_by": None, "off_user_id": None, "off_by": None}]
    assert found[never] == []
