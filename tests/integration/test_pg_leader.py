"""Leases on PostgreSQL session advisory locks: one holder at a time, taken over when the holder dies."""

from __future__ import annotations

import asyncio

import pytest

from carebox.leader import Leases, LocalLocks, PgLocks, asyncpg_dsn
from tests.conftest import pg_url

pytestmark = pytest.mark.services
LEASE_S = 1.0


@pytest.fixture
def dsn(pg_database):
    return asyncpg_dsn(pg_url(pg_database))


@pytest.fixture
async def locks(dsn):
    made: list[PgLocks] = []

    def make() -> PgLocks:
        made.append(PgLocks(dsn, LEASE_S))
        return made[-1]

    yield make
    for lock in made:
        await lock.close()


async def test_a_lock_has_one_holder_until_it_is_released(locks):
    a, b = locks(), locks()
    assert await a.try_acquire("connector:x")
    assert await a.try_acquire("connector:x")  # already ours
    assert not await b.try_acquire("connector:x")
    assert await b.try_acquire("connector:y")
    await a.release("connector:x")
    assert await b.try_acquire("connector:x")


async def test_the_lock_of_a_holder_whose_session_dies_is_free_and_the_holder_knows(locks):
    a, b = locks(), locks()
    assert await a.try_acquire("scheduler")
    pid = a._conn.get_server_pid()  # type: ignore[union-attr]
    killer = await b._connection()
    await killer.fetchval("SELECT pg_terminate_backend($1, 5000)", pid)  # waits until the backend is gone
    assert await b.try_acquire("scheduler")
    assert not await a.check()
    assert a.held() == set()


async def test_embedded_locks_are_always_granted():
    local = LocalLocks()
    assert await local.try_acquire("scheduler") and await local.try_acquire("connector:x")
    assert local.held() == {"scheduler", "connector:x"}


class Recorder:
    def __init__(self) -> None:
        self.running: set[str] = set()
        self.log: list[tuple[str, str]] = []

    async def start(self, name: str) -> None:
        self.running.add(name)
        self.log.append(("start", name))

    async def stop(self, name: str) -> None:
        self.running.discard(name)
        self.log.append(("stop", name))


async def _until(predicate, timeout_s: float) -> float:
    loop = asyncio.get_running_loop()
    started = loop.time()
    while not predicate():
        if loop.time() - started > timeout_s:
            raise AssertionError(f"not within {timeout_s}s")
        await asyncio.sleep(0.02)
    return loop.time() - started


async def test_work_runs_on_exactly_one_process_and_moves_when_its_holder_dies(locks):
    names = ["connector:a", "connector:b", "scheduler"]
    one, two = Recorder(), Recorder()
    lock_one, lock_two = locks(), locks()
    first = Leases(lock_one, names, one.start, one.stop, lease_s=LEASE_S)
    second = Leases(lock_two, names, two.start, two.stop, lease_s=LEASE_S)
    tasks = [asyncio.create_task(first.run()), asyncio.create_task(second.run())]
    try:
        await _until(lambda: len(one.running) + len(two.running) == 3, 5 * LEASE_S)
        assert not one.running & two.running
        assert one.running and two.running  # shared, one new lease per round each
        # the first process dies: its session ends, so do its locks
        tasks[0].cancel()
        await asyncio.gather(tasks[0], return_exceptions=True)
        await lock_one.close()
        await _until(lambda: two.running == set(names), 2 * LEASE_S * len(names))
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
