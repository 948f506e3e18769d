"""Timed SLA writes under a held write lock, and breaches that fell due while carebox was down: a locked store
delays an SLA event (one warning, no traceback) but never loses it, and a late answer never hides a breach."""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from aiohttp import web

from carebox import config, escalation
from carebox.ports import Direction, InboundMention, IngestBatch
from carebox.runtime import build_app, make_pipeline, queue_key
from carebox.scheduler import Scheduler
from carebox.store import clocks as clock_store
from carebox.store import queries
from carebox.store.engine import make_engine
from carebox.store.migrate import upgrade
from connectors.social.jsonl import parse_mention
from tests.reliability.held_lock import HeldLock

pytestmark = pytest.mark.sqlite_only
T0 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


def _settings(tmp_path, url, *, first_response="1h", connectors=()):
    return config.parse({"carebox": {"data_dir": str(tmp_path)}, "database": {"url": url},
                         "policies": [{"name": "fast", "calendar": "24/7", "first_response": first_response,
                                       "warn": "50%"}],
                         "connectors": list(connectors)}, environ={})


def _mention(external_id, when, direction=Direction.INBOUND, **kw):
    return InboundMention(network="x", account="acme", external_id=external_id, author_id="u1",
                          author_handle="u1" if direction is Direction.INBOUND else "acme", text="my 4G is down",
                          created_at=when, direction=direction, **kw)


