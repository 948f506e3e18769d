"""The X connector against a fake X API v2 served on a local port."""

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
from connectors.social.x import XConnector, from_config, parse_options
from tests.fakes.sink import RecordingSink
from tests.fakes.x import APP_TOKEN, BRAND_ID, USER_TOKEN, FakeX


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


class Sleeps(list):
    """Records every wait the connector asks for, and waits only a moment."""

    async def __call__(self, seconds: float) -> None:
        self.append(seconds)
        await asyncio.sleep(min(seconds, 0.01))


@pytest.fixture
def make(server: TestServer, session: aiohttp.ClientSession) -> Callable[..., XConnector]:
    def build(app_token: str = APP_TOKEN, user_token: str = USER_TOKEN, **options: object) -> XConnector:
        table = {"type": "x", "name": "x-brand", "account": "brand", "user_id": BRAND_ID, "token_env": "X_BEARER",
                 "base_url": str(server.make_url("")), "poll_interval": "10ms", "backoff_base": "1ms",
                 "max_results": 5, **options}
        return XConnector("x-brand", parse_options(table, "connectors.x-brand"), session=session,
                          app_token=app_token, user_token=user_token, sleep=Sleeps())
    return build


@contextlib.asynccontextmanager
async def running(conn: XConnector, sink: RecordingSink, cursor: str | None = None) -> AsyncIterator[asyncio.Task]:
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
    streams = [i for i, r in enumerate(fake.requests) if "/stream?" in r]
    polls = [i for i, r in enumerate(fake.requests) if "/mentions" in r]
    return bool(streams and polls and polls[-1] > streams[-1] and fake._streams)


def texts(sink: RecordingSink) -> list[str]:
    return [m.text.removeprefix("@brand ") for m in sink.mentions]


async def test_poll_follows_pagination_and_hands_over_oldest_first_with_the_newest_id(fake, make):
    cursor = fake.add_tweet("early", "@brand old one")["id"]
    for i in range(12):
        fake.add_tweet(f"c{i}", f"@brand help {i}")
    fake.add_tweet("other", "not about the brand")
    sink = RecordingSink()
    async with running(make(), sink, cursor):
        await sink.wait_for(lambda s: len(s.mentions) == 12)
    assert texts(sink) == [f"help {i}" for i in range(12)]
    assert sink.batches[0].cursor == fake.tweets[-2]["id"]
    assert any("pagination_token=10" in r for r in fake.requests)
    first = sink.mentions[0]
    assert first.author_handle == "c0" and first.followers == 10 and first.thread_key == first.external_id


async def test_restart_from_the_committed_cursor_reads_only_what_is_new(fake, make):
    fake.add_tweet("ann", "@brand first")
    sink = RecordingSink()
    async with running(make(), sink):
        await sink.wait_for(lambda s: len(s.mentions) == 1)
    fake.add_tweet("bob", "@brand second")
    again = RecordingSink()
    async with running(make(), again, sink.cursor):
        await again.wait_for(lambda s: len(s.mentions) == 1)
        await asyncio.sleep(0.05)  # further polls must bring nothing twice
    assert texts(again) == ["second"]


async def test_first_run_without_cursor_reads_the_newest_page_only(fake, make):
    for i in range(12):
        fake.add_tweet("ann", f"@brand m{i}")
    sink = RecordingSink()
    async with running(make(), sink):
        await sink.wait_for(lambda s: s.cursor is not None)
    assert texts(sink) == [f"m{i}" for i in range(7, 12)]


async def test_replies_in_a_thread_carry_parent_and_conversation(fake, make):
    root = fake.add_tweet("ann", "@brand my fibre is down")
    reply = fake.add_tweet("ann", "@brand still down", reply_to=root)
    sink = RecordingSink()
    async with running(make(), sink):
        await sink.wait_for(lambda s: len(s.mentions) == 2)
    got = sink.mentions[1]
    assert (got.external_id, got.in_reply_to, got.thread_key) == (reply["id"], root["id"], root["id"])


