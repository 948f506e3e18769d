"""The Bluesky connector against a fake XRPC server on a local port."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from carebox.errors import AuthenticationFailed, ConnectorUnavailable, ReplyRejected
from carebox.ports import OutboundReply
from connectors.social import bluesky
from tests.fakes.bluesky import APP_PASSWORD, BRAND_DID, BRAND_HANDLE, FakeBluesky
from tests.fakes.sink import RecordingSink

OLD = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def fake():
    return FakeBluesky()


@pytest.fixture
async def server(fake):
    async with TestServer(fake.app()) as srv:
        yield srv


@pytest.fixture
async def session():
    async with aiohttp.ClientSession() as s:
        yield s


class Sleeps:
    """An injected sleep that records the delays asked for and only yields to the loop."""

    def __init__(self):
        self.asked: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.asked.append(seconds)
        await asyncio.sleep(0)


def make(server, session, sleeps=None, password=APP_PASSWORD, **extra):
    options = {"name": "bsky-acme", "account": BRAND_HANDLE, "app_password_env": "BSKY_PW",
               "service_url": str(server.make_url("")), "poll_interval": 0.01, **extra}
    opts = bluesky.parse_options(options, "connectors.bsky-acme")
    return bluesky.BlueskyConnector(opts, password, session=session, sleep=sleeps or Sleeps())


@contextlib.asynccontextmanager
async def running(conn, sink, cursor=None):
    task = asyncio.create_task(conn.run(sink, cursor))
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task


def seed(fake):
    root = fake.add_post(BRAND_DID, BRAND_HANDLE, "Maintenance ce soir.", notify=False)
    fake.add_post("did:plc:marie", "marie.bsky.social", f"@{BRAND_HANDLE} plus de réseau",
                  name="Marie", followers=5120)
    fake.add_post("did:plc:paul", "paul.bsky.social", "Chez moi aussi", reason="reply",
                  parent=root["uri"], followers=3)
    fake.add_post("did:plc:zoe", "zoe.bsky.social", "lol", reason="quote", parent=root["uri"])
    fake.add_post("did:plc:liker", "liker.bsky.social", "", reason="like", parent=root["uri"])
    return root


async def test_mentions_replies_and_quotes_arrive_oldest_first_with_followers(fake, server, session):
    seed(fake)
    sink = RecordingSink()
    async with running(make(server, session), sink, bluesky.encode_cursor(OLD, ())):
        await sink.wait_for(lambda s: s.mentions)
    handles = [m.author_handle for m in sink.mentions]
    assert handles == ["marie.bsky.social", "paul.bsky.social", "zoe.bsky.social"]
    assert [m.followers for m in sink.mentions] == [5120, 3, 10]
    assert sink.mentions[1].in_reply_to == sink.mentions[1].thread_key
    assert sink.batches[0].source == "bsky-acme" and sink.cursor is not None
    assert any("reasons=mention" in q and "reasons=quote" in q for _, q in fake.requests)


async def test_pages_back_until_the_cursor_and_hands_over_one_batch(fake, server, session):
    for i in range(7):
        fake.add_post(f"did:plc:c{i}", f"c{i}.bsky.social", f"@{BRAND_HANDLE} panne {i}")
    conn = make(server, session, page_limit=3)
    batch, _ = await conn.poll_once((OLD, frozenset()))
    assert [m.text[-1] for m in batch.mentions] == list("0123456")
    assert sum(1 for nsid, _ in fake.requests if nsid.endswith("listNotifications")) == 3


async def test_first_run_without_cursor_reads_only_the_newest_page(fake, server, session):
    for i in range(5):
        fake.add_post(f"did:plc:c{i}", f"c{i}.bsky.social", f"@{BRAND_HANDLE} n{i}")
    batch, _ = await make(server, session, page_limit=2).poll_once(None)
    assert [m.text for m in batch.mentions] == ["@acme.bsky.social n3", "@acme.bsky.social n4"]


async def test_restart_from_cursor_reads_new_mentions_only_once(fake, server, session):
    seed(fake)
    first = RecordingSink()
    async with running(make(server, session), first):
        await first.wait_for(lambda s: s.cursor)
    fake.add_post("did:plc:new", "new.bsky.social", f"@{BRAND_HANDLE} toujours rien")
    second = RecordingSink()
    async with running(make(server, session), second, first.cursor):
        await second.wait_for(lambda s: s.mentions)
        await asyncio.sleep(0.05)  # let it poll a few more times: nothing else may arrive
    assert [m.author_handle for m in second.mentions] == ["new.bsky.social"]
    assert {m.external_id for m in first.mentions}.isdisjoint(m.external_id for m in second.mentions)


async def test_expired_access_token_is_refreshed_not_recreated(fake, server, session):
    conn = make(server, session)
    await conn.poll_once(None)
    fake.expire_access_tokens()
    fake.add_post("did:plc:m", "m.bsky.social", f"@{BRAND_HANDLE} allo")
    batch, _ = await conn.poll_once(None)
    assert [m.author_handle for m in batch.mentions] == ["m.bsky.social"]
    assert (fake.sessions_created, fake.refreshes) == (1, 1)


async def test_rate_limit_waits_retry_after_then_recovers_and_logs_once(fake, server, session, caplog):
    seed(fake)
    fake.fail_next(429, retry_after=42)
    fake.fail_next(500, times=2)
    sleeps, sink = Sleeps(), RecordingSink()
    conn = make(server, session, sleeps)
    with caplog.at_level(logging.INFO, logger="connectors.social.bluesky"):
        async with running(conn, sink):
            await sink.wait_for(lambda s: s.mentions)
    assert sleeps.asked[0] == 42
    assert conn.last_error is None and conn.last_ok_at is not None
    messages = [r.getMessage() for r in caplog.records]
    assert sum("unavailable" in m for m in messages) == 1 and sum(m.endswith(" back") for m in messages) == 1


async def test_rate_limit_without_retry_after_waits_until_ratelimit_reset(fake, server, session):
    seed(fake)
    fake.fail_next(429, reset_in=120)
    sleeps, sink = Sleeps(), RecordingSink()
    async with running(make(server, session, sleeps), sink):
        await sink.wait_for(lambda s: s.mentions)
    assert 100 < sleeps.asked[0] <= 120


async def test_wrong_app_password_stops_with_authentication_failed(fake, server, session):
    conn = make(server, session, password="wrong")
    with pytest.raises(AuthenticationFailed):
        await conn.run(RecordingSink(), None)
    assert conn.last_error and "401" in conn.last_error


async def test_malformed_json_answer_is_retried(fake, server, session):
    seed(fake)
    fake.malformed_next = 1
    sink, conn = RecordingSink(), make(server, session)
    async with running(conn, sink):
        await sink.wait_for(lambda s: s.mentions)
    assert len(sink.mentions) == 3


async def test_unparseable_notification_becomes_a_rejected_payload(fake, server, session):
    note = fake.add_post("did:plc:m", "m.bsky.social", "x")
    note["record"] = {"$type": "app.bsky.feed.post"}
    batch, _ = await make(server, session).poll_once(None)
    assert batch.mentions == () and "text" in batch.rejected[0].reason
    assert '"did:plc:m"' in batch.rejected[0].payload


async def test_undated_notification_is_rejected_once_not_at_every_poll(fake, server, session):
    note = fake.add_post("did:plc:m", "m.bsky.social", f"@{BRAND_HANDLE} x")
    note["indexedAt"] = "unknown"
    fake.add_post("did:plc:n", "n.bsky.social", f"@{BRAND_HANDLE} y")
    sink = RecordingSink()
    async with running(make(server, session), sink):
        await sink.wait_for(lambda s: s.mentions)
        async with asyncio.timeout(5):
            while sum(1 for n, _ in fake.requests if n.endswith("listNotifications")) < 4:
                await asyncio.sleep(0.01)
    assert len(sink.rejected) == 1 and "indexedAt" in sink.rejected[0].reason


async def test_private_reply_is_rejected_without_posting(fake, server, session):
    with pytest.raises(ReplyRejected):
        await make(server, session).send_reply(OutboundReply(
            network="bluesky", account=BRAND_HANDLE, in_reply_to="at://x/app.bsky.feed.post/1", text="hi", public=False))
    assert fake.posted == []


async def test_profiles_are_fetched_25_actors_at_a_time(fake, server, session):
    for i in range(30):
        fake.add_post(f"did:plc:p{i}", f"p{i}.bsky.social", f"@{BRAND_HANDLE} {i}", followers=i)
    batch, _ = await make(server, session, page_limit=100).poll_once(None)
    assert [m.followers for m in batch.mentions] == list(range(30))
    assert sum(1 for nsid, _ in fake.requests if nsid == "app.bsky.actor.getProfiles") == 2


async def test_reply_to_a_reply_carries_thread_root_parent_and_customer_facet(fake, server, session):
    root = seed(fake)
    paul = next(n for n in fake.notifications if n["author"]["handle"] == "paul.bsky.social")
    sent = await make(server, session).send_reply(OutboundReply(
        network="bluesky", account=BRAND_HANDLE, in_reply_to=paul["uri"], text="Désolé @paul.bsky.social, on regarde",
        customer_handle="paul.bsky.social", customer_id="did:plc:paul"))
    (posted,) = fake.posted
    record = posted["record"]
    assert posted["repo"] == BRAND_DID and posted["collection"] == "app.bsky.feed.post"
    assert record["reply"]["root"] == {"uri": root["uri"], "cid": root["cid"]}
    assert record["reply"]["parent"] == {"uri": paul["uri"], "cid": paul["cid"]}
    assert record["facets"] == [{"index": {"byteStart": 9, "byteEnd": 26}, "features": [
        {"$type": "app.bsky.richtext.facet#mention", "did": "did:plc:paul"}]}]
    assert sent.external_id.startswith(f"at://{BRAND_DID}/") and sent.url.startswith("https://bsky.app/profile/")


async def test_reply_to_an_unknown_post_is_rejected(fake, server, session):
    with pytest.raises(ReplyRejected):
        await make(server, session).send_reply(OutboundReply(
            network="bluesky", account=BRAND_HANDLE, in_reply_to="at://did:plc:x/app.bsky.feed.post/nope", text="hi"))
    assert fake.posted == []


async def test_slow_server_times_out_as_unavailable(fake, server, session):
    fake.delay = 0.5
    with pytest.raises(ConnectorUnavailable, match="Timeout"):
        await make(server, session, timeout=0.05).poll_once(None)
