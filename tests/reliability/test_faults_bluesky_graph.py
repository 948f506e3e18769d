"""Bluesky and Facebook (Graph) behind the chaos proxy: 10% 5xx, rate limits the way each network says them,
slow, truncated and dropped answers. Every mention arrives once and whole, the waits asked for are honoured
(measured), and the connectors come back by themselves once the network heals."""

from __future__ import annotations

import asyncio
import math
import os
import random
import time
from collections import Counter
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from connectors._http import Backoff
from connectors.social import bluesky, facebook
from tests.fakes import bluesky as fake_bsky
from tests.fakes import graph as g
from tests.fakes.sink import RecordingSink
from tests.reliability.chaos import (
    FIGURES,
    Faults,
    Sleeps,
    behind_chaos,
    retry_after_429,
    running,
)

SEEDS = tuple(range(1, 1 + int(os.environ.get("CAREBOX_FAULT_SEEDS", "2"))))
WAVES, PER_WAVE = 5, 8
NETWORK_FAULTS = Faults(drop=0.04, retry_after=(1, 2, 7, 30, 300))


# ---------------------------------------------------------------- Bluesky: polling listNotifications


def bluesky_429(seconds: int, rng: random.Random) -> tuple[int, dict[str, str], dict[str, Any]]:
    """What bsky.social answers when throttled: 429 with ratelimit-* headers (reset as an epoch), at times
    with Retry-After instead."""
    if rng.random() < 0.3:
        return retry_after_429(seconds, rng)
    reset = math.ceil(time.time() + seconds)
    return 429, {"ratelimit-limit": "3000", "ratelimit-remaining": "0", "ratelimit-reset": str(reset),
                 "ratelimit-policy": "3000;w=300"}, {"error": "RateLimitExceeded", "message": "Rate Limit Exceeded"}


def _bluesky(url: str, session: aiohttp.ClientSession, sleeps: Sleeps) -> bluesky.BlueskyConnector:
    table = {"name": "bsky", "account": fake_bsky.BRAND_HANDLE, "app_password_env": "BSKY", "service_url": url,
             "poll_interval": "10ms", "page_limit": 5, "timeout": "2s"}
    return bluesky.BlueskyConnector(bluesky.parse_options(table, "connectors.bsky"), fake_bsky.APP_PASSWORD,
                                    session=session, sleep=sleeps, backoff=Backoff(base=0.001, cap=0.5))


def _waits_follow_the_announced_ones(sleeps: list[float], announced: list[float]) -> None:
    """Each rate limit is followed by a wait of its own length (an epoch reset may add up to a second)."""
    long_waits = [s for s in sleeps if s >= 0.9]
    assert len(long_waits) == len(announced), (long_waits, announced)
    for waited, asked in zip(long_waits, announced, strict=True):
        assert asked - 0.5 <= waited <= asked + 1.0, f"asked to wait {asked}s, waited {waited}s"


@pytest.mark.parametrize("seed", SEEDS)
async def test_bluesky_connector_through_faults_delivers_every_mention_once(seed):
    fake = fake_bsky.FakeBluesky()
    early = fake.add_post("did:plc:early", "early.bsky.social", "already handled")
    cursor = bluesky.encode_cursor(bluesky.parse_datetime(early["indexedAt"], "t"), [early["uri"]])
    sleeps, sink, posted = Sleeps(), RecordingSink(), set()
    async with (behind_chaos(fake.app(), seed, NETWORK_FAULTS, rate_limit=bluesky_429) as (url, proxy),
                aiohttp.ClientSession() as session):
        conn = _bluesky(url, session, sleeps)
        async with running(conn, sink, cursor):
            for wave in range(WAVES):
                proxy.enabled = wave < WAVES - 1  # the last wave after the network heals
                for i in range(PER_WAVE):
                    text = f"wave {wave} post {i}: my parcel never came"
                    fake.add_post(f"did:plc:cust{wave}x{i}", f"cust{wave}x{i}.bsky.social", text)
                    posted.add(text)
                await sink.wait_for(lambda s: posted <= {m.text for m in s.mentions}, timeout=30)
                await _keep_talking(proxy, 25 * (wave + 1))
    delivered = Counter(m.text for m in sink.mentions)
    assert set(delivered) == posted and max(delivered.values()) == 1, "lost or duplicated mentions"
    assert proxy.total_injected >= 5, proxy.injected
    _waits_follow_the_announced_ones(sleeps, proxy.retry_afters)
    assert conn.last_error is None, "the connector did not report itself back"
    FIGURES.append({"connector": "bluesky", "mode": "poll", "mentions": len(posted), "faults": dict(proxy.injected),
                    "dead_letters": len(sink.rejected)})


