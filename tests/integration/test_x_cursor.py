"""The X connector recovers from a cursor X refuses (400 "Invalid 'since_id'") instead of failing forever."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from carebox.errors import ConfigError, ReplyRejected
from connectors.social.x import XConnector, parse_options
from connectors.social.x_parse import catch_up_start, refuses_since_id, snowflake_time
from tests.fakes.sink import RecordingSink
from tests.fakes.x import APP_TOKEN, BRAND_ID, START, USER_TOKEN, FakeX

REFUSED = "refused the cursor"


@pytest.fixture
def fake() -> FakeX:
    return FakeX()


@pytest.fixture
async def server(fake: FakeX) -> AsyncIterator[TestServer]:
    server = TestServer(fake.app)
    await server.start_server()
    yield server
    await server.close()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def _short_sleep(seconds: float) -> None:
    await asyncio.sleep(min(seconds, 0.01))


@pytest.fixture
def make(server: TestServer, session: aiohttp.ClientSession) -> Callable[..., XConnector]:
    def build(now: datetime, **options: object) -> XConnector:
        table = {"account": "brand", "user_id": BRAND_ID, "token_env": "X_BEARER",
                 "base_url": str(server.make_url("")), "poll_interval": "10ms", "backoff_base": "1ms",
                 "max_results": 5, **options}
        return XConnector("x-brand", parse_options(table, "connectors.x-brand"), session=session,
                          app_token=APP_TOKEN, user_token=USER_TOKEN, sleep=_short_sleep, now=lambda: now)
    return build


@contextlib.asynccontextmanager
async def running(conn: XConnector, sink: RecordingSink, cursor: str | None) -> AsyncIterator[asyncio.Task]:
    task = asyncio.create_task(conn.run(sink, cursor))
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def texts(sink: RecordingSink) -> list[str]:
    return [m.text.removeprefix("@brand ") for m in sink.mentions]


def mention_requests(fake: FakeX) -> list[str]:
    return [r for r in fake.requests if "/mentions" in r]


async def test_a_refused_cursor_is_dropped_and_reading_resumes_from_its_own_time(fake, make, caplog):
    stale = fake.add_tweet("ann", "@brand old")["id"]  # START + 1 min
    for i in range(7):  # more than one page of 5: the catch-up window is read to its end
        fake.add_tweet(f"c{i}", f"@brand new {i}")
    fake.since_id_floor = START + timedelta(seconds=90)  # X no longer serves ids as old as the cursor
    sink = RecordingSink()
    with caplog.at_level(logging.WARNING):
        async with running(make(now=START + timedelta(hours=1)), sink, stale):
            await sink.wait_for(lambda s: len(s.mentions) == 7)
            fake.add_tweet("bob", "@brand after the recovery")
            await sink.wait_for(lambda s: "after the recovery" in texts(s)[-1])
    assert texts(sink)[:7] == [f"new {i}" for i in range(7)]  # the cursor's own mention is not read again
    asked = mention_requests(fake)
    assert f"since_id={stale}" in asked[0]
    assert "start_time=2026-11-20T09:01:00Z" in asked[1]  # the stale cursor's own time, inclusive
    assert "since_id=" in asked[-1] and "start_time" not in asked[-1]  # then since_id again, from the fresh cursor
    assert sum(REFUSED in r.getMessage() for r in caplog.records) == 1


async def test_the_catch_up_window_bounds_how_far_back_reading_resumes(fake, make):
    stale = fake.add_tweet("ann", "@brand old")["id"]  # START + 1 min
    fake.add_tweet("bea", "@brand outside the window")  # START + 2 min
    fake.add_tweet("cid", "@brand inside the window")  # START + 3 min
    fake.since_id_floor = START + timedelta(seconds=90)
    sink = RecordingSink()
    async with running(make(now=START + timedelta(minutes=5), cursor_catch_up="2m"), sink, stale):
        await sink.wait_for(lambda s: s.cursor is not None and s.cursor != stale)
    assert texts(sink) == ["inside the window"]


async def test_an_empty_catch_up_window_is_kept_until_a_mention_arrives(fake, make, caplog):
    stale = fake.add_tweet("ann", "@brand old")["id"]
    fake.since_id_floor = START + timedelta(seconds=90)
    sink = RecordingSink()
    with caplog.at_level(logging.WARNING):
        async with running(make(now=START + timedelta(hours=1)), sink, stale):
            await asyncio.wait_for(_until(lambda: len(mention_requests(fake)) >= 4), 5)
            fake.add_tweet("bob", "@brand finally")
            await sink.wait_for(lambda s: "finally" in texts(s))
    later = mention_requests(fake)[1:4]
    assert all("start_time=" in r and "since_id" not in r for r in later)
    assert sum(REFUSED in r.getMessage() for r in caplog.records) == 1


async def test_any_other_bad_request_still_ends_the_run(fake, make):
    fake.add_tweet("ann", "@brand hello")
    fake.fail_next(400)
    with pytest.raises(ReplyRejected):
        await make(now=START).run(RecordingSink(), None)


async def _until(predicate: Callable[[], bool]) -> None:
    while not predicate():
        await asyncio.sleep(0.005)


@pytest.mark.parametrize(("cursor", "now", "expected"), [
    ("x", START, START - timedelta(hours=24)),  # not an id: the whole window
    (None, START, START - timedelta(hours=24)),
])
def test_catch_up_starts_no_earlier_than_the_window(cursor, now, expected):
    assert catch_up_start(cursor, now, timedelta(hours=24)) == expected


def test_catch_up_starts_at_the_cursor_time_when_it_is_recent():
    fake = FakeX()
    tweet_id = fake.add_tweet("ann", "@brand hi")["id"]
    assert catch_up_start(tweet_id, START + timedelta(hours=1), timedelta(hours=24)) == snowflake_time(tweet_id)


def test_only_a_bad_request_naming_since_id_is_a_refused_cursor():
    assert refuses_since_id('HTTP 400: {"errors":[{"parameters":{"since_id":["1"]}')
    assert not refuses_since_id('HTTP 400: {"title":"Invalid Request"}')
    assert not refuses_since_id("HTTP 404: since_id")


@pytest.mark.parametrize("value", ["0s", "8d", "soon"])
def test_catch_up_must_be_a_duration_up_to_seven_days(value):
    table = {"account": "brand", "user_id": BRAND_ID, "token_env": "X", "cursor_catch_up": value}
    with pytest.raises(ConfigError, match="cursor_catch_up"):
        parse_options(table, "connectors.x")
