"""PROFILING AID, not part of the product: where Pipeline.ingest spends its CPU, phase by phase.

    python -m benchmarks.proto_ingest_breakdown [--n 10000] [--batch 500]

Calls Pipeline.ingest directly on batches of `--batch` simulated mentions (no queue, producer or reader, so
nothing else runs in the process but SQLite's aiosqlite thread), with the store functions, the Triager, the
ClockBook and the row builders wrapped in CPU-time accumulators of the main thread (time.thread_time: a phase
that awaits SQL does not count the aiosqlite thread's work, which would land on whatever phase runs while
that thread finishes). SQLite's thread (the statements themselves, all of a batch's writes in one hand-off
since `Writes.flush`) is reported as one line, the process's CPU less the main thread's. Nested phases are
reported inside their parent (e.g. triage inside _thread). One run, CPU microseconds per mention.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import inspect
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import _common as common
from benchmarks import ingest
from carebox import clocks, config, pipeline, pipeline_thread
from carebox import triage as triage_mod
from carebox.incidents import OutageWatcher
from carebox.outage import Detector
from carebox.ports import IngestBatch
from carebox.runtime import make_pipeline
from carebox.store import ingest as sql
from carebox.store import ingest_driver
from carebox.store.engine import make_engine

SPENT: Counter[str] = Counter()
CALLS: Counter[str] = Counter()
TARGETS = [
    (pipeline.Pipeline, "ingest"), (pipeline.Pipeline, "pretriage"), (pipeline.Pipeline, "_thread"), (pipeline.Pipeline, "_write"),
    (pipeline.Pipeline, "_write_clocks"), (pipeline_thread.Threader, "apply_inbound"), (pipeline_thread.Threader, "open"),
    (pipeline_thread.Threader, "apply_outbound"), (pipeline_thread.Threader, "conversation_for"),
    (pipeline, "mention_row"), (triage_mod.Triager, "triage"), (triage_mod.Triager, "with_contacts"),
    (clocks.ClockBook, "start"),
    *((sql, name) for name in ("mention_conversations", "customers_for", "conversations_by_id",
                               "latest_open_conversations", "recent_conversation_counts", "running_clocks")),
    *((sql.Writes, name) for name in ("open", "insert_returning_ids", "update_by_id", "insert_mentions", "insert_rows",
                                      "save_cursors", "flush")),
    (ingest_driver, "fetch"), (ingest_driver, "tuples"),
]


def _wrap(owner: Any, name: str) -> None:
    fn = inspect.getattr_static(owner, name)
    kind = type(fn) if isinstance(fn, staticmethod | classmethod) else None
    fn = fn.__func__ if kind else fn
    label = f"{getattr(owner, '__name__', owner)}.{name}".replace("carebox.store.ingest", "store.ingest").replace("carebox.pipeline.", "pipeline.")
    if inspect.iscoroutinefunction(fn):
        @functools.wraps(fn)
        async def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.thread_time()
            try:
                return await fn(*args, **kwargs)
            finally:
                SPENT[label] += time.thread_time() - start
                CALLS[label] += 1
    else:
        @functools.wraps(fn)
        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.thread_time()
            try:
                return fn(*args, **kwargs)
            finally:
                SPENT[label] += time.thread_time() - start
                CALLS[label] += 1
    setattr(owner, name, kind(timed) if kind else timed)


async def measure(n: int, batch: int, folder: Path) -> tuple[float, int]:
    """Ingest `n` mentions in batches, wrapped; returns (total CPU seconds, mentions)."""
    settings = config.parse({})
    url = await ingest.fresh_db(folder, "breakdown")
    mentions = ingest.simulate(folder, n)
    engine = make_engine(url)
    pipe, _ = make_pipeline(settings, engine)
    watcher = OutageWatcher(engine, Detector(settings.outage))
    await watcher.start()
    pipe.observers.append(watcher.observe)
    await pipe.ingest([IngestBatch("warm", tuple(mentions[:batch]))], datetime.now(UTC))
    for owner, name in TARGETS:
        _wrap(owner, name)
    start, main_start = time.process_time(), time.thread_time()
    for k in range(batch, len(mentions), batch):
        await pipe.ingest([IngestBatch("bench", tuple(mentions[k : k + batch]), cursor=str(k))], datetime.now(UTC))
    total, main = time.process_time() - start, time.thread_time() - main_start
    SPENT["main thread, whole (every phase listed runs there)"] = main
    SPENT["other threads (SQLite's aiosqlite thread)"] = total - main
    await engine.dispose()
    return total, len(mentions) - batch


def main(argv: list[str] | None = None) -> int:
    """Print the breakdown."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=500)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="carebox-breakdown-") as tmp:
        total, count = asyncio.run(measure(args.n, args.batch, Path(tmp)))
    print(f"{count:,} mentions in batches of {args.batch}: {total / count * 1e6:.0f} CPU µs per mention "
          f"({count / total:,.0f} mentions per CPU-second), {common.describe(common.machine())}")
    rows = [[label, CALLS[label], SPENT[label] / count * 1e6, f"{SPENT[label] / total:.0%}"]
            for label, _ in SPENT.most_common()]
    print(common.table(["phase (nested phases counted in their parents too)", "calls", "µs/mention", "share"], rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
