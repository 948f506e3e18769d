"""Benchmark: the scheduler's first SLA sweep after a restart, on a large SQLite store.

    python -m benchmarks.sla_start_sweep [--n 1000000] [--repeat 5] [--down 1000] [--db FILE] [--quick]

The store is benchmarks.reports' history (N conversations with their first-response clocks, 93% answered, written
with executemany) plus the SLA events such a store holds: an activation per clock, a fulfil per answer, a breach per
clock answered late or never (the breaches logged in time, so that no sweep has anything to fire). Then `--down` late
answers are stored as if while carebox was down (each must get its breach from the first sweep).

Times, in one process (wall and CPU, medians of --repeat): what the first sweep read before it kept a mark (every
fulfil event of the store: `answered_late(engine, 0)`), what it reads now (the events after the mark the last process
kept), the sweep's read of overdue clocks, and the whole first sweep of a fresh Scheduler (overdue clocks, then late
answers, then their breaches written), with the kept mark and then as before (from event 0, the same breaches to
write again: the second sweep runs on a warmer cache, which favours "before").
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from benchmarks._common import SHARED_NOTE
from benchmarks.reports import FMT, SPAN_S, START, build_history
from carebox import config
from carebox.clocks import ClockBook
from carebox.scheduler import Scheduler
from carebox.store import clocks as store
from carebox.store.engine import make_engine
from carebox.store.migrate import upgrade

NOW = START + timedelta(seconds=SPAN_S + 86400)


def add_events(path: str) -> int:
    """Log the SLA events of the history's clocks, breaches in time included; the number of events."""
    now = NOW.strftime(FMT)
    db = sqlite3.connect(path)
    db.execute("PRAGMA synchronous=OFF")
    late = "fulfilled_at > business_due OR (fulfilled_at IS NULL AND business_due <= ?)"
    db.execute(f"UPDATE slaclock SET breached_at = business_due WHERE {late}", (now,))
    for kind, at, where in (("activate", "started_at", "1"), ("breach", "business_due", "breached_at IS NOT NULL"),
                            ("fulfil", "fulfilled_at", "fulfilled_at IS NOT NULL")):
        db.execute("INSERT INTO slaevent (conversation_id, clock_id, target, kind, at, business_due, wall_due, detail) "
                   f"SELECT conversation_id, id, target, '{kind}', {at}, business_due, wall_due, '' FROM slaclock "
                   f"WHERE {where} ORDER BY id")
    db.commit()
    count = db.execute("SELECT count(*) FROM slaevent").fetchone()[0]
    db.close()
    return count


def answer_late_while_down(path: str, count: int) -> list[int]:
    """Answer `count` clocks that were never answered, after their due time and without their breach logged (as a
    worker does while the scheduler is down); the ids of their clocks."""
    db = sqlite3.connect(path)
    rows = db.execute("SELECT id, conversation_id, business_due, wall_due FROM slaclock WHERE fulfilled_at IS NULL "
                      "ORDER BY id LIMIT ?", (count,)).fetchall()
    at = NOW.strftime(FMT)
    db.executemany("UPDATE slaclock SET state = 'fulfilled', fulfilled_at = ?, breached_at = NULL WHERE id = ?",
                   [(at, r[0]) for r in rows])
    db.executemany("DELETE FROM slaevent WHERE clock_id = ? AND kind = 'breach'", [(r[0],) for r in rows])
    db.executemany("INSERT INTO slaevent (conversation_id, clock_id, target, kind, at, business_due, wall_due, detail) "
                   "VALUES (?, ?, 'first_response', 'fulfil', ?, ?, ?, '')", [(r[1], r[0], at, r[2], r[3]) for r in rows])
    db.commit()
    db.close()
    return [r[0] for r in rows]


def forget_breaches(path: str, clock_ids: list[int], mark: int) -> None:
    """Undo the breaches a sweep logged for these clocks, so that another sweep has the same work."""
    db = sqlite3.connect(path)
    db.executemany("UPDATE slaclock SET breached_at = NULL WHERE id = ?", [(i,) for i in clock_ids])
    db.execute("DELETE FROM slaevent WHERE kind = 'breach' AND id > ?", (mark,))
    db.commit()
    db.close()


