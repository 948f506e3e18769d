"""A fault-injecting TCP proxy for IMAP: sessions cut in the middle of a FETCH answer or while the client
idles, slow answers and answers held past the client's timeout; decided by a seeded Random, counted per kind."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections import Counter
from dataclasses import dataclass
from typing import Self


@dataclass(frozen=True, slots=True)
class ImapFaults:
    """How often each fault happens, per chunk the server sends."""

    cut_fetch: float = 0.15  # a FETCH answer cut inside the message literal, then the connection closed
    cut_idle: float = 0.25  # the connection closed while the client idles (at "+ idling" or on a push)
    slow: float = 0.10
    slow_s: float = 0.05
    stall: float = 0.03  # an answer held longer than the client waits for it
    stall_s: float = 1.2


class ImapChaos:
    """Listens on 127.0.0.1 and relays each connection to the IMAP server at `upstream_port`, breaking some."""

    def __init__(self, upstream_port: int, seed: int, faults: ImapFaults | None = None) -> None:
        self.upstream_port = upstream_port
        self.faults = faults or ImapFaults()
        self.rng = random.Random(seed)
        self.injected: Counter[str] = Counter()
        self.connections = 0
        self.enabled = True
        self.port = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> Self:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    @property
    def total_injected(self) -> int:
        """Every fault injected so far."""
        return sum(self.injected.values())

    def _roll(self, rate: float) -> bool:
        return self.enabled and self.rng.random() < rate

    async def _relay(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.connections += 1
        server_w: asyncio.StreamWriter | None = None
        try:
            server_r, server_w = await asyncio.open_connection("127.0.0.1", self.upstream_port)
            idling = asyncio.Event()
            pumps = {asyncio.create_task(self._upstream(client_r, server_w, idling)),
                     asyncio.create_task(self._downstream(server_r, client_w, idling))}
            try:
                await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for pump in pumps:
                    pump.cancel()
                await asyncio.gather(*pumps, return_exceptions=True)
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self._tasks.discard(task)
            for writer in (client_w, server_w):
                if writer is not None:
                    writer.close()
                    with contextlib.suppress(ConnectionError, asyncio.CancelledError):
                        await writer.wait_closed()

    async def _upstream(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, idling: asyncio.Event) -> None:
        """Client to server, line by line, noting when the client starts and ends an IDLE."""
        while line := await reader.readline():
            command = line.rstrip(b"\r\n").upper()
            if command.endswith(b" IDLE"):
                idling.set()
            elif command == b"DONE":
                idling.clear()
            writer.write(line)
            await writer.drain()

    async def _downstream(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, idling: asyncio.Event) -> None:
        """Server to client, chunk by chunk; returning closes both sides."""
        while chunk := await reader.read(65536):
            at = chunk.find(b" FETCH (")
            if at >= 0 and len(chunk) > at + 20 and self._roll(self.faults.cut_fetch):
                self.injected["cut_mid_fetch"] += 1
                writer.write(chunk[: self.rng.randrange(at + 8, len(chunk) - 1)])
                await writer.drain()
                return
            if idling.is_set() and self._roll(self.faults.cut_idle):
                self.injected["cut_during_idle"] += 1
                return
            if self._roll(self.faults.stall):
                self.injected["stalled"] += 1
                await asyncio.sleep(self.faults.stall_s)
            elif self._roll(self.faults.slow):
                self.injected["slow"] += 1
                await asyncio.sleep(self.faults.slow_s)
            writer.write(chunk)
            await writer.drain()
