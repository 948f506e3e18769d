"""The ingest loop collects Python's young garbage less often while it runs, and gives the threshold back."""

from __future__ import annotations

import asyncio
import gc
from datetime import UTC, datetime

import pytest

from carebox import pipeline


def test_the_threshold_is_raised_while_any_loop_runs_and_restored_after_the_last():
    before = gc.get_threshold()
    young = pipeline._YoungCollections()
    with young.fewer():
        assert gc.get_threshold() == (pipeline.YOUNG_GC_THRESHOLD, *before[1:])
        with young.fewer():
            pass
        assert gc.get_threshold()[0] == pipeline.YOUNG_GC_THRESHOLD  # the other loop still runs
    assert gc.get_threshold() == before


class _SeenQueue:
    """A queue that records the collector's threshold when the loop asks for a batch, then waits forever."""

    def __init__(self) -> None:
        self.seen: list[tuple[int, ...]] = []

    async def take(self, n: int, wait_s: float) -> list:
        self.seen.append(gc.get_threshold())
        await asyncio.Event().wait()
        return []


async def test_consume_raises_the_threshold_and_gives_it_back_when_cancelled():
    before = gc.get_threshold()
    queue = _SeenQueue()
    loop = asyncio.create_task(pipeline.consume(queue, pipeline=_NoPool(), batch_size=10, wait_s=0.0,
                                                now=lambda: datetime.now(UTC)))
    while not queue.seen:
        await asyncio.sleep(0.01)
    loop.cancel()
    with pytest.raises(asyncio.CancelledError):
        await loop
    assert queue.seen[0][0] == pipeline.YOUNG_GC_THRESHOLD
    assert gc.get_threshold() == before


class _NoPool:
    triage_pool = None
