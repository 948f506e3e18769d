"""`carebox serve` with `[inbox] processes = 2`, for real: two processes answer on one port, and every page
(whichever process serves it) gets the live events of the other process and knows who is viewing."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest

pytestmark = [pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "s3cret-pass"
STREAMS = 12  # live streams on separate connections: the kernel spreads them over both processes
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _carebox(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "carebox", *args], cwd=ROOT, check=True, capture_output=True)


async def _login(base: str, username: str) -> tuple[aiohttp.CookieJar, str]:
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(base, cookie_jar=jar) as s:
        token = CSRF.search(await (await s.get("/login")).text()).group(1)
        await s.post("/login", data={"username": username, "password": PASSWORD, "csrf": token}, allow_redirects=False)
        token = CSRF.search(await (await s.get("/")).text()).group(1)
    return jar, token


async def _until(stream: aiohttp.ClientResponse, pattern: str, timeout: float = 20.0) -> str:
    buffer = ""
    async with asyncio.timeout(timeout):
        while not re.search(pattern, buffer):
            buffer += (await stream.content.readany()).decode()
    return buffer


async def _scenario(base: str) -> None:
    agent_jar, agent_csrf = await _login(base, "agent")
    bea_jar, bea_csrf = await _login(base, "bea")
    sessions = [aiohttp.ClientSession(base, cookie_jar=agent_jar) for _ in range(STREAMS)]
    streams: list[aiohttp.ClientResponse] = []
    try:
        streams += [await s.get("/events") for s in sessions]
        # mentions stored by the main process (the simulator runs there) reach the pages of both processes
        await asyncio.gather(*(_until(st, r"event: mention") for st in streams))
        # an event that happened in whichever process answered Bea reaches every page, once
        async with aiohttp.ClientSession(base, cookie_jar=bea_jar) as bea:
            said = await bea.post("/conversations/1/presence", data={"state": "viewing"},
                                  headers={"X-CSRF-Token": bea_csrf})
            assert said.status == 200
        seen = await asyncio.gather(*(_until(st, r'event: presence\ndata: [^\n]*"bea"') for st in streams))
        assert all(s.count('"username":"bea"') >= 1 for s in seen)
        # and both processes know she is there: asked on fresh connections, every answer lists her
        for _ in range(6):
            async with aiohttp.ClientSession(base, cookie_jar=agent_jar) as s:
                people = await (await s.post("/conversations/1/presence", data={"state": "viewing"},
                                             headers={"X-CSRF-Token": agent_csrf})).json()
                assert {p["username"] for p in people["people"]} == {"agent", "bea"}
    finally:
        for st in streams:
            st.close()
        for s in sessions:
            await s.close()


def test_two_processes_serve_one_port_and_share_live_events_and_presence(tmp_path: Path):
    port = _free_port()
    config = tmp_path / "carebox.toml"
    config.write_text(f"""
[carebox]
data_dir = "{tmp_path}"
[web]
port = {port}
[inbox]
processes = 2
[[connectors]]
type = "simulator"
name = "sim"
account = "acme"
rate = 600
backlog = 0
outage_every = "0"
""")
    for name in ("agent", "bea"):
        _carebox("user", "add", name, "--password", PASSWORD, "--config", str(config))
    log = tmp_path / "serve.log"
    with log.open("w") as out:
        server = subprocess.Popen([sys.executable, "-m", "carebox", "serve", "--config", str(config)], cwd=ROOT,
                                  stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        deadline = time.monotonic() + 90
        while "more web processes serve the inbox" not in log.read_text():
            assert server.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        asyncio.run(_scenario(f"http://127.0.0.1:{port}"))
        # a web process that dies is started again; meanwhile the others keep answering
        pid = int(re.search(r"more web processes serve the inbox \(pids (\d+)\)", log.read_text()).group(1))
        os.kill(pid, signal.SIGKILL)
        while "serves the inbox again" not in log.read_text():
            assert server.poll() is None and time.monotonic() < deadline + 60, log.read_text()
            time.sleep(0.2)
        assert f"pid {pid}) exited with -9" in log.read_text()
        asyncio.run(_login(f"http://127.0.0.1:{port}", "agent"))
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(30)
        finally:
            server.kill()
    assert server.returncode == 0, log.read_text()
    assert "Traceback" not in log.read_text()
    with socket.socket() as s:  # the web process stopped with the main process: nobody listens any more
        assert s.connect_ex(("127.0.0.1", port)) != 0
