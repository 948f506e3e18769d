"""After a restart the watcher learns, in one query, what each receiver last took of the latest incidents: the same
state the incident pages' reads (one incident at a time) give, so nobody is paged twice and no resolve is lost."""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Any

import sqlalchemy as sa

from carebox.incidents import TOLD_LOOKBACK, OutageWatcher, _told
from carebox.outage import Detector
from carebox.store import incidents as store
from carebox.store.incidents import delivery_t, incident_t
from tests.conftest import at

T0 = at("2026-11-17T10:00:00+01:00")
RECEIVERS = ("pd", "chat", "mail")


async def _told_one_incident_at_a_time(engine: Any) -> list[tuple[dict[str, Any], dict[str, str]]]:
    """The restart check as it was: the incident list, then each incident with deliveries read on its own."""
    out = []
    for row in await store.list_incidents(engine, limit=TOLD_LOOKBACK):
        if not row["delivered"]:
            continue
        found = await store.incident(engine, row["id"])
        assert found is not None
        last = {d["receiver"]: d["action"] for d in found.pop("deliveries") if d["outcome"] == "ok"}
        found.pop("conversations")
        if found["source"] != "split":
            out.append((found, {receiver: action for receiver, action in last.items() if action != "resolve"}))
    return out


async def _many_incidents(engine: Any, count: int, seed: int) -> None:
    """More incidents than a restart looks at, in every state, with delivery logs whose times tie and whose rows
    were written out of time order, so the latest successful delivery per receiver is a real question."""
    rng = random.Random(seed)
    incidents, deliveries = [], []
    for n in range(count):
        incidents.append({
            "id": n + 1, "account": rng.choice(("acme", "globex")), "cluster_key": rng.choice((None, "4g", "fibre")),
            "title": f"incident {n}", "state": rng.choice(("open", "acknowledged", "resolved", "resolved")),
            "severity": rng.choice(("warning", "error", "critical")),
            "source": rng.choice(("detector", "detector", "manual", "split")), "dedup_key": f"carebox/acme/{n}",
            "started_at": T0 + timedelta(minutes=rng.randrange(60)),  # many share a start: the id breaks the tie
            "detected_at": T0 + timedelta(minutes=60), "peak_count": rng.randrange(20),
            "baseline": rng.random(), "reason": "a burst", "series": "[]"})
        for _ in range(rng.choice((0, 0, 1, 3, 6))):
            action = rng.choice(("trigger", "trigger", "acknowledge", "resolve"))
            deliveries.append({
                "incident_id": n + 1, "at": T0 + timedelta(minutes=rng.randrange(4)), "receiver": rng.choice(RECEIVERS),
                "action": action, "dedup_key": f"carebox/acme/{n}", "attempt": 1,
                "outcome": rng.choice(("ok", "ok", "failed")), "error": ""})
    rng.shuffle(deliveries)
    async with engine.begin() as conn:
        await conn.execute(incident_t.insert(), incidents)
        await conn.execute(delivery_t.insert(), deliveries)


def _queries(engine: Any) -> list[str]:
    """The queries the engine runs from now on (a transaction's BEGIN is not one)."""
    statements: list[str] = []

    def seen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith(("SELECT", "WITH")):
            statements.append(statement)

    sa.event.listen(engine.sync_engine, "before_cursor_execute", seen)
    return statements


async def test_the_restart_check_reads_what_each_receiver_last_took_in_one_query_with_the_same_result(engine):
    await _many_incidents(engine, TOLD_LOOKBACK + 40, seed=7)
    expected = await _told_one_incident_at_a_time(engine)
    assert 20 < len(expected) < TOLD_LOOKBACK  # resolved, split and never-delivered incidents are left out
    assert any("acknowledge" in told.values() for _, told in expected)
    assert any(not told for _, told in expected)  # resolved everywhere: nothing left to restore
    queries = _queries(engine)
    assert await _told(engine) == expected
    assert len(queries) == 1


async def test_the_restart_check_only_looks_at_the_latest_incidents_in_the_list_order(engine):
    await _many_incidents(engine, 30, seed=11)
    listed = [row["id"] for row in await store.list_incidents(engine, limit=10)]
    got = await store.last_delivered(engine, 10)
    assert [row["id"] for row, _ in got] == [i for i in listed if i in {row["id"] for row, _ in got}]
    assert {row["id"] for row, _ in got} == {row["id"] for row in await store.list_incidents(engine, limit=10)
                                             if row["delivered"]}


async def test_a_restarted_watcher_restores_the_same_receivers_as_before(engine):
    await _many_incidents(engine, TOLD_LOOKBACK + 40, seed=3)
    watcher = OutageWatcher(engine, Detector())
    await watcher.start()
    assert watcher._told == [(row, told) for row, told in await _told_one_incident_at_a_time(engine) if told]
