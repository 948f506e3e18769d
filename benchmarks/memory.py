"""Peak RSS of an embedded carebox ingesting, on an empty store and with 1M mentions stored.

    python -m benchmarks.memory [--stored 1000000] [--ingest 5000] [--workers N] [--quick]

The stored history is made fast, not through the pipeline: a few thousand mentions go through the real
pipeline into a template file, then every row of it (customers, identities, conversations, clocks, events,
mentions) is copied with sqlite3 executemany, ids and foreign keys shifted, until `--stored` mentions exist.
Each measurement runs in a fresh process (so the copy's memory does not count): it opens the store, runs the
inbox's first page and counts, then ingests `--ingest` new mentions through queue -> pipeline (with the
triage pool when `--workers` > 0; default: the product's `[pipeline] triage_workers`). Reported: that process's peak RSS (VmHWM), and the peak of the PSS summed
over it and its descendants (forkserver, pool workers; PSS counts pages they share once), sampled every 0.25 s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout

from benchmarks import _common as common

NAME = "memory"
TABLES = ("customer", "identity", "conversation", "slaclock", "slaevent", "mention")
UNIQUE_TEXT = {"identity": ("external_user_id",), "mention": ("external_id", "in_reply_to")}


async def _template(folder: Path, n: int) -> str:
    """A store holding `n` simulated mentions ingested by the real pipeline; returns its file path."""
    from benchmarks import ingest
    from carebox import config

    url = await ingest.fresh_db(folder, "template")
    mentions = ingest.simulate(folder, n, seed=2)
    await ingest.run_pipeline(url, mentions, rate=None, pool=None, settings=config.parse({}))
    return url.split(":///", 1)[1]


def replicate(template: str, target: str, mentions: int, batch: int = 5000) -> dict[str, int]:
    """Copy the template's rows into `target` (already migrated) until it holds `mentions` mentions."""
    src = sqlite3.connect(template)
    dst = sqlite3.connect(target, isolation_level=None)
    dst.execute("PRAGMA journal_mode=WAL")
    dst.execute("PRAGMA synchronous=OFF")
    maxid = {t: src.execute(f"SELECT coalesce(max(id), 0) FROM {t}").fetchone()[0] for t in TABLES}
    per_copy = src.execute("SELECT count(*) FROM mention").fetchone()[0]
    copies = -(-mentions // per_copy)
    counts: dict[str, int] = {}
    for table in TABLES:
        cols = [r[1] for r in src.execute(f"PRAGMA table_info({table})")]
        fks = {r[3]: r[2] for r in src.execute(f"PRAGMA foreign_key_list({table})") if r[2] in maxid}
        rows = src.execute(f"SELECT {', '.join(cols)} FROM {table} ORDER BY id").fetchall()
        shift = [(k, maxid[table] if c == "id" else maxid[fks[c]] if c in fks else None)
                 for k, c in enumerate(cols)]
        texts = [k for k, c in enumerate(cols) if c in UNIQUE_TEXT.get(table, ())]
        sql = f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})"
        dst.execute("BEGIN")
        written = 0
        for copy in range(copies):
            out = []
            for row in rows:
                if table == "mention" and written + len(out) >= mentions:
                    break
                values = list(row)
                for k, step in shift:
                    if step is not None and values[k] is not None:
                        values[k] += copy * step
                for k in texts:
                    if values[k] is not None:
                        values[k] = f"{values[k]}~{copy}"
                out.append(values)
            for k in range(0, len(out), batch):
                dst.executemany(sql, out[k : k + batch])
            written += len(out)
        dst.execute("COMMIT")
        counts[table] = written
    dst.execute("ANALYZE")
    src.close()
    dst.close()
    return counts


async def _measure(db: str, folder: Path, n: int, workers: int) -> dict[str, Any]:
    """In this (fresh) process: inbox page, then ingest `n` new mentions; RSS and timings."""
    from benchmarks import ingest
    from carebox import config
    from carebox.store import queries
    from carebox.store.engine import make_engine
    from carebox.triage_pool import PoolSettings, TriagePool

    url = f"sqlite+aiosqlite:///{db}"
    settings = config.parse({})
    out: dict[str, Any] = {"rss_mb_at_start": round(common.rss_mb(), 1)}
    engine = make_engine(url)
    start = time.perf_counter()
    page = await queries.inbox(engine, "all", None, now=datetime.now(UTC))
    out["inbox_first_page_ms"] = round(common.elapsed(start) * 1000, 1)
    out["inbox_rows"] = len(page.rows) if hasattr(page, "rows") else None
    out["stats"] = await queries.stats(engine)
    await engine.dispose()
    out["rss_mb_after_inbox"] = round(common.rss_mb(), 1)
    mentions = ingest.simulate(folder, n, seed=3)
    p = settings.pipeline
    pool = TriagePool(settings.triage, PoolSettings.from_pipeline(workers, p.triage_batch)) if workers else None
    with common.RssSampler(every_s=0.25) as rss:
        if pool is not None:
            await pool.start()
        try:
            result = await ingest.run_pipeline(url, mentions, rate=None, pool=pool, settings=settings)
        finally:
            if pool is not None:
                await pool.aclose()
    out.update(ingested=result["mentions"], ingest_per_second=round(result["per_second"]),
               peak_rss_mb_self=round(common.peak_rss_mb(), 1), peak_rss_mb_with_workers=round(rss.peak_total_mb, 1))
    return out


