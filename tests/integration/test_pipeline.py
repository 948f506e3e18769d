"""The ingest pipeline on SQLite: dedup, threading, customers, both SLA clocks, cursors, dead letters."""

from __future__ import annotations

import contextlib
from datetime import UTC, timedelta

import pytest
import sqlalchemy as sa

from carebox.ports import Direction, IngestBatch, Rejected
from carebox.store import queries
from tests.conftest import at

NOW = at("2026-11-23T12:00:00+01:00")


async def _conversations(engine):
    async with engine.connect() as c:
        return [dict(r._mapping) for r in await c.execute(sa.select(queries.conv).order_by(queries.conv.c.id))]


async def test_friday_evening_mention_is_due_monday_on_business_clock_and_friday_on_customer_clock(pipeline, engine, mention):
    await pipeline.ingest([IngestBatch("sim", (mention(when="2026-11-20T18:50:00+01:00"),))], NOW)
    [conv] = await _conversations(engine)
    assert conv["due_business"] == at("2026-11-23T09:50:00+01:00")
    assert conv["due_wall"] == at("2026-11-20T19:50:00+01:00")
    assert conv["policy"] == "social"
    assert conv["status"] == "open"


async def test_ingesting_the_same_batch_twice_stores_nothing_twice(pipeline, engine, mention):
    batch = IngestBatch("sim", (mention(), mention(author="u2")))
    assert await pipeline.ingest([batch], NOW) == 2
    assert await pipeline.ingest([batch, batch], NOW) == 0
    assert (await queries.stats(engine))["mentions"] == 2


async def test_brand_reply_in_the_chain_stops_the_first_response_clock_on_both_clocks(pipeline, engine, mention):
    question = mention("how do I change my plan?", when="2026-11-20T18:50:00+01:00")
    answer = mention("Hi! You can do it in the app.", when="2026-11-23T09:20:00+01:00", author="acme",
                     direction=Direction.OUTBOUND, in_reply_to=question.external_id)
    await pipeline.ingest([IngestBatch("sim", (question,))], NOW)
    await pipeline.ingest([IngestBatch("sim", (answer,))], NOW)
    [conv] = await _conversations(engine)
    assert conv["first_response_at"] == answer.created_at
    assert conv["due_business"] is None
    detail = await queries.conversation(engine, conv["id"])
    fulfil = next(e for e in detail["sla_events"] if e["kind"] == "fulfil")
    assert fulfil["business_s"] == 10 * 60 + 20 * 60  # 18:50-19:00 Friday + 09:00-09:20 Monday
    assert fulfil["wall_s"] == (answer.created_at - question.created_at).total_seconds()


async def test_automated_brand_reply_does_not_stop_the_clock(pipeline, engine, mention):
    question = mention(when="2026-11-17T10:00:00+01:00")
    bot = mention("We received your message", when="2026-11-17T10:00:05+01:00", author="acme",
                  direction=Direction.OUTBOUND, in_reply_to=question.external_id, automated=True)
    await pipeline.ingest([IngestBatch("sim", (question, bot))], NOW)
    [conv] = await _conversations(engine)
    assert conv["first_response_at"] is None and conv["due_business"] is not None


async def test_same_customer_within_quiet_gap_continues_the_conversation_and_after_it_starts_a_new_one(pipeline, engine, mention):
    first = mention(when="2026-11-17T10:00:00+01:00")
    again = mention("still down!!", when="2026-11-17T11:00:00+01:00")
    later = mention("down again", when="2026-11-19T11:00:00+01:00")
    other = mention("hello", when="2026-11-17T10:30:00+01:00", author="u2")
    await pipeline.ingest([IngestBatch("sim", (first, other, again))], NOW)
    await pipeline.ingest([IngestBatch("sim", (later,))], NOW)
    convs = await _conversations(engine)
    assert [c["message_count"] for c in convs] == [2, 1, 1]
    assert convs[0]["customer_id"] == convs[2]["customer_id"] != convs[1]["customer_id"]


