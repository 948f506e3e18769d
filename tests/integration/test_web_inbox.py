"""Saved views, counts, filters and keyset pagination of the inbox, through aiohttp's test client."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from carebox import config
from carebox.ports import IngestBatch
from carebox.store import queries
from tests.integration.test_web import _login, make_client
from web.keys import engine_key, pipeline_key

ROW = re.compile(r'data-href="/conversations/(\d+)"')


@pytest.fixture
def settings(tmp_path, db_url):
    return config.parse({"carebox": {"data_dir": str(tmp_path)}, "database": {"url": db_url},
                         "inbox": {"page_size": 3, "counts_cache": "0s"}}, environ={})


@pytest.fixture
async def client(aiohttp_client, settings):
    return await make_client(aiohttp_client, settings, users=(("agent", "agent"), ("other", "agent")))


async def _seed(client, mention, n: int) -> None:
    """n conversations from n customers, with due times 1h apart (conversation 1 due first)."""
    app = client.server.app
    # recent messages: their SLA clocks fall due in the future, so no scheduler job fires during the test
    when = datetime.now(UTC).isoformat()
    batch = tuple(mention(f"help number {i}", author=f"c{i}", lang_hint="en", when=when) for i in range(1, n + 1))
    await app[pipeline_key].ingest([IngestBatch("sim", batch)], datetime.now(UTC))
    base = datetime.now(UTC) + timedelta(hours=2)
    async with app[engine_key].begin() as c:
        for i in range(1, n + 1):
            await c.execute(queries.conv.update().where(queries.conv.c.id == i).values(
                due_business=base + timedelta(hours=i), due_wall=base))


async def _set(client, conversation_id: int, **values) -> None:
    async with client.server.app[engine_key].begin() as c:
        await c.execute(queries.conv.update().where(queries.conv.c.id == conversation_id).values(**values))


async def _walk(client, path: str) -> list[int]:
    """Every row of a view, following the next-page links (at most 20 pages)."""
    seen: list[int] = []
    for _ in range(20):
        body = await (await client.get(path)).text()
        seen += [int(i) for i in ROW.findall(body)]
        nxt = re.search(r'href="(/\?[^"]*after=[^"]+)" rel="next"', body)
        if nxt is None:
            return seen
        path = nxt.group(1).replace("&amp;", "&")
    raise AssertionError(f"pagination does not end: {seen}")


async def _ids(client, path: str) -> list[int]:
    return [int(i) for i in ROW.findall(await (await client.get(path)).text())]


async def test_each_saved_view_holds_what_its_name_says_and_counts_it(client, mention):
    await _seed(client, mention, 6)
    now = datetime.now(UTC)
    await _set(client, 1, due_business=now - timedelta(minutes=5))          # breached
    await _set(client, 2, due_business=now + timedelta(minutes=20))         # due soon
    await _set(client, 3, incident_id=7)                                     # in an incident
    await _set(client, 4, status="pending")
    await _set(client, 5, status="resolved", resolved_at=now, due_business=None)
    await _set(client, 6, assignee_id=1)                                     # mine (agent is user 1)
    await _login(client)
    expected = {"breached": [1], "due_soon": [2], "incident": [3], "pending": [4], "resolved": [5], "mine": [6],
                "unassigned": [1, 2, 3], "open": [1, 2, 3, 6], "awaiting": [1, 2, 3, 6]}
    page = await (await client.get("/?view=open")).text()
    for view, ids in expected.items():
        assert sorted(await _walk(client, f"/?view={view}")) == ids, view
        assert re.search(rf'data-view="{view}">[^<]*<span class="count">{len(ids)}</span>', page), view


async def test_views_are_sorted_by_the_first_due_time_and_paginated_without_gaps_or_repeats(client, mention):
    await _seed(client, mention, 8)
    await _set(client, 5, due_business=None, first_response_at=datetime.now(UTC))  # answered: after dated ones
    await _set(client, 2, due_business=datetime.now(UTC) + timedelta(minutes=1))    # now the most urgent
    await _login(client)
    assert await _walk(client, "/?view=open") == [2, 1, 3, 4, 6, 7, 8, 5]


async def test_filters_narrow_the_view_and_its_counts(client, mention):
    await _seed(client, mention, 3)
    await _set(client, 1, network="mastodon")
    await _set(client, 2, tags='["billing", "vip"]')
    await _set(client, 3, language="fr", priority="P1")
    await _login(client)
    assert await _ids(client, "/?view=open&network=mastodon") == [1]
    assert await _ids(client, "/?view=open&tag=vip") == [2]
    assert await _ids(client, "/?view=open&language=fr&priority=P1") == [3]
    assert await _ids(client, "/?view=open&q=number%202") == [2]
    body = await (await client.get("/?view=open&tag=vip")).text()
    assert re.search(r'data-view="open">[^<]*<span class="count">1</span>', body)


async def test_a_tampered_page_cursor_gets_a_clear_error_not_a_traceback(client, mention):
    await _login(client)
    resp = await client.get("/?view=open&after=nonsense")
    assert resp.status == 400 and "Traceback" not in await resp.text()


async def test_the_inbox_queries_use_indexes_not_a_scan_of_conversations(engine):
    if engine.dialect.name != "sqlite":
        pytest.skip("the plan is checked on SQLite, the embedded store the benchmark measures")
    now = datetime.now(UTC)
    plans = {}
    async with engine.connect() as c:
        for view in queries.VIEWS:
            where = [queries._view_filter(view, 1, now, 3600.0)]
            stmt = queries._row_select().where(*where, queries.conv.c.due_business.is_not(None)).order_by(
                queries.conv.c.due_business, queries.conv.c.id).limit(51)
            if view == "resolved":
                stmt = queries._row_select().where(*where).order_by(queries.conv.c.resolved_at.desc(),
                                                                    queries.conv.c.id.desc()).limit(51)
            sql = str(stmt.compile(c.sync_connection, compile_kwargs={"literal_binds": True}))
            rows = (await c.execute(sa.text("EXPLAIN QUERY PLAN " + sql))).all()
            plans[view] = " | ".join(r[-1] for r in rows)
    for view, plan in plans.items():
        assert "SCAN conversation" not in plan.replace("SCAN conversation USING INDEX", "INDEX"), (view, plan)


async def test_the_conversation_page_the_counts_and_the_incident_view_use_indexes(client, mention):
    engine = client.server.app[engine_key]
    if engine.dialect.name != "sqlite":
        pytest.skip("the plan is checked on SQLite, the embedded store the benchmark measures")
    await _seed(client, mention, 2)
    seen: list[tuple[str, Any]] = []

    def capture(_conn, _cursor, statement, parameters, _context, _many):
        if statement.lstrip().upper().startswith("SELECT"):
            seen.append((statement, parameters))

    now = datetime.now(UTC)
    sa.event.listen(engine.sync_engine, "before_cursor_execute", capture)
    try:
        async with engine.connect() as c:
            await c.run_sync(queries._conversation, 1, frozenset({("x", "acme")}))
            await c.run_sync(queries.view_counts, 1, now, queries.Filters(), 3600.0)
            await c.run_sync(queries._page, [queries._view_filter("incident", 1, now, 3600.0)], "incident", None, 50)
            plans = [(sql, " | ".join(r[-1] for r in (await c.exec_driver_sql("EXPLAIN QUERY PLAN " + sql, params)).all()))
                     for sql, params in seen]
    finally:
        sa.event.remove(engine.sync_engine, "before_cursor_execute", capture)
    assert len(plans) >= 20  # 11 statements of the conversation page, 9 counts, the incident page
    for sql, plan in plans:
        scans = [p for p in plan.split(" | ") if p.startswith("SCAN") and "INDEX" not in p]
        assert scans == [], (sql, plan)
    incident = [plan for sql, plan in plans if "linked" in sql]
    assert incident and all(p.startswith("SEARCH conversation USING INTEGER PRIMARY KEY") and "LIST SUBQUERY" in p
                            for p in incident), incident  # the linked ids first, not every open row by due time


def test_counts_are_reused_within_their_ttl_then_served_stale_until_refreshed():
    from web.live import CountsCache

    now = [0.0]
    cache = CountsCache(2.0, clock=lambda: now[0])
    assert cache.get("k") == (None, True)
    cache.put("k", {"open": 1})
    assert cache.get("k") == ({"open": 1}, False)
    now[0] = 2.5
    assert cache.get("k") == ({"open": 1}, True)
    cache.put("k", {"open": 2})
    cache.clear()  # a live event: stale at once, still served
    assert cache.get("k") == ({"open": 2}, True)
    assert CountsCache(0.0).get("k") == (None, True)


async def test_sla_events_reach_the_live_feed_of_the_web_app(aiohttp_client, settings):
    from carebox.runtime import build_app
    from web.keys import broadcaster_key, sla_listeners_key

    app = await build_app(settings)
    await aiohttp_client(app)
    seen = []
    app[broadcaster_key].publish = seen.append  # the in-process broadcaster, observed
    for listener in app[sla_listeners_key]:
        listener([{"conversation_id": 7, "clock_id": 1, "kind": "breach", "notify": ["team_lead"], "at": "x"}])
    assert [(e.kind, e.conversation_id, e.data["event"]) for e in seen] == [("sla", 7, "breach")]
