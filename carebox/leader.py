"""Who runs what when several processes share one store: the scheduler leader and connector leases.

On PostgreSQL every process keeps one dedicated connection holding session advisory locks: one for
the scheduler leadership, one per connector instance it runs. A lock lives exactly as long as the
connection: when a holder dies its session ends (at once on a clean kill, within the TCP keepalive
set from the lease otherwise) and another candidate, polling every half lease, takes it over. On
SQLite (embedded) there is one process, which always holds every lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Protocol

from sqlalchemy.engine import make_url

log = logging.getLogger(__name__)
# First key of the two-int advisory locks; ingest uses (7301, 0) for its transaction lock.
LOCK_SPACE = 7310
SCHEDULER = "scheduler"


def connector_lock(name: str) -> str:
    """The lock name of a connector instance."""
    return f"connector:{name}"


class Locks(Protocol):
    """Named exclusive locks held for the life of a process (or until released)."""

    async def try_acquire(self, name: str) -> bool:
        """Take the lock if free (or already ours); never waits."""

    async def release(self, name: str) -> None:
        """Give the lock back."""

    async def check(self) -> bool:
        """Whether the locks we hold are still ours (the session is alive)."""

    def held(self) -> set[str]:
        """Names of the locks held."""

    async def close(self) -> None:
        """Release everything."""


class LocalLocks:
    """The embedded process: alone, so every lock is granted."""

    def __init__(self) -> None:
        self._held: set[str] = set()

    async def try_acquire(self, name: str) -> bool:
        self._held.add(name)
        return True

    async def release(self, name: str) -> None:
        self._held.discard(name)

    async def check(self) -> bool:
        return True

    def held(self) -> set[str]:
        return set(self._held)

    async def close(self) -> None:
        self._held.clear()


def asyncpg_dsn(database_url: str) -> str:
    """A plain postgresql:// DSN for asyncpg from a SQLAlchemy URL (postgresql+asyncpg://...)."""
    return make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)


class PgLocks:
    """Session advisory locks on one dedicated asyncpg connection."""

    def __init__(self, dsn: str, lease_s: float) -> None:
        self.dsn, self.lease_s = dsn, lease_s
        self._conn: object | None = None
        self._held: set[str] = set()
        self._lock = asyncio.Lock()

    async def _connection(self) -> object:
        import asyncpg

        if self._conn is None or self._conn.is_closed():  # type: ignore[attr-defined]
            self._held.clear()
            keepalive = max(1, int(self.lease_s / 3))
            self._conn = await asyncpg.connect(self.dsn, timeout=self.lease_s, server_settings={
                "application_name": "carebox-leases",
                # the server notices a vanished holder within about one lease, freeing its locks
                "tcp_keepalives_idle": str(keepalive), "tcp_keepalives_interval": str(keepalive),
                "tcp_keepalives_count": "2",
            })
        return self._conn

    async def try_acquire(self, name: str) -> bool:
        async with self._lock:
            if name in self._held:
                return True
            conn = await self._connection()
            got = await conn.fetchval(  # type: ignore[attr-defined]
                "SELECT pg_try_advisory_lock($1, hashtext($2))", LOCK_SPACE, name, timeout=self.lease_s)
            if got:
                self._held.add(name)
            return bool(got)

    async def release(self, name: str) -> None:
        async with self._lock:
            if name in self._held and self._conn is not None and not self._conn.is_closed():  # type: ignore[attr-defined]
                with contextlib.suppress(Exception):
                    await self._conn.fetchval(  # type: ignore[attr-defined]
                        "SELECT pg_advisory_unlock($1, hashtext($2))", LOCK_SPACE, name, timeout=self.lease_s)
            self._held.discard(name)

    async def check(self) -> bool:
        async with self._lock:
            if not self._held:
                return True
            try:
                await self._conn.fetchval("SELECT 1", timeout=self.lease_s)  # type: ignore[union-attr]
                return True
            except Exception as err:  # noqa: BLE001 - any failure means the session (and its locks) is gone
                log.warning("lease connection lost (%s): giving up %s", err, sorted(self._held))
                self._held.clear()
                with contextlib.suppress(Exception):
                    await self._conn.close(timeout=1)  # type: ignore[union-attr]
                self._conn = None
                return False

    def held(self) -> set[str]:
        return set(self._held)

    async def close(self) -> None:
        async with self._lock:
            self._held.clear()
            if self._conn is not None:
                with contextlib.suppress(Exception):
                    await self._conn.close(timeout=2)  # type: ignore[attr-defined]
                self._conn = None


def make_locks(database_url: str, lease_s: float) -> Locks:
    """Advisory locks on PostgreSQL, the always-granted local locks otherwise."""
    if make_url(database_url).get_backend_name() == "postgresql":
        return PgLocks(asyncpg_dsn(database_url), lease_s)
    return LocalLocks()


Start = Callable[[str], Awaitable[None]]
Stop = Callable[[str], Awaitable[None]]


class Leases:
    """Keeps trying to hold the named locks; runs `start(name)` when one is won and `stop(name)` when lost.

    Each round it checks its session, then tries the locks it does not hold (at most `greed` new ones
    per round, so that several workers started together share the connectors rather than one taking all).
    """

    def __init__(self, locks: Locks, names: Iterable[str], start: Start, stop: Stop, *, lease_s: float,
                 greed: int = 1) -> None:
        self.locks, self.names = locks, list(names)
        self.start, self.stop = start, stop
        self.poll_s = lease_s / 2
        self.greed = greed
        self.running: set[str] = set()

    async def round(self) -> None:
        """One check-and-acquire round."""
        if not await self.locks.check():
            for name in [n for n in reversed(self.names) if n in self.running]:
                await self._lose(name)
        won = 0
        for name in self.names:
            if name in self.running or won >= self.greed:
                continue
            try:
                got = await self.locks.try_acquire(name)
            except Exception as err:  # noqa: BLE001 - store unreachable: try again next round
                log.warning("cannot reach the lock store (%s); retrying", err)
                return
            if got:
                won += 1
                self.running.add(name)
                log.info("lease %s acquired", name)
                await self.start(name)

    async def _lose(self, name: str) -> None:
        self.running.discard(name)
        log.warning("lease %s lost", name)
        await self.stop(name)

    async def run(self) -> None:
        """Rounds every half lease until cancelled; then stops what runs and releases the locks."""
        try:
            while True:
                await self.round()
                await asyncio.sleep(self.poll_s)
        finally:
            # stop in the reverse order of the names (the scheduler, named first, stops last)
            for name in [n for n in reversed(self.names) if n in self.running]:
                self.running.discard(name)
                with contextlib.suppress(Exception):
                    await self.stop(name)
                with contextlib.suppress(Exception):
                    await self.locks.release(name)