@pytest.fixture
async def store(tmp_path):
    """A migrated SQLite store whose connections give up on a lock after 50 ms (a loaded machine's 10 s)."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'carebox.db'}"
    await upgrade(url)
    engine = make_engine(url)

    def short_busy_timeout(dbapi_conn, _record):  # runs after the engine's own pragmas
        dbapi_conn.cursor().execute("PRAGMA busy_timeout=50")

    sa.event.listen(engine.sync_engine, "connect", short_busy_timeout)
    yield url, engine
    await engine.dispose()


async def _events(engine):
    async with engine.connect() as conn:
        rows = await conn.execute(sa.select(queries.sla_event).order_by(queries.sla_event.c.id))
        return [dict(r._mapping) for r in rows]


async def _until(check, timeout=10.0):
    for _ in range(int(timeout / 0.02)):
        if check():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("timed out")


async def test_a_warning_due_while_another_writer_holds_the_lock_fires_once_the_lock_is_released(tmp_path, store, caplog):
    url, engine = store
    pipeline, book = make_pipeline(_settings(tmp_path, url), engine)
    await pipeline.ingest([IngestBatch("x", (_mention("1", T0),))], T0)
    [clock] = await clock_store.running(engine)
    fired = []
    scheduler = Scheduler(engine, book, lambda: T0 + timedelta(minutes=31), on_fired=fired.extend)
    lock = HeldLock(tmp_path / "carebox.db")
    caplog.set_level(logging.INFO, logger="carebox")
    job = asyncio.create_task(scheduler._fire(clock["id"], "warn"))  # what APScheduler runs at the instant
    await _until(lambda: "database is locked" in caplog.text)
    assert not job.done() and [e["kind"] for e in await _events(engine)] == ["activate"]
    lock.release()
    await asyncio.wait_for(job, 10)
    assert [(f.kind, f.clock_id) for f in fired] == [("warn", clock["id"])]
    assert [e["kind"] for e in await _events(engine)] == ["activate", "warn"]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert [r.getMessage() for r in warnings][-1].endswith("done after 2 tries (the database was locked)")
    assert all(r.exc_info is None for r in caplog.records) and not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_a_breach_whose_writes_stay_locked_is_left_to_the_sweep_without_a_traceback(tmp_path, store, caplog, monkeypatch):
    url, engine = store
    monkeypatch.setattr(escalation, "LOCKED_RETRY_S", (0.01, 0.01))
    pipeline, book = make_pipeline(_settings(tmp_path, url), engine)
    await pipeline.ingest([IngestBatch("x", (_mention("1", T0),))], T0)
    [clock] = await clock_store.running(engine)
    scheduler = Scheduler(engine, book, lambda: T0 + timedelta(hours=2))
    caplog.set_level(logging.INFO, logger="carebox")
    lock = HeldLock(tmp_path / "carebox.db")
    await scheduler._fire(clock["id"], "breach")  # gives up: logged, not raised
    await scheduler.sweep()  # still locked: the sweep stops where it is, logged
    lock.release()
    assert "stayed locked after 3 tries; the next sweep will do it" in caplog.text
    assert all(r.exc_info is None for r in caplog.records)
    await scheduler.sweep()
    assert [e["kind"] for e in await _events(engine)] == ["activate", "warn", "breach"]


async def test_a_breach_due_while_carebox_was_down_is_logged_when_the_late_answer_came_in_before_the_scheduler(tmp_path, store):
    # the leader was down at the due time and another worker (or this process, before its scheduler) stored
    # the late answer: the fulfilled clock is skipped by the overdue sweep, so the breach must come from the answer
    url, engine = store
    pipeline, book = make_pipeline(_settings(tmp_path, url), engine)
    await pipeline.ingest([IngestBatch("x", (_mention("1", T0),))], T0)
    answer_at = T0 + timedelta(hours=1, minutes=40)
    await pipeline.ingest([IngestBatch("x", (_mention("r1", answer_at, Direction.OUTBOUND, in_reply_to="1"),))], answer_at)
    fired = []
    scheduler = Scheduler(engine, book, lambda: T0 + timedelta(hours=2), on_fired=fired.extend)
    await scheduler.start()
    try:
        await scheduler.sweep()  # once only
    finally:
        scheduler.shutdown()
    events = await _events(engine)
    assert [e["kind"] for e in events] == ["activate", "fulfil", "breach"]
    breach = events[-1]
    assert breach["at"] == T0 + timedelta(hours=1) and breach["business_s"] == pytest.approx(3600)
    assert breach["detail"].startswith("answered late at 2026-11-23T11:40:00")
    assert [(f.kind, f.notify) for f in fired] == [("breach", ())]  # nobody paged for an answered conversation
    [clock] = await clock_store.by_ids(engine, [breach["clock_id"]])
    assert clock["breached_at"] == T0 + timedelta(hours=1)


async def test_a_late_answer_stored_between_two_sweeps_gets_its_breach_from_the_next_sweep_once(tmp_path, store):
    # a breach job that ran late (a loaded machine) while the answer came in: the next sweep logs the breach
    url, engine = store
    pipeline, book = make_pipeline(_settings(tmp_path, url), engine)
    fired = []
    scheduler = Scheduler(engine, book, lambda: T0 + timedelta(hours=2), on_fired=fired.extend)
    await scheduler.start()  # its sweep finds nothing
    try:
        await pipeline.ingest([IngestBatch("x", (_mention("1", T0),))], T0)  # no job armed: as if it ran late
        answer_at = T0 + timedelta(hours=1, seconds=30)
        await pipeline.ingest([IngestBatch("x", (_mention("r1", answer_at, Direction.OUTBOUND, in_reply_to="1"),))],
                              answer_at)
        await scheduler.sweep()
        await scheduler.sweep()
    finally:
        scheduler.shutdown()
    assert [e["kind"] for e in await _events(engine)] == ["activate", "fulfil", "breach"]
    assert [f.kind for f in fired] == ["breach"]


async def test_an_answer_in_time_or_while_paused_logs_no_breach(tmp_path, store):
    url, engine = store
    pipeline, book = make_pipeline(_settings(tmp_path, url), engine)
    await pipeline.ingest([IngestBatch("x", (_mention("1", T0),))], T0)
    answer_at = T0 + timedelta(minutes=50)
    await pipeline.ingest([IngestBatch("x", (_mention("r1", answer_at, Direction.OUTBOUND, in_reply_to="1"),))], answer_at)
    scheduler = Scheduler(engine, book, lambda: T0 + timedelta(hours=3))
    await scheduler.start()
    scheduler.shutdown()
    assert [e["kind"] for e in await _events(engine)] == ["activate", "fulfil"]


@pytest.mark.parametrize("how", ["queued", "connector"])
async def test_a_restart_logs_once_the_breach_that_fell_due_while_down_when_a_late_answer_is_waiting(tmp_path, how):
    # stop (nothing runs), let the due time pass, restart `serve` with the late answer waiting: already in the
    # queue (the consumer starts before the scheduler), or in a connector (which starts after the scheduler)
    url = f"sqlite+aiosqlite:///{tmp_path / 'carebox.db'}"
    await upgrade(url)
    engine = make_engine(url)
    start = datetime.now(UTC)
    pipeline, _ = make_pipeline(_settings(tmp_path, url, first_response="1s"), engine)
    await pipeline.ingest([IngestBatch("x", (_mention("1", start),))], start)
    await engine.dispose()
    await asyncio.sleep(1.2)  # down at the due time
    answer = {"network": "x", "account": "acme", "external_id": "r1", "author_id": "acme", "text": "sorry, fixed now",
              "direction": "out", "in_reply_to": "1", "created_at": datetime.now(UTC).isoformat()}
    (tmp_path / "answer.jsonl").write_text(json.dumps(answer) + "\n")
    replay = {"type": "replay", "name": "late", "account": "acme", "path": str(tmp_path / "answer.jsonl")}
    app = await build_app(_settings(tmp_path, url, first_response="1s", connectors=[replay] if how == "connector" else []))
    if how == "queued":
        app[queue_key].put_nowait_batch(IngestBatch("late", (parse_mention(answer),)))
    runner = web.AppRunner(app)
    await runner.setup()  # every cleanup context: store, consumer, then the leases (scheduler first, connectors)
    engine = make_engine(url)
    try:
        for _ in range(500):
            kinds = [e["kind"] for e in await _events(engine)]
            if "fulfil" in kinds and "breach" in kinds:
                break
            await asyncio.sleep(0.02)
        events = await _events(engine)
        breaches = [e for e in events if e["kind"] == "breach"]
        assert len(breaches) == 1 and "fulfil" in [e["kind"] for e in events], [e["kind"] for e in events]
        assert breaches[0]["at"] >= start + timedelta(seconds=1)
        if how == "connector":  # logged at start as it fell due (the warning may be skipped), before the answer
            assert [e["kind"] for e in events if e["kind"] != "warn"] == ["activate", "breach", "fulfil"]
            assert not breaches[0]["detail"].startswith("answered late")
    finally:
        await runner.cleanup()
        await engine.dispose()


async def test_the_first_sweep_after_a_restart_reads_only_the_sla_events_logged_since_the_last_process_swept(
        tmp_path, store, monkeypatch):
    # reading every fulfil event ever logged made a large store's start slow; SQLite commits its ids in order, so
    # nothing before the mark the last process kept is read again, and a late answer stored while down still counts
    url, engine = store
    pipeline, book = make_pipeline(_settings(tmp_path, url), engine)
    answer_at = T0 + timedelta(hours=1, minutes=40)
    await pipeline.ingest([IngestBatch("x", (_mention("1", T0),))], T0)
    await pipeline.ingest([IngestBatch("x", (_mention("r1", answer_at, Direction.OUTBOUND, in_reply_to="1"),))], answer_at)
    first = Scheduler(engine, book, lambda: T0 + timedelta(hours=2))
    await first.start()
    first.shutdown()
    mark = await clock_store.late_answers_read(engine)
    assert mark and [e["kind"] for e in await _events(engine)][-1] == "breach"
    async with engine.begin() as conn:  # as if that breach had not been logged: a restart must not read that far back
        await conn.execute(clock_store.clock_t.update().values(breached_at=None))
    other = replace(_mention("2", T0), author_id="u2", author_handle="u2")  # another customer, answered while down
    await pipeline.ingest([IngestBatch("x", (other,))], T0)
    await pipeline.ingest([IngestBatch("x", (_mention("r2", answer_at, Direction.OUTBOUND, in_reply_to="2"),))], answer_at)
    read_after = []
    answered_late = clock_store.answered_late
    monkeypatch.setattr(clock_store, "answered_late", lambda e, after: read_after.append(after) or answered_late(e, after))
    fired = []
    second = Scheduler(engine, book, lambda: T0 + timedelta(hours=2), on_fired=fired.extend)
    await second.start()
    second.shutdown()
    assert read_after == [mark]
    [(kind, conversation_id)] = [(f.kind, f.conversation_id) for f in fired]
    assert kind == "breach" and conversation_id != (await _events(engine))[0]["conversation_id"]
    assert await clock_store.late_answers_read(engine) > mark
