"""The ingest pipeline on SQLite: dedup, threading, customers, both SLA clocks, cursors, dead letters."""

from __future__ import annotations

from datetime import timedelta

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
    fulfil = [e for e in detail["sla_events"] if e["kind"] == "fulfil"][0]
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
