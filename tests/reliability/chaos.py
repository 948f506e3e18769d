"""A fault-injecting reverse proxy for the fake networks: 5xx, 429 with Retry-After, slow, truncated and
cut-off answers, streams dropped mid-message; decided by a seeded Random, counted per kind."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from dataclasses import dataclass

import aiohttp
from aiohttp import web

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


class ChaosProxy:
    """An aiohttp application forwarding every request to `upstream`, failing some of them on purpose."""

    def __init__(self, upstream: str, seed: int, faults: Faults | None = None) -> None:
        self.upstream = upstream.rstrip("/")
        self.faults = faults or Faults()
        self.rng = random.Random(seed)
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

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if self._roll(self.faults.server_error):
            status = self.rng.choice((500, 502, 503, 504))
            self.injected[f"http_{status}"] += 1
            return web.Response(status=status, text="chaos")
        if self._roll(self.faults.rate_limit):
            wait = self.rng.choice(self.faults.retry_after)
            self.injected["http_429"] += 1
            self.retry_afters.append(float(wait))
            return web.json_response({"error": "Too Many Requests"}, status=429, headers={"Retry-After": str(wait)})
        if self._roll(self.faults.slow):
            self.injected["slow"] += 1
            await asyncio.sleep(self.faults.slow_s)
        self._session = self._session or aiohttp.ClientSession(auto_decompress=False)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        self.forwarded += 1
        async with self._session.request(request.method, self.upstream + request.path_qs, headers=headers,
                                         data=await request.read(), timeout=aiohttp.ClientTimeout(total=None)) as up:
            out_headers = {k: v for k, v in up.headers.items() if k.lower() not in HOP_BY_HOP}
            streaming = up.content_length is None and up.headers.get("Transfer-Encoding", "").lower() == "chunked"
            if streaming:
                return await self._stream(request, up, out_headers)
            body = await up.read()
            if body and self._roll(self.faults.truncate):
                self.injected["truncated"] += 1
                body = body[: self.rng.randrange(len(body))]
            return web.Response(status=up.status, body=body, headers=out_headers)

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
