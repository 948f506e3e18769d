"""Personal data: one customer's export holds everything about them and nothing of others; erasure and the
retention purge remove texts, handles, identities and raw payloads but keep counts and SLA figures; all audited."""

from __future__ import annotations

import orjson
import pytest
import sqlalchemy as sa

from carebox import privacy
from carebox.errors import NotFound
from carebox.ports import Direction, IngestBatch
from carebox.store import actions, queries
from carebox.store import privacy as store
from tests.conftest import at

NOW = at("2026-11-22T12:00:00+00:00")
SECRET = "alice-secret-0612345678"


async def _seed(pipeline, mention):
    alice = [
        mention(f"my fibre is down {SECRET}", author="alice", when="2026-11-20T09:00:00+00:00",
                author_name="Alice Martin", raw={"text": SECRET, "user": "alice"}),
        mention("still down, help", author="alice", when="2026-11-20T09:05:00+00:00", raw={"user": "alice"}),
    ]
    reply = mention(f"sorry Alice, we are on it ({SECRET[:5]})", author="acme", direction=Direction.OUTBOUND,
                    when="2026-11-20T09:30:00+00:00", in_reply_to=alice[0].external_id)
    bob = [mention("bill is wrong", author="bob", when="2026-09-01T09:00:00+00:00", raw={"user": "bob"})]
    await pipeline.ingest([IngestBatch("x", (*alice, reply, *bob))], NOW)
    return alice, bob


async def _customer_of(engine, author: str) -> int:
    async with engine.connect() as c:
        return (await c.execute(sa.select(queries.identity.c.customer_id)
                                .where(queries.identity.c.external_user_id == author))).scalar_one()


async def _dump(engine) -> str:
    """Every value of every table, as one string: personal data left anywhere shows up in it."""
    out = []
    async with engine.connect() as c:
        for table in ("customer", "identity", "conversation", "mention", "note", "slaclock", "slaevent", "auditevent"):
            out.extend(repr(tuple(r)) for r in await c.execute(sa.text(f"SELECT * FROM {table}")))
    return "\n".join(out)


async def _counts(engine) -> dict[str, object]:
    async with engine.connect() as c:
        return {
            **await queries.stats(engine),
            "message_counts": sorted((await c.execute(sa.select(queries.conv.c.message_count))).scalars()),
            "clocks": sorted(tuple(r) for r in await c.execute(sa.select(
                queries.clock.c.conversation_id, queries.clock.c.target, queries.clock.c.state,
                queries.clock.c.business_s, queries.clock.c.wall_s))),
            "categories": sorted((await c.execute(sa.select(queries.mention.c.category))).scalars(), key=str),
        }


async def _audit(engine, action: str) -> list[dict]:
    async with engine.connect() as c:
        rows = await c.execute(sa.select(queries.audit.c.detail).where(queries.audit.c.action == action))
        return [orjson.loads(d) for d in rows.scalars()]


async def test_export_holds_every_message_of_the_customer_and_none_of_another(pipeline, engine, mention):
    alice, _ = await _seed(pipeline, mention)
    doc = await store.export_customer(engine, await _customer_of(engine, "alice"), NOW)
    texts = [m["text"] for m in doc["mentions"]]
    assert texts[:2] == [a.text for a in alice]
    assert any(m["direction"] == "out" for m in doc["mentions"]), "the brand's replies to her are hers too"
    assert "bill is wrong" not in orjson.dumps(doc).decode()
    assert [i["handle"] for i in doc["identities"]] == ["alice"]
    assert doc["mentions"][0]["raw"]["text"] == SECRET
    assert doc["sla_clocks"] and doc["conversations"]
    orjson.dumps(doc)  # JSON-ready as returned


async def test_export_is_audited_without_the_personal_data(pipeline, engine, mention):
    await _seed(pipeline, mention)
    cid = await _customer_of(engine, "alice")
    await store.export_customer(engine, cid, NOW, by_user_id=None)
    [detail] = await _audit(engine, "privacy.export")
    assert detail["customer_id"] == cid and detail["mentions"] == 3
    assert SECRET not in orjson.dumps(detail).decode()


async def test_erase_leaves_no_trace_of_the_customer_but_keeps_counts_and_sla_figures(pipeline, engine, mention):
    await _seed(pipeline, mention)
    cid = await _customer_of(engine, "alice")
    agent = await actions.add_user(engine, "agent1", "x", "agent", NOW)
    [conversation_id] = [c["id"] for c in (await store.export_customer(engine, cid, NOW))["conversations"]]
    await actions.add_note(engine, conversation_id, agent, f"called Alice Martin back on {SECRET}", NOW)
    before = await _counts(engine)
    result = await store.erase_customer(engine, cid, NOW)
    dump = await _dump(engine)
    for trace in (SECRET, SECRET[:5], "Alice Martin", "'alice'", "still down"):
        assert trace not in dump, f"{trace!r} survived the erasure"
    assert "bill is wrong" in dump and "'bob'" in dump
    assert await _counts(engine) == before
    assert (result.mentions, result.identities) == (3, 1)
    [detail] = await _audit(engine, "privacy.erase")
    assert detail == {"customer_id": cid, "mentions": 3, "conversations": 1, "identities": 1, "notes": 1}


async def test_erase_is_idempotent_and_a_new_message_from_the_person_starts_a_new_customer(pipeline, engine, mention):
    await _seed(pipeline, mention)
    cid = await _customer_of(engine, "alice")
    await store.erase_customer(engine, cid, NOW)
    await store.erase_customer(engine, cid, NOW)
    await pipeline.ingest([IngestBatch("x", (mention("hello again", author="alice", when="2026-11-22T10:00:00+00:00"),))], NOW)
    assert await _customer_of(engine, "alice") != cid


async def test_export_and_erase_of_an_unknown_customer_raise_not_found(engine):
    with pytest.raises(NotFound):
        await store.export_customer(engine, 999, NOW)
    with pytest.raises(NotFound):
        await store.erase_customer(engine, 999, NOW)


async def test_purge_anonymises_old_mentions_and_drops_raw_payloads_sooner(pipeline, engine, mention):
    await _seed(pipeline, mention)  # alice on 2026-11-20 (2 days old), bob on 2026-09-01 (82 days old)
    before = await _counts(engine)
    result = await store.purge(engine, privacy.PrivacySettings(mention_days=30, raw_days=1), NOW)
    assert (result.mentions, result.raw_payloads, result.identities) == (1, 3, 1)
    dump = await _dump(engine)
    assert "bill is wrong" not in dump and "'bob'" not in dump
    assert "still down" in dump and "Alice Martin" in dump
    async with engine.connect() as c:
        raws = (await c.execute(sa.select(sa.func.count()).select_from(queries.mention)
                                .where(queries.mention.c.raw.is_not(None)))).scalar_one()
    assert raws == 0
    assert await _counts(engine) == before
    [detail] = await _audit(engine, "privacy.purge")
    assert detail["mention_days"] == 30 and detail["mentions"] == 1 and detail["raw_payloads"] == 3


async def test_purge_with_no_retention_changes_nothing_but_is_still_audited(pipeline, engine, mention):
    await _seed(pipeline, mention)
    dump = await _dump(engine)
    result = await store.purge(engine, privacy.PrivacySettings(), NOW)
    assert result == store.PurgeResult(0, 0, 0, 0)
    after = (await _dump(engine)).split("\n")
    assert set(dump.split("\n")) <= set(after) and len(after) == len(dump.split("\n")) + 1  # + the audit row
    assert len(await _audit(engine, "privacy.purge")) == 1
