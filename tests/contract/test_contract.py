"""The connector contract: every registered network connector, against its fake, obeys the same rules.

Cases that cannot apply to a type by design are skipped with the reason from harness.SKIPS;
known connector bugs are strict xfails listed in XFAILS with the bug described.
"""

from __future__ import annotations

import asyncio

import pytest

from carebox.errors import AuthenticationFailed, ConnectorUnavailable, RateLimited
from carebox.runtime import CONNECTORS
from tests.contract.harness import EXCLUDED, PAGE, SKIPS, Adapter, running, until
from tests.fakes.sink import RecordingSink

TYPES = sorted(t for t in CONNECTORS if t not in EXCLUDED)
XFAILS: dict[tuple[str, str], str] = {
}


def table(case: str) -> list:
    """The parameter table of one contract case: every type, with its skip or xfail mark."""
    params = []
    for kind in TYPES:
        marks = []
        if case in SKIPS.get(kind, {}):
            marks.append(pytest.mark.skip(reason=SKIPS[kind][case]))
        if (kind, case) in XFAILS:
            marks.append(pytest.mark.xfail(strict=True, reason=XFAILS[kind, case]))
        params.append(pytest.param(kind, id=kind, marks=marks))
    return params


def contract(case: str):
    """Parametrize a test over the registry for `case`, feeding the `adapter` fixture."""
    return pytest.mark.parametrize("adapter", table(case), indirect=True)


def ids(sink: RecordingSink) -> list[str]:
    return [m.external_id for m in sink.mentions]


async def collect(adapter: Adapter, n: int, cursor: str | None = None, conn=None) -> RecordingSink:
    """Bring `n` new mentions into a fresh sink: held by the fake and read (pull) or delivered (push)."""
    sink = RecordingSink()
    conn = conn or adapter.build()
    if adapter.push:
        await adapter.deliver(conn, sink, n)
        return sink
    adapter.add(n)
    async with running(conn, sink, cursor):
        await sink.wait_for(lambda s: len(s.mentions) >= n)
        await asyncio.sleep(0.05)  # further polls must bring nothing more
    return sink


@contract("fetch")
async def test_mentions_held_or_delivered_arrive_once_each(adapter):
    sink = await collect(adapter, 2, adapter.start_cursor())
    assert len(ids(sink)) == 2 and len(set(ids(sink))) == 2
    if adapter.push:
        assert all(sink.durable), "a push delivery is acknowledged only once durable"
    else:
        assert sink.cursor is not None


@contract("pagination")
async def test_more_mentions_than_a_page_are_all_read_across_pages(adapter):
    n = 3 * PAGE + 2
    sink = await collect(adapter, n, adapter.start_cursor())
    assert len(ids(sink)) == n and len(set(ids(sink))) == n
    assert adapter.page_requests() >= 2


@contract("resume")
async def test_restart_from_the_last_cursor_has_no_gap_and_no_duplicate(adapter):
    start = adapter.start_cursor()
    adapter.add(3 * PAGE + 2)
    first = RecordingSink()
    async with running(adapter.build(), first, start):
        # stop after the first batch that brings mentions and a cursor
        await first.wait_for(lambda s: any(b.mentions and b.cursor for b in s.batches))
    last = max(i for i, b in enumerate(first.batches) if b.cursor is not None)
    committed = [m.external_id for b in first.batches[: last + 1] for m in b.mentions]
    adapter.add(2)
    second = RecordingSink()
    want = 3 * PAGE + 4 - len(committed)
    async with running(adapter.build(), second, first.cursor):
        await second.wait_for(lambda s: len(s.mentions) >= want)
        await asyncio.sleep(0.05)
    assert committed, "the first run committed nothing: the restart proves nothing"
    assert set(committed).isdisjoint(ids(second)), "a mention read before the cursor came again"
    assert len(ids(second)) == want and len(set(committed) | set(ids(second))) == 3 * PAGE + 4


@contract("reply")
async def test_reply_to_a_received_mention_is_threaded_under_it(adapter):
    conn = adapter.build()
    (mention,) = (await collect(adapter, 1, adapter.start_cursor(), conn)).mentions
    sent = await conn.send_reply(adapter.reply_to(mention))
    assert sent.external_id
    got, wanted = adapter.threading(mention)
    assert got == wanted


@contract("auth")
async def test_refused_credentials_raise_authentication_failed_and_show_why(adapter):
    conn = adapter.build(bad_auth=True)
    with pytest.raises(AuthenticationFailed):
        async with asyncio.timeout(5):
            if adapter.push:
                (mention,) = (await collect(adapter, 1)).mentions
                await conn.send_reply(adapter.reply_to(mention))
            else:
                await conn.run(RecordingSink(), adapter.start_cursor())
    assert conn.last_error


@contract("auth_revoked")
async def test_credentials_revoked_while_running_stop_the_run_with_authentication_failed(adapter):
    conn, sink, start = adapter.build(), RecordingSink(), adapter.start_cursor()
    adapter.add(1)
    task = asyncio.create_task(conn.run(sink, start))
    try:
        await sink.wait_for(lambda s: len(s.mentions) == 1)
        adapter.fail_next(401, times=1000)
        with pytest.raises(AuthenticationFailed):
            async with asyncio.timeout(5):
                await asyncio.shield(task)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert conn.last_error


@contract("rate_limit")
async def test_rate_limit_waits_for_retry_after_or_raises_rate_limited(adapter):
    if adapter.push:
        conn = adapter.build()
        (mention,) = (await collect(adapter, 1, conn=conn)).mentions
        adapter.fail_next(429, retry_after=7)
        try:
            await conn.send_reply(adapter.reply_to(mention))
        except RateLimited as err:
            assert err.retry_after == pytest.approx(adapter.retry_hint)
            await conn.send_reply(adapter.reply_to(mention))
        else:
            assert any(adapter.retry_hint - 2 <= s <= adapter.retry_hint for s in adapter.sleeps), adapter.sleeps
        got, wanted = adapter.threading(mention)
        assert got == wanted
        return
    start = adapter.start_cursor()
    adapter.fail_next(429, retry_after=7)
    sink = await collect(adapter, 1, start)
    assert len(ids(sink)) == 1
    assert any(adapter.retry_hint - 2 <= s <= adapter.retry_hint for s in adapter.sleeps), adapter.sleeps


@contract("server_error")
async def test_server_errors_are_retried_and_nothing_is_lost(adapter):
    if adapter.push:
        conn = adapter.build()
        (mention,) = (await collect(adapter, 1, conn=conn)).mentions
        adapter.fail_next(500)
        try:
            await conn.send_reply(adapter.reply_to(mention))
        except ConnectorUnavailable:
            await conn.send_reply(adapter.reply_to(mention))
        got, wanted = adapter.threading(mention)
        assert got == wanted
        return
    start, conn = adapter.start_cursor(), adapter.build()
    adapter.fail_next(500, times=2)
    sink = await collect(adapter, 2, start, conn)
    assert len(ids(sink)) == 2 and len(set(ids(sink))) == 2
    assert conn.last_error is None, "health must come back once the server answers again"


@contract("reconnect")
async def test_no_duplicate_and_nothing_lost_after_a_dropped_connection(adapter):
    adapter.drop_once()
    sink = RecordingSink()
    async with running(adapter.build(stream=True), sink):
        await until(adapter.connected)
        adapter.add(1)
        await until(adapter.reconnected)
        adapter.add(1)
        await sink.wait_for(lambda s: len(s.mentions) >= 2)
        await asyncio.sleep(0.05)
    assert len(ids(sink)) == 2 and len(set(ids(sink))) == 2
