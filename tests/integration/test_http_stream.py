"""The shared line-stream reader of the streaming connectors, against a local aiohttp server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from carebox.errors import AuthenticationFailed, ConnectorUnavailable, RateLimited
from connectors._http import read_stream


async def lines(request: web.Request) -> web.StreamResponse:
    """Two lines, then a fragment without its newline, then the server closes."""
    resp = web.StreamResponse()
    await resp.prepare(request)
    for chunk in (b"one\n", b"two\n", b"thr"):
        await resp.write(chunk)
    await resp.write_eof()
    return resp


async def silent(request: web.Request) -> web.StreamResponse:
    resp = web.StreamResponse()
    await resp.prepare(request)
    await resp.write(b"hello\n")
    await asyncio.sleep(10)
    return resp


async def limited(request: web.Request) -> web.Response:
    return web.Response(status=429, headers={"Retry-After": "7"}, text="slow down")


async def refused(request: web.Request) -> web.Response:
    return web.Response(status=401, text="bad token")


@pytest.fixture
async def base() -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_routes([web.get("/lines", lines), web.get("/silent", silent), web.get("/429", limited),
                           web.get("/401", refused)])
    server = TestServer(app)
    await server.start_server()
    yield str(server.make_url(""))
    await server.close()


async def read(base: str, path: str, got: list[bytes], idle: float = 5.0) -> None:
    async def opened() -> None:
        got.append(b"<open>")

    async def line(data: bytes) -> None:
        got.append(data)

    async with aiohttp.ClientSession() as session:
        await read_stream(session, "s1", base + path, on_open=opened, on_line=line, connect_timeout=5.0,
                          idle_timeout=idle)


async def test_every_line_comes_after_the_open_hook_and_a_server_close_is_unavailable(base):
    got: list[bytes] = []
    with pytest.raises(ConnectorUnavailable, match="stream closed by the server"):
        await read(base, "/lines", got)
    assert got == [b"<open>", b"one\n", b"two\n", b"thr"]  # the cut fragment is the caller's to judge


async def test_a_stream_silent_past_the_idle_timeout_is_unavailable_so_the_caller_reconnects(base):
    got: list[bytes] = []
    with pytest.raises(ConnectorUnavailable, match="stream: .*Timeout"):
        await read(base, "/silent", got, idle=0.2)
    assert got == [b"<open>", b"hello\n"]


@pytest.mark.parametrize(("path", "error"), [("/429", RateLimited), ("/401", AuthenticationFailed)])
async def test_a_refused_connection_is_the_mapped_error_and_the_open_hook_never_runs(base, path, error):
    got: list[bytes] = []
    with pytest.raises(error):
        await read(base, path, got)
    assert got == []


async def test_a_refused_tcp_connection_is_unavailable():
    got: list[bytes] = []
    with pytest.raises(ConnectorUnavailable, match="stream: ClientConnectorError"):
        await read("http://127.0.0.1:9", "/lines", got)
