"""Whatever bytes a broken or hostile server streams (a line past the 128 KiB limit, bad JSON, wrong types, a
chunked body cut mid-line, HTML that html.parser refuses), the X and Mastodon run loops keep going, the following
messages are delivered, and what the stream lost the catch-up poll recovers."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from connectors._http import MAX_LINE_BYTES, _LineSplitter
from connectors.social import mastodon, x
from tests.fakes import mastodon as fake_mastodon
from tests.fakes import x as fake_x
from tests.fakes.sink import RecordingSink
from tests.reliability.chaos import Sleeps, running, texts

BIG = 200 * 1024  # over the readers' 128 KiB line limit
# aiohttp's own reader (3.14: 512 KiB for a client) raised LineTooLong (ValueError in older versions) out of run()
HUGE = 1024 * 1024


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def _served(app: Any) -> AsyncIterator[str]:
    async with TestServer(app) as server:
        yield str(server.make_url("")).rstrip("/")


@pytest.fixture
def fx() -> fake_x.FakeX:
    return fake_x.FakeX()


@pytest.fixture
def fm() -> fake_mastodon.FakeMastodon:
    return fake_mastodon.FakeMastodon()


@pytest.fixture
async def x_url(fx: fake_x.FakeX) -> AsyncIterator[str]:
    async for url in _served(fx.app):
        yield url


@pytest.fixture
async def masto_url(fm: fake_mastodon.FakeMastodon) -> AsyncIterator[str]:
    async for url in _served(fm.app):
        yield url


def _x(url: str, session: aiohttp.ClientSession) -> x.XConnector:
    table = {"account": "brand", "user_id": fake_x.BRAND_ID, "token_env": "X", "base_url": url, "mode": "stream",
             "poll_interval": "10ms", "backoff_base": "1ms", "max_results": 5}
    return x.XConnector("x1", x.parse_options(table, "connectors.x1"), session=session,
                        app_token=fake_x.APP_TOKEN, user_token=fake_x.USER_TOKEN, sleep=Sleeps())


def _masto(url: str, session: aiohttp.ClientSession) -> mastodon.MastodonConnector:
    table = {"account": "brand", "base_url": url, "token_env": "T", "mode": "stream", "poll_interval": "10ms",
             "backoff_base": "1ms", "limit": 5}
    return mastodon.MastodonConnector("m1", mastodon.parse_options(table, "connectors.m1"), session=session,
                                      token=fake_mastodon.TOKEN, sleep=Sleeps())


async def _streaming(fake: Any, sink: RecordingSink, first: Callable[[], Any]) -> None:
    """Wait until the stream is open and its catch-up poll is done (`first` is then delivered by the stream)."""
    async with asyncio.timeout(5):
        while not (fake._streams and any("notifications" in r or "/mentions" in r for r in fake.requests)):
            await asyncio.sleep(0.01)
    first()
    await sink.wait_for(lambda s: "first" in texts(s))


def _skip_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and "skipped a stream line" in
            r.getMessage()]


# --- the line reader ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("chunk_size", [1, 7, 4096, 1 << 20])
def test_an_over_long_line_comes_out_as_its_size_and_the_lines_around_it_intact(chunk_size):
    data = b"one\n" + b"z" * 300 + b"\n" + b"two\r\n" + b"y" * 50 + b"\n" + b"cut"
    splitter, out = _LineSplitter(100), []
    for i in range(0, len(data), chunk_size):
        out.extend(splitter.feed(data[i : i + chunk_size]))
    assert out == [b"one\n", 301, b"two\r\n", b"y" * 50 + b"\n"]
    assert splitter.rest() == b"cut"


def test_a_stream_ending_inside_an_over_long_line_reports_its_size_not_bytes():
    splitter = _LineSplitter(10)
    assert splitter.feed(b"a" * 25) == []
    assert splitter.rest() == 25


# --- X filtered stream -------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [BIG, HUGE])
async def test_x_skips_an_over_long_line_with_a_warning_and_delivers_the_next_tweets(fx, x_url, session, caplog,
                                                                                   size):
    sink = RecordingSink()
    async with running(_x(x_url, session), sink, None):
        await _streaming(fx, sink, lambda: fx.add_tweet("ann", "@brand first"))
        fx.push_raw(big := b'{"data": "' + b"a" * size + b'"}\r\n')
        fx.add_tweet("bob", "@brand second")
        await sink.wait_for(lambda s: "second" in texts(s))
        fx.add_tweet("cyd", "@brand third")  # after the skip: on the same stream
        await sink.wait_for(lambda s: "third" in texts(s))
    assert texts(sink) == {"first": 1, "second": 1, "third": 1}
    assert sink.rejected == []
    assert fx.stream_connections == 1
    limit = MAX_LINE_BYTES
    assert _skip_warnings(caplog) == [f"x1: skipped a stream line of {len(big)} bytes, over the {limit}-byte limit"]


async def test_x_a_tweet_whose_stream_line_is_too_long_is_recovered_by_a_poll(fx, x_url, session):
    sink = RecordingSink()
    async with running(_x(x_url, session), sink, None):
        await _streaming(fx, sink, lambda: fx.add_tweet("ann", "@brand first"))
        fx.pad_stream_next = BIG
        fx.add_tweet("cat", "@brand huge")
        fx.add_tweet("bob", "@brand second")
        await sink.wait_for(lambda s: {"huge", "second"} <= set(texts(s)))
    assert texts(sink) == {"first": 1, "huge": 1, "second": 1}
    assert [m.text for m in sink.mentions][-2:] == ["@brand huge", "@brand second"]  # in order


@pytest.mark.parametrize("line", [
    b"not json at all\r\n", b"\xff\xfe\xfd\r\n", b"[]\r\n", b'"text"\r\n', b"12\r\n", b"null\r\n",
    b'{"data": 5}\r\n', b'{"data": [{"id": []}]}\r\n', b'{"data": {"id": "1", "text": 3}}\r\n',
    b'{"includes": {"users": "nobody"}, "data": {"id": "9"}}\r\n', b"[" * 5000 + b"\r\n",
])
async def test_x_a_line_of_garbage_is_a_dead_letter_or_nothing_and_the_stream_goes_on(fx, x_url, session, line):
    sink = RecordingSink()
    async with running(_x(x_url, session), sink, None):
        await _streaming(fx, sink, lambda: fx.add_tweet("ann", "@brand first"))
        fx.push_raw(line)
        fx.add_tweet("bob", "@brand second")
        await sink.wait_for(lambda s: "second" in texts(s))
    assert texts(sink) == {"first": 1, "second": 1}
    assert fx.stream_connections == 1


async def test_x_a_chunked_stream_cut_mid_line_reconnects_and_the_poll_recovers_the_tweet(fx, x_url, session):
    sink = RecordingSink()
    async with running(_x(x_url, session), sink, None):
        await _streaming(fx, sink, lambda: fx.add_tweet("ann", "@brand first"))
        fx.abort_streams(b'{"data": {"id": "1')
        tweet = fx.add_tweet("dan", "@brand cut")  # queued after the cut: this stream never sends it
        await sink.wait_for(lambda s: "cut" in texts(s) and fx.stream_connections >= 2, timeout=10)
        fx.add_tweet("bob", "@brand second")
        await sink.wait_for(lambda s: "second" in texts(s))
    assert texts(sink) == {"first": 1, "cut": 1, "second": 1}
    assert sink.rejected == []  # the cut fragment is not a dead letter
    assert tweet["id"] in {m.external_id for m in sink.mentions}


# --- Mastodon streaming (SSE) ------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [BIG, HUGE])
async def test_mastodon_skips_over_long_lines_with_a_warning_and_delivers_the_next_mentions(fm, masto_url, session,
                                                                                           caplog, size):
    sink = RecordingSink()
    async with running(_masto(masto_url, session), sink, None):
        await _streaming(fm, sink, lambda: fm.add_mention("ann@x.org", "first"))
        fm.push_raw(b":" + b"a" * size + b"\n")  # an over-long comment
        fm.push_raw(b"event: notification\ndata: " + b"b" * size + b"\n\n")  # an over-long event
        fm.add_mention("bob@x.org", "second")
        async with asyncio.timeout(5):
            while len(_skip_warnings(caplog)) < 2:
                await asyncio.sleep(0.01)
        fm.add_mention("cyd@x.org", "third")  # after the skips: on the same stream
        await sink.wait_for(lambda s: "third" in texts(s))
    assert texts(sink) == {"first": 1, "second": 1, "third": 1}
    assert sink.rejected == []
    assert fm.stream_connections == 1


async def test_mastodon_a_mention_whose_event_is_too_long_is_recovered_by_a_poll(fm, masto_url, session):
    sink = RecordingSink()
    async with running(_masto(masto_url, session), sink, None):
        await _streaming(fm, sink, lambda: fm.add_mention("ann@x.org", "first"))
        fm.pad_stream_next = BIG
        fm.add_mention("cat@x.org", "huge")
        fm.add_mention("bob@x.org", "second")
        await sink.wait_for(lambda s: {"huge", "second"} <= set(texts(s)))
    assert texts(sink) == {"first": 1, "huge": 1, "second": 1}
    assert [m.text for m in sink.mentions][-2:] == ["@brand huge", "@brand second"]


@pytest.mark.parametrize("frame", [
    b"event: notification\ndata: not json\n\n", b"event: notification\ndata: \xff\xfe\n\n",
    b"event: notification\ndata: [1, 2]\n\n", b'event: notification\ndata: {"id": 5}\n\n',
    b'event: notification\ndata: {"id": "7", "type": "mention", "status": "gone"}\n\n',
    b"event: update\ndata: {}\n\n", b"data: only data\n\n", b"retry: 10\nid: 3\n\n", b"\n\n\n",
])
async def test_mastodon_a_frame_of_garbage_is_a_dead_letter_or_nothing_and_the_stream_goes_on(fm, masto_url,
                                                                                              session, frame):
    sink = RecordingSink()
    async with running(_masto(masto_url, session), sink, None):
        await _streaming(fm, sink, lambda: fm.add_mention("ann@x.org", "first"))
        fm.push_raw(frame)
        fm.add_mention("bob@x.org", "second")
        await sink.wait_for(lambda s: "second" in texts(s))
    assert texts(sink) == {"first": 1, "second": 1}
    assert fm.stream_connections == 1


async def test_mastodon_a_status_that_html_parser_refuses_is_still_a_mention(fm, masto_url, session):
    """html.parser raises AssertionError on an unknown marked section; that used to end run()."""
    sink = RecordingSink()
    async with running(_masto(masto_url, session), sink, None):
        await _streaming(fm, sink, lambda: fm.add_mention("ann@x.org", "first"))
        fm.add_mention("eve@x.org", "<![foo[bar]]> broken")
        fm.add_mention("bob@x.org", "second")
        await sink.wait_for(lambda s: "second" in texts(s))
    assert texts(sink) == {"first": 1, "<![foo[bar]]> broken": 1, "second": 1}


async def test_mastodon_a_chunked_stream_cut_mid_line_reconnects_and_the_poll_recovers_the_mention(fm, masto_url,
                                                                                                  session):
    sink = RecordingSink()
    async with running(_masto(masto_url, session), sink, None):
        await _streaming(fm, sink, lambda: fm.add_mention("ann@x.org", "first"))
        fm.abort_streams(b'event: notification\ndata: {"id": "1')
        fm.add_mention("dan@x.org", "cut")  # queued after the cut: this stream never sends it
        await sink.wait_for(lambda s: "cut" in texts(s) and fm.stream_connections >= 2, timeout=10)
        fm.add_mention("bob@x.org", "second")
        await sink.wait_for(lambda s: "second" in texts(s))
    assert texts(sink) == {"first": 1, "cut": 1, "second": 1}
    assert sink.rejected == []


# --- Mastodon Link headers ---------------------------------------------------------------------------------


def _masto_poll(url: str, session: aiohttp.ClientSession) -> mastodon.MastodonConnector:
    table = {"account": "brand", "base_url": url, "token_env": "T", "mode": "poll", "poll_interval": "10ms",
             "backoff_base": "1ms", "limit": 5}
    return mastodon.MastodonConnector("m1", mastodon.parse_options(table, "connectors.m1"), session=session,
                                      token=fake_mastodon.TOKEN, sleep=Sleeps())


async def test_mastodon_never_sends_its_token_to_a_link_off_the_instance_but_reads_the_page_from_it(fm, masto_url, session, caplog):
    elsewhere = fake_mastodon.FakeMastodon()  # another server, recording what it is asked
    cursor = fm.add_mention("early@x.org", "already handled")["id"]
    for i in range(7):
        fm.add_mention("ann@x.org", f"gap {i}")
    sink = RecordingSink()
    async for other in _served(elsewhere.app):
        fm.link_base = other
        conn = _masto_poll(masto_url, session)
        async with running(conn, sink, cursor):
            await sink.wait_for(lambda s: len(texts(s)) == 7)
        assert elsewhere.requests == []
    assert [len(b.mentions) for b in sink.batches[:2]] == [5, 2]  # the next page read from the instance
    assert conn.last_error is None
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert [w for w in warnings if "Link to" in w] == [f"connector m1: Link to {other} read from {masto_url} instead"]


async def test_mastodon_an_unreadable_link_ends_the_poll_and_the_next_one_goes_on(fm, masto_url, session, caplog):
    cursor = fm.add_mention("early@x.org", "already handled")["id"]
    for i in range(7):
        fm.add_mention("ann@x.org", f"gap {i}")
    fm.link_base = "http://[::1"
    sink, conn = RecordingSink(), _masto_poll(masto_url, session)
    async with running(conn, sink, cursor):
        await sink.wait_for(lambda s: len(texts(s)) == 7)
    assert conn.last_error is None
    assert any("unreadable Link" in r.getMessage() for r in caplog.records)


async def test_mastodon_follows_a_relative_link_within_one_poll(fm, masto_url, session):
    cursor = fm.add_mention("early@x.org", "already handled")["id"]
    for i in range(7):
        fm.add_mention("ann@x.org", f"gap {i}")
    fm.link_base = ""
    sink, conn = RecordingSink(), _masto_poll(masto_url, session)
    async with running(conn, sink, cursor):
        await sink.wait_for(lambda s: len(texts(s)) == 7)
    assert [len(b.mentions) for b in sink.batches[:2]] == [5, 2]
    assert [r for r in fm.requests if "/notifications" in r][1].endswith(f"min_id={sink.batches[0].cursor}")
    assert conn.last_error is None
