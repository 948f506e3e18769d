"""Reports from facts and cells give the same figures as reports computed from the conversations themselves,
on random histories, after incremental refreshes, and after a settings change that rebuilds the facts."""

from __future__ import annotations

import math
import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from carebox import reports, reports_config
from carebox.ports import Direction, IngestBatch, Status
from carebox.store import actions, report_facts, reporting

pytestmark = pytest.mark.sqlite_only  # PostgreSQL reports read conversations directly

START = datetime(2025, 10, 20, 6, 0, tzinfo=UTC)  # spans the end of summer time (26 Oct) and 1 and 11 November
NOW = datetime(2025, 11, 20, 12, 0, tzinfo=UTC)
OUT = Direction.OUTBOUND


def same(a, b, path="report"):
    """Equal JSON documents, floats to 1e-9 relative (cell sums add in another order than a GROUP BY)."""
    if isinstance(a, float) or isinstance(b, float):
        assert a is not None and b is not None and math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9), (path, a, b)
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for k in a:
            same(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list):
        assert len(a) == len(b), (path, len(a), len(b))
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            same(x, y, f"{path}[{i}]")
    else:
        assert a == b, (path, a, b)


def script(rng: random.Random, mention, first: int, count: int, start: datetime, days: int) -> list:
    """`count` random conversations: customers on two networks and three accounts, some answered (once or
    twice, minutes to days later), some followed up by the customer."""
    out = []
    for i in range(first, first + count):
        at = start + timedelta(seconds=rng.randrange(days * 86400))
        account, network = rng.choice(["acme", "beta", "gamma"]), rng.choice(["x", "mastodon"])
        author = f"c{rng.randrange(12)}"
        ext = f"m{i}"
        out.append(mention(rng.choice(["my 4G is down", "wrong bill", "thanks!", "où est ma commande ?"]),
                           when=at.isoformat(), author=author, external_id=ext, account=account, network=network))
        if rng.random() < 0.8:
            reply = at + timedelta(seconds=rng.choice([120, 1800, 3600, 5400, 40000, 200000]) + rng.randrange(600))
            out.append(mention("on it", when=reply.isoformat(), direction=OUT, author_id=account, account=account,
                               network=network, external_id=f"r{i}", in_reply_to=ext))
            if rng.random() < 0.4:
                again = reply + timedelta(seconds=rng.randrange(60, 90000))
                out.append(mention("still broken", when=again.isoformat(), author=author, account=account,
                                   network=network, external_id=f"f{i}", in_reply_to=f"r{i}"))
                if rng.random() < 0.7:
                    out.append(mention("fixed now", when=(again + timedelta(seconds=rng.randrange(60, 50000))).isoformat(),
                                       direction=OUT, author_id=account, account=account, network=network,
                                       external_id=f"s{i}", in_reply_to=f"f{i}"))
    return sorted(out, key=lambda m: m.created_at)


@pytest.fixture
def report_settings(settings):
    return reports_config.parse_settings(settings.raw, settings.sla)


@pytest.fixture
def chain_pipeline(settings, engine):
    from carebox.runtime import make_pipeline

    return make_pipeline(replace(settings, pipeline=replace(settings.pipeline, quiet_gap_s=0.0)), engine)[0]


async def ingest(pipeline, mentions) -> None:
    for m in mentions:  # one at a time, in time order, as they would arrive
        await pipeline.ingest([IngestBatch("sim", (m,))], NOW)


async def _conversation_ids(engine) -> list[int]:
    async with engine.connect() as c:
        return [r[0] for r in await c.execute(sa.text("SELECT id FROM conversation ORDER BY id"))]


SCOPES = [
    {},
    {"exclude_incidents": True},
    {"since": datetime(2025, 10, 26, 1, 30, tzinfo=UTC), "until": datetime(2025, 11, 11, 13, 17, 5, tzinfo=UTC)},
    {"since": datetime(2025, 11, 3, tzinfo=UTC), "exclude_incidents": True},
    {"until": datetime(2025, 10, 31, 23, 0, tzinfo=UTC)},
    {"since": datetime(2025, 11, 4, 9, 0, tzinfo=UTC), "until": datetime(2025, 11, 4, 16, 0, tzinfo=UTC)},
]