async def _keep_talking(proxy: Any, target: int, limit_s: float = 0.6) -> None:
    """Let the connector poll through the faults a while before the next wave."""
    deadline = asyncio.get_running_loop().time() + limit_s
    while proxy.enabled and proxy.forwarded + proxy.total_injected < target:
        if asyncio.get_running_loop().time() > deadline:
            return
        await asyncio.sleep(0.01)


# ---------------------------------------------------------------- Facebook: webhooks in, Graph lookups


class FakeClock:
    """The connector's monotonic clock, moved on by Meta's redelivery schedule instead of by waiting."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


META_RETRY_S = (15, 60, 180, 600, 1800)  # Meta redelivers an unacknowledged delivery, less and less often
CUT_DELIVERY = 0.15  # Meta's request itself cut mid-body


def graph_throttled(seconds: int, rng: random.Random) -> tuple[int, dict[str, str], dict[str, Any]]:
    """What Graph answers once a limit is hit: an error code 4/17/32/613 (HTTP 400 or 403), usage headers, and
    the minutes to wait in X-Business-Use-Case-Usage (no Retry-After)."""
    code = rng.choice((4, 17, 32, 613))
    usage = {g.PAGE_ID: [{"type": "pages", "call_count": 100, "total_cputime": 31, "total_time": 44,
                          "estimated_time_to_regain_access": seconds // 60}]}
    headers = {"X-App-Usage": orjson.dumps({"call_count": 100, "total_time": 44, "total_cputime": 31}).decode(),
               "X-Business-Use-Case-Usage": orjson.dumps(usage).decode()}
    body = {"error": {"message": f"(#{code}) Application request limit reached", "type": "OAuthException",
                      "is_transient": True, "code": code, "fbtrace_id": "AqX1"}}
    return rng.choice((400, 403)), headers, body


class Meta:
    """Delivers signed webhook payloads to carebox the way Meta does: again and again until answered 200,
    some attempts cut mid-body; keeps every 503 with the Retry-After carebox gave."""

    def __init__(self, server: TestServer, session: aiohttp.ClientSession, clock: FakeClock, seed: int) -> None:
        self.server, self.session, self.clock = server, session, clock
        self.rng = random.Random(seed)
        self.refusals: list[tuple[float, float]] = []  # (clock, Retry-After) of each 503
        self.attempts: Counter[str] = Counter()

    async def deliver(self, body: bytes) -> None:
        for attempt in range(60):
            if self.rng.random() < CUT_DELIVERY:
                await self._cut(body)
            else:
                headers = {"Content-Type": "application/json", facebook.SIGNATURE_HEADER: g.sign(body)}
                async with self.session.post(self.server.make_url("/"), data=body, headers=headers) as resp:
                    self.attempts[str(resp.status)] += 1
                    if resp.status == 200:
                        return
                    assert resp.status == 503, f"unexpected answer {resp.status}: {await resp.text()}"
                    self.refusals.append((self.clock(), float(resp.headers["Retry-After"])))
            self.clock.now += META_RETRY_S[min(attempt, len(META_RETRY_S) - 1)]
        raise AssertionError("carebox never accepted the delivery")

    async def _cut(self, body: bytes) -> None:
        self.attempts["cut"] += 1
        _reader, writer = await asyncio.open_connection(self.server.host, self.server.port)
        head = (f"POST / HTTP/1.1\r\nHost: carebox\r\nContent-Type: application/json\r\n"
                f"{facebook.SIGNATURE_HEADER}: {g.sign(body)}\r\nContent-Length: {len(body)}\r\n\r\n")
        writer.write(head.encode() + body[: self.rng.randrange(1, len(body))])
        await writer.drain()
        writer.close()
        await writer.wait_closed()


def _deliveries(fake: g.FakeGraph, n: int) -> list[tuple[bytes, dict[str, str]]]:
    """Payloads of one page mention (ids only: its text is looked up), one comment and one message each."""
    out = []
    for i in range(n):
        post = f"{g.PAGE_ID}_77{i:04d}"
        fake.objects[post] = {"message": f"mention {i}: the app crashes", "created_time": "2026-03-02T21:14:05+0000",
                              "permalink_url": f"https://www.facebook.com/{post}"}
        entry = g.page_entry([g.page_mention(post), g.feed_comment(f"880_{i}", f"comment {i}: no signal")],
                             [g.messenger(f"m_{i}", f"message {i}: refund please")])
        expected = {post: f"mention {i}: the app crashes", f"880_{i}": f"comment {i}: no signal",
                    f"m_{i}": f"message {i}: refund please"}
        out.append((g.delivery("page", [entry]), expected))
    return out


def _quiet_while_throttled(calls: list[tuple[float, str]], throttles: list[tuple[float, float]]) -> None:
    """No Graph call between a rate limit and the end of the wait it announced."""
    for at, wait in throttles:
        early = [t for t, _ in calls if at < t < at + wait]
        assert not early, f"Graph called {len(early)}x during a {wait}s wait asked at {at}"


@pytest.mark.parametrize("seed", SEEDS)
async def test_facebook_deliveries_through_graph_faults_arrive_once_and_whole(seed):
    fake, clock, sleeps, sink = g.FakeGraph(), FakeClock(), Sleeps(), RecordingSink()
    faults = Faults(rate_limit=0.08, drop=0.04, retry_after=(60, 120, 420))
    payloads = _deliveries(fake, 40)
    async with (behind_chaos(fake.app(), seed, faults, rate_limit=graph_throttled, clock=clock) as (url, proxy),
                aiohttp.ClientSession() as session):
        table = {"name": "fb", "account": "acme", "page_id": g.PAGE_ID, "token_env": "T", "app_secret_env": "S",
                 "verify_token_env": "V", "graph_url": url, "api_version": g.VERSION, "messaging": True,
                 "timeout": "2s"}
        conn = facebook.GraphConnector("facebook", facebook.parse_options(table, "connectors.fb"), g.PAGE_TOKEN,
                                       g.APP_SECRET, g.VERIFY_TOKEN, session=session, sleep=sleeps, clock=clock)
        hooks = web.Application()
        hooks.add_routes(conn.routes(sink))
        async with TestServer(hooks) as server:
            meta = Meta(server, session, clock, seed)
            for n, (body, _) in enumerate(payloads):
                proxy.enabled = n < len(payloads) - 4  # the last deliveries after Graph heals
                await meta.deliver(body)
    got = Counter(m.external_id for m in sink.mentions)
    expected = {k: v for _, exp in payloads for k, v in exp.items()}
    assert set(got) == set(expected) and max(got.values()) == 1, "lost or duplicated mentions"
    assert {m.external_id: m.text for m in sink.mentions} == expected, "a mention arrived without its text"
    throttles = [(t, w) for (t, what), w in zip([c for c in proxy.calls if c[1] == "rate_limited"],
                                                 proxy.retry_afters, strict=True)]
    assert len(throttles) >= 1 and proxy.total_injected >= 5, proxy.injected
    _quiet_while_throttled(proxy.calls, throttles)
    for at, wait in throttles:  # carebox told Meta to come back exactly when Graph lets it call again
        told = [(t, after) for t, after in meta.refusals if at <= t < at + wait]
        assert told, f"no delivery refused during the {wait}s wait asked at {at}"
        assert all(after == math.ceil(at + wait - t) for t, after in told), (at, wait, told)
    assert conn.last_error is None, "the connector did not report itself back"
    FIGURES.append({"connector": "facebook", "mode": "webhook+graph", "mentions": len(expected),
                    "faults": dict(proxy.injected) | {"delivery_cut": meta.attempts["cut"]},
                    "redeliveries": sum(meta.attempts.values()) - len(payloads), "dead_letters": len(sink.rejected)})
