"""SLA warnings and breaches fire at their exact instant, once, and are re-armed after a restart."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from carebox import config, escalation
from carebox.clocks import ClockBook
from carebox.ports import Direction, IngestBatch
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


async def test_pending_pauses_the_clock_and_reopening_plans_the_business_time_that_was_left(pipeline, engine, settings, mention):
    from carebox.ports import Status
    from carebox.store import actions

    book = ClockBook(settings.sla)
    # Tuesday 10:00 Paris, 1 h on Mon-Fri 09:00-19:00: due 11:00. Pending at 10:20 (40 min left),
    # back at 18:40: 20 min today, 20 min Wednesday morning -> due Wednesday 09:20.
    await pipeline.ingest([IngestBatch("sim", (mention(when="2026-11-17T10:00:00+01:00"),))], at("2026-11-17T10:00:00+01:00"))
    [clock] = await clock_store.running(engine)
    await actions.set_status(engine, clock["conversation_id"], Status.PENDING, None, at("2026-11-17T10:20:00+01:00"), clocks=book)
    assert await escalation.fire(engine, book, clock["id"], "breach", at("2026-11-17T11:00:00+01:00")) is None
    changed = await actions.set_status(engine, clock["conversation_id"], Status.OPEN, None,
                                       at("2026-11-17T18:40:00+01:00"), clocks=book)
    assert [c["business_due"] for c in changed] == [at("2026-11-18T09:20:00+01:00")]
    assert changed[0]["wall_due"] == at("2026-11-17T11:00:00+01:00") + timedelta(hours=8, minutes=20)
    answer = mention("done", when="2026-11-18T09:00:00+01:00", author="acme", direction=Direction.OUTBOUND)
    await pipeline.ingest([IngestBatch("sim", (answer,))], at("2026-11-18T09:00:00+01:00"))
    detail = await queries.conversation(engine, clock["conversation_id"])
    kinds = [e["kind"] for e in detail["sla_events"]]
    assert kinds == ["activate", "pause", "resume"]  # the brand post did not reply to anything: not a response


async def test_a_customer_message_while_pending_resumes_the_clock(pipeline, engine, settings, mention):
    from carebox.ports import Status
    from carebox.store import actions

    book = ClockBook(settings.sla)
    first = mention(when="2026-11-17T10:00:00+01:00")
    await pipeline.ingest([IngestBatch("sim", (first,))], at("2026-11-17T10:00:00+01:00"))
    [clock] = await clock_store.running(engine)
    await actions.set_status(engine, clock["conversation_id"], Status.PENDING, None, at("2026-11-17T10:20:00+01:00"), clocks=book)
    again = mention("here is my number", when="2026-11-17T14:00:00+01:00", in_reply_to=first.external_id)
    await pipeline.ingest([IngestBatch("sim", (again,))], at("2026-11-17T14:00:00+01:00"))
    [clock] = await clock_store.running(engine)
    assert clock["paused_at"] is None and clock["business_due"] == at("2026-11-17T14:40:00+01:00")
    assert clock["status"] == "open"


async def test_editing_a_calendar_keeps_the_business_time_used_and_plans_the_rest_on_the_new_version(
    tmp_path, engine, db_url, mention
):
    from carebox.escalation import rebase_on_new_calendars

    hours = {"mon-fri": ["09:00-19:00"]}
    v1 = config.parse({"database": {"url": db_url}, "calendars": {"service-hours": {
        "timezone": "Europe/Paris", "hours": hours, "holidays": "FR", "version": 1}}}, environ={})
    pipeline, book = make_pipeline(v1, engine)
    friday = at("2026-11-20T18:30:00+01:00")
    await pipeline.ingest([IngestBatch("sim", (mention(when=friday.isoformat()),))], friday)
    await rebase_on_new_calendars(engine, book, friday)  # the first start keeps version 1
    [clock] = await clock_store.running(engine)
    assert clock["business_due"] == at("2026-11-23T09:30:00+01:00")
    # at 18:50 the manager opens Saturdays (version 2): 20 minutes used, 40 left -> 10 on Friday, 30 on Saturday
    v2 = config.parse({"database": {"url": db_url}, "calendars": {"service-hours": {
        "timezone": "Europe/Paris", "hours": {**hours, "sat": ["09:00-19:00"]}, "holidays": "FR", "version": 2}}},
        environ={})
    moved = await rebase_on_new_calendars(engine, ClockBook(v2.sla), at("2026-11-20T18:50:00+01:00"))
    assert [(c["calendar_version"], c["business_due"]) for c in moved] == [(2, at("2026-11-21T09:30:00+01:00"))]
    [clock] = await clock_store.running(engine)
    assert clock["business_due"] == at("2026-11-21T09:30:00+01:00") and clock["calendar_version"] == 2
    assert await rebase_on_new_calendars(engine, ClockBook(v2.sla), at("2026-11-20T18:55:00+01:00")) == []
    detail = await queries.conversation(engine, clock["conversation_id"])
    assert detail["due_business"] == at("2026-11-21T09:30:00+01:00")
    assert [e["kind"] for e in detail["sla_events"]] == ["activate", "rebase"]