async def assert_same_reports(engine, report_settings, now=NOW, **overrides):
    for extra in SCOPES:
        scope = replace(reporting.make_scope(report_settings, now), **{**extra, **overrides})
        for by in ("account", "network", "agent"):
            fast = await reporting.build_report(engine, scope, report_settings, by)
            slow = await reporting.build_report_direct(engine, scope, report_settings, by)
            same(reports.to_json(fast), reports.to_json(slow), f"{extra} by {by}")
        assert await reporting.heatmap(engine, scope, report_settings) == slow.heatmap


async def test_facts_reports_match_direct_reports_through_incremental_refreshes_and_a_rebuild(
        engine, chain_pipeline, mention, report_settings, settings):
    rng = random.Random(8)
    await ingest(chain_pipeline, script(rng, mention, 0, 70, START, 24))
    rules = reporting.fact_rules(reporting.make_scope(report_settings, NOW), report_settings)
    assert (await report_facts.refresh(engine, rules, NOW)).rebuilt
    await assert_same_reports(engine, report_settings)
    await assert_same_reports(engine, report_settings, now=START + timedelta(days=10))  # clocks still running then

    # new conversations and answers to old ones, resolutions, assignments, incident links (no event written)
    await ingest(chain_pipeline, script(rng, mention, 70, 25, START + timedelta(days=20), 8))
    ids = await _conversation_ids(engine)
    agent = await actions.add_user(engine, "alice", "x", "agent", NOW)
    for cid in rng.sample(ids, 12):
        await actions.set_status(engine, cid, Status.RESOLVED, None, NOW - timedelta(hours=rng.randrange(1, 200)))
    for cid in rng.sample(ids, 10):
        await actions.assign(engine, cid, agent, None, NOW)
    linked = rng.sample(ids, 8)
    async with engine.begin() as c:
        await c.execute(sa.text(f"UPDATE conversation SET incident_id = 7 WHERE id IN ({','.join(map(str, linked))})"))
    refreshed = await report_facts.refresh(engine, rules, NOW)
    assert not refreshed.rebuilt and 0 < refreshed.conversations < len(ids)
    await assert_same_reports(engine, report_settings)

    unlinked = linked[:3]
    async with engine.begin() as c:
        await c.execute(sa.text(f"UPDATE conversation SET incident_id = NULL WHERE id IN ({','.join(map(str, unlinked))})"))
    assert (await report_facts.refresh(engine, rules, NOW)).conversations == len(unlinked)
    assert (await report_facts.refresh(engine, rules, NOW)).conversations == 0  # nothing new: nothing read
    await assert_same_reports(engine, report_settings)

    # a deleted conversation (retention) leaves the facts and the cells
    async with engine.begin() as c:
        for table in ("slaevent", "slaclock", "mention", "auditevent", "note"):
            await c.execute(sa.text(f"DELETE FROM {table} WHERE conversation_id = :i"), {"i": ids[0]})
        await c.execute(sa.text("DELETE FROM conversation WHERE id = :i"), {"i": ids[0]})
    await assert_same_reports(engine, report_settings)

    # another customer expectation changes the fingerprint: the facts are rebuilt once
    tighter = replace(report_settings, customer_expectation_s=1800.0)
    rules2 = reporting.fact_rules(reporting.make_scope(tighter, NOW), tighter)
    assert rules2.fingerprint() != rules.fingerprint()
    assert (await report_facts.refresh(engine, rules2, NOW)).rebuilt
    assert not (await report_facts.refresh(engine, rules2, NOW)).rebuilt
    await assert_same_reports(engine, tighter)