async def test_direct_messages_are_read_with_the_user_token_and_resumed_by_their_own_cursor(fake, make):
    fake.add_tweet("ann", "@brand public")
    fake.add_dm("bob", "private question")
    sink = RecordingSink()
    async with running(make(dms=True), sink):
        await sink.wait_for(lambda s: len(s.mentions) == 2)
    dm = next(m for m in sink.mentions if not m.public)
    assert (dm.text, dm.author_handle, dm.thread_key) == ("private question", "bob", f"{dm.author_id}-{BRAND_ID}")
    assert sink.cursor == f"m:{fake.tweets[0]['id']},dm:{fake.dm_events[0]['id']}"
    fake.add_dm("bob", "follow-up")
    again = RecordingSink()
    async with running(make(dms=True), again, sink.cursor):
        await again.wait_for(lambda s: len(s.mentions) == 1)
        await asyncio.sleep(0.05)
    assert texts(again) == ["follow-up"]


async def test_an_unusable_dm_is_dead_lettered_once_not_at_every_poll(fake, make):
    fake.add_dm("bob", "hello")
    fake.dm_events.append({"id": fake._next()[0], "event_type": "MessageCreate", "text": "no sender"})
    fake.add_dm("bob", "later")
    sink = RecordingSink()
    async with running(make(dms=True), sink):
        await sink.wait_for(lambda s: len(s.rejected) == 1)
        await until(lambda: sum("/2/dm_events" in r for r in fake.requests) >= 4)
    assert len(sink.rejected) == 1 and "sender_id" in sink.rejected[0].reason
    assert texts(sink) == ["hello", "later"]


async def test_stream_adds_its_rule_catches_up_then_delivers_live_tweets(fake, make):
    fake.add_tweet("ann", "@brand before connect")
    sink = RecordingSink()
    conn = make(mode="stream")
    async with running(conn, sink):
        await sink.wait_for(lambda s: len(s.mentions) == 1)
        await until(lambda: polled_since_stream_opened(fake))
        polls = len(fake.requests)
        fake.add_tweet("bob", "@brand live")
        await sink.wait_for(lambda s: len(s.mentions) == 2)
        assert len(fake.requests) == polls  # it came by the stream
    assert [r["value"] for r in fake.rules] == ["@brand"]
    assert texts(sink) == ["before connect", "live"]
    assert sink.cursor == fake.tweets[-1]["id"]


async def test_dropped_stream_reconnects_and_loses_nothing(fake, make):
    fake.drop_stream_after = 1
    sink = RecordingSink()
    async with running(make(mode="stream"), sink):
        await until(lambda: polled_since_stream_opened(fake))
        fake.add_tweet("ann", "@brand one")
        await until(lambda: fake.stream_connections >= 2 and polled_since_stream_opened(fake))
        fake.add_tweet("bob", "@brand two")
        await sink.wait_for(lambda s: len(s.mentions) >= 2)
        await asyncio.sleep(0.05)
    assert texts(sink) == ["one", "two"]
    assert len(fake.rules) == 1


async def test_malformed_stream_line_goes_to_dead_letters(fake, make):
    sink = RecordingSink()
    async with running(make(mode="stream"), sink):
        await until(lambda: bool(fake._streams))
        fake.push_raw(b'{"data": {"id": "1", "tex\r\n')
        await sink.wait_for(lambda s: len(s.rejected) == 1)
    assert sink.rejected[0].payload.startswith('{"data": {"id": "1", "tex')


@pytest.mark.parametrize(("retry_after", "reset_in", "expected"), [(7, None, 7.0), (None, 120, 120.0)])
async def test_rate_limit_waits_for_retry_after_or_the_reset_time(fake, make, retry_after, reset_in, expected):
    fake.add_tweet("ann", "@brand hello")
    fake.fail_next(429, retry_after=retry_after, reset_in=reset_in)
    sink = RecordingSink()
    conn = make()
    async with running(conn, sink):
        await sink.wait_for(lambda s: len(s.mentions) == 1)
    assert any(expected - 2 <= s <= expected for s in conn._sleep)


async def test_spent_rate_window_waits_before_the_next_request(fake, make):
    fake.add_tweet("ann", "@brand hello")
    fake.rate_remaining, fake.rate_reset_in = 0, 600
    sink = RecordingSink()
    conn = make()
    async with running(conn, sink):
        await sink.wait_for(lambda s: len(s.mentions) == 1)
        await until(lambda: len(fake.requests) >= 2)
    assert any(590 <= s <= 600 for s in conn._sleep)


