"""End-to-end ingest throughput: embedded (SQLite, in-memory queue) beside scale-out (PostgreSQL + Redis
Streams) with one and with two workers, and CPU seconds per mention of the carebox processes.

A replay connector configured in each run reads the same simulated JSONL file; the clock runs from the
first stored mention to the last (process start-up excluded). Run from the repository root:

    python benchmarks/scaleout.py --n 20000 --repeat 3

Needs PostgreSQL on 127.0.0.1:5432 (trust auth) and Redis on 127.0.0.1:6379 for the scale-out rows.
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.conftest import (
    PG_HOST,
    PG_PORT,
    PG_USER,
    create_pg_database,
    drop_pg_database,
    pg_execute,
)

REDIS = "redis://127.0.0.1:6379/14"
TICKS = os.sysconf("SC_CLK_TCK")


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of a live process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def _config(tmp: Path, data: Path, database_url: str, queue_url: str, token: str) -> Path:
    path = tmp / f"bench-{token}.toml"
    path.write_text(f"""
[carebox]
data_dir = "{tmp}"
[database]
url = "{database_url}"
[queue]
url = "{queue_url}"
[scaleout]
stream = "carebox:bench:{token}"
fanout_channel = "carebox:bench-live:{token}"
max_stream_len = 64
[[connectors]]
type = "replay"
name = "replay"
account = "acme"
path = "{data}"
batch_size = 500
""", encoding="utf-8")
    return path


def _run(role: str, n_procs: int, config: Path, count, n: int, tmp: Path) -> tuple[float, float]:
    """(seconds from the first to the last stored mention, carebox CPU seconds in that span)."""
    procs = []
    for i in range(n_procs):
        log = (tmp / f"{role}-{i}.log").open("wb")
        procs.append(subprocess.Popen([sys.executable, "-m", "carebox", role, "--config", str(config),
                                       "--port", str(_port())], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=log))
        log.close()
    try:
        deadline = time.monotonic() + 600
        while count() == 0:
            if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                raise RuntimeError(f"{role} did not start; see {tmp}")
            time.sleep(0.01)
        started, cpu0 = time.monotonic(), sum(_cpu_s(p.pid) for p in procs)
        while count() < n:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{role} stalled at {count()} of {n}; see {tmp}")
            time.sleep(0.02)
        return time.monotonic() - started, sum(_cpu_s(p.pid) for p in procs) - cpu0
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def embedded(tmp: Path, data: Path, n: int) -> tuple[float, float]:
    db = tmp / f"embedded-{secrets.token_hex(3)}.db"

    def count() -> int:
        if not db.exists():
            return 0
        try:
            with sqlite3.connect(db) as conn:
                return conn.execute("SELECT count(*) FROM mention").fetchone()[0]
        except sqlite3.OperationalError:
            return 0

    config = _config(tmp, data, f"sqlite+aiosqlite:///{db}", "memory://", secrets.token_hex(3))
    return _run("serve", 1, config, count, n, tmp)


def scaleout(tmp: Path, data: Path, n: int, workers: int) -> tuple[float, float]:
    from redis import Redis

    token = secrets.token_hex(3)
    database = create_pg_database("carebox_bench")
    try:
        def count() -> int:
            try:
                return pg_execute(database, "SELECT count(*) FROM mention")[0][0]
            except Exception:  # noqa: BLE001 - not migrated yet
                return 0

        url = f"postgresql+asyncpg://{PG_USER}@{PG_HOST}:{PG_PORT}/{database}"
        subprocess.run([sys.executable, "-m", "carebox", "migrate", "--config",
                        str(_config(tmp, data, url, REDIS, token))], cwd=ROOT, check=True, capture_output=True)
        return _run("worker", workers, _config(tmp, data, url, REDIS, token), count, n, tmp)
    finally:
        with Redis.from_url(REDIS) as client:
            client.delete(f"carebox:bench:{token}")
        drop_pg_database(database)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=20_000, help="mentions per run (default 20000)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per setup; medians are reported (default 3)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="carebox-bench-") as name:
        tmp = Path(name)
        data = tmp / "mentions.jsonl"
        start = datetime.now(UTC).replace(microsecond=0).isoformat()
        subprocess.run([sys.executable, "-m", "carebox", "simulate", "--n", str(args.n), "--out", str(data),
                        "--seed", "5", "--rate", "600", "--start", start], cwd=ROOT, check=True, capture_output=True)
        setups = {
            "embedded (SQLite, memory queue, serve)": lambda: embedded(tmp, data, args.n),
            "scale-out, 1 worker (PostgreSQL + Redis)": lambda: scaleout(tmp, data, args.n, 1),
            "scale-out, 2 workers (PostgreSQL + Redis)": lambda: scaleout(tmp, data, args.n, 2),
        }
        results: dict[str, list[tuple[float, float]]] = {k: [] for k in setups}
        for _ in range(args.repeat):  # interleaved, so a noisy neighbour hurts every setup alike
            for label, run in setups.items():
                results[label].append(run())
                print(f"  {label}: {args.n / results[label][-1][0]:.0f} mentions/s", file=sys.stderr)
    base = statistics.median(args.n / s for s, _ in results[next(iter(setups))])
    print(f"\n{args.n} mentions per run, median of {args.repeat} runs (machine shared: absolute figures are noisy)\n")
    print("| setup | mentions/s | vs embedded | CPU ms per mention (carebox processes) |")
    print("|---|---:|---:|---:|")
    for label, runs in results.items():
        rate = statistics.median(args.n / s for s, _ in runs)
        cpu = statistics.median(c * 1000 / args.n for _, c in runs)
        print(f"| {label} | {rate:,.0f} | {rate / base:.2f}x | {cpu:.2f} |")


if __name__ == "__main__":
    main()