async def test_a_report_refreshes_the_facts_before_reading(engine, chain_pipeline, mention, report_settings):
    scope = reporting.make_scope(report_settings, NOW)
    first = await reporting.build_report(engine, scope, report_settings)
    assert first.totals.conversations == 0
    await chain_pipeline.ingest([IngestBatch("sim", (mention("down", when="2025-11-18T10:00:00+01:00"),))], NOW)
    assert (await reporting.build_report(engine, scope, report_settings)).totals.conversations == 1


def test_the_fingerprint_ignores_set_order_and_follows_the_calendar(report_settings):
    rules = report_facts.FactRules(report_settings.calendar, frozenset({"a", "b", "c"}), 3600.0)
    assert rules.fingerprint() == report_facts.FactRules(report_settings.calendar, frozenset({"c", "b", "a"}), 3600.0).fingerprint()
    other = replace(report_settings.calendar, timezone="America/New_York")
    assert rules.fingerprint() != replace(rules, calendar=other).fingerprint()


def test_facts_refresh_interval_is_parsed_with_clear_errors(settings):
    from carebox.errors import ConfigError

    assert reports_config.parse_settings(settings.raw, settings.sla).facts_refresh_s == 300.0
    for raw, expected in (("30s", 30.0), ("off", 0.0)):
        doc = {**settings.raw, "reports": {"facts_refresh": raw}}
        assert reports_config.parse_settings(doc, settings.sla).facts_refresh_s == expected
    for bad in ("soon", "2s", 5):
        with pytest.raises(ConfigError) as err:
            reports_config.parse_settings({**settings.raw, "reports": {"facts_refresh": bad}}, settings.sla)
        assert err.value.key == "reports.facts_refresh"


async def test_the_leader_job_refreshes_the_facts_on_sqlite_only(engine, settings, chain_pipeline, mention):
    from carebox.commands.report import facts_job

    interval, job = facts_job(settings, engine, lambda: NOW)
    assert interval == 300.0
    await chain_pipeline.ingest([IngestBatch("sim", (mention("down", when="2025-11-18T10:00:00+01:00"),))], NOW)
    await job()
    async with engine.connect() as c:
        assert (await c.execute(sa.text("SELECT count(*) FROM conversation_facts"))).scalar_one() == 1
    off = replace(settings, raw={**settings.raw, "reports": {"facts_refresh": "off"}})
    assert facts_job(off, engine, lambda: NOW) is None


async def test_the_leader_of_a_running_carebox_schedules_the_facts_refresh(tmp_path, db_url):
    import asyncio

    from aiohttp import web

    from carebox import config
    from carebox.runtime import build_app, work_key

    settings = config.parse({"carebox": {"data_dir": str(tmp_path)}, "database": {"url": db_url},
                             "reports": {"facts_refresh": "2m"}}, environ={})
    app = await build_app(settings, role="worker")
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        async with asyncio.timeout(10):
            while getattr(app[work_key], "scheduler", None) is None:
                await asyncio.sleep(0.02)
        job = app[work_key].scheduler.aps.get_job("reports:facts")
        assert job is not None and job.trigger.interval == timedelta(minutes=2)
    finally:
        await runner.cleanup()


async def test_while_another_process_rebuilds_the_facts_reports_read_conversations(engine, chain_pipeline, mention,
                                                                                   report_settings):
    await chain_pipeline.ingest([IngestBatch("sim", (mention("down", when="2025-11-18T10:00:00+01:00"),))], NOW)
    rules = reporting.fact_rules(reporting.make_scope(report_settings, NOW), report_settings)
    async with engine.begin() as c:  # a rebuild claimed a minute ago by a process that is still working
        await c.execute(report_facts.state.insert().values(
            id=1, fingerprint=report_facts.BUILDING + rules.fingerprint(), conversation_wm=0, mention_wm=0,
            slaevent_wm=0, auditevent_wm=0, conversations=0, refreshed_at=NOW - timedelta(minutes=1)))
    assert not (await report_facts.refresh(engine, rules, NOW)).ready
    report = await reporting.build_report(engine, reporting.make_scope(report_settings, NOW), report_settings)
    assert report.totals.conversations == 1  # from the conversations: the facts are still empty
    later = NOW + report_facts.BUILD_TIMEOUT
    assert (await report_facts.refresh(engine, rules, later)).rebuilt  # an abandoned build is started again
    assert (await report_facts.refresh(engine, rules, later)).ready


