"""Benchmark: the full report and the heatmap over a history of N conversations on SQLite.

    python -m benchmarks.reports [--n 1000000] [--repeat 3] [--db FILE] [--add 1000] [--reuse] [--direct]

Times the report facts built from scratch, the full report and the heatmap read from them (warm), the
incremental refresh after --add new conversations, after as many old ones got an SLA event that changes no fact
(touched) and after as many unanswered ones got answered (all written into --db: use a copy; --reuse keeps the facts
already built there instead of rebuilding them), each in ms per conversation (wall and CPU), and with --direct the
report read from the conversations themselves (the PostgreSQL path). The history is written with executemany (not the pipeline): conversations spread over 26 weeks, 20 accounts,
3 networks, 8 agents, wall-clock first responses drawn from an exponential law, business time derived from a
Mon-Fri 09:00-19:00 day. Prints the median time of each measure.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sqlite3
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine

from carebox import config, reports_config
from carebox.store import report_facts, reporting
from carebox.store.engine import make_engine
from carebox.store.migrate import upgrade

START = datetime(2026, 1, 5, tzinfo=UTC)
FMT = "%Y-%m-%d %H:%M:%S.%f"
ACCOUNTS = [f"brand{i:02d}" for i in range(20)]
NETWORKS = ("x", "mastodon", "bluesky")
SPAN_S = 26 * 7 * 86400


def _ts(at: datetime) -> str:
    return at.strftime(FMT)


def _rows(rng: random.Random, i: int, first: datetime, customers: int, now: str) -> tuple[tuple, tuple]:
    """The conversation row and its first-response clock row of conversation `i`."""
    answered = rng.random() < 0.93
    wall = rng.expovariate(1 / 5400.0) if answered else None
    business = wall * (0.35 if first.weekday() >= 5 or not 8 <= first.hour < 18 else 0.9) if wall is not None else None
    response = first + timedelta(seconds=wall) if wall is not None else None
    due = first + timedelta(seconds=3600 if business is None else 3600 * wall / max(business, 1.0))
    conv = (
        i, NETWORKS[i % 3], ACCOUNTS[i % 20], "bench", rng.randrange(1, customers + 1), "open", f"P{1 + i % 4}",
        ("outage", "complaint", "question", "praise", "other")[i % 5], ("en", "fr")[i % 2],
        round(rng.uniform(-1, 1), 2), round(rng.uniform(-1, 1), 2), (i % 9) or None, "social", 2,
        i if i % 50 == 0 else None, now, _ts(first), _ts(first), _ts(response) if response else None,
    )
    clock = (
        i, "first_response", "social", "service-hours", _ts(first), _ts(due), _ts(first + timedelta(hours=1)),
        "fulfilled" if answered else "running", _ts(response) if response else None, business, wall,
    )
    return conv, clock


def build_history(path: str, n: int, seed: int = 7) -> None:
    """Write n conversations (with their first-response clocks), 8 agents and n // 3 customers."""
    rng = random.Random(seed)
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=OFF")
    now = _ts(START)
    db.executemany("INSERT INTO user (id, username, display_name, password_hash, role, language, timezone, active, created_at)"
                   " VALUES (?, ?, '', 'x', 'agent', 'en', 'UTC', 1, ?)", [(i, f"agent{i}", now) for i in range(1, 9)])
    customers = max(1, n // 3)
    db.executemany("INSERT INTO customer (id, display_name, created_at) VALUES (?, '', ?)",
                   [(i, now) for i in range(1, customers + 1)])
    conv_rows, clock_rows = [], []
    for i in range(1, n + 1):
        conv, clock = _rows(rng, i, START + timedelta(seconds=rng.randrange(SPAN_S)), customers, now)
        conv_rows.append(conv)
        clock_rows.append(clock)
        if len(conv_rows) == 50_000:
            _flush(db, conv_rows, clock_rows)
    _flush(db, conv_rows, clock_rows)
    db.commit()
    db.close()


def add_recent(path: str, count: int, seed: int = 11) -> None:
    """Append `count` conversations opened over the last day of the history (what arrives between reports)."""
    rng = random.Random(seed)
    db = sqlite3.connect(path)
    first_id, customers = db.execute("SELECT max(id) + 1 FROM conversation").fetchone()[0], db.execute(
        "SELECT count(*) FROM customer").fetchone()[0]
    now = _ts(START)
    rows = [_rows(rng, i, START + timedelta(seconds=SPAN_S - rng.randrange(86400)), customers, now)
            for i in range(first_id, first_id + count)]
    _flush(db, [r[0] for r in rows], [r[1] for r in rows])
    db.commit()
    db.close()


def touch_old(path: str, count: int, seed: int = 13) -> None:
    """An SLA warning on `count` conversations of the history: each is refreshed, none of its facts changes."""
    rng = random.Random(seed)
    db = sqlite3.connect(path)
    top = db.execute("SELECT max(id) FROM conversation").fetchone()[0]
    now = _ts(START + timedelta(seconds=SPAN_S))
    db.executemany("INSERT INTO slaevent (conversation_id, target, kind, at, detail) VALUES (?, 'first_response', 'warn', ?, '')",
                   [(i, now) for i in rng.sample(range(1, top + 1), count)])
    db.commit()
    db.close()


def answer_old(path: str, count: int, seed: int = 17) -> int:
    """Answer up to `count` of the newest unanswered conversations (their first-response clock fulfilled, an SLA
    event logged): facts, walk indexes and cells change. The number answered."""
    rng = random.Random(seed)
    db = sqlite3.connect(path)
    rows = db.execute("SELECT conversation_id, started_at FROM slaclock WHERE target = 'first_response' AND state = 'running' "
                      "ORDER BY started_at DESC LIMIT ?", (count,)).fetchall()
    done = []
    for cid, started in rows:
        wall = rng.expovariate(1 / 5400.0)
        at = _ts(datetime.strptime(started, FMT) + timedelta(seconds=wall))
        done.append((at, 0.9 * wall, wall, cid))
    db.executemany("UPDATE slaclock SET state = 'fulfilled', fulfilled_at = ?, business_s = ?, wall_s = ? "
                   "WHERE conversation_id = ? AND target = 'first_response'", done)
    db.executemany("UPDATE conversation SET first_response_at = ? WHERE id = ?", [(d[0], d[3]) for d in done])
    db.executemany("INSERT INTO slaevent (conversation_id, target, kind, at, detail) VALUES (?, 'first_response', 'fulfil', ?, '')",
                   [(d[3], d[0]) for d in done])
    db.commit()
    db.close()
    return len(done)


def _flush(db: sqlite3.Connection, conv_rows: list[tuple], clock_rows: list[tuple]) -> None:
    db.executemany(
        "INSERT INTO conversation (id, network, account, source, customer_id, status, priority, category, language,"
        " sentiment_open, sentiment_last, assignee_id, policy, message_count, incident_id, created_at,"
        " first_message_at, last_message_at, first_response_at, snippet, public, tags)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, '', 1, '[]')", conv_rows)
    db.executemany(
        "INSERT INTO slaclock (conversation_id, target, policy, calendar, calendar_version, started_at, business_due,"
        " wall_due, state, paused_s, fulfilled_at, business_s, wall_s) VALUES (?, ?, ?, ?, 1, ?, ?, ?, ?, 0, ?, ?, ?)",
        clock_rows)
    conv_rows.clear()
    clock_rows.clear()


def _timed(times: dict[str, list[float]], name: str, started: float) -> None:
    times.setdefault(name, []).append(time.perf_counter() - started)


async def _refresh_per_conversation(times: dict[str, list[float]], name: str, engine: AsyncEngine,
                                    rules: report_facts.FactRules, now: datetime) -> None:
    """Time one incremental refresh, in ms per refreshed conversation (wall and CPU of this process)."""
    t, cpu = time.perf_counter(), time.process_time()
    refreshed = await report_facts.refresh(engine, rules, now)
    wall, cpu = time.perf_counter() - t, time.process_time() - cpu
    per = max(refreshed.conversations, 1)
    print(f"refresh after {name}: {refreshed.conversations} conversations, {refreshed.days} days, {wall:.2f}s: "
          f"{wall / per * 1000:.2f} ms wall, {cpu / per * 1000:.2f} ms CPU per conversation")
    times.setdefault(f"incremental refresh, {name}", []).append(wall)


async def measure(url: str, path: str, repeat: int, added: int, direct: bool, reuse: bool = False) -> dict[str, list[float]]:
    """Time the facts build from scratch, the full report and the heatmap (warm, `repeat` times each), the
    incremental refresh after `added` new conversations, and with `direct` the report read from conversations."""
    settings = config.parse({"database": {"url": url}}, environ={})
    rs = reports_config.parse_settings(settings.raw, settings.sla)
    engine = make_engine(url)
    scope = reporting.Scope(now=START + timedelta(days=200), contract_policies=rs.contract_policies,
                            expectation_s=rs.customer_expectation_s)
    rules = reporting.fact_rules(scope, rs)
    times: dict[str, list[float]] = {}
    try:
        t = time.perf_counter()
        built = await report_facts.refresh(engine, rules, scope.now, rebuild=not reuse)
        if built.rebuilt:
            _timed(times, f"facts build from scratch ({built.conversations} conversations)", t)
        for _ in range(repeat):
            t = time.perf_counter()
            report = await reporting.build_report(engine, scope, rs)
            _timed(times, "full report (warm)", t)
            t = time.perf_counter()
            await reporting.heatmap(engine, scope, rs)
            _timed(times, "heatmap (warm)", t)
        if added:
            add_recent(path, added)
            await _refresh_per_conversation(times, f"{added} new conversations", engine, rules, scope.now)
            touch_old(path, added)
            await _refresh_per_conversation(times, f"an SLA event on {added} old conversations", engine, rules, scope.now)
            answered = answer_old(path, added)
            await _refresh_per_conversation(times, f"{answered} old conversations answered", engine, rules, scope.now)
            t = time.perf_counter()
            report = await reporting.build_report(engine, scope, rs)
            _timed(times, "full report after the refresh", t)
        if direct:
            t = time.perf_counter()
            await reporting.build_report_direct(engine, scope, rs)
            _timed(times, "full report read from conversations (the old path)", t)
        print(f"conversations={report.totals.conversations} accounts={len(report.by_account)} "
              f"p50 wall={report.totals.frt_wall.p50:.0f}s p90 wall={report.totals.frt_wall.p90:.0f}s")
    finally:
        await engine.dispose()
    return times


def main() -> None:
    """Build (or reuse) the history, then print the median time of each measure."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--db", default=None, help="reuse or create this SQLite file (default: a temp dir)")
    parser.add_argument("--add", type=int, default=1000, help="new conversations before the incremental refresh")
    parser.add_argument("--reuse", action="store_true", help="keep the facts already built in --db (no rebuild)")
    parser.add_argument("--direct", action="store_true", help="also time the report read from conversations")
    args = parser.parse_args()
    path = Path(args.db) if args.db else Path(tempfile.mkdtemp()) / "bench.db"
    url = f"sqlite+aiosqlite:///{path}"
    fresh = not path.exists()
    asyncio.run(upgrade(url))  # an older history gets the report facts tables
    if fresh:
        t = time.perf_counter()
        build_history(str(path), args.n)
        print(f"built {args.n} conversations in {time.perf_counter() - t:.1f}s ({path})")
    times = asyncio.run(measure(url, str(path), args.repeat, args.add, args.direct, args.reuse))
    for name, values in times.items():
        print(f"{name}: median {statistics.median(values):.2f}s over {len(values)} runs "
              f"(min {min(values):.2f}s, max {max(values):.2f}s)")


if __name__ == "__main__":
    main()
