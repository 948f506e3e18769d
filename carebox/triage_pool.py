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
from typing import Self, TypeVar

from carebox.ports import Category, Priority
from carebox.triage import Triage, TriageInput, Triager, TriageSettings

log = logging.getLogger(__name__)
START_METHODS = ("forkserver", "spawn", "fork")
_T = TypeVar("_T")
_WARM_TEXT = "my 4g network is down since this morning, not working at all"

# One Triager per worker process, built once by the initializer (never shared across processes).
_worker_triager: Triager | None = None


@dataclass(frozen=True, slots=True)
class PoolSettings:
    """The triage pool: workers (0 = in process), smallest chunk per worker, in-process threshold, start method."""

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


# What crosses the process boundary: plain tuples, ~10x cheaper to pickle than dataclasses and enum members.
InputRow = tuple[str, int | None, bool, bool, int, int, str | None]  # a TriageInput's fields, in order
ResultRow = tuple[str, float, str, str | None, str, str]  # language, polarity, category, cluster key, priority, reason
_CATEGORIES = {c.value: c for c in Category}
_PRIORITIES = {p.value: p for p in Priority}


def to_row(t: Triage) -> ResultRow:
    """A triage result as a plain tuple."""
    return (t.language, t.polarity, t.category.value, t.cluster_key, t.priority.value, t.reason)


def from_row(row: ResultRow) -> Triage:
    """The triage result `to_row` flattened."""
    language, polarity, category, cluster_key, priority, reason = row
    return Triage(language, polarity, _CATEGORIES[category], cluster_key, _PRIORITIES[priority], reason)


def _triage_chunk(rows: Sequence[InputRow]) -> list[ResultRow]:
    """Triage one chunk in a worker."""
    assert _worker_triager is not None, "worker started without its initializer"
    triage = _worker_triager.triage
    return [to_row(triage(text, followers=followers, verified=verified, public=public, reposts=reposts,
                          recent_contacts=contacts, lang_hint=hint))
            for text, followers, verified, public, reposts, contacts, hint in rows]


def _warm(_: int) -> int:
    return os.getpid()


def split(items: Sequence[_T], parts: int, chunk_size: int) -> list[Sequence[_T]]:
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
        return await self.triage_rows([(i.text, i.followers, i.verified, i.public, i.reposts, i.recent_contacts,
                                        i.lang_hint) for i in items])

    async def triage_rows(self, rows: Sequence[InputRow]) -> list[Triage]:
        """`triage_many` of inputs given as tuples of TriageInput's fields (what the pipeline sends: no object to build)."""
        if self._closed:
            raise RuntimeError("triage pool is closed")
        if self.pool.workers == 0 or len(rows) < self.pool.in_process_below:
            self.in_process += len(rows)
            return self._triage_here(rows)
        executor = self._ensure()
        loop = asyncio.get_running_loop()
        # one chunk per worker, none below chunk_size: every chunk is a round trip that costs the ingest process
        # CPU (500 messages in chunks of 64 cost it 8.5 µs per message, in one chunk 2.8 µs; load ~13)
        size = max(self.pool.chunk_size, -(-len(rows) // self.pool.workers))
        chunks = split(rows, self.pool.workers, size)
        try:
            parts = await asyncio.gather(*(loop.run_in_executor(executor, _triage_chunk, c) for c in chunks))
        except BrokenProcessPool:
            # a worker died (OOM killer, signal): answer from this process, rebuild the pool next time
            log.warning("triage pool broken; triaging %d messages in process and restarting the pool", len(rows))
            self._drop_executor()
            self.in_process += len(rows)
            return self._triage_here(rows)
        except Exception:  # e.g. a result that cannot be pickled: the batch is still triaged
            log.exception("triage pool failed; triaging %d messages in process", len(rows))
            self.in_process += len(rows)
            return self._triage_here(rows)
        self.pooled += len(rows)
        return [from_row(row) for part in parts for row in part]

    def _triage_here(self, rows: Sequence[InputRow]) -> list[Triage]:
        triage = self.local.triage
        return [triage(text, followers=followers, verified=verified, public=public, reposts=reposts,
                       recent_contacts=contacts, lang_hint=hint)
                for text, followers, verified, public, reposts, contacts, hint in rows]

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