async def timed(work: Callable[[], Awaitable[Any]], repeat: int) -> tuple[float, float, Any]:
    """Median wall and CPU seconds of `repeat` runs of `work`, and its last result."""
    walls, cpus, result = [], [], None
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        result = await work()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return statistics.median(walls), statistics.median(cpus), result


async def measure(url: str, path: str, repeat: int, down: int) -> list[tuple[str, float, float, str]]:
    """(what, wall s, CPU s, note) of each measure."""
    engine = make_engine(url)
    book = ClockBook(config.parse({"database": {"url": url}}, environ={}).sla)
    try:
        previous = Scheduler(engine, book, lambda: NOW)
        await previous.sweep()  # the last process's sweeps: nothing to fire, the mark kept in the store
        mark = await store.late_answers_read(engine)
        answered = answer_late_while_down(path, down)
        rows: list[tuple[str, float, float, str]] = []
        wall, cpu, (late, _) = await timed(lambda: store.answered_late(engine, 0), repeat)
        rows.append(("late answers read from event 0 (the first sweep before)", wall, cpu, f"{len(late)} late"))
        wall, cpu, (late, _) = await timed(lambda: store.answered_late(engine, mark), repeat)
        rows.append(("late answers read after the kept mark (the first sweep now)", wall, cpu, f"{len(late)} late"))
        wall, cpu, due = await timed(lambda: store.overdue(engine, NOW), repeat)
        rows.append(("overdue clocks read (the sweep's other read, unchanged)", wall, cpu, f"{len(due)} overdue"))
        for name, seen in (("now", None), ("before: every start read from event 0", 0)):
            fresh = Scheduler(engine, book, lambda: NOW)
            fresh._fulfils_seen = seen  # None: the mark kept in the store; 0: what the first sweep used
            fired: list[Any] = []
            fresh.on_fired = fired.extend
            wall, cpu = time.perf_counter(), time.process_time()
            await fresh.sweep()
            rows.append((f"whole first sweep after a restart ({name})", time.perf_counter() - wall,
                         time.process_time() - cpu, f"{len(fired)} breaches of {len(answered)} answered while down"))
            forget_breaches(path, answered, mark)  # the next one finds the same work
        return rows
    finally:
        await engine.dispose()


def main() -> None:
    """Build (or reuse) the store, then print a markdown table of the measures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="conversations (each with a first-response clock)")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--down", type=int, default=1000, help="late answers stored while carebox was down")
    parser.add_argument("--db", default=None, help="keep the generated store here (a copy is measured)")
    parser.add_argument("--quick", action="store_true", help="a seconds-long smoke: 20k conversations, one run")
    args = parser.parse_args()
    if args.quick:
        args.n, args.repeat, args.down = 20_000, 1, 100
    path = Path(args.db) if args.db else Path(tempfile.mkdtemp()) / "bench.db"
    url = f"sqlite+aiosqlite:///{path}"
    if not path.exists():
        asyncio.run(upgrade(url))
        t = time.perf_counter()
        build_history(str(path), args.n)
        events = add_events(str(path))
        print(f"built {args.n} conversations, {events} SLA events in {time.perf_counter() - t:.0f}s ({path})")
    work = Path(tempfile.mkdtemp()) / "work.db"
    src = sqlite3.connect(path)
    with sqlite3.connect(work) as dst:
        src.backup(dst)
    src.close()
    size_mb = os.path.getsize(work) / 2**20
    print(f"store {size_mb:.0f} MB; load {os.getloadavg()[0]:.1f}; {SHARED_NOTE}")
    print("| measure | wall s | CPU s | |\n|---|---:|---:|---|")
    for name, wall, cpu, note in asyncio.run(measure(f"sqlite+aiosqlite:///{work}", str(work), args.repeat, args.down)):
        print(f"| {name} | {wall:.3f} | {cpu:.3f} | {note} |")
    work.unlink()
    if not args.db:
        path.unlink()


if __name__ == "__main__":
    main()