async def _stored_facts(engine) -> list:
    async with engine.connect() as c:
        return [[list(r) for r in await c.execute(sa.text(f"SELECT * FROM {table} ORDER BY {order}"))]
                for table, order in (("conversation_facts", "conversation_id"), ("report_cells", "dim, value, day, inc"),
                                     ("report_next_responses", "clock_id"))]


async def test_a_refresh_rewrites_only_changed_facts_and_ends_where_a_rebuild_does(
        engine, chain_pipeline, mention, report_settings):
    rng = random.Random(5)
    await ingest(chain_pipeline, script(rng, mention, 0, 40, START, 20))
    rules = reporting.fact_rules(reporting.make_scope(report_settings, NOW), report_settings)
    await report_facts.refresh(engine, rules, NOW)
    ids = await _conversation_ids(engine)

    # an SLA event that changes no fact: the conversations are read again, no day of cells is rewritten
    async with engine.begin() as c:
        for cid in ids[:5]:
            await c.execute(sa.text("INSERT INTO slaevent (conversation_id, target, kind, at, detail) "
                                    "VALUES (:i, 'first_response', 'warn', :at, '')"), {"i": cid, "at": NOW})
    assert (await report_facts.refresh(engine, rules, NOW)) == report_facts.Refreshed(False, 5, 0)

    await ingest(chain_pipeline, script(rng, mention, 40, 15, START + timedelta(days=18), 6))
    for cid in rng.sample(ids, 8):
        await actions.set_status(engine, cid, Status.RESOLVED, None, NOW - timedelta(hours=rng.randrange(1, 100)))
    agent = await actions.add_user(engine, "bob", "x", "agent", NOW)
    for cid in rng.sample(ids, 6):
        await actions.assign(engine, cid, agent, None, NOW)
    assert (await report_facts.refresh(engine, rules, NOW)).days > 0
    incremental = await _stored_facts(engine)
    assert (await report_facts.refresh(engine, rules, NOW, rebuild=True)).rebuilt
    same(incremental, await _stored_facts(engine), "stored facts")
    async with engine.connect() as c:  # the partial indexes agree with the rows updated a column at a time
        assert (await c.execute(sa.text("PRAGMA integrity_check"))).scalar_one() == "ok"


async def test_a_rebuild_on_pooled_connections_that_cached_the_old_schema_creates_every_index(
        engine, chain_pipeline, mention, report_settings):
    """The claim drops the facts indexes on one pooled connection; the index steps run on others, whose cached
    schema may still list those indexes (SQLite checks DDL names against it): the rebuild must not fail."""
    import asyncio

    await chain_pipeline.ingest([IngestBatch("sim", (mention("down", when="2025-11-18T10:00:00+01:00"),))], NOW)
    rules = reporting.fact_rules(reporting.make_scope(report_settings, NOW), report_settings)
    assert (await report_facts.refresh(engine, rules, NOW)).rebuilt

    async def warm(hold: asyncio.Event) -> None:
        async with engine.connect() as c:  # loads the schema, indexes included, into this connection's cache
            await c.exec_driver_sql("SELECT count(*) FROM conversation_facts")
            await hold.wait()

    hold = asyncio.Event()
    warming = [asyncio.create_task(warm(hold)) for _ in range(4)]
    await asyncio.sleep(0.2)
    hold.set()
    await asyncio.gather(*warming)  # four idle pooled connections, each with the indexes in its cached schema
    assert (await report_facts.refresh(engine, rules, NOW, rebuild=True)).rebuilt
    async with engine.connect() as c:
        names = {r[0] for r in await c.exec_driver_sql(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'conversation_facts'")}
    assert {i.name for i in report_facts.facts.indexes} <= names
