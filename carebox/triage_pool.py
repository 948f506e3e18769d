"""Triage batches on every core: a process pool with one Triager per worker, in-process for small batches."""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Self

from carebox.triage import Triage, TriageInput, Triager, TriageSettings

log = logging.getLogger(__name__)
START_METHODS = ("forkserver", "spawn", "fork")
_WARM_TEXT = "my 4g network is down since this morning, not working at all"

# One Triager per worker process, built once by the initializer (never shared across processes).
_worker_triager: Triager | None = None


@dataclass(frozen=True, slots=True)
class PoolSettings:
    """The triage pool: workers (0 = in process), chunk size, in-process threshold, start method."""

    workers: int = 0
    chunk_size: int = 64
    in_process_below: int = 64
    start_method: str = "forkserver"

    @classmethod
    def from_pipeline(cls, workers: int, triage_batch: int) -> PoolSettings:
        """The pool the [pipeline] options describe (triage_workers, triage_batch)."""
        return cls(workers=workers, chunk_size=triage_batch, in_process_below=triage_batch)


def _init_worker(settings: TriageSettings) -> None:
    """Build this worker's Triager and warm its lazy lexicons."""
    global _worker_triager
    _worker_triager = Triager(settings)
    _worker_triager.triage(_WARM_TEXT)


def _triage_chunk(items: Sequence[TriageInput]) -> list[Triage]:
    """Triage one chunk in a worker."""
    assert _worker_triager is not None, "worker started without its initializer"
    return _worker_triager.triage_many(items)


def _warm(_: int) -> int:
    return os.getpid()


def split(items: Sequence[TriageInput], parts: int, chunk_size: int) -> list[Sequence[TriageInput]]:
    """Contiguous chunks: at least `parts` (one per worker), none longer than about `chunk_size`."""
    if not items:
        return []
    count = max(parts, -(-len(items) // chunk_size))
    count = min(count, len(items))
    size, extra = divmod(len(items), count)
    out, start = [], 0
    for k in range(count):
        end = start + size + (1 if k < extra else 0)
        out.append(items[start:end])
        start = end
    return out


class TriagePool:
    """Triage many messages across worker processes; results keep the order of the inputs."""

    def __init__(self, settings: TriageSettings | None = None, pool: PoolSettings | None = None,
                 local: Triager | None = None) -> None:
        self.settings = settings or TriageSettings()
        self.pool = pool or PoolSettings(workers=os.cpu_count() or 1)
        self._local = local  # the caller's Triager (same settings), so this process holds one copy of the lexicons
        self._executor: ProcessPoolExecutor | None = None
        self._closed = False
        self.pooled = 0  # messages triaged in workers / in this process, for metrics and tests
        self.in_process = 0

    @property
    def local(self) -> Triager:
        """The in-process Triager used for small batches and when the pool is unavailable."""
        if self._local is None:
            self._local = Triager(self.settings)
        return self._local

    @local.setter
    def local(self, triager: Triager) -> None:
        self._local = triager  # the caller's Triager (same settings): one copy of the lexicons in this process

    def _ensure(self) -> ProcessPoolExecutor:
        if self._closed:
            raise RuntimeError("triage pool is closed")
        if self._executor is None:
            context = multiprocessing.get_context(self.pool.start_method)
            if self.pool.start_method == "forkserver":
                # the server imports TextBlob and the lexicons once; each worker forks from it ready
                context.set_forkserver_preload(["carebox.triage"])
            self._executor = ProcessPoolExecutor(
                self.pool.workers, mp_context=context, initializer=_init_worker, initargs=(self.settings,)
            )
            log.info("triage pool started: %d %s workers", self.pool.workers, self.pool.start_method)
        return self._executor

    async def start(self) -> list[int]:
        """Start every worker now (not on the first batch); returns their process ids."""
        if self.pool.workers == 0:
            return []
        executor = self._ensure()
        loop = asyncio.get_running_loop()
        pids = await asyncio.gather(*(loop.run_in_executor(executor, _warm, k) for k in range(self.pool.workers)))
        return sorted(set(pids))

    async def triage_many(self, items: Sequence[TriageInput]) -> list[Triage]:
        """Triage `items` in order: in this process when few or no workers, else spread over the workers."""
        if self._closed:
            raise RuntimeError("triage pool is closed")
        if self.pool.workers == 0 or len(items) < self.pool.in_process_below:
            self.in_process += len(items)
            return self.local.triage_many(items)
        executor = self._ensure()
        loop = asyncio.get_running_loop()
        chunks = split(items, self.pool.workers, self.pool.chunk_size)
        try:
            parts = await asyncio.gather(*(loop.run_in_executor(executor, _triage_chunk, c) for c in chunks))
        except BrokenProcessPool:
            # a worker died (OOM killer, signal): answer from this process, rebuild the pool next time
            log.warning("triage pool broken; triaging %d messages in process and restarting the pool", len(items))
            self._drop_executor()
            self.in_process += len(items)
            return self.local.triage_many(items)
        except Exception:  # e.g. a result that cannot be pickled: the batch is still triaged
            log.exception("triage pool failed; triaging %d messages in process", len(items))
            self.in_process += len(items)
            return self.local.triage_many(items)
        self.pooled += len(items)
        return [t for part in parts for t in part]

    def _drop_executor(self) -> None:
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        """Stop the workers (waiting for running chunks); later calls to triage_many raise."""
        self._closed = True
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)
            log.info("triage pool stopped")

    async def aclose(self) -> None:
        """close() without blocking the event loop."""
        await asyncio.to_thread(self.close)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()
