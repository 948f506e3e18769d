"""Concurrent workers ingesting into one PostgreSQL store: no customer created twice, no mention stored
twice, no conversation updated from a stale copy, even when the same batches are delivered to both."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from carebox.ports import InboundMention, IngestBatch
from tests.conftest import pg_url, truncate_pg

pytestmark = pytest.mark.services
T0 = datetime(2026, 11, 17, 9, 0, tzinfo=UTC)


def _batches(n_batches: int, per_batch: int, customers: int, seed: int) -> list[IngestBatch]:
    rng = random.Random(seed)
    out = []
    for b in range(n_batches):
        mentions = []
        for i in range(per_batch):
            k = b * per_batch + i
            who = rng.randrange(customers)
            mentions.append(InboundMention(
                network="x", account="acme", external_id=f"m{k}", author_id=f"u{who}", author_handle=f"user{who}",
                text=rng.choice(["my 4G is down", "no signal since noon", "thanks for the help", "bill is wrong"]),
                created_at=T0 + timedelta(seconds=k)))
        out.append(IngestBatch("x:acme", tuple(mentions), cursor=str(b)))
    return out


async def _two_pipelines(pg_database, tmp_path):
    """Two pipelines, each with its own engine (connection pool), as two worker processes would have."""
    from carebox import config
    from carebox.runtime import make_pipeline
    from carebox.store.engine import make_engine

    truncate_pg(pg_database)
    settings = config.parse({"carebox": {"data_dir": str(tmp_path)}, "database": {"url": pg_url(pg_database)}}, environ={})

    engines = [make_engine(pg_url(pg_database)) for _ in range(2)]
    return engines, [make_pipeline(settings, e)[0] for e in engines]


async def test_two_workers_racing_on_the_same_customers_and_batches_store_everything_once(pg_database, tmp_path):
    engines, (one, two) = await _two_pipelines(pg_database, tmp_path)
    batches = _batches(n_batches=30, per_batch=20, customers=25, seed=4)
    # each worker gets every batch (a redelivery storm), in its own order
    order_two = batches[::-1]
    now = datetime.now(UTC)

    async def run(pipeline, todo):
        for batch in todo:
            await pipeline.ingest([batch], now)

    try:
        await asyncio.gather(run(one, batches), run(two, order_two))
        async with engines[0].connect() as conn:
            counts = (await conn.execute(sa.text("""
                SELECT (SELECT count(*) FROM mention),
                       (SELECT count(*) FROM customer),
                       (SELECT count(*) FROM identity),
                       (SELECT count(*) FROM conversation c WHERE c.message_count <>
                            (SELECT count(*) FROM mention m WHERE m.conversation_id = c.id)),
                       (SELECT count(*) FROM (SELECT customer_id FROM conversation WHERE status <> 'resolved'
                                              GROUP BY customer_id, network, account HAVING count(*) > 1) d),
                       (SELECT count(*) FROM slaclock WHERE target = 'first_response'),
                       (SELECT count(*) FROM conversation)"""))).one()
    finally:
        for engine in engines:
            await engine.dispose()
    mentions, customers, identities, bad_counts, split_threads, first_clocks, conversations = counts
    assert mentions == 600
    assert customers == identities == 25
    assert bad_counts == 0
    assert split_threads == 0
    assert first_clocks == conversations
