"""Two worker apps and a web app in one test process, on PostgreSQL + Redis: one leads the scheduler,
both consume the stream, the leader arms the SLA jobs of clocks the other started, and the web app's
live observers hear every worker's commits."""

from __future__ import annotations

import asyncio
import secrets
from datetime import UTC, datetime, timedelta

import pytest
from aiohttp.test_utils import TestServer

from carebox import config
from carebox.ports import InboundMention, IngestBatch
from tests.conftest import REDIS_URL, need_redis, pg_url, truncate_pg

pytestmark = pytest.mark.services


async def _until(predicate, timeout_s: float, what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"{what}: not within {timeout_s}s")
        await asyncio.sleep(0.05)


@pytest.fixture
async def cluster(pg_database, tmp_path):
    need_redis()
    from carebox.runtime import build_app

    truncate_pg(pg_database)
    token = secrets.token_hex(4)
    doc = {"carebox": {"data_dir": str(tmp_path)}, "database": {"url": pg_url(pg_database)},
           "queue": {"url": REDIS_URL}, "pipeline": {"batch_size": 10},
           "scaleout": {"lease_s": "1s", "stream": f"carebox:test:{token}", "fanout_channel": f"carebox:test-live:{token}"}}
    settings = config.parse(doc, environ={})
    servers = []
    for role in ("worker", "worker", "web"):
        server = TestServer(await build_app(settings, role=role))
        await server.start_server()
        servers.append(server)
    yield settings, [s.app for s in servers]
    for server in reversed(servers):
        await server.close()
    from redis.asyncio import Redis

    async with Redis.from_url(REDIS_URL) as client:
        await client.delete(f"carebox:test:{token}")


async def test_workers_share_the_stream_and_the_leader_arms_every_workers_clocks(cluster):
    from carebox.queue.redis import RedisQueue, StreamOptions
    from carebox.runtime import leases_key, work_key
    from web.keys import pipeline_key

    settings, (one, two, web) = cluster
    heard: list[int] = []
    web[pipeline_key].observers.append(lambda rows: heard.extend(r["conversation_id"] for r in rows))
    await _until(lambda: "scheduler" in one[leases_key].running | two[leases_key].running, 5, "a leader")
    leader, other = (one, two) if "scheduler" in one[leases_key].running else (two, one)
    assert "scheduler" not in other[leases_key].running
    by_other: list[int] = []
    other[pipeline_key].observers.append(lambda rows: by_other.extend(r["conversation_id"] for r in rows))

    producer = RedisQueue.from_url(REDIS_URL, StreamOptions(stream=settings.raw["scaleout"]["stream"]))
    now = datetime.now(UTC).replace(microsecond=0)
    try:
        for b in range(20):
            mentions = tuple(InboundMention(
                network="x", account="acme", external_id=f"w{b}-{i}", author_id=f"u{b}-{i}", author_handle=f"u{b}{i}",
                text="my 4G is down since this morning", created_at=now + timedelta(seconds=b)) for i in range(5))
            await producer.put(IngestBatch("test", mentions))
    finally:
        await producer.redis.aclose()

    stored: dict[str, int] = {}

    async def count() -> None:
        from carebox.store import queries
        from web.keys import engine_key

        stored.update(await queries.stats(leader[engine_key]))

    for _ in range(200):
        await count()
        if stored["mentions"] == 100:
            break
        await asyncio.sleep(0.05)
    assert stored["mentions"] == 100
    assert stored["customers"] == 100
    assert by_other, "the second worker consumed part of the stream"
    scheduler = leader[work_key].scheduler
    from carebox.store import clocks as store_clocks
    from web.keys import engine_key

    running = {c["id"] for c in await store_clocks.running(leader[engine_key])}
    assert len(running) == 100

    def armed() -> set[int]:
        return {int(job.id.split(":")[1]) for job in scheduler.aps.get_jobs() if job.id.count(":") == 2}

    await _until(lambda: armed() == running, 5, "the leader armed every clock, its own and the other worker's")
    await _until(lambda: len(set(heard)) == 100, 5, "the web process heard every commit")
