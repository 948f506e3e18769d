"""Live events across processes through Redis pub/sub, and the in-process fan-out of the embedded mode."""

from __future__ import annotations

import asyncio
import secrets
from datetime import UTC, datetime

import pytest

from carebox import fanout
from tests.conftest import REDIS_URL, need_redis

pytestmark = pytest.mark.services


async def _next(events, timeout_s: float = 5.0):
    return await asyncio.wait_for(anext(events), timeout_s)


async def test_an_event_published_by_one_process_reaches_the_subscribers_of_another():
    need_redis()
    channel = f"carebox:test-live:{secrets.token_hex(4)}"
    web_a, worker = fanout.RedisFanout(REDIS_URL, channel), fanout.RedisFanout(REDIS_URL, channel)
    await web_a.start()
    try:
        async with web_a.subscribe() as events:
            await worker.publish({"kind": "assign", "conversation_id": 7, "assignee_id": 3})
            got = await _next(events)
        assert got["kind"] == "assign" and got["conversation_id"] == 7 and got["assignee_id"] == 3
    finally:
        await web_a.close()
        await worker.close()


async def test_embedded_fanout_delivers_to_every_local_subscriber():
    fan = fanout.InProcessFanout()
    async with fan.subscribe() as one, fan.subscribe() as two:
        fan.publish_nowait({"kind": "status", "conversation_id": 1})
        assert (await _next(one))["kind"] == (await _next(two))["kind"] == "status"


def test_committed_rows_cross_the_wire_with_their_times_and_only_complaints_keep_their_text():
    at = datetime(2026, 11, 20, 17, 50, tzinfo=UTC)
    rows = [{"conversation_id": 4, "direction": "in", "category": "outage", "text": "4G down", "created_at": at,
             "account": "acme", "author_id": "u1"},
            {"conversation_id": 5, "direction": "in", "category": "praise", "text": "thanks!", "created_at": at}]
    back = fanout.rows_of(fanout.committed_event(rows))
    assert [r["conversation_id"] for r in back] == [4, 5]
    assert back[0]["created_at"] == at and back[0]["text"] == "4G down"
    assert back[1]["text"] == ""
