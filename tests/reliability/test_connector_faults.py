"""Connectors behind a chaos proxy (10% 5xx, 429 with Retry-After, slow and truncated answers, streams cut
mid-message) lose nothing and duplicate nothing, wait exactly as long as Retry-After says, and recover alone."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections import Counter
from typing import Any

import aiohttp
import pytest

from connectors.social import mastodon, x
from tests.fakes import mastodon as fake_mastodon
from tests.fakes import x as fake_x
from tests.fakes.sink import RecordingSink
from tests.reliability.chaos import (
    FIGURES,
    ChaosProxy,
    Faults,
    Sleeps,
    behind_chaos,
    running,
    texts,
)

WAVES, PER_WAVE = 6, 10
REQUESTS_PER_WAVE = 25
# CI runs a few seeds; benchmarks/reliability.py sets CAREBOX_FAULT_SEEDS to run many more.
SEEDS = tuple(range(1, 1 + int(os.environ.get("CAREBOX_FAULT_SEEDS", "2"))))
MIN_FAULTS = {"poll": 5, "stream": 2}  # a stream makes few requests: its faults are mostly cuts


DEFAULT_FAULTS = Faults()
_texts = texts


async def _feed_in_waves(add: Any, sink: RecordingSink, proxy: ChaosProxy, conn: Any) -> set[str]:
    """Post mentions in waves while faults fly; the last wave after the faults stop. Returns what was posted."""
    posted: set[str] = set()
    for wave in range(WAVES):
        if wave == WAVES - 1:
            proxy.enabled = False  # the network heals: the connector must come back by itself
        for i in range(PER_WAVE):
            text = f"wave {wave} message {i} my line is down"
            add(text)
            posted.add(text)
        await sink.wait_for(lambda s: posted <= set(_texts(s)), timeout=30)
        if proxy.enabled:
            await _let_requests_flow(proxy, (wave + 1) * REQUESTS_PER_WAVE)
    return posted


async def _let_requests_flow(proxy: ChaosProxy, target: int, limit_s: float = 0.6) -> None:
    """Keep the connector talking through the faults for a while (streams make few requests: time-boxed)."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(limit_s):
            while proxy.forwarded + proxy.total_injected < target:
                await asyncio.sleep(0.01)


def _check(sink: RecordingSink, posted: set[str], proxy: ChaosProxy, sleeps: Sleeps, conn: Any, mode: str) -> None:
    delivered = _texts(sink)
    assert set(delivered) == posted, "lost or invented mentions"
    assert max(delivered.values()) == 1, f"duplicated: {[t for t, n in delivered.items() if n > 1][:5]}"
    assert len({m.external_id for m in sink.mentions}) == len(sink.mentions)
    assert proxy.total_injected >= MIN_FAULTS[mode], f"too few faults to mean anything: {proxy.injected}"
    FIGURES.append({"connector": conn.name, "mode": mode, "mentions": len(posted), "faults": dict(proxy.injected),
                    "dead_letters": len(sink.rejected)})
    waited = Counter(sleeps)
    for wait, times in Counter(proxy.retry_afters).items():
        assert waited[wait] >= times, f"Retry-After {wait}s answered {times}x but waited so {waited[wait]}x"
    assert conn.last_error is None, "the connector did not report itself back"


def _x_connector(base_url: str, session: aiohttp.ClientSession, sleeps: Sleeps, mode: str) -> x.XConnector:
    table = {"type": "x", "name": "x-brand", "account": "brand", "user_id": fake_x.BRAND_ID, "token_env": "X_BEARER",
             "base_url": base_url, "poll_interval": "10ms", "backoff_base": "1ms", "max_results": 5, "mode": mode,
             "stream_idle_timeout": "2s"}
    return x.XConnector("x-brand", x.parse_options(table, "connectors.x-brand"), session=session,
                        app_token=fake_x.APP_TOKEN, user_token=fake_x.USER_TOKEN, sleep=sleeps)


def _masto_connector(base_url: str, session: aiohttp.ClientSession, sleeps: Sleeps, mode: str) -> mastodon.MastodonConnector:
    table = {"type": "mastodon", "name": "masto", "account": "brand", "base_url": base_url, "token_env": "T",
             "poll_interval": "10ms", "backoff_base": "1ms", "limit": 5, "mode": mode, "stream_idle_timeout": "2s"}
    return mastodon.MastodonConnector("masto", mastodon.parse_options(table, "connectors.masto"), session=session,
                                      token=fake_mastodon.TOKEN, sleep=sleeps)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("mode", ["poll", "stream"])
async def test_x_connector_through_faults_delivers_every_mention_once(seed, mode):
    fake = fake_x.FakeX()
    cursor = fake.add_tweet("early", "@brand already handled")["id"]
    sleeps, sink = Sleeps(), RecordingSink()
    async with behind_chaos(fake.app, seed) as (url, proxy), aiohttp.ClientSession() as session:
        conn = _x_connector(url, session, sleeps, mode)
        async with running(conn, sink, cursor):
            posted = await _feed_in_waves(lambda t: fake.add_tweet("cust", f"@brand {t}"), sink, proxy, conn)
    _check(sink, posted, proxy, sleeps, conn, mode)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("mode", ["poll", "stream"])
async def test_mastodon_connector_through_faults_delivers_every_mention_once(seed, mode):
    fake = fake_mastodon.FakeMastodon()
    cursor = fake.add_mention("early@x.org", "already handled")["id"]
    sleeps, sink = Sleeps(), RecordingSink()
    async with behind_chaos(fake.app, seed) as (url, proxy), aiohttp.ClientSession() as session:
        conn = _masto_connector(url, session, sleeps, mode)
        async with running(conn, sink, cursor):
            posted = await _feed_in_waves(lambda t: fake.add_mention("cust@x.org", t), sink, proxy, conn)
    _check(sink, posted, proxy, sleeps, conn, mode)


async def test_rate_limit_waits_are_the_retry_after_values_not_the_backoff():
    fake = fake_mastodon.FakeMastodon()
    cursor = fake.add_mention("early@x.org", "already handled")["id"]
    sleeps, sink = Sleeps(), RecordingSink()
    only_429 = Faults(server_error=0.0, rate_limit=0.5, truncate=0.0, slow=0.0, cut_stream=0.0, retry_after=(3, 11, 42))
    async with behind_chaos(fake.app, 7, only_429) as (url, proxy), aiohttp.ClientSession() as session:
        conn = _masto_connector(url, session, sleeps, "poll")
        async with running(conn, sink, cursor):
            posted = await _feed_in_waves(lambda t: fake.add_mention("cust@x.org", t), sink, proxy, conn)
    assert set(_texts(sink)) == posted
    assert len(proxy.retry_afters) >= 5
    long_waits = [s for s in sleeps if s >= 1]
    assert long_waits == proxy.retry_afters, "every 429 is followed by exactly its Retry-After, in order"
