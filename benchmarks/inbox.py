"""Inbox server time at scale: 1M mentions / 100k open conversations in SQLite, 50 concurrent agents.

    python -m benchmarks.inbox [--mentions 1000000] [--open 100000] [--agents 50] [--seconds 30] [--think 2]
                               [--ramp SECONDS] [--processes N] [--db PATH] [--quick]

Rows are generated with sqlite3 executemany (not through the pipeline); then carebox serves them as
`carebox serve` does, on a local port, and simulated agents log in and browse saved views (following keyset
pages), open conversations, and sometimes reply (a simulator connector without traffic of its own stands in
for the network). Server time is measured by the app itself (its Server-Timing header, whichever web process
answered), so client and network overhead are excluded. `--processes N` serves with `[inbox] processes = N`
(the main process and N - 1 web processes).

Agents log in at random moments over the first `--ramp` seconds (default: two think times), as a shift starts;
`--ramp 0` makes all of them log in and open the inbox at the same instant, which measures a queue of 50
simultaneous first pages (about 50 x one page's time for the last one) rather than the steady state.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import sqlite3
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._common import SHARED_NOTE, median, percentile

NETWORKS = ("x", "mastodon", "bluesky", "facebook", "email")
VIEWS = ("awaiting", "mine", "unassigned", "due_soon", "breached", "open", "pending", "resolved")
FMT = "%Y-%m-%d %H:%M:%S.%f"


def _ts(at: datetime) -> str:
    return at.astimezone(UTC).replace(tzinfo=None).strftime(FMT)


def generate(path: Path, mentions: int, open_convs: int, agents: int, now: datetime) -> dict[str, int]:
    """Fill a migrated SQLite file: customers, identities, conversations (open and resolved), mentions, users."""
    from argon2 import PasswordHasher

    rng = random.Random(7)
    conversations = max(open_convs, mentions // 3)
    customers = max(1, conversations // 2)
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=OFF")
    cheap = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1).hash("bench-pass")
    db.executemany("INSERT INTO user (id, username, display_name, password_hash, role, language, timezone, active, "
                   "created_at) VALUES (?, ?, ?, ?, 'agent', 'en', 'Europe/Paris', 1, ?)",
                   [(i, f"agent{i}", f"Agent {i}", cheap, _ts(now)) for i in range(1, agents + 1)])
    db.executemany("INSERT INTO customer (id, display_name, created_at) VALUES (?, ?, ?)",
                   ((i, f"Customer {i}", _ts(now)) for i in range(1, customers + 1)))
    db.executemany("INSERT INTO identity (id, customer_id, network, external_user_id, handle, display_name, verified) "
                   "VALUES (?, ?, ?, ?, ?, ?, 0)",
                   ((i, i, NETWORKS[i % 5], f"u{i}", f"user{i}", f"Customer {i}") for i in range(1, customers + 1)))

    def conv_rows():
        for i in range(1, conversations + 1):
            is_open = i > conversations - open_convs
            first = now - timedelta(minutes=rng.randint(1, 60 * 24 * 60 if not is_open else 60 * 24 * 3))
            due = first + timedelta(hours=rng.choice((1, 2, 4, 8)))
            status = "open" if is_open and rng.random() < 0.9 else ("pending" if is_open else "resolved")
            answered = is_open and rng.random() < 0.2
            yield (i, NETWORKS[(i // 2) % 5], "acme", "sim", (i - 1) % customers + 1, status, rng.choice(("P1", "P2", "P3", "P4")),
                   rng.choice(("outage", "complaint", "question", "praise", "other")), rng.choice(("en", "fr")), -0.2, -0.2,
                   rng.randint(1, agents) if is_open and rng.random() < 0.4 else None, f"message number {i} about my bill",
                   1, 3, '["vip"]' if i % 50 == 0 else "[]", 1 if is_open and i % 97 == 0 else None, _ts(first), _ts(first),
                   _ts(first), _ts(first), None if (not is_open or answered) else _ts(due),
                   None if (not is_open or answered) else _ts(first + timedelta(hours=1)),
                   None if not is_open else _ts(now), "social")
    db.executemany(
        "INSERT INTO conversation (id, network, account, source, customer_id, status, priority, category, language, "
        "sentiment_open, sentiment_last, assignee_id, snippet, public, message_count, tags, incident_id, created_at, "
        "first_message_at, last_message_at, last_inbound_at, due_business, due_wall, resolved_at, policy) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", conv_rows())

    def mention_rows():
        for m in range(1, mentions + 1):
            cid = (m - 1) % conversations + 1
            at = now - timedelta(minutes=rng.randint(1, 60 * 24 * 60))
            yield (m, NETWORKS[(cid // 2) % 5], f"e{m}", "acme", cid, (cid - 1) % customers + 1, "in", f"u{cid}",
                   f"user{cid}", "Customer", f"message {m}: my internet is down again", _ts(at), _ts(at), 1, 0, 0, 0, 0)
    db.executemany(
        "INSERT INTO mention (id, network, external_id, account, conversation_id, customer_id, direction, author_id, "
        "author_handle, author_name, text, created_at, ingested_at, public, verified, reposts, is_repost, automated) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", mention_rows())
    db.commit()
    db.execute("ANALYZE")
    db.close()
    return {"mentions": mentions, "conversations": conversations, "open": open_convs, "customers": customers}


TIMES: dict[str, list[float]] = {"inbox": [], "conversation": [], "reply": []}


def _timed(kind: str, response: Any) -> Any:
    """Record the server time of a response (its Server-Timing header, set by whichever web process answered)."""
    found = re.search(r"app;dur=([0-9.]+)", response.headers.get("Server-Timing", ""))
    if found:
        TIMES[kind].append(float(found.group(1)))
    return response


async def agent_loop(client: Any, n: int, conversations: int, open_from: int, until: float, rng: random.Random,
                     think_s: float = 0.0, arrive_s: float = 0.0) -> None:
    """One agent: arrive, log in, then browse views (and their next pages), open conversations, reply now and then."""
    await asyncio.sleep(arrive_s)
    page = await (await client.get("/login")).text()
    token = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
    await client.post("/login", data={"username": f"agent{n}", "password": "bench-pass", "csrf": token}, allow_redirects=False)
    while time.monotonic() < until:
        body = await _timed("inbox", await client.get(f"/?view={rng.choice(VIEWS)}")).text()
        await asyncio.sleep(rng.uniform(0.5, 1.5) * think_s)
        nxt = re.search(r'href="(/\?[^"]*after=[^"]+)" rel="next"', body)
        if nxt and rng.random() < 0.3:
            await _timed("inbox", await client.get(nxt.group(1).replace("&amp;", "&"))).read()
        cid = rng.randint(open_from, conversations)
        body = await _timed("conversation", await client.get(f"/conversations/{cid}")).text()
        await asyncio.sleep(rng.uniform(0.5, 1.5) * think_s)
        if rng.random() < 0.05 and 'name="seen"' in body:
            token = re.search(r'name="csrf" value="([^"]+)"', body).group(1)
            await _timed("reply", await client.post(f"/conversations/{cid}/reply", allow_redirects=False,
                                                    data={"text": "We are on it", "csrf": token, "force": "1"})).read()


def server_settings(db: str, data_dir: str, port: int, processes: int) -> Any:
    """The served configuration: the generated store, and a simulator connector (no traffic of its own) that
    takes the replies, in every web process."""
    from carebox import config

    return config.parse({
        "carebox": {"data_dir": data_dir}, "database": {"url": f"sqlite+aiosqlite:///{db}"},
        "web": {"host": "127.0.0.1", "port": port}, "inbox": {"processes": processes},
        "connectors": [{"type": "simulator", "name": "sim", "account": "acme", "rate": 0.001, "backlog": 0,
                        "reply_followups": 0.0, "outage_every": "0"}],
    }, environ={})


def _serve(db: str, data_dir: str, port: int, processes: int, ready: Any) -> None:
    """The server process: carebox as `carebox serve` runs it, with `processes` web processes; SIGTERM stops it."""
    import logging

    from carebox import web_processes

    logging.basicConfig(level=logging.WARNING)
    web_processes.run(server_settings(db, data_dir, port, processes), processes, on_ready=ready.set)


async def _agents(base: str, stats: dict[str, int], agents: int, seconds: float, think_s: float, ramp_s: float) -> None:
    import aiohttp

    async with aiohttp.ClientSession(base, cookie_jar=aiohttp.CookieJar(unsafe=True)) as warm:
        # one agent first: the view counts are computed once (about a second on 1M mentions), then kept fresh in
        # the background; the timed run measures the steady state
        await agent_loop(warm, 1, stats["conversations"], stats["conversations"], time.monotonic(), random.Random(0))
        await (await warm.get("/")).text()
    for values in TIMES.values():
        values.clear()
    until = time.monotonic() + seconds
    open_from = stats["conversations"] - stats["open"] + 1
    sessions = [aiohttp.ClientSession(base, cookie_jar=aiohttp.CookieJar(unsafe=True)) for _ in range(agents)]
    try:
        arrivals = random.Random(99)
        await asyncio.gather(*(agent_loop(s, i + 1, stats["conversations"], open_from, until, random.Random(i), think_s,
                                          arrivals.uniform(0, ramp_s)) for i, s in enumerate(sessions)))
    finally:
        for s in sessions:
            await s.close()


def serve_and_measure(db: Path, data_dir: Path, stats: dict[str, int], agents: int, seconds: float,
                      think_s: float = 0.0, ramp_s: float = 0.0, processes: int = 1) -> dict[str, list[float]]:
    """Serve from child processes (so the simulated agents do not share their CPU time) and run the agents here."""
    import multiprocessing
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    ctx = multiprocessing.get_context("spawn")
    ready = ctx.Event()
    child = ctx.Process(target=_serve, args=(str(db), str(data_dir), port, processes, ready))
    child.start()
    try:
        if not ready.wait(180):
            raise RuntimeError("the server did not start")
        asyncio.run(_agents(f"http://127.0.0.1:{port}", stats, agents, seconds, think_s, ramp_s))
    finally:
        child.terminate()  # SIGTERM: carebox stops its web processes and itself
        child.join(60)
    return {kind: list(values) for kind, values in TIMES.items()}


def main(argv: list[str] | None = None) -> int:
    """Generate, serve, measure, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mentions", type=int, default=1_000_000)
    parser.add_argument("--open", type=int, default=100_000)
    parser.add_argument("--agents", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--quick", action="store_true", help="20k mentions, 2k open, 10 agents, 5 s")
    parser.add_argument("--think", type=float, default=2.0,
                        help="mean seconds an agent reads a page before the next action (0: saturate the server)")
    parser.add_argument("--ramp", type=float, default=None,
                        help="agents log in at random moments over this many seconds (default: 2 x think; 0: all at once)")
    parser.add_argument("--processes", type=int, default=1,
                        help="web processes serving the inbox ([inbox] processes; 1: the main process alone)")
    parser.add_argument("--db", type=Path, help="keep the generated store here and reuse it on the next run")
    args = parser.parse_args(argv)
    if args.quick:
        args.mentions, args.open, args.agents, args.seconds = 20_000, 2_000, 10, 5.0
    from carebox.store.migrate import upgrade_sync

    with tempfile.TemporaryDirectory() as tmp:
        db = args.db or Path(tmp) / "inbox.db"
        stats = {"mentions": args.mentions, "conversations": max(args.open, args.mentions // 3), "open": args.open}
        if not db.exists():
            upgrade_sync(f"sqlite+aiosqlite:///{db}")
            started = time.perf_counter()
            stats = generate(db, args.mentions, args.open, max(args.agents, 50), datetime.now(UTC))
            print(f"generated {stats} in {time.perf_counter() - started:.1f} s")
        ramp = 2 * args.think if args.ramp is None else args.ramp
        load_before = os.getloadavg()[0]
        times = serve_and_measure(db, Path(tmp), stats, args.agents, args.seconds, args.think, ramp, args.processes)
    print(f"{args.processes} web process(es); {args.agents} concurrent agents logging in over {ramp:g} s, think "
          f"time {args.think:g} s (0.5-1.5x), for "
          f"{args.seconds:.0f} s; load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after; "
          f"server time per request ({SHARED_NOTE})")
    print(f"{'page':<14}{'requests':>10}{'p50 ms':>10}{'p95 ms':>10}{'max ms':>10}")
    for kind, values in times.items():
        print(f"{kind:<14}{len(values):>10}{median(values):>10.1f}{percentile(values, 95):>10.1f}{max(values, default=0):>10.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
