"""A fault-injecting reverse proxy for the fake networks: 5xx, 429 with Retry-After (or the network's own way
of saying it), slow, truncated and cut-off answers, connections dropped mid-body, streams dropped
mid-message; decided by a seeded Random, counted per kind. Also the harness the fault tests share."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.fakes.sink import RecordingSink

HOP_BY_HOP = {"host", "content-length", "transfer-encoding", "connection", "content-encoding", "keep-alive"}


@dataclass(frozen=True, slots=True)
class Faults:
    """How often each fault happens (per request, or per streamed chunk for `cut_stream`)."""

    server_error: float = 0.10
    rate_limit: float = 0.04
    truncate: float = 0.04
    slow: float = 0.05
    slow_s: float = 0.05
    cut_stream: float = 0.25
    retry_after: tuple[int, ...] = (1, 2, 7, 30)
    drop: float = 0.0  # the full Content-Length announced, part of the body sent, the connection closed


# How a network says "too many requests": (HTTP status, headers, JSON body) for a wait of `seconds`.
RateLimitAnswer = Callable[[int, random.Random], tuple[int, dict[str, str], dict[str, Any]]]


def retry_after_429(seconds: int, _rng: random.Random) -> tuple[int, dict[str, str], dict[str, Any]]:
    """The HTTP way: 429 with Retry-After in seconds."""
    return 429, {"Retry-After": str(seconds)}, {"error": "Too Many Requests"}


class ChaosProxy:
    """An aiohttp application forwarding every request to `upstream`, failing some of them on purpose.
    `calls` keeps (clock(), what happened) per request, to check that nothing was asked during a wait."""

    def __init__(self, upstream: str, seed: int, faults: Faults | None = None, *,
                 rate_limit: RateLimitAnswer = retry_after_429, clock: Callable[[], float] | None = None) -> None:
        self.upstream = upstream.rstrip("/")
        self.faults = faults or Faults()
        self.rng = random.Random(seed)
        self.rate_limit = rate_limit
        self.clock = clock or asyncio.get_running_loop().time
        self.calls: list[tuple[float, str]] = []
        self.injected: Counter[str] = Counter()
        self.retry_afters: list[float] = []
        self.forwarded = 0
        self.enabled = True
        self._session: aiohttp.ClientSession | None = None
        self.app = web.Application()
        self.app.router.add_route("*", "/{tail:.*}", self.handle)
        self.app.on_cleanup.append(self._close)

    async def _close(self, _app: web.Application) -> None:
        if self._session is not None:
            await self._session.close()

    def _roll(self, rate: float) -> bool:
        return self.enabled and self.rng.random() < rate

    def _note(self, what: str, injected: bool = True) -> None:
        self.calls.append((self.clock(), what))
        if injected:
            self.injected[what] += 1

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if self._roll(self.faults.server_error):
            status = self.rng.choice((500, 502, 503, 504))
            self._note(f"http_{status}")
            return web.Response(status=status, text="chaos")
        if self._roll(self.faults.rate_limit):
            wait = self.rng.choice(self.faults.retry_after)
            self._note("rate_limited")
            self.retry_afters.append(float(wait))
            status, headers, body = self.rate_limit(wait, self.rng)
            return web.json_response(body, status=status, headers=headers)
        if self._roll(self.faults.slow):
            self.injected["slow"] += 1
            await asyncio.sleep(self.faults.slow_s)
        self._session = self._session or aiohttp.ClientSession(auto_decompress=False)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        self.forwarded += 1
        self._note("forwarded", injected=False)
        async with self._session.request(request.method, self.upstream + request.path_qs, headers=headers,
                                         data=await request.read(), timeout=aiohttp.ClientTimeout(total=None)) as up:
            out_headers = {k: v for k, v in up.headers.items() if k.lower() not in HOP_BY_HOP}
            streaming = up.content_length is None and up.headers.get("Transfer-Encoding", "").lower() == "chunked"
            if streaming:
                return await self._stream(request, up, out_headers)
            body = await up.read()
            if len(body) > 1 and self._roll(self.faults.drop):
                return await self._drop(request, up.status, out_headers, body)
            if body and self._roll(self.faults.truncate):
                self.injected["truncated"] += 1
                body = body[: self.rng.randrange(len(body))]
            return web.Response(status=up.status, body=body, headers=out_headers)

    async def _drop(self, request: web.Request, status: int, headers: dict[str, str], body: bytes) -> web.StreamResponse:
        """Announce the whole body, send part of it, hang up: the client sees a payload error."""
        self.injected["dropped_mid_body"] += 1
        resp = web.StreamResponse(status=status, headers=headers)
        resp.content_length = len(body)
        await resp.prepare(request)
        await resp.write(body[: self.rng.randrange(1, len(body))])
        if request.transport is not None:
            request.transport.close()
        return resp

    async def _stream(self, request: web.Request, up: aiohttp.ClientResponse, headers: dict[str, str]) -> web.StreamResponse:
        resp = web.StreamResponse(status=up.status, headers=headers)
        await resp.prepare(request)
        try:
            async for chunk in up.content.iter_any():
                if len(chunk) > 8 and self._roll(self.faults.cut_stream):
                    self.injected["stream_cut_mid_message"] += 1
                    await resp.write(chunk[: self.rng.randrange(1, len(chunk))])
                    return resp  # the stream ends in the middle of a message
                await resp.write(chunk)
        except (ConnectionResetError, aiohttp.ClientConnectionResetError):
            pass  # the connector went away (cancelled at the end of a test)
        return resp

    @property
    def total_injected(self) -> int:
        """Every fault injected so far."""
        return sum(self.injected.values())


# ---------------------------------------------------------------- the harness the fault tests share

FIGURES: list[dict[str, Any]] = []  # one row per fault run, read by benchmarks/reliability.py


class Sleeps(list):
    """Records every wait the connector asks for, and waits only a moment."""

    async def __call__(self, seconds: float) -> None:
        self.append(seconds)
        await asyncio.sleep(min(seconds, 0.005))


@contextlib.asynccontextmanager
async def behind_chaos(app: Any, seed: int, faults: Faults | None = None, **proxy: Any) -> AsyncIterator[tuple[str, ChaosProxy]]:
    """The fake served on a local port, and a chaos proxy in front of it; yields the proxy's URL."""
    async with TestServer(app) as upstream:
        chaos = ChaosProxy(str(upstream.make_url("")), seed, faults, **proxy)
        async with TestServer(chaos.app) as front:
            yield str(front.make_url("")).rstrip("/"), chaos


@contextlib.asynccontextmanager
async def running(conn: Any, sink: RecordingSink, cursor: str | None) -> AsyncIterator[None]:
    """The connector's run loop as a task, cancelled on exit; it must not have died on its own."""
    task = asyncio.create_task(conn.run(sink, cursor))
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        assert not task.done() or task.cancelled() or task.exception() is None


def texts(sink: RecordingSink) -> Counter[str]:
    """How many times each mention text reached the sink (the brand's handle left out)."""
    return Counter(m.text.removeprefix("@brand ").strip() for m in sink.mentions)
