"""SLA warnings and breaches fire at their exact instant, once, and are re-armed after a restart."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from carebox import config, escalation
from carebox.clocks import ClockBook
from carebox.ports import IngestBatch
from carebox.runtime import make_pipeline
from carebox.scheduler import Scheduler
from carebox.store import clocks as clock_store
from carebox.store import queries
from tests.conftest import at

FRIDAY_1850 = "2026-11-20T18:50:00+01:00"


async def _events(engine):
    async with engine.connect() as c:
        rows = await c.execute(sa.select(queries.sla_event.c.kind, queries.sla_event.c.at).order_by(queries.sla_event.c.id))
        return [tuple(r) for r in rows]


async def test_warning_is_planned_at_80_percent_of_business_time_and_breach_at_the_due_time(pipeline, engine, settings, mention):
    await pipeline.ingest([IngestBatch("sim", (mention(when=FRIDAY_1850),))], at("2026-11-20T18:50:00+01:00"))
    [clock] = await clock_store.running(engine)
    plan = escalation.timers(ClockBook(settings.sla), clock, at("2026-11-20T19:00:00+01:00"))
    assert [(t.kind, t.at) for t in plan][:2] == [
        ("warn", at("2026-11-23T09:38:00+01:00")),  # 48 business minutes: 10 on Friday, 38 on Monday
        ("breach", at("2026-11-23T09:50:00+01:00")),
    ]


async def test_scheduler_arms_a_date_job_at_each_exact_instant(pipeline, engine, settings, mention):
    await pipeline.ingest([IngestBatch("sim", (mention(when=FRIDAY_1850),))], at("2026-11-20T18:50:00+01:00"))
    scheduler = Scheduler(engine, ClockBook(settings.sla), lambda: at("2026-11-20T19:00:00+01:00"))
    scheduler.aps.start(paused=True)
    try:
        assert scheduler.arm(await clock_store.running(engine)) >= 2
        jobs = {job.id: job.next_run_time for job in scheduler.aps.get_jobs()}
        [clock] = await clock_store.running(engine)
        assert jobs[f"sla:{clock['id']}:warn"] == at("2026-11-23T09:38:00+01:00")
        assert jobs[f"sla:{clock['id']}:breach"] == at("2026-11-23T09:50:00+01:00")
    finally:
        scheduler.shutdown()


async def test_events_fire_once_and_never_after_the_answer(pipeline, engine, settings, mention):
    book = ClockBook(settings.sla)
    await pipeline.ingest([IngestBatch("sim", (mention(when=FRIDAY_1850),))], at(FRIDAY_1850))
    [clock] = await clock_store.running(engine)
    monday = at("2026-11-23T09:38:00+01:00")
    assert (await escalation.fire(engine, book, clock["id"], "warn", monday)).notify == ("assignee",)
    assert await escalation.fire(engine, book, clock["id"], "warn", monday) is None
    fired = await escalation.sweep(engine, book, lambda: at("2026-11-23T10:00:00+01:00"))
    assert [(f.kind, f.notify) for f in fired] == [("breach", ("team_lead",))]
    assert await escalation.sweep(engine, book, lambda: at("2026-11-23T10:01:00+01:00")) == []
    kinds = [k for k, _ in await _events(engine)]
    assert kinds == ["activate", "warn", "breach"]


async def test_a_short_policy_warns_and_breaches_in_real_time_through_apscheduler(tmp_path, engine, db_url, mention):
    doc = {"carebox": {"data_dir": str(tmp_path)}, "database": {"url": db_url},
           "policies": [{"name": "fast", "calendar": "24/7", "first_response": "2s", "warn": "1s"}]}
    settings = config.parse(doc, environ={})
    pipeline, book = make_pipeline(settings, engine)
    fired: list[escalation.Fired] = []
    scheduler = Scheduler(engine, book, lambda: datetime.now(UTC), on_fired=fired.extend, sweep_s=3600)
    pipeline.on_clocks = scheduler.arm
    await scheduler.start()
    try:
        start = datetime.now(UTC)
        await pipeline.ingest([IngestBatch("sim", (mention(when=start.isoformat()),))], start)
        for _ in range(60):
            if len(fired) >= 2:
                break
            await asyncio.sleep(0.1)
    finally:
        scheduler.shutdown()
    assert [f.kind for f in fired] == ["warn", "breach"]
    assert fired[0].at - start >= timedelta(seconds=1) and fired[1].at - start >= timedelta(seconds=2)