@pytest.mark.parametrize("switch", ["500", "malformed", "slow"])
async def test_server_trouble_is_retried_and_logged_unavailable_once_and_back_once(fake, make, switch, caplog):
    caplog.set_level(logging.INFO, logger="connectors.social.x")
    fake.add_tweet("ann", "@brand hello")
    if switch == "500":
        fake.fail_next(503, times=2)
    elif switch == "malformed":
        fake.malformed_next = 1
    else:
        fake.delay = 0.2
    sink = RecordingSink()
    conn = make(timeout="50ms")
    async with running(conn, sink):
        if switch == "slow":
            await until(lambda: conn.last_error is not None)
            fake.delay = 0
        await sink.wait_for(lambda s: len(s.mentions) == 1)
    assert conn.last_error is None and conn.last_ok_at is not None
    messages = [r.getMessage() for r in caplog.records]
    assert sum("is unavailable" in msg for msg in messages) == 1
    assert sum("is back" in msg for msg in messages) == 1


async def test_refused_credentials_stop_the_connector_and_show_why(server, session):
    conn = from_config("x-brand", {"account": "brand", "user_id": BRAND_ID, "token_env": "T",
                                   "base_url": str(server.make_url(""))}, session=session, environ={"T": "wrong"})
    with pytest.raises(AuthenticationFailed):
        await conn.run(RecordingSink(), None)
    assert "401" in (conn.last_error or "")


async def test_public_reply_is_a_tweet_in_reply_to_the_mention(fake, make):
    mention = fake.add_tweet("ann", "@brand help")
    sent = await make().send_reply(OutboundReply("x", "brand", mention["id"], "@ann we are on it"))
    (posted,) = fake.posted
    assert posted["text"] == "@ann we are on it"
    assert posted["reply"] == {"in_reply_to_tweet_id": mention["id"]}
    created = next(t for t in fake.tweets if t["id"] == sent.external_id)
    assert created["conversation_id"] == mention["conversation_id"]
    assert sent.created_at.isoformat().startswith(created["created_at"][:19])
    assert sent.url == f"https://x.com/brand/status/{sent.external_id}"


async def test_private_reply_is_a_direct_message_to_the_customer(fake, make):
    event = fake.add_dm("bob", "psst")
    await make().send_reply(OutboundReply("x", "brand", event["id"], "check your DMs", public=False,
                                          customer_id=event["sender_id"]))
    (posted,) = fake.posted
    assert posted["participant_id"] == event["sender_id"] and posted["text"] == "check your DMs"


async def test_duplicate_reply_is_rejected_not_an_authentication_failure(fake, make):
    mention = fake.add_tweet("ann", "@brand help")
    conn = make()
    await conn.send_reply(OutboundReply("x", "brand", mention["id"], "same text"))
    with pytest.raises(ReplyRejected, match="duplicate"):
        await conn.send_reply(OutboundReply("x", "brand", mention["id"], "same text"))


async def test_posting_with_an_app_only_token_is_an_authentication_failure(fake, make):
    mention = fake.add_tweet("ann", "@brand help")
    with pytest.raises(AuthenticationFailed):
        await make(user_token=APP_TOKEN).send_reply(OutboundReply("x", "brand", mention["id"], "hi"))
    assert fake.posted == []


async def test_silent_stream_is_dropped_after_the_idle_timeout_and_reconnected(fake, make, caplog):
    conn = make(mode="stream", stream_idle_timeout="50ms")  # the fake sends keep-alives every 200 ms
    sink = RecordingSink()
    async with running(conn, sink):
        await until(lambda: fake.stream_connections >= 2)
        assert any("unavailable" in r.getMessage() and "Timeout" in r.getMessage() for r in caplog.records)
        await until(lambda: polled_since_stream_opened(fake))
        fake.add_tweet("ann", "@brand still there?")
        await sink.wait_for(lambda s: len(s.mentions) == 1)


async def test_a_public_mention_can_be_answered_privately_by_direct_message(fake, make):
    mention = fake.add_tweet("ann", "@brand my account number is on the bill?")
    conn = make()
    assert conn.private_replies
    await conn.send_reply(OutboundReply("x", "brand", mention["id"], "sent you the details", public=False,
                                        customer_id=mention["author_id"], thread_key=mention["conversation_id"]))
    (posted,) = fake.posted
    assert posted["participant_id"] == mention["author_id"] and "reply" not in posted  # a DM, not a reply tweet
