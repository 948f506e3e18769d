"""The Redis Streams queue against a real Redis: delivery, acknowledgement and trim, reclaim, dead letters."""

from __future__ import annotations

import asyncio
import secrets
from datetime import UTC, datetime

import pytest

from carebox.ports import Direction, InboundMention, IngestBatch, Rejected
from carebox.queue import codec
from tests.conftest import REDIS_URL, need_redis

pytestmark = pytest.mark.services


def _mention(i: int, **kw) -> InboundMention:
    fields = dict(network="x", account="acme", external_id=f"m{i}", author_id=f"u{i % 7}", author_handle=f"u{i % 7}",
                  text=f"my 4G is down again ({i})", created_at=datetime(2026, 11, 17, 9, 0, i % 60, tzinfo=UTC))
    fields.update(kw)
    return InboundMention(**fields)


def test_a_batch_survives_the_wire_unchanged():
    batch = IngestBatch("x:acme", (
        _mention(1, raw={"id": "1", "nested": {"a": [1, 2]}}, followers=120, verified=True, lang_hint="fr"),
        _mention(2, direction=Direction.OUTBOUND, in_reply_to="m1", thread_key="t", public=False, url="https://x/2"),
    ), (Rejected("x:acme", "{not json", "unparseable"),), cursor="c-42")
    assert codec.decode(codec.encode(batch)) == batch


def test_something_that_is_not_a_batch_is_a_bad_payload():
    from carebox.errors import BadPayload

    with pytest.raises(BadPayload):
        codec.decode(b'{"v": 99}')


@pytest.fixture
async def queues():
    """A factory of RedisQueue consumers on one fresh stream; everything is deleted afterwards."""
    need_redis()
    from carebox.queue.redis import RedisQueue, StreamOptions

    stream = f"carebox:test:{secrets.token_hex(4)}"
    made: list[RedisQueue] = []

    def make(**kw) -> RedisQueue:
        options = StreamOptions(stream=stream, group="pipeline", **{"block_s": 0.1, **kw})
        q = RedisQueue.from_url(REDIS_URL, options, consumer=f"c{len(made)}")
        made.append(q)
        return q

    yield make
    if made:
        await made[0].redis.delete(stream)
    for q in made:
        await q.redis.aclose()


async def test_batches_are_delivered_to_one_consumer_and_trimmed_once_acknowledged(queues):
    a, b = queues(), queues()
    for i in range(4):
        await a.put(IngestBatch("s", (_mention(i),), cursor=str(i)))
    first = await a.take(max_mentions=2, wait_s=0.05)
    second = await b.take(max_mentions=10, wait_s=0.05)
    got = [e.batch.cursor for e in first + second]
    assert sorted(got) == ["0", "1", "2", "3"]
    a.ack(first)
    b.ack(second)
    await a.flush()
    await b.flush()
    assert await a.stats() == {"length": 0, "pending": 0}


async def test_put_durable_returns_once_the_stream_holds_the_batch(queues):
    q = queues()
    await q.ensure_group()
    await q.put_durable(IngestBatch("hook", (_mention(1),)))
    assert (await q.stats())["length"] == 1


async def test_a_dead_consumers_entries_are_reclaimed_after_the_visibility_timeout(queues):
    dead, alive = queues(visibility_s=0.2), queues(visibility_s=0.2)
    await dead.put(IngestBatch("s", (_mention(1),), cursor="1"))
    taken = await dead.take(10, 0.01)  # ...and the process dies without acknowledging
    assert len(taken) == 1
    await asyncio.sleep(0.25)
    reclaimed = await alive.take(10, 0.01)
    assert [e.batch.cursor for e in reclaimed] == ["1"]
    assert reclaimed[0].deliveries == 2
    alive.ack(reclaimed)
    await alive.flush()
    assert await alive.stats() == {"length": 0, "pending": 0}


async def test_an_entry_delivered_too_often_becomes_a_dead_letter_with_its_reason(queues):
    q = queues(visibility_s=0.05, max_deliveries=2)
    await q.put(IngestBatch("s", (_mention(1),), (Rejected("s", "junk", "bad json"),), cursor="9"))
    await q.take(10, 0.01)
    for _ in range(2):
        await asyncio.sleep(0.06)
        last = await q.reclaim()
    assert len(last) == 1
    dead = last[0].batch
    assert dead.mentions == () and dead.cursor is None
    assert dead.rejected[0] == Rejected("s", "junk", "bad json")
    assert "delivered 2 times without being stored" in dead.rejected[1].reason
    assert codec.decode(dead.rejected[1].payload).mentions == (_mention(1),)


async def test_an_entry_that_is_not_a_batch_is_handed_over_as_a_dead_letter(queues):
    q = queues()
    await q.ensure_group()
    await q.redis.xadd(q.options.stream, {b"b": b"garbage"})
    (envelope,) = await q.take(10, 0.01)
    assert envelope.batch.mentions == ()
    assert envelope.batch.rejected[0].payload == "garbage"
    assert "not a queued batch" in envelope.batch.rejected[0].reason


async def test_producers_wait_while_the_stream_is_full(queues):
    q = queues(max_len=2)
    await q.ensure_group()
    for i in range(2):
        await q.put(IngestBatch("s", (_mention(i),)))
    blocked = asyncio.create_task(q.put(IngestBatch("s", (_mention(9),))))
    await asyncio.sleep(0.15)
    assert not blocked.done()
    q.ack(await q.take(10, 0.01))
    await q.flush()
    await asyncio.wait_for(blocked, 5)
    assert (await q.stats())["length"] == 1


async def test_pipeline_over_redis_stores_every_mention_once_even_when_redelivered(queues, pipeline, engine):
    from carebox.pipeline import consume
    from carebox.store import queries

    q = queues(visibility_s=0.2)
    batches = [IngestBatch("s", tuple(_mention(i) for i in range(k * 10, k * 10 + 10)), cursor=str(k)) for k in range(5)]
    for batch in batches:
        await q.put(batch)
    await q.put(batches[2])  # a producer retried after a timeout: the same batch twice
    task = asyncio.create_task(consume(q, pipeline, batch_size=20, wait_s=0.01, now=lambda: datetime.now(UTC)))
    try:
        for _ in range(100):
            if (await q.stats())["length"] == 0:
                break
            await asyncio.sleep(0.05)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    stats = await queries.stats(engine)
    assert stats["mentions"] == 50
    assert stats["customers"] == 7
    assert (await q.stats())["length"] == 0


async def test_the_consumer_waits_while_redis_is_unreachable_instead_of_dying():
    import socket

    from carebox.queue.redis import RedisQueue

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    q = RedisQueue.from_url(f"redis://127.0.0.1:{port}/0")
    task = asyncio.create_task(q.take(10, 0.01))
    await asyncio.sleep(0.3)
    assert not task.done()  # still trying, not crashed
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await q.redis.aclose()
