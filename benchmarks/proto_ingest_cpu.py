"""PROFILING AID, not part of the product: CPU per mention of Pipeline.ingest outside triage, for any source tree.

    python benchmarks/proto_ingest_cpu.py --src /tmp/headsrc [--n 10000] [--batch 500]

Imports carebox from `--src` (to compare HEAD, extracted with `git archive`, with a checkout in the same
conditions), triages batches of simulated mentions ahead (as the triage pool does), then times
Pipeline.ingest alone on them with the OutageWatcher observing: the process's CPU per mention, split into
the main thread (threading, clocks, rows, the async adapter) and the other threads (SQLite's aiosqlite thread).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path


async def measure(src: Path, n: int, batch: int, folder: Path) -> tuple[float, float, int]:
    """(process CPU s, main thread CPU s, mentions) of ingesting `n` mentions with triage done ahead."""
    sys.path.insert(0, str(src))
    from benchmarks import ingest
    from carebox import config
    from carebox.incidents import OutageWatcher
    from carebox.outage import Detector
    from carebox.ports import IngestBatch
    from carebox.runtime import make_pipeline
    from carebox.store.engine import make_engine

    assert Path(sys.modules["carebox"].__file__).resolve().is_relative_to(src.resolve()), "carebox not from --src"
    settings = config.parse({})
    url = await ingest.fresh_db(folder, "cpu")
    mentions = ingest.simulate(folder, n)
    engine = make_engine(url)
    pipe, _ = make_pipeline(settings, engine)
    watcher = OutageWatcher(engine, Detector(settings.outage))
    await watcher.start()
    pipe.observers.append(watcher.observe)
    await pipe.ingest([IngestBatch("warm", tuple(mentions[:batch]))], datetime.now(UTC))
    groups = [[IngestBatch("bench", tuple(mentions[k : k + batch]), cursor=str(k))] for k in range(batch, n, batch)]
    triaged = [await pipe.pretriage(group) for group in groups]
    start, main_start = time.process_time(), time.thread_time()
    for group, ahead in zip(groups, triaged, strict=True):
        await pipe.ingest(group, datetime.now(UTC), triaged=ahead)
    total, main = time.process_time() - start, time.thread_time() - main_start
    await engine.dispose()
    return total, main, n - batch


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--src", type=Path, required=True)
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=500)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="carebox-cpu-") as tmp:
        total, main_s, count = asyncio.run(measure(args.src, args.n, args.batch, Path(tmp)))
    us = 1e6 / count
    print(f"{args.src}: {total * us:.1f} µs CPU per mention outside triage (main thread {main_s * us:.1f}, "
          f"other threads {(total - main_s) * us:.1f}), {count:,} mentions in batches of {args.batch}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
