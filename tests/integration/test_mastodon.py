"""The Mastodon connector against a fake instance served on a local port."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from carebox.errors import AuthenticationFailed, ReplyRejected
from carebox.ports import OutboundReply
from connectors.social.mastodon import MastodonConnector, from_config, parse_options
from tests.fakes.mastodon import TOKEN, FakeMastodon
from tests.fakes.sink import RecordingSink


@pytest.fixture
def fake() -> FakeMastodon:
    return FakeMastodon()


@pytest.fixture
async def server(fake: FakeMastodon) -> AsyncIterator[TestServer]:
    server = TestServer(fake.app)
    await server.start_server()
    yield server
    await server.close()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


class Sleeps(list):
    """Records every wait the connector asks for, and waits only a moment."""

    async def __call__(self, seconds: float) -> None:
        self.append(seconds)
        await asyncio.sleep(min(seconds, 0.01))


@pytest.fixture
def make(server: TestServer, session: aiohttp.ClientSession) -> Callable[..., MastodonConnector]:
    def build(**options: object) -> MastodonConnector:
        table = {"type": "mastodon", "name": "masto", "account": "brand", "base_url": str(server.make_url("")),
                 "token_env": "MASTODON_TOKEN", "poll_interval": "10ms", "backoff_base": "1ms", **options}
        return MastodonConnector("masto", parse_options(table, "connectors.masto"), session=session,
                                 token=TOKEN, sleep=Sleeps())
    return build


@contextlib.asynccontextmanager
async def running(conn: MastodonConnector, sink: RecordingSink, cursor: str | None = None) -> AsyncIterator[asyncio.Task]:
    task = asyncio.create_task(conn.run(sink, cursor))
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, AuthenticationFailed):
            await task


async def until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.005)


def polled_since_stream_opened(fake) -> bool:
    """True once the catch-up poll that follows the latest stream connection has been answered."""
    streams = [i for i, r in enumerate(fake.requests) if "/streaming/" in r]
    polls = [i for i, r in enumerate(fake.requests) if "/notifications" in r]
    return bool(streams and polls and polls[-1] > streams[-1] and fake._streams)


def texts(sink: RecordingSink) -> list[str]:
    return [m.text.removeprefix("@brand ") for m in sink.mentions]


async def test_poll_reads_mentions_oldest_page_first_with_a_cursor_per_page(fake, make):
    cursor = fake.add_mention("early@x.org", "already handled")["id"]
    for i in range(5):
        fake.add_mention(f"c{i}@x.org", f"help {i}")
    fake.add_notification("favourite")
    sink = RecordingSink()
    async with running(make(mode="poll", limit=2), sink, cursor):
        await sink.wait_for(lambda s: len(s.mentions) == 5)
    assert texts(sink) == [f"help {i}" for i in range(5)]
    cursors = [b.cursor for b in sink.batches if b.mentions]
    assert cursors == sorted(cursors, key=int) and len(cursors) == 3
    assert all("types%5B%5D=mention" in r or "types[]=mention" in r for r in fake.requests if "notifications" in r)


async def test_restart_from_the_committed_cursor_reads_only_what_is_new(fake, make):
    fake.add_mention("a@x.org", "first")
    sink = RecordingSink()
    async with running(make(mode="poll"), sink):
        await sink.wait_for(lambda s: len(s.mentions) == 1)
    fake.add_mention("b@x.org", "second")
    again = RecordingSink()
    async with running(make(mode="poll"), again, sink.cursor):
        await again.wait_for(lambda s: len(s.mentions) == 1)
        await asyncio.sleep(0.05)  # further polls must bring nothing twice
    assert texts(again) == ["second"]


async def test_first_run_without_cursor_reads_the_newest_page_only(fake, make):
    for i in range(5):
        fake.add_mention("a@x.org", f"m{i}")
    sink = RecordingSink()
    async with running(make(mode="poll", limit=3), sink):
        await sink.wait_for(lambda s: s.cursor == fake.notifications[-1]["id"])
    assert sorted(texts(sink)) == ["m2", "m3", "m4"]


async def test_stream_catches_up_then_delivers_live_mentions_without_duplicates(fake, make):
    first = fake.add_mention("a@x.org", "before connect")
    sink = RecordingSink()
    conn = make()
    async with running(conn, sink):
        # caught up once the page after the first mention has been asked for (and found empty)
        await until(lambda: any(f"min_id={first['id']}" in r for r in fake.requests))
        polls = len(fake.requests)
        fake.add_notification("follow")
        fake.add_mention("b@x.org", "live")
        await sink.wait_for(lambda s: len(s.mentions) == 2)
        assert len(fake.requests) == polls  # it came by the stream
    assert texts(sink) == ["before connect", "live"]
    assert sink.cursor == fake.notifications[-1]["id"]
    assert conn.last_error is None and conn.last_ok_at is not None


async def test_dropped_stream_reconnects_and_loses_nothing(fake, make):
    fake.drop_stream_after = 1
    sink = RecordingSink()
    async with running(make(), sink):
        await until(lambda: polled_since_stream_opened(fake))
        fake.add_mention("a@x.org", "one")
        await until(lambda: fake.stream_connections >= 2 and polled_since_stream_opened(fake))
        fake.add_mention("b@x.org", "two")
        await sink.wait_for(lambda s: len(s.mentions) >= 2)
        await asyncio.sleep(0.05)
    assert texts(sink) == ["one", "two"]


async def test_malformed_stream_event_goes_to_dead_letters(fake, make):
    sink = RecordingSink()
    async with running(make(), sink):
        await until(lambda: bool(fake._streams))
        fake.push_raw(b'event: notification\ndata: {"id": "1", "ty\n\n')
        await sink.wait_for(lambda s: len(s.rejected) == 1)
    assert sink.rejected[0].payload == '{"id": "1", "ty'


async def test_rate_limit_waits_for_retry_after_then_resumes(fake, make):
    fake.add_mention("a@x.org", "hello")
    fake.fail_next(429, retry_after=7)
    sink = RecordingSink()
    conn = make(mode="poll")
    async with running(conn, sink):
        await sink.wait_for(lambda s: len(s.mentions) == 1)
    assert 7.0 in conn._sleep
    assert conn.last_error is None


@pytest.mark.parametrize("switch", ["500", "malformed", "slow"])
async def test_server_trouble_is_retried_and_logged_unavailable_once_and_back_once(fake, make, switch, caplog):
    caplog.set_level(logging.INFO, logger="connectors.social.mastodon")
    fake.add_mention("a@x.org", "hello")
    if switch == "500":
        fake.fail_next(500, times=2)
    elif switch == "malformed":
        fake.malformed_next = 1
    else:
        fake.delay = 0.2
    sink = RecordingSink()
    conn = make(mode="poll", timeout="50ms")
    async with running(conn, sink):
        if switch == "slow":
            await until(lambda: conn.last_error is not None)
            fake.delay = 0
        await sink.wait_for(lambda s: len(s.mentions) == 1)
    assert conn.last_error is None and conn.last_ok_at is not None
    messages = [r.getMessage() for r in caplog.records]
    assert sum("is unavailable" in msg for msg in messages) == 1
    assert sum("is back" in msg for msg in messages) == 1


async def test_refused_credentials_stop_the_connector_and_show_why(fake, make, session, server):
    conn = from_config("masto", {"account": "brand", "base_url": str(server.make_url("")),
                                 "token_env": "T"}, session=session, environ={"T": "wrong"})
    with pytest.raises(AuthenticationFailed):
        await conn.run(RecordingSink(), None)
    assert "401" in (conn.last_error or "")


async def test_reply_is_threaded_addressed_and_keeps_public_visibility(fake, make):
    original = fake.add_mention("zsc@mastodon.example", "help")["status"]
    sent = await make().send_reply(OutboundReply("mastodon", "brand", original["id"], "On it!"))
    (posted,) = fake.posted
    assert posted["in_reply_to_id"] == original["id"]
    assert posted["status"] == "@zsc@mastodon.example On it!"
    assert posted["visibility"] == "public"
    assert posted["idempotency_key"]
    assert sent.external_id == posted["id"] and fake.statuses[sent.external_id]["in_reply_to_id"] == original["id"]


@pytest.mark.parametrize(("visibility", "public", "expected"),
                         [("direct", True, "direct"), ("unlisted", True, "unlisted"),
                          ("private", True, "private"), ("public", False, "direct")])
async def test_reply_visibility_matches_the_original_and_a_dm_gets_a_dm(fake, make, visibility, public, expected):
    original = fake.add_mention("a@x.org", "psst", visibility=visibility)["status"]
    await make().send_reply(OutboundReply("mastodon", "brand", original["id"], "ok", public=public))
    assert fake.posted[0]["visibility"] == expected


async def test_reply_retried_after_a_lost_answer_is_posted_once(fake, make):
    original = fake.add_mention("a@x.org", "help")["status"]
    fake.lose_answer_next = 1
    sent = await make().send_reply(OutboundReply("mastodon", "brand", original["id"], "On it"))
    assert len(fake.posted) == 1 and sent.external_id == fake.posted[0]["id"]


async def test_reply_to_a_deleted_status_is_rejected(fake, make):
    with pytest.raises(ReplyRejected):
        await make().send_reply(OutboundReply("mastodon", "brand", "404404", "hello"))
    assert fake.posted == []


async def test_silent_stream_is_dropped_after_the_idle_timeout_and_reconnected(fake, make, caplog):
    conn = make(stream_idle_timeout="50ms")  # the fake sends heartbeats every 200 ms
    sink = RecordingSink()
    async with running(conn, sink):
        await until(lambda: fake.stream_connections >= 2)
        assert any("unavailable" in r.getMessage() and "Timeout" in r.getMessage() for r in caplog.records)
        fake.add_mention("a@x.org", "still there?")
        await sink.wait_for(lambda s: len(s.mentions) == 1)