def measure_in_child(db: str, n: int, workers: int) -> dict[str, Any]:
    """Run `_measure` in a fresh interpreter and return its JSON."""
    cmd = [sys.executable, "-m", "benchmarks.memory", "--phase", "measure", "--db", db, "--ingest", str(n),
           "--workers", str(workers)]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"measure phase failed: {proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


async def _prepare(folder: Path, template_n: int) -> tuple[str, str, dict[str, Any]]:
    """The template store, an empty store and the store to fill, all migrated."""
    from benchmarks import ingest

    template = await _template(folder, template_n)
    empty = (await ingest.fresh_db(folder, "empty")).split(":///", 1)[1]
    big = (await ingest.fresh_db(folder, "stored")).split(":///", 1)[1]
    return template, empty, {"template": template, "big": big}


def main(argv: list[str] | None = None) -> int:
    """Run, print the table, write benchmarks/results/memory.json."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stored", type=int, default=1_000_000, help="mentions stored before measuring")
    parser.add_argument("--ingest", type=int, default=5000, help="mentions ingested while measuring")
    parser.add_argument("--workers", type=int, default=None,
                        help="triage pool workers (0 = triage in process; default: the config's triage_workers)")
    parser.add_argument("--template", type=int, default=3000, help="mentions the template store gets from the pipeline")
    parser.add_argument("--quick", action="store_true", help="a seconds-long smoke run")
    parser.add_argument("--phase", choices=("all", "measure"), default="all", help=argparse.SUPPRESS)
    parser.add_argument("--db", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.workers is None:
        from carebox import config

        args.workers = config.parse({}).pipeline.triage_workers
    if args.phase == "measure":
        with tempfile.TemporaryDirectory(prefix="carebox-mem-") as tmp:
            print(json.dumps(asyncio.run(_measure(args.db, Path(tmp), args.ingest, args.workers))))
        return 0
    if args.quick:
        # measured in this process, no pool: the smoke checks the machinery, not the figures
        args.stored, args.ingest, args.template = min(args.stored, 5_000), min(args.ingest, 100), min(args.template, 100)
        args.workers = 0
    info = common.machine()
    with tempfile.TemporaryDirectory(prefix="carebox-mem-") as tmp:
        template, empty, paths = asyncio.run(_prepare(Path(tmp), args.template))
        start = time.perf_counter()
        counts = replicate(template, paths["big"], args.stored)
        build_s = common.elapsed(start)
        size_mb = Path(paths["big"]).stat().st_size / 1e6
        label = f"{counts['mention']:,} mentions stored"
        if args.quick:
            runs = {label: asyncio.run(_measure(paths["big"], Path(tmp), args.ingest, args.workers))}
        else:
            runs = {"empty store": measure_in_child(empty, args.ingest, args.workers),
                    label: measure_in_child(paths["big"], args.ingest, args.workers)}
    result = {"stored": counts, "build_seconds": round(build_s, 1), "db_mb": round(size_mb, 1), "runs": runs,
              "ingest": args.ingest, "workers": args.workers, "quick": args.quick, "machine": info, "target_mb": 500,
              "command": "python -m benchmarks.memory " + " ".join(argv if argv is not None else sys.argv[1:])}
    print(f"memory: {args.ingest:,} mentions ingested with {args.workers} triage workers; {common.describe(info)}")
    print(f"stored history built with executemany in {build_s:.1f} s ({size_mb:.0f} MB): "
          + ", ".join(f"{t} {n:,}" for t, n in counts.items()))
    rows = [[name, r["rss_mb_at_start"], r["rss_mb_after_inbox"], r["peak_rss_mb_self"], r["peak_rss_mb_with_workers"],
             r["inbox_first_page_ms"], r["ingest_per_second"]] for name, r in runs.items()]
    print(common.table(["store", "RSS start MB", "after inbox MB", "peak RSS MB", "peak PSS incl. workers MB", "inbox ms",
                        "ingest/s"], rows))
    common.write_result(NAME, result, quick=args.quick)
    return 0


def run(quick: bool) -> int:
    """Entry point for `python -m benchmarks`."""
    return main(["--quick"] if quick else [])


if __name__ == "__main__":
    raise SystemExit(main())
