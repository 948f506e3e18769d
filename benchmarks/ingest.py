"""Ingest throughput and arrival-to-visible latency of the embedded pipeline, against the machine's references.

    python -m benchmarks.ingest [--n 20000] [--steady-n 10000] [--rate 1000] [--workers N] [--quick]
                                [--profile docs/profiles/ingest.txt]

Mentions come from the simulator (the JSONL `carebox simulate` writes), go through the embedded queue into
`pipeline.consume` (dedup, threading, the real Triager, ClockBook SLA clocks, the OutageWatcher observing
committed rows) and into a migrated SQLite file (WAL). Runs, each on a fresh database:
  * full speed: every batch put as fast as the queue accepts; mentions/s from the first put to the last commit;
  * steady: `--rate` mentions/s paced in batches of 50 every 50 ms, on top of the full-speed database;
  * pooled: both runs again on a fresh file with the product's triage pool (`[pipeline] triage_workers`,
    default one per CPU but one): consume takes and triages the next batch on the workers while it writes;
    the stored triage is compared with the in-process run's, row by row.
Arrival = the moment a batch is put into the queue; visible = the commit that stores it (observer called
after commit); a reader thread also polls `SELECT ... FROM mention WHERE external_id IN (...)` for one
mention in 50 to confirm. References on the same rows and texts, in the same run: raw sqlite3 executemany
of the stored mention rows alone (batches of the pipeline's size, one commit each), and
textblob.TextBlob(text).sentiment alone, in one process and on a pool of every core.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sqlite3
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout

from benchmarks import _common as common
from carebox import config
from carebox.incidents import OutageWatcher
from carebox.outage import Detector
from carebox.pipeline import consume
from carebox.ports import Direction, InboundMention, IngestBatch
from carebox.queue import EmbeddedQueue
from carebox.runtime import make_pipeline
from carebox.store.engine import make_engine
from carebox.store.migrate import upgrade
from carebox.triage_pool import PoolSettings, TriagePool
from connectors.social.replay import read_jsonl
from connectors.social.simulator import write_jsonl

NAME = "ingest"
START = datetime(2026, 11, 16, 9, 0, tzinfo=UTC)
PUT_BATCH = 50  # mentions per connector batch put into the queue
PROBE_EVERY = 50


def simulate(folder: Path, n: int, seed: int = 1) -> list[InboundMention]:
    """N simulated mentions (what `carebox simulate` writes), read back through the replay parser."""
    path = folder / "mentions.jsonl"
    write_jsonl(path, n, seed, START, 600.0, "acme")
    return [r for r in read_jsonl(path) if isinstance(r, InboundMention)]


async def fresh_db(folder: Path, name: str) -> str:
    """A migrated SQLite file; returns its SQLAlchemy URL."""
    url = f"sqlite+aiosqlite:///{folder / name}.db"
    await upgrade(url)
    return url


class Probe:
    """A reader thread: polls the mention table for sampled external ids, notes when each becomes visible."""

    def __init__(self, db: str) -> None:
        self.db = db
        self.pending: dict[tuple[str, str], float] = {}  # (network, external_id) -> arrival
        self.latency: list[float] = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="visibility-probe", daemon=True)

    def arrive(self, network: str, external_id: str, at: float) -> None:
        with self.lock:
            self.pending[(network, external_id)] = at

    def _run(self) -> None:
        conn = sqlite3.connect(self.db, check_same_thread=False)
        while not self.stop.is_set() or self.pending:
            with self.lock:
                keys = list(self.pending)
            by_network: dict[str, list[str]] = {}
            for network, external_id in keys:
                by_network.setdefault(network, []).append(external_id)
            for network, ids in by_network.items():
                # by (network, external_id), the unique index the inbox uses: external_id alone scans the table
                marks = ",".join("?" * len(ids))
                seen = [r[0] for r in conn.execute(
                    f"SELECT external_id FROM mention WHERE network = ? AND external_id IN ({marks})", [network, *ids])]
                now = time.perf_counter()
                with self.lock:
                    for external_id in seen:
                        self.latency.append(now - self.pending.pop((network, external_id)))
            self.stop.wait(0.02)  # 20 ms resolution: polling faster steals CPU from the pipeline
        conn.close()


async def run_pipeline(url: str, mentions: list[InboundMention], *, rate: float | None, pool: TriagePool | None,
                       settings: config.Settings) -> dict[str, Any]:
    """Put `mentions` through queue -> consume -> SQLite; returns throughput, latencies and counts."""
    engine = make_engine(url)
    pipeline, _book = make_pipeline(settings, engine)
    pipeline.triage_pool = pool
    if pool is not None:
        pool.local = pipeline.triager  # as runtime.make_pipeline does: one Triager in this process
    watcher = OutageWatcher(engine, Detector(settings.outage))
    await watcher.start()
    arrivals: dict[str, float] = {}
    visible: list[float] = []

    def committed(rows: list[dict[str, Any]]) -> None:
        now = time.perf_counter()
        visible.extend(now - arrivals[row["external_id"]] for row in rows)

    pipeline.observers += [watcher.observe, committed]
    queue = EmbeddedQueue(settings.pipeline.max_pending_batches)
    probe = Probe(url.split(":///", 1)[1])
    probe.thread.start()
    wall = datetime.now
    pooled_before, local_before = (pool.pooled, pool.in_process) if pool else (0, 0)
    consumer = asyncio.create_task(consume(queue, pipeline, batch_size=settings.pipeline.batch_size,
                                           wait_s=settings.pipeline.batch_wait_s, now=lambda: wall(UTC)))
    start, cpu_start, main_start = time.perf_counter(), common.cpu_seconds_tree(), time.process_time()
    await produce(queue, mentions, rate, arrivals, probe)
    expected = len({(m.network, m.external_id) for m in mentions})
    while len(visible) < expected and not consumer.done():
        await asyncio.sleep(0.002)
    seconds, cpu = common.elapsed(start), common.cpu_seconds_tree() - cpu_start
    main_cpu = time.process_time() - main_start
    consumer.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await consumer
    probe.stop.set()
    await asyncio.to_thread(probe.thread.join, 10)
    await engine.dispose()
    return {
        "mentions": len(visible), "seconds": round(seconds, 3), "per_second": len(visible) / seconds,
        "cpu_seconds": round(cpu, 3), "per_cpu_second": len(visible) / cpu if cpu else None,
        # the ingest process alone (the pool's workers excluded): its rate if it had a core to itself
        "main_cpu_seconds": round(main_cpu, 3), "per_main_cpu_second": len(visible) / main_cpu if main_cpu else None,
        "visible_p50_ms": common.percentile(visible, 50) * 1000, "visible_p99_ms": common.percentile(visible, 99) * 1000,
        "probed": len(probe.latency), "probe_p50_ms": common.percentile(probe.latency, 50) * 1000,
        "probe_p99_ms": common.percentile(probe.latency, 99) * 1000,
        "triaged_in_workers": pool.pooled - pooled_before if pool else 0,
        "triaged_in_process": pool.in_process - local_before if pool else None,
    }


async def produce(queue: EmbeddedQueue, mentions: list[InboundMention], rate: float | None,
                  arrivals: dict[str, float], probe: Probe) -> None:
    """Put batches of PUT_BATCH: as fast as the queue takes them, or paced at `rate` mentions/s."""
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    for k in range(0, len(mentions), PUT_BATCH):
        if rate:
            await asyncio.sleep(max(0.0, t0 + k / rate - loop.time()))
        chunk = mentions[k : k + PUT_BATCH]
        now = time.perf_counter()
        for j, m in enumerate(chunk):
            arrivals[m.external_id] = now
            if (k + j) % PROBE_EVERY == 0:
                probe.arrive(m.network, m.external_id, now)
        await queue.put(IngestBatch(source="bench", mentions=tuple(chunk), cursor=str(k + len(chunk))))


def triage_mismatches(url: str, other: str) -> dict[str, int]:
    """Per triage column, mentions whose stored value differs between two runs on the same mentions.

    None may differ: batch boundaries depend on timing, but a mention's repeat-contact count includes the
    conversations its customer opened earlier in the same transaction, as if each mention were ingested alone.
    (The repeat window ends at the ingest time, so a run while its edge, 7 days back, crosses the simulated
    mentions, 2026-11-23 09:00-10:00 UTC, can still see a few priorities differ.)"""
    cols = ("language", "polarity", "category", "cluster_key", "priority")
    dumps = []
    for u in (url, other):
        with contextlib.closing(sqlite3.connect(u.split(":///", 1)[1])) as conn:
            dumps.append({r[0]: r[1:] for r in conn.execute(f"SELECT external_id, {', '.join(cols)} FROM mention")})
    a, b = dumps
    none = (None,) * len(cols)
    keys = a.keys() | b.keys()
    return {c: sum(a.get(k, none)[i] != b.get(k, none)[i] for k in keys) for i, c in enumerate(cols)}


def sqlite_reference(url: str, stored: str, batch: int) -> dict[str, Any]:
    """Raw sqlite3 executemany of the same mention rows into a fresh migrated file, one commit per batch."""
    src = sqlite3.connect(stored)
    columns = [r[1] for r in src.execute("PRAGMA table_info(mention)")]
    rows = src.execute(f"SELECT {', '.join(columns)} FROM mention ORDER BY id").fetchall()
    src.close()
    conn = sqlite3.connect(url.split(":///", 1)[1], isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=OFF")  # the rows point at conversations this file does not hold
    sql = f"INSERT INTO mention ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
    start, cpu_start = time.perf_counter(), time.process_time()
    for k in range(0, len(rows), batch):
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(sql, rows[k : k + batch])
        conn.execute("COMMIT")
    seconds, cpu = common.elapsed(start), time.process_time() - cpu_start
    conn.close()
    return {"rows": len(rows), "seconds": round(seconds, 3), "per_second": len(rows) / seconds,
            "per_cpu_second": len(rows) / cpu if cpu else None}


def _blob_sentiment(texts: list[str]) -> int:
    from textblob import TextBlob

    for text in texts:
        TextBlob(text).sentiment  # noqa: B018 - the work being timed
    return len(texts)


def textblob_reference(texts: list[str], workers: int) -> dict[str, Any]:
    """TextBlob(text).sentiment alone on the same texts: one process, then spread on `workers` processes."""
    _blob_sentiment(texts[:50])  # lazy lexicon load is not part of the rate
    start, cpu_start = time.perf_counter(), time.process_time()
    _blob_sentiment(texts)
    one = len(texts) / common.elapsed(start)
    out: dict[str, Any] = {"texts": len(texts), "one_process_per_second": one,
                           "per_cpu_second": len(texts) / (time.process_time() - cpu_start)}
    if workers > 1:
        import multiprocessing

        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as ex:
            list(ex.map(_blob_sentiment, [texts[:50]] * workers))  # start and warm every worker
            size = -(-len(texts) // (workers * 4))
            start = time.perf_counter()
            list(ex.map(_blob_sentiment, [texts[k : k + size] for k in range(0, len(texts), size)]))
            out["pool_per_second"] = len(texts) / common.elapsed(start)
        out["workers"] = workers
    return out


async def measure(args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    """Every run of the benchmark, in one process, for same-run ratios."""
    settings = config.parse({})
    settings = replace(settings, pipeline=replace(settings.pipeline, batch_size=args.batch))
    mentions = simulate(folder, args.n + args.steady_n)
    full, steady = mentions[: args.n], mentions[args.n :]
    texts = [m.text for m in full if m.direction is Direction.INBOUND]
    url = await fresh_db(folder, "full")
    with common.RssSampler() as rss:
        profiler = _profiler(args.profile)
        result: dict[str, Any] = {"full_speed": await run_pipeline(url, full, rate=None, pool=None, settings=settings)}
        _stop_profiler(profiler, args.profile)
        result["steady"] = await run_pipeline(url, steady, rate=args.rate, pool=None, settings=settings)
    result["peak_rss_mb"] = {"in_process": round(rss.peak_total_mb, 1)}
    result["sqlite_executemany"] = sqlite_reference(await fresh_db(folder, "reference"), url.split(":///", 1)[1], args.batch)
    workers = settings.pipeline.triage_workers if args.workers is None else args.workers
    if workers:
        pool = TriagePool(settings.triage, PoolSettings.from_pipeline(workers, settings.pipeline.triage_batch))
        async with pool:
            with common.RssSampler() as rss:
                url2 = await fresh_db(folder, "pooled")
                result["pooled_full_speed"] = await run_pipeline(url2, full, rate=None, pool=pool, settings=settings)
                result["pooled_steady"] = await run_pipeline(url2, steady, rate=args.rate, pool=pool, settings=settings)
        result["peak_rss_mb"]["pooled_total"] = round(rss.peak_total_mb, 1)
        result["pool"] = {"workers": workers, "triage_batch": settings.pipeline.triage_batch,
                          "triage_mismatches": triage_mismatches(url, url2)}
    result["textblob"] = textblob_reference(texts, os.cpu_count() or 1)  # the machine's cores
    result["inbound_share"] = len(texts) / len(full)
    return result


def _profiler(path: Path | None) -> Any:
    if path is None:
        return None
    from pyinstrument import Profiler

    profiler = Profiler(interval=0.001, async_mode="enabled")
    profiler.start()
    return profiler


def _stop_profiler(profiler: Any, path: Path | None) -> None:
    if profiler is None or path is None:
        return
    profiler.stop()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(profiler.output_text(unicode=True, color=False, show_all=False), encoding="utf-8")


def report(result: dict[str, Any]) -> str:
    """The table of figures and ratios (wall-clock rates, and rates per CPU-second, steadier on a shared box)."""
    blob = result["textblob"]
    lite = result["sqlite_executemany"]
    rows: list[list[Any]] = []
    for key, label in (("full_speed", "pipeline, full speed"), ("steady", f"pipeline, steady {result['rate']:.0f}/s"),
                       ("pooled_full_speed", "pipeline + triage pool, full speed"),
                       ("pooled_steady", f"pipeline + triage pool, steady {result['rate']:.0f}/s")):
        r = result.get(key)
        if r is None:
            continue
        blob_rate = blob.get("pool_per_second", blob["one_process_per_second"]) if "pooled" in key else blob["one_process_per_second"]
        rows.append([label, r["mentions"], r["per_second"], r["visible_p50_ms"], r["visible_p99_ms"], r["probe_p99_ms"],
                     r["per_cpu_second"] or 0.0, r["per_main_cpu_second"] or 0.0,
                     f"{r['per_second'] / blob_rate:.0%}", f"{r['per_second'] / lite['per_second']:.1%}"])
    rows.append(["sqlite3 executemany alone", lite["rows"], lite["per_second"], "", "", "", lite["per_cpu_second"] or 0.0,
                 "", "", "100%"])
    rows.append(["TextBlob sentiment alone, 1 process", blob["texts"], blob["one_process_per_second"], "", "", "",
                 blob["per_cpu_second"], "", "100%", ""])
    if "pool_per_second" in blob:
        rows.append([f"TextBlob sentiment alone, {blob['workers']} processes", blob["texts"], blob["pool_per_second"],
                     "", "", "", "", "", "100%", ""])
    table = common.table(["run", "mentions", "per s", "p50 ms", "p99 ms", "probe p99 ms", "per CPU-s",
                         "per ingest-proc CPU-s", "of TextBlob", "of sqlite"], rows)
    table += "\n" + cpu_ratios(result)
    pool = result.get("pool")
    if pool is None:
        return table
    done = result["pooled_full_speed"]["triaged_in_workers"] + result["pooled_steady"]["triaged_in_workers"]
    return (table + f"\ntriage pool: {pool['workers']} workers, triage_batch {pool['triage_batch']}; {done:,} messages "
            f"triaged in workers; stored triage differing from the in-process run: {pool['triage_mismatches']}")


def cpu_ratios(result: dict[str, Any]) -> str:
    """The pipeline's CPU per mention against TextBlob's per text: the ratio a busy neighbour distorts least."""
    blob_us = 1e6 / result["textblob"]["per_cpu_second"]
    parts = [f"CPU per mention (TextBlob alone: {blob_us:.0f} µs per text):"]
    for key, label in (("full_speed", "in process"), ("pooled_full_speed", "with the pool, all processes")):
        r = result.get(key)
        if r and r["per_cpu_second"]:
            parts.append(f"{label} {1e6 / r['per_cpu_second']:.0f} µs = {r['per_cpu_second'] * blob_us / 1e6:.0%} of "
                         "TextBlob's rate per CPU-second;")
    r = result.get("pooled_full_speed")
    if r and r["per_main_cpu_second"]:
        parts.append(f"ingest process alone {1e6 / r['per_main_cpu_second']:.0f} µs")
    return " ".join(parts)


def main(argv: list[str] | None = None) -> int:
    """Run, print the table, write benchmarks/results/ingest.json."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000, help="mentions in the full-speed runs")
    parser.add_argument("--steady-n", type=int, default=10_000, help="mentions in the steady runs")
    parser.add_argument("--rate", type=float, default=1000.0, help="steady arrival rate, mentions/s")
    parser.add_argument("--batch", type=int, default=config.PipelineSettings().batch_size,
                        help="pipeline batch size (mentions per transaction; default: the config's)")
    parser.add_argument("--workers", type=int, default=None,
                        help="triage pool workers (default: the config's triage_workers; 0 skips the pooled runs)")
    parser.add_argument("--profile", type=Path, default=None, help="write a pyinstrument text profile of the full-speed run")
    parser.add_argument("--out", type=Path, default=None, help="write the JSON here (default benchmarks/results/)")
    parser.add_argument("--quick", action="store_true", help="a seconds-long smoke run")
    args = parser.parse_args(argv)
    if args.quick:
        args.n, args.steady_n = min(args.n, 300), min(args.steady_n, 200)
    info = common.machine()
    with tempfile.TemporaryDirectory(prefix="carebox-bench-") as tmp:
        result = asyncio.run(measure(args, Path(tmp)))
    result.update(rate=args.rate, batch=args.batch, quick=args.quick, machine=info,
                  command="python -m benchmarks.ingest " + " ".join(argv if argv is not None else sys.argv[1:]))
    print(f"ingest: {args.n:,} mentions full speed, {args.steady_n:,} steady; {common.describe(info)}")
    print(common.SHARED_NOTE)
    print(report(result))
    if args.out is not None:
        args.out.write_text(json.dumps(result, indent=2, default=str) + "\n", encoding="utf-8")
    else:
        common.write_result(NAME, result, quick=args.quick)
    return 0


def run(quick: bool) -> int:
    """Entry point for `python -m benchmarks`."""
    return main(["--quick"] if quick else [])


if __name__ == "__main__":
    raise SystemExit(main())
