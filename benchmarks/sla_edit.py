"""Saving a calendar from the web with many open conversations: how long the rebase of the running clocks takes.

    python -m benchmarks.sla_edit [--n 20000] [--db /tmp/sla-edit.db]

Builds an SQLite store with `n` open conversations (one running first-response clock each, 60 business hours
on Mon-Fri 09:00-19:00), then saves three calendar versions in a row and times each rebase (wall time, the
whole write path): v1 -> v2 with the batched rebase (`rebase_on_new_calendars`, 1,000 clocks per transaction),
v2 -> v3 with the previous one-transaction-per-clock path, for a same-run ratio. Prints a table and writes
benchmarks/results/sla_edit.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import random
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from carebox import config
from carebox.clocks import calendar_from_json, calendar_to_json
from carebox.escalation import rebase_on_new_calendars
from carebox.ports import InboundMention, IngestBatch
from carebox.runtime import make_pipeline
from carebox.sla_tables import with_edits
from carebox.store import clocks as clock_store
from carebox.store.engine import make_engine
from carebox.store.migrate import upgrade

RESULTS = Path(__file__).resolve().parent / "results" / "sla_edit.json"
HOURS = {"mon-fri": ["09:00-19:00"]}


def _settings(url: str) -> config.Settings:
    return config.parse({"database": {"url": url},
                         "calendars": {"service-hours": {"timezone": "Europe/Paris", "hours": HOURS}},
                         "policies": [{"name": "social", "calendar": "service-hours", "first_response": "60h"}]},
                        environ={})


async def _seed(pipeline, n: int, now: datetime) -> None:
    rng = random.Random(7)
    for start in range(0, n, 1000):
        mentions = tuple(InboundMention(
            network="x", account="acme", external_id=f"m{i}", author_id=f"u{i}", author_handle=f"u{i}",
            text="my line is down again", created_at=now - timedelta(minutes=rng.randint(1, 600)))
            for i in range(start, min(n, start + 1000)))
        await pipeline.ingest([IngestBatch("bench", mentions)], now)


async def _one_by_one(engine, book, now: datetime) -> int:
    """The rebase as it was before batching: a parsed calendar and a write transaction per clock."""
    kept = await clock_store.keep_calendar_versions(
        engine, {(c.name, c.version): calendar_to_json(c) for c in book.settings.calendars.values()}, now)
    moved = 0
    for clock in await clock_store.running(engine):
        old = kept.get((clock["calendar"], clock["calendar_version"]))
        update = book.rebased(clock, calendar_from_json(old), now) if old else None
        if update is None:
            continue
        await clock_store.rebase(engine, clock, update, {
            "conversation_id": clock["conversation_id"], "clock_id": clock["id"], "target": clock["target"],
            "kind": "rebase", "at": now, "business_due": update.get("business_due", clock["business_due"]),
            "wall_due": clock["wall_due"], "detail": "benchmark"})
        moved += 1
    return moved


async def run(n: int, db: str | None) -> dict[str, float]:
    path = Path(db) if db else Path(tempfile.mkdtemp()) / "sla-edit.db"
    url = f"sqlite+aiosqlite:///{path}"
    await upgrade(url)
    engine = make_engine(url)
    settings = _settings(url)
    pipeline, book = make_pipeline(settings, engine)
    now = datetime.now(UTC)
    t0 = time.perf_counter()
    await _seed(pipeline, n, now)
    seed_s = time.perf_counter() - t0
    await rebase_on_new_calendars(engine, book, now)  # keeps version 1
    saturday = {"timezone": "Europe/Paris", "hours": {**HOURS, "sat": ["09:00-13:00"]}, "version": 2}
    book.use(with_edits(settings.sla, {"service-hours": saturday}, {}))
    t0 = time.perf_counter()
    batched = len(await rebase_on_new_calendars(engine, book, now))
    batched_s = time.perf_counter() - t0
    book.use(with_edits(settings.sla, {"service-hours": {**saturday, "hours": {**HOURS, "sat": ["09:00-12:00"]},
                                                        "version": 3}}, {}))
    t0 = time.perf_counter()
    single = await _one_by_one(engine, book, now)
    single_s = time.perf_counter() - t0
    await engine.dispose()
    return {"open_clocks": n, "seed_s": seed_s, "batched_moved": batched, "batched_s": batched_s,
            "one_by_one_moved": single, "one_by_one_s": single_s, "ratio": single_s / batched_s if batched_s else 0.0}


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print the table, write the JSON results."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=20000, help="open conversations (default 20000)")
    parser.add_argument("--db", help="SQLite file to build (default: a temporary directory)")
    args = parser.parse_args(argv)
    result = asyncio.run(run(args.n, args.db))
    print(f"open clocks                       {result['open_clocks']:>10,}")
    print(f"rebase, batched (s)               {result['batched_s']:>10.2f}  ({result['batched_moved']:,} moved, "
          f"{result['batched_moved'] / result['batched_s']:,.0f} clocks/s)")
    print(f"rebase, one transaction each (s)  {result['one_by_one_s']:>10.2f}  ({result['one_by_one_moved']:,} moved)")
    print(f"ratio one-by-one / batched        {result['ratio']:>10.1f}x")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({**result, "python": platform.python_version(),
                                   "at": datetime.now(UTC).isoformat()}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
