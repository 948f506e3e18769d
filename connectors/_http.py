"""The one place that maps HTTP failures to carebox errors, and the shared retry/backoff policy."""

from __future__ import annotations

import asyncio
import email.utils
import logging
import math
import random
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, NoReturn, TypeVar

import aiohttp
import orjson

from carebox.errors import (
    AuthenticationFailed,
    BadPayload,
    ConnectorError,
    ConnectorUnavailable,
    RateLimited,
    ReplyRejected,
)
from connectors._time import parse_iso

log = logging.getLogger(__name__)
T = TypeVar("T")

DEFAULT_RETRY_AFTER = 60.0


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if math.isfinite(seconds) else None  # "inf" would wait forever
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def parse_rate_reset(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds until an `x-rate-limit-reset` / `x-ratelimit-reset` epoch or ISO timestamp."""
    if not value:
        return None
    now = now or datetime.now(UTC)
    try:
        epoch = float(value)
    except ValueError:
        pass
    else:
        return max(0.0, epoch - now.timestamp()) if math.isfinite(epoch) else None
    try:
        return max(0.0, (parse_iso(value, "rate limit reset") - now).total_seconds())
    except BadPayload:  # a zone-less time used to escape as TypeError
        return None


def error_for_status(connector: str, status: int, headers: Any, body: str = "") -> ConnectorError:
    """The carebox error for a non-2xx answer."""
    detail = f"HTTP {status}: {body[:200]}" if body else f"HTTP {status}"
    if status == 429:
        wait = parse_retry_after(headers.get("Retry-After"))
        if wait is None:
            wait = parse_rate_reset(headers.get("x-rate-limit-reset") or headers.get("x-ratelimit-reset"))
        return RateLimited(connector, DEFAULT_RETRY_AFTER if wait is None else wait, detail)
    if status in (401, 403):
        return AuthenticationFailed(connector, detail)
    if status >= 500 or status == 408:
        return ConnectorUnavailable(connector, detail)
    return ReplyRejected(connector, detail)


async def request_json(
    session: aiohttp.ClientSession,
    connector: str,
    method: str,
    url: str,
    *,
    timeout: float = 30.0,
    **kwargs: Any,
) -> tuple[Any, Any]:
    """Send one request; return (decoded JSON body, response headers) or raise a carebox error."""
    try:
        async with session.request(
            method, url, timeout=aiohttp.ClientTimeout(total=timeout), **kwargs
        ) as resp:
            body = await resp.read()
            if resp.status >= 400:
                raise error_for_status(connector, resp.status, resp.headers, body.decode("utf-8", "replace"))
            if not body:
                return None, resp.headers
            try:
                return orjson.loads(body), resp.headers
            except orjson.JSONDecodeError as err:
                raise ConnectorUnavailable(connector, "response is not valid JSON") from err
    except (TimeoutError, aiohttp.ClientError) as err:
        raise ConnectorUnavailable(connector, f"{type(err).__name__}: {err}") from err


MAX_LINE_BYTES = 128 * 1024  # aiohttp's own line limit: no X tweet or Mastodon event comes near it


async def read_stream(
    session: aiohttp.ClientSession,
    connector: str,
    url: str,
    *,
    on_open: Callable[[], Awaitable[None]],
    on_line: Callable[[bytes], Awaitable[None]],
    on_skip: Callable[[int], Awaitable[None]] | None = None,
    connect_timeout: float,
    idle_timeout: float,
    max_line: int = MAX_LINE_BYTES,
    **kwargs: Any,
) -> NoReturn:
    """Read a long-lived line stream (X filtered stream, SSE) until it fails: it only ends in a carebox error."""
    # on_open runs once connected, before the first line: the caller's catch-up poll. on_line gets each line with
    # its newline; a last fragment without one means the server cut mid-line. A line longer than max_line is
    # dropped, not buffered (a broken or hostile server must not stop the connector nor fill the memory), with a
    # warning; on_skip gets its size once its end is read, so that the caller can poll for what it held. Silence
    # past idle_timeout and a close by the server are ConnectorUnavailable: the caller backs off and reconnects.
    timeout = aiohttp.ClientTimeout(total=None, connect=connect_timeout, sock_read=idle_timeout)

    async def emit(item: bytes | int) -> None:
        if isinstance(item, bytes):
            await on_line(item)
            return
        log.warning("%s: skipped a stream line of %d bytes, over the %d-byte limit", connector, item, max_line)
        if on_skip is not None:
            await on_skip(item)

    try:
        async with session.get(url, timeout=timeout, **kwargs) as resp:
            if resp.status >= 400:
                raise error_for_status(connector, resp.status, resp.headers, (await resp.text())[:200])
            await on_open()
            lines = _LineSplitter(max_line)
            async for chunk in resp.content.iter_any():
                for item in lines.feed(chunk):
                    await emit(item)
            if (rest := lines.rest()) is not None:
                await emit(rest)
    except (TimeoutError, aiohttp.ClientError) as err:
        raise ConnectorUnavailable(connector, f"stream: {type(err).__name__}: {err}") from err
    raise ConnectorUnavailable(connector, "stream closed by the server")


class _LineSplitter:
    """Cuts chunks into lines (newline kept); a line past `limit` bytes comes out as its size (an int) instead."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._buffer = bytearray()
        self._skipped = 0  # > 0 while dropping the rest of an over-long line

    def feed(self, chunk: bytes) -> list[bytes | int]:
        """The lines (or over-long line sizes) that `chunk` completes."""
        out: list[bytes | int] = []
        start = 0
        while (end := chunk.find(b"\n", start)) != -1:
            if self._skipped:
                out.append(self._skipped + end + 1 - start)
                self._skipped = 0
            elif len(self._buffer) + end + 1 - start > self._limit:
                out.append(len(self._buffer) + end + 1 - start)
                self._buffer.clear()
            else:
                self._buffer += chunk[start : end + 1]
                out.append(bytes(self._buffer))
                self._buffer.clear()
            start = end + 1
        if self._skipped:
            self._skipped += len(chunk) - start
        elif len(self._buffer) + len(chunk) - start > self._limit:
            self._skipped = len(self._buffer) + len(chunk) - start
            self._buffer.clear()
        else:
            self._buffer += chunk[start:]
        return out

    def rest(self) -> bytes | int | None:
        """At the end of the stream: the fragment cut mid-line, the size of a cut over-long line, or None."""
        if self._skipped:
            return self._skipped
        return bytes(self._buffer) if self._buffer else None


class Backoff:
    """Exponential backoff with full jitter that honours a server's Retry-After."""

    def __init__(self, base: float = 1.0, cap: float = 300.0, rng: random.Random | None = None) -> None:
        self.base = base
        self.cap = cap
        self.attempt = 0
        self._rng = rng or random.Random()

    def reset(self) -> None:
        """Call after a success."""
        self.attempt = 0

    def delay(self, error: BaseException | None = None) -> float:
        """Seconds to wait before the next attempt after `error`."""
        self.attempt += 1
        if isinstance(error, RateLimited):
            return error.retry_after
        return self._rng.uniform(0, min(self.cap, self.base * 2 ** min(self.attempt, 20)))


async def with_retries(
    call: Callable[[], Awaitable[T]],
    *,
    attempts: int = 5,
    backoff: Backoff | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> T:
    """Run `call`, retrying unavailability and rate limits; auth and rejections are raised at once."""
    backoff = backoff or Backoff()
    for attempt in range(1, attempts + 1):
        try:
            result = await call()
        except (ConnectorUnavailable, RateLimited) as err:
            if attempt == attempts:
                raise
            wait = backoff.delay(err)
            log.info("%s; retrying in %.1fs (attempt %d/%d)", err, wait, attempt, attempts)
            await sleep(wait)
        else:
            backoff.reset()
            return result
    raise AssertionError("unreachable")