async def test_a_message_after_resolution_opens_a_new_conversation_but_a_reply_to_it_reopens_it(pipeline, engine, mention):
    from carebox.ports import Status
    from carebox.store import actions

    first = mention(when="2026-11-17T10:00:00+01:00")
    await pipeline.ingest([IngestBatch("sim", (first,))], NOW)
    [conv] = await _conversations(engine)
    await actions.set_status(engine, conv["id"], Status.RESOLVED, None, NOW)
    follow = mention("thanks, and one more thing", when="2026-11-17T10:30:00+01:00", in_reply_to=first.external_id)
    fresh = mention("new problem", when="2026-11-17T10:40:00+01:00")
    await pipeline.ingest([IngestBatch("sim", (follow,)), IngestBatch("sim", (fresh,))], NOW)
    convs = await _conversations(engine)
    assert convs[0]["status"] == "open" and convs[0]["message_count"] == 2
    assert len(convs) == 2


async def test_customer_page_lists_their_other_conversations(pipeline, engine, mention):
    await pipeline.ingest([IngestBatch("sim", (mention(when="2026-11-10T10:00:00+01:00"),))], NOW)
    await pipeline.ingest([IngestBatch("sim", (mention(when="2026-11-17T10:00:00+01:00"),))], NOW)
    convs = await _conversations(engine)
    detail = await queries.conversation(engine, convs[1]["id"])
    assert [h["id"] for h in detail["history"]] == [convs[0]["id"]]
    assert detail["identities"][0]["handle"] == "u1"


async def test_cursor_is_committed_with_the_mentions_and_rejects_become_dead_letters(pipeline, engine, mention):
    from carebox.store.ingest import load_cursor

    batch = IngestBatch("x:acme", (mention(),), (Rejected("x:acme", "{bad", "not JSON"),), cursor="42")
    await pipeline.ingest([batch], NOW)
    async with engine.connect() as c:
        assert await load_cursor(c, "x:acme") == "42"
    stats = await queries.stats(engine)
    assert stats["dead_letters"] == 1 and stats["mentions"] == 1


async def test_triage_fields_are_stored_on_the_mention(pipeline, engine, mention):
    await pipeline.ingest([IngestBatch("sim", (mention("Mon réseau 4G ne marche plus depuis ce matin, inadmissible"),))], NOW)
    async with engine.connect() as c:
        row = (await c.execute(sa.select(queries.mention))).one()
    assert row.language == "fr"
    assert row.polarity < 0
    assert row.priority in ("P1", "P2", "P3", "P4")


async def test_mentions_arriving_in_one_batch_out_of_order_are_threaded_in_time_order(pipeline, engine, mention):
    q = mention(when="2026-11-17T10:00:00+01:00")
    a = mention("on it", when="2026-11-17T10:05:00+01:00", author="acme", direction=Direction.OUTBOUND, in_reply_to=q.external_id)
    await pipeline.ingest([IngestBatch("sim", (a, q))], NOW)
    [conv] = await _conversations(engine)
    assert conv["first_response_at"] == q.created_at + timedelta(minutes=5)


async def test_customer_writing_again_after_a_reply_starts_the_next_response_clock(pipeline, engine, mention):
    q = mention("how do I change my plan?", when="2026-11-17T10:00:00+01:00")
    a = mention("In the app, under Plan.", when="2026-11-17T10:10:00+01:00", author="acme",
                direction=Direction.OUTBOUND, in_reply_to=q.external_id)
    again = mention("I can't find it", when="2026-11-17T10:20:00+01:00", in_reply_to=a.external_id)
    await pipeline.ingest([IngestBatch("sim", (q, a, again))], NOW)
    [conv] = await _conversations(engine)
    assert conv["due_wall"] == at("2026-11-17T11:20:00+01:00")  # the customer's hour, from their new message
    detail = await queries.conversation(engine, conv["id"])
    assert [(e["target"], e["kind"]) for e in detail["sla_events"]] == [
        ("first_response", "activate"), ("first_response", "fulfil"), ("next_response", "activate")]


async def test_a_customer_seen_again_keeps_one_identity_and_its_follower_count_when_the_network_omits_it(
    pipeline, engine, mention
):
    await pipeline.ingest([IngestBatch("sim", (mention(followers=1200),))], NOW)
    await pipeline.ingest([IngestBatch("sim", (mention(author_handle="u1_new", followers=None),))], NOW)
    async with engine.connect() as c:
        rows = [dict(r._mapping) for r in await c.execute(sa.select(queries.identity))]
    assert [(r["handle"], r["followers"]) for r in rows] == [("u1_new", 1200)]


