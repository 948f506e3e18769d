"""Repeat-contact priority does not depend on how mentions are grouped into transactions, nor on the triage pool."""

from __future__ import annotations

from carebox.ports import IngestBatch
from tests.conftest import at

NOW = at("2026-11-20T12:00:00+01:00")


def _one_customer_writing_again(mention):
    """u1 writes twice in one conversation, then opens a second one after the quiet gap; u2 writes once."""
    return [
        mention("my 4G is down since this morning", author="u1", when="2026-11-17T10:00:00+01:00"),
        mention("still no network, please help", author="u1", when="2026-11-17T11:00:00+01:00"),
        mention("how do I change my plan?", author="u2", when="2026-11-17T11:30:00+01:00"),
        mention("it is down again, worst service ever", author="u1", when="2026-11-19T09:00:00+01:00"),
        mention("and still nothing!!!", author="u1", when="2026-11-19T09:30:00+01:00"),
    ]


async def _ingest(tmp_path, name, groups, workers):
    """Ingest `groups` (one transaction each, one connector batch per mention) into a fresh SQLite file."""
    from carebox import config
    from carebox.runtime import make_pipeline
    from carebox.store.engine import make_engine
    from carebox.store.migrate import upgrade
    from carebox.triage_pool import PoolSettings, TriagePool

    url = f"sqlite+aiosqlite:///{tmp_path / name}.db"
    await upgrade(url)
    settings = config.parse({"carebox": {"data_dir": str(tmp_path)}, "database": {"url": url}}, environ={})
    engine = make_engine(url)
    pipe = make_pipeline(settings, engine)[0]
    if workers:
        pipe.triage_pool = TriagePool(settings.triage, PoolSettings(workers, 1, 1, "fork"), local=pipe.triager)
    try:
        for group in groups:
            await pipe.ingest([IngestBatch("sim", (m,)) for m in group], NOW)
        if workers:
            assert pipe.triage_pool.pooled == sum(map(len, groups))
        async with engine.connect() as c:
            return dict((await c.exec_driver_sql("SELECT external_id, priority FROM mention")).all())
    finally:
        if workers:
            await pipe.triage_pool.aclose()
        await engine.dispose()


async def test_a_mention_gets_the_priority_it_would_get_alone_whatever_the_batches_and_the_pool(mention, tmp_path):
    # u3's first conversation opened before the 7-day window: it is no repeat contact, alone or grouped
    old, again = (mention("my 4G is down", author="u3", when="2026-11-10T10:00:00+01:00"),
                  mention("it is down again, worst service ever", author="u3", when="2026-11-17T09:00:00+01:00"))
    mentions = [old, again, *_one_customer_writing_again(mention)]
    alone = await _ingest(tmp_path, "alone", [[m] for m in mentions], 0)
    grouped = await _ingest(tmp_path, "grouped", [mentions], 0)
    pooled = await _ingest(tmp_path, "pooled", [mentions[:2], mentions[2:]], 2)  # two chunks per transaction
    assert grouped == alone
    assert pooled == alone
    assert len({alone[m.external_id] for m in mentions if m.author_id == "u1"}) >= 2  # repeat points matter here
    assert alone[again.external_id] == "P2" and alone[mentions[5].external_id] == "P1"  # same text, 0 and 1 contact


async def test_repeat_contact_counts_conversations_opened_earlier_in_the_same_transaction(pipeline, engine, mention):
    mentions = _one_customer_writing_again(mention)
    await pipeline.ingest([IngestBatch("sim", tuple(mentions))], NOW)
    async with engine.connect() as c:
        rows = (await c.exec_driver_sql(
            "SELECT m.external_id, m.author_id FROM mention m ORDER BY m.created_at")).all()
    first = pipeline.triager.triage
    expected = {}
    for contacts, m in zip((0, 1, 0, 1, 2), mentions, strict=True):
        triage = first(m.text, followers=m.followers, verified=m.verified, public=m.public, recent_contacts=contacts)
        expected[m.external_id] = triage.priority.value
    async with engine.connect() as c:
        stored = dict((await c.exec_driver_sql("SELECT external_id, priority FROM mention")).all())
    assert [r.external_id for r in rows] == [m.external_id for m in mentions]
    assert stored == expected
