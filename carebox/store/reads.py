"""Read snapshots for the web pages: all the queries of a page on one connection, in one read transaction.

A page's statements run through `run_sync` on one connection of the async engine: one checkout and one
transaction per page (a WAL snapshot on SQLite: a reader never waits for the write lock), instead of one per
statement. The Python work stays on the event loop's thread: running the page's queries in worker threads on
plain sqlite3 connections (one hop per page) was measured and made things worse with 50 agents (inbox p50
1.1-1.8 s against 0.5 s, replies 11 s against 0.9 s on the loaded benchmark machine): the threads' SQLAlchemy
work competed with the event loop for the GIL; aiosqlite's threads only wait in SQLite, without it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncEngine

T = TypeVar("T")


async def read(engine: AsyncEngine, fn: Callable[..., T], *args: Any) -> T:
    """`fn(connection, *args)` in one read transaction on one connection of `engine`."""
    async with engine.connect() as c:
        return await c.run_sync(fn, *args)
