"""Scale-out live updates (PostgreSQL + Redis, one worker and two `carebox web` processes): what an agent does on
one web process reaches the pages of the other, and a mention stored by the worker is announced once per page."""

from __future__ import annotations

import asyncio
import secrets
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from aiohttp.test_utils import TestServer

from carebox import config
from carebox.ports import InboundMention, IngestBatch
from tests.conftest import REDIS_URL, need_redis, pg_url, truncate_pg
from tests.security import add_users, csrf_of, login
from web.keys import broadcaster_key, engine_key, presence_key

pytestmark = pytest.mark.services


@pytest.fixture
async def cluster(pg_database, tmp_path, aiohttp_client):
    """A worker, and a client logged in on each of two web processes (agent on one, manager on the other)."""
    need_redis()
    from carebox.runtime import build_app

    truncate_pg(pg_database)
    token = secrets.token_hex(4)
    doc = {"carebox": {"data_dir": str(tmp_path)}, "database": {"url": pg_url(pg_database)},
           "queue": {"url": REDIS_URL}, "inbox": {"counts_cache": "0s"},
           "scaleout": {"lease_s": "1s", "stream": f"carebox:test:{token}", "fanout_channel": f"carebox:test-live:{token}"}}
    settings = config.parse(doc, environ={})
    worker = TestServer(await build_app(settings, role="worker"))
    await worker.start_server()
    one = await aiohttp_client(await build_app(settings, role="web"))
    two = await aiohttp_client(await build_app(settings, role="web"))
    await add_users(one.server.app)
    assert (await login(one, "agent")).status == 303 and (await login(two, "manager")).status == 303
    yield one, two, settings
    await worker.close()
    from redis.asyncio import Redis

    async with Redis.from_url(REDIS_URL) as client:
        await client.delete(f"carebox:test:{token}")


async def _ingest(settings: config.Settings, engine: Any) -> int:
    """Put one complaint on the stream; the id of its conversation once the worker has stored it."""
    from carebox.queue.redis import RedisQueue, StreamOptions
    from carebox.store import queries

    external_id = f"live-{secrets.token_hex(4)}"
    producer = RedisQueue.from_url(REDIS_URL, StreamOptions(stream=settings.raw["scaleout"]["stream"]))
    try:
        await producer.put(IngestBatch("test", (InboundMention(
            network="x", account="acme", external_id=external_id, author_id=f"a-{external_id}",
            author_handle="someone", text="my 4G is down since this morning", created_at=datetime.now(UTC)),)))
    finally:
        await producer.redis.aclose()
    query = sa.select(queries.mention.c.conversation_id).where(queries.mention.c.external_id == external_id)
    for _ in range(200):
        async with engine.connect() as c:
            cid = (await c.execute(query)).scalar()
        if cid is not None:
            return int(cid)
        await asyncio.sleep(0.05)
    raise AssertionError(f"the worker did not store {external_id} within 10s")


async def _events(queue: asyncio.Queue[Any], kind: str, within_s: float, until: int | None = None) -> list[Any]:
    """The events of `kind` received within `within_s` (or as soon as `until` of them have come)."""
    got: list[Any] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    while (left := deadline - loop.time()) > 0 and (until is None or len(got) < until):
        try:
            event = await asyncio.wait_for(queue.get(), left)
        except TimeoutError:
            break
        if event.kind == kind:
            got.append(event)
    return got


async def test_assignment_status_note_tags_and_presence_on_one_web_process_reach_the_pages_of_the_other(cluster):
    one, two, settings = cluster
    cid = await _ingest(settings, one.server.app[engine_key])
    async with two.server.app[broadcaster_key].subscribe() as pages_of_two:
        token = await csrf_of(one)
        for path, form, kind in ((f"/conversations/{cid}/assign", {"assignee": "me"}, "assign"),
                                 (f"/conversations/{cid}/status", {"status": "pending"}, "status"),
                                 (f"/conversations/{cid}/notes", {"text": "calling them back"}, "note"),
                                 (f"/conversations/{cid}/tags", {"tags": "4g,outage"}, "tags"),
                                 (f"/conversations/{cid}/presence", {"state": "typing"}, "presence")):
            resp = await one.post(path, data={**form, "csrf": token}, allow_redirects=False)
            assert resp.status in (200, 303), (path, resp.status, await resp.text())
            heard = await _events(pages_of_two, kind, 5, until=1)
            assert [e.conversation_id for e in heard] == [cid], kind
    assert [p["username"] for p in two.server.app[presence_key].who(cid)] == ["agent"]  # typing, known on two


async def test_a_mention_stored_by_the_worker_is_announced_once_on_each_web_process(cluster):
    one, two, settings = cluster
    async with one.server.app[broadcaster_key].subscribe() as pages_of_one, \
            two.server.app[broadcaster_key].subscribe() as pages_of_two:
        cid = await _ingest(settings, one.server.app[engine_key])
        for pages in (pages_of_one, pages_of_two):
            mentions = await _events(pages, "mention", 2)  # long enough for an echo through Redis to arrive
            assert [e.conversation_id for e in mentions] == [cid]