async def test_stored_datetimes_are_the_text_sqlalchemy_core_writes_on_sqlite(pipeline, engine, mention, db_url):
    if not db_url.startswith("sqlite"):
        pytest.skip("the driver-level inserts are SQLite's; PostgreSQL keeps Core")
    from sqlalchemy.dialects import sqlite

    m = mention(when="2026-11-17T10:00:00.000250+01:00")
    await pipeline.ingest([IngestBatch("sim", (m,))], NOW)
    core = sqlite.DATETIME().bind_processor(sqlite.dialect())
    async with engine.connect() as c:
        stored = (await c.exec_driver_sql("SELECT created_at, ingested_at FROM mention")).one()
        started = (await c.exec_driver_sql("SELECT started_at FROM slaclock")).scalar()
    expected = core(m.created_at.astimezone(UTC).replace(tzinfo=None))
    assert tuple(stored) == (expected, core(NOW.replace(tzinfo=None)))
    assert started == expected


def _repeat_customer_batches(mention):
    texts = ["my 4G is down since this morning", "still down!!! third time I write, urgent", "thanks, it works",
             "how do I change my plan?", "plus de réseau à Lyon depuis 2h, c'est inadmissible"]
    out = []
    for day in range(3):  # the same customers come back every day: repeat-contact points apply
        ms = [mention(texts[(k + day) % len(texts)], author=f"u{k % 7}", followers=k * 4000, verified=k % 5 == 0,
                      when=f"2026-11-{16 + day * 2}T1{k % 10}:00:00+01:00") for k in range(40)]
        out.append(IngestBatch("sim", tuple(ms)))
    return out


async def _stored_triage(engine):
    async with engine.connect() as c:
        mentions = (await c.exec_driver_sql(
            "SELECT external_id, language, polarity, category, cluster_key, priority FROM mention ORDER BY external_id")).all()
        convs = (await c.exec_driver_sql("SELECT customer_id, priority, category FROM conversation ORDER BY id")).all()
    return mentions, convs


async def test_triage_in_the_pool_before_the_transaction_stores_what_in_process_triage_stores(settings, mention, tmp_path):
    from carebox.runtime import make_pipeline
    from carebox.store.engine import make_engine
    from carebox.store.migrate import upgrade
    from carebox.triage_pool import PoolSettings, TriagePool

    batches = _repeat_customer_batches(mention)
    stored = []
    for name, workers in (("inprocess", 0), ("pooled", 1)):
        url = f"sqlite+aiosqlite:///{tmp_path / name}.db"
        await upgrade(url)
        engine = make_engine(url)
        pipe = make_pipeline(settings, engine)[0]
        if workers:
            pipe.triage_pool = TriagePool(settings.triage, PoolSettings(workers, 16, 1, "fork"), local=pipe.triager)
        for batch in batches:
            await pipe.ingest([batch], NOW)
        stored.append(await _stored_triage(engine))
        if workers:
            assert pipe.triage_pool.pooled == 120 and pipe.triage_pool.in_process == 0
            await pipe.triage_pool.aclose()
        await engine.dispose()
    assert stored[0] == stored[1]
    assert len({row.priority for row in stored[0][0]}) >= 2 and len(stored[0][1]) < 120


async def test_consume_with_a_pool_loses_no_batch_when_a_worker_is_killed(settings, engine, mention):
    import asyncio
    import os
    import signal

    from carebox.pipeline import consume
    from carebox.queue import EmbeddedQueue
    from carebox.runtime import make_pipeline
    from carebox.triage_pool import PoolSettings, TriagePool

    pipe = make_pipeline(settings, engine)[0]
    pipe.triage_pool = TriagePool(settings.triage, PoolSettings(1, 8, 1, "fork"), local=pipe.triager)
    (pid,) = await pipe.triage_pool.start()
    queue = EmbeddedQueue(8)
    task = asyncio.create_task(consume(queue, pipe, batch_size=40, wait_s=0.01, now=lambda: NOW))
    batches = _repeat_customer_batches(mention)
    try:
        await queue.put_durable(batches[0])
        os.kill(pid, signal.SIGKILL)
        await asyncio.wait_for(asyncio.gather(*(queue.put_durable(b) for b in batches[1:])), 60)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await pipe.triage_pool.aclose()
    assert (await queries.stats(engine))["mentions"] == 120
    assert pipe.triage_pool.in_process >= 1  # the batch of the dead worker was triaged here


