"""Retention runs by itself: the scheduler leader purges every `purge_every`, counted from the last purge in the
audit log (restarts cannot postpone it), each run audited as scheduled; a failed run is logged, not fatal."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

import orjson
import pytest
import sqlalchemy as sa
from aiohttp import web
from sqlalchemy.ext.asyncio import create_async_engine

from carebox import config, privacy
from carebox.clocks import ClockBook
from carebox.errors import ConfigError
from carebox.ports import IngestBatch
from carebox.scheduler import PURGE_ID, Scheduler
from carebox.store import privacy as store
from carebox.store import queries
from tests.conftest import at

NOW = at("2026-11-22T03:00:00+00:00")
MONTH = privacy.PrivacySettings(mention_days=30, raw_days=7, purge_every_s=6 * 3600.0)


async def _purges(engine) -> list[dict]:
    async with engine.connect() as c:
        rows = await c.execute(sa.select(queries.audit.c.detail).where(queries.audit.c.action == "privacy.purge")
                               .order_by(queries.audit.c.id))
        return [orjson.loads(d) for d in rows.scalars()]


async def _texts(engine) -> list[str]:
    async with engine.connect() as c:
        return sorted((await c.execute(sa.select(queries.mention.c.text))).scalars())


def _scheduler(engine, settings, clock: list) -> Scheduler:
    scheduler = Scheduler(engine, ClockBook(settings.sla), lambda: clock[0])
    scheduler.aps.start(paused=True)  # jobs are planned, and run here by hand: no waiting
    return scheduler


async def _run_job(scheduler: Scheduler) -> object:
    job = scheduler.aps.get_job(PURGE_ID)
    return await job.func(*job.args)


async def test_the_first_scheduled_purge_is_due_at_once_and_anonymises_what_is_past_retention(
        pipeline, engine, settings, mention):
    old = mention("bill is wrong 0612345678", author="bob", when="2026-09-01T09:00:00+00:00", raw={"u": "bob"})
    new = mention("my fibre is down", author="alice", when="2026-11-21T09:00:00+00:00", raw={"u": "alice"})
    await pipeline.ingest([IngestBatch("x", (old, new))], NOW)
    scheduler = _scheduler(engine, settings, [NOW])
    try:
        assert await scheduler.schedule_retention(MONTH) == NOW
        assert scheduler.aps.get_job(PURGE_ID).trigger.interval == timedelta(hours=6)
        result = await _run_job(scheduler)
    finally:
        scheduler.shutdown()
    assert (result.mentions, result.raw_payloads) == (1, 1)
    assert await _texts(engine) == ["", "my fibre is down"]
    [detail] = await _purges(engine)
    assert detail["trigger"] == "schedule" and detail["mention_days"] == 30 and detail["mentions"] == 1


async def test_after_a_restart_the_next_purge_is_one_period_after_the_last_one_not_after_the_start(
        engine, settings):
    await store.purge(engine, MONTH, NOW - timedelta(hours=2), trigger="schedule")
    scheduler = _scheduler(engine, settings, [NOW])
    try:
        assert await scheduler.schedule_retention(MONTH) == NOW + timedelta(hours=4)
        assert scheduler.aps.get_job(PURGE_ID).next_run_time == NOW + timedelta(hours=4)
    finally:
        scheduler.shutdown()


async def test_a_purge_overdue_after_a_long_stop_runs_at_once(engine, settings):
    await store.purge(engine, MONTH, NOW - timedelta(days=3))
    scheduler = _scheduler(engine, settings, [NOW])
    try:
        assert await scheduler.schedule_retention(MONTH) == NOW
    finally:
        scheduler.shutdown()


async def test_no_retention_limit_means_no_purge_job(engine, settings):
    scheduler = _scheduler(engine, settings, [NOW])
    try:
        assert await scheduler.schedule_retention(privacy.PrivacySettings()) is None
        assert scheduler.aps.get_job(PURGE_ID) is None
    finally:
        scheduler.shutdown()
    assert await _purges(engine) == []


async def test_a_failed_scheduled_purge_is_logged_and_the_job_stays(engine, settings, caplog):
    scheduler = _scheduler(engine, settings, [NOW])
    try:
        await scheduler.schedule_retention(MONTH)
        await engine.dispose()
        scheduler.engine = create_async_engine("sqlite+aiosqlite:///file:absent?mode=ro&uri=true")
        with caplog.at_level(logging.ERROR, logger="carebox.scheduler"):
            assert await _run_job(scheduler) is None
        assert "scheduled retention purge failed" in caplog.text
        assert scheduler.aps.get_job(PURGE_ID) is not None
    finally:
        await scheduler.engine.dispose()
        scheduler.shutdown()


async def test_the_leader_of_a_running_carebox_schedules_the_purge_from_the_config(tmp_path, db_url):
    from carebox.runtime import build_app, work_key

    settings = config.parse({"carebox": {"data_dir": str(tmp_path)}, "database": {"url": db_url},
                             "privacy": {"mention_days": 90, "raw_days": 30, "purge_every": "12h"}}, environ={})
    app = await build_app(settings, role="worker")
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        async with asyncio.timeout(10):
            while getattr(app[work_key], "scheduler", None) is None:
                await asyncio.sleep(0.02)
        job = app[work_key].scheduler.aps.get_job(PURGE_ID)
        assert job is not None and job.trigger.interval == timedelta(hours=12)
    finally:
        await runner.cleanup()


@pytest.mark.parametrize("every", ["5s", "31d", "sometimes", -1, True])
def test_a_bad_purge_period_names_the_key(every):
    with pytest.raises(ConfigError, match=r"privacy\.purge_every"):
        config.parse({"privacy": {"mention_days": 30, "purge_every": every}}, file="carebox.toml")
