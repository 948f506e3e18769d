"""Trying a write transaction again while another writer holds SQLite's lock (timed SLA writes, retention)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from sqlalchemy.exc import OperationalError

log = logging.getLogger(__name__)
T = TypeVar("T")

# Waits between tries, about a minute in all (each try also waits the connection's 10 s busy timeout).
LOCKED_RETRY_S = (0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0)


def is_locked(err: BaseException) -> bool:
    """Whether a database error only says that another writer holds SQLite's lock (worth trying again)."""
    text = str(getattr(err, "orig", err))
    return isinstance(err, OperationalError) and ("database is locked" in text or "database table is locked" in text)


class StayedLocked(Exception):
    """Every try found the lock held: `tries` tries in `seconds`; the caller says what happens next."""

    def __init__(self, what: str, tries: int, seconds: float) -> None:
        super().__init__(what)
        self.what, self.tries, self.seconds = what, tries, seconds


async def while_locked(what: str, write: Callable[[], Awaitable[T]], waits: Sequence[float],
                       sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> T:
    """Run `write` (one transaction, so a failed try wrote nothing), trying again after each of `waits` while
    SQLite says another writer holds the lock: one warning when it first waits, one line when it gets through;
    StayedLocked when the last try fails too."""
    started = time.monotonic()
    for tried, wait in enumerate((*waits, None), start=1):
        try:
            result = await write()
        except Exception as err:
            if not is_locked(err):
                raise
            if wait is None:
                raise StayedLocked(what, tried, time.monotonic() - started) from err
            if tried == 1:
                log.warning("%s: the database is locked by another writer; trying again for up to %.0fs",
                            what, sum(waits))
            await sleep(wait)
            continue
        if tried > 1:
            log.warning("%s: done after %d tries (the database was locked)", what, tried)
        return result
    raise AssertionError("unreachable: the last try returns or raises")