async def test_stopping_consume_fails_the_batch_being_written_and_the_one_taken_ahead(settings, engine, mention):
    import asyncio

    from carebox.pipeline import consume
    from carebox.queue import EmbeddedQueue
    from carebox.runtime import make_pipeline
    from carebox.triage_pool import PoolSettings, TriagePool

    pipe = make_pipeline(settings, engine)[0]
    pipe.triage_pool = TriagePool(settings.triage, PoolSettings(1, 8, 10_000, "fork"), local=pipe.triager)
    queue = EmbeddedQueue(8)
    started, release = asyncio.Event(), asyncio.Event()
    real_ingest = pipe.ingest

    async def slow_ingest(*args, **kw):
        started.set()
        await release.wait()
        return await real_ingest(*args, **kw)

    pipe.ingest = slow_ingest
    task = asyncio.create_task(consume(queue, pipe, batch_size=40, wait_s=0.0, now=lambda: NOW))
    first, second = _repeat_customer_batches(mention)[:2]
    writing = asyncio.create_task(queue.put_durable(first))
    await started.wait()
    ahead = asyncio.create_task(queue.put_durable(second))  # taken and triaged while the first is written
    while len(queue):
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    for producer in (writing, ahead):
        with pytest.raises(ConnectionAbortedError):
            await asyncio.wait_for(producer, 5)
    await pipe.triage_pool.aclose()


async def test_a_failed_write_in_the_one_hand_off_raises_sqlalchemys_error_and_the_batch_stores_nothing(engine, db_url):
    from carebox.store import ingest as sql
    from carebox.store.engine import write_transaction

    orphan = {"network": "x", "external_user_id": "u9", "handle": "u9", "display_name": "", "followers": None,
              "verified": False, "customer_id": 999}  # no such customer: the foreign key fails
    with pytest.raises(sa.exc.IntegrityError):
        async with write_transaction(engine) as conn:
            writes = await sql.Writes.open(conn, (sql.customer_t,))
            await writes.insert_returning_ids(sql.customer_t, [{"display_name": "ok", "created_at": NOW}])
            await writes.insert_rows(sql.identity_t, [orphan])
            await writes.flush()
    async with engine.connect() as c:
        assert (await c.exec_driver_sql("SELECT count(*) FROM customer")).scalar() == 0


async def test_the_driver_look_ups_return_what_sqlalchemy_returns_value_for_value(pipeline, engine, mention, db_url):
    if not db_url.startswith("sqlite"):
        pytest.skip("the driver-level look-ups are SQLite's; PostgreSQL keeps Core")
    from carebox.store import ingest as sql
    from carebox.store import ingest_driver

    question = mention(when="2026-11-20T18:50:00.000250+01:00")
    answer = mention("Hi!", when="2026-11-23T09:20:00+01:00", author="acme", direction=Direction.OUTBOUND,
                     in_reply_to=question.external_id)
    await pipeline.ingest([IngestBatch("sim", (question, mention(author="u2")))], NOW)
    await pipeline.ingest([IngestBatch("sim", (answer, mention("again", author="u2")))], NOW)
    looks = [(sql._OPEN_CONVERSATIONS_IN, {"ids": [1, 2, 3]}), (sql._CONVERSATIONS_IN, {"ids": [2, 1]}),
             (sql._RUNNING_CLOCKS_IN, {"ids": [1, 2]}), (sql._RECENT_COUNTS_IN, {"ids": [1, 2], "since": NOW - timedelta(days=7)}),
             (sql._MENTIONS_IN, {"network": "x", "ids": [question.external_id, "nope"]})]
    async with engine.connect() as c:
        for stmt, params in looks:
            core = [tuple(row) for row in await c.execute(stmt, params)]
            driver = await ingest_driver.fetch(c, stmt, params)
            assert core, stmt
            assert [[(type(v), v) for v in row] for row in driver] == [[(type(v), v) for v in row] for row in core]


def test_a_conversation_update_sets_only_the_columns_this_transaction_changed():
    from carebox.pipeline_thread import Work

    work = Work(now=NOW)
    stored = {"id": 7, "status": "open", "assignee_id": 3, "tags": '["vip"]', "message_count": 2, "snippet": "a"}
    conv = work.remember(dict(stored))
    conv.row.update(message_count=3, snippet="b", status="open")
    assert conv.changes() == {"id": 7, "message_count": 3, "snippet": "b"}
