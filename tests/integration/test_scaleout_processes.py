"""Scale-out for real: two workers and a web process on PostgreSQL + Redis; the worker running the replay
and the scheduler is killed with SIGKILL mid-stream. Every mention is stored exactly once, the replay
moves to the surviving worker, and the scheduler leadership follows within twice the lease."""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.conftest import (
    PG_HOST,
    PG_PORT,
    PG_USER,
    REDIS_URL,
    create_pg_database,
    drop_pg_database,
    need_postgres,
    need_redis,
    pg_execute,
)

pytestmark = [pytest.mark.slow, pytest.mark.services]
N = 3000
LEASE_S = 2.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _config(tmp: Path, database: str, data: Path, token: str) -> Path:
    path = tmp / "carebox.toml"
    path.write_text(f"""
[carebox]
data_dir = "{tmp}"
[database]
url = "postgresql+asyncpg://{PG_USER}@{PG_HOST}:{PG_PORT}/{database}"
[queue]
url = "{REDIS_URL}"
[pipeline]
# small transactions pace the replay (through the stream's backpressure) so the kill lands mid-stream
batch_size = 5
[scaleout]
lease_s = "{LEASE_S:g}s"
visibility_s = "3s"
max_stream_len = 4
stream = "carebox:test:{token}"
fanout_channel = "carebox:test-live:{token}"
[[connectors]]
type = "replay"
name = "replay"
account = "acme"
path = "{data}"
batch_size = 5
""", encoding="utf-8")
    return path


def _start(role: str, config: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    with log.open("wb") as err:
        return subprocess.Popen([sys.executable, "-m", "carebox", role, "--config", str(config), "--port", str(port),
                                 "--host", "127.0.0.1"], env=env, stdout=subprocess.DEVNULL, stderr=err)


def _get(port: int, path: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as response:
            body = response.read()
            return response.status, json.loads(body) if body.startswith(b"{") else {}
    except urllib.error.HTTPError as err:
        return err.code, {}
    except OSError:
        return 0, {}


def _leases(port: int) -> set[str]:
    status, body = _get(port, "/readyz")
    return set(body.get("leases", [])) if status == 200 else set()


def _wait(predicate, timeout_s: float, what: str) -> float:
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > timeout_s:
            raise AssertionError(f"{what}: not within {timeout_s}s")
        time.sleep(0.05)
    return time.monotonic() - started


def _count(database: str) -> int:
    return pg_execute(database, "SELECT count(*) FROM mention")[0][0]


@pytest.fixture
def cluster(tmp_path):
    need_postgres()
    need_redis()
    token = secrets.token_hex(4)
    database = create_pg_database("carebox_test_scaleout")
    data = tmp_path / "mentions.jsonl"
    # a timeline starting now: SLA instants lie ahead, so the leader's timed jobs stay quiet during the test
    start = datetime.now(UTC).replace(microsecond=0).isoformat()
    subprocess.run([sys.executable, "-m", "carebox", "simulate", "--n", str(N), "--out", str(data), "--seed", "3",
                    "--rate", "600", "--start", start], check=True, capture_output=True)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        yield tmp_path, _config(tmp_path, database, data, token), database, procs
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        from redis import Redis

        with Redis.from_url(REDIS_URL) as client:
            client.delete(f"carebox:test:{token}")
        drop_pg_database(database)


def test_a_worker_killed_mid_stream_loses_and_duplicates_nothing_and_its_work_moves(cluster):
    tmp, config, database, procs = cluster
    port_a, port_b, port_web = _free_port(), _free_port(), _free_port()
    procs.append(worker_a := _start("worker", config, port_a, tmp / "a.log"))
    _wait(lambda: _leases(port_a) == {"connector:replay", "scheduler"}, 60, "worker A leads and replays")
    procs.append(_start("worker", config, port_b, tmp / "b.log"))
    procs.append(_start("web", config, port_web, tmp / "web.log"))
    _wait(lambda: _get(port_b, "/readyz")[0] == 200, 60, "worker B ready")
    _wait(lambda: _get(port_web, "/healthz")[0] == 200, 60, "web process up")
    assert _leases(port_b) == set()

    _wait(lambda: _count(database) >= N // 10, 60, "the replay is under way")
    worker_a.send_signal(signal.SIGKILL)
    worker_a.wait(10)
    at_kill = _count(database)
    assert at_kill < N, "the replay finished before the kill"

    failover = _wait(lambda: "scheduler" in _leases(port_b), 4 * LEASE_S, "the scheduler leader fails over")
    assert failover <= 2 * LEASE_S
    _wait(lambda: "connector:replay" in _leases(port_b), 2 * LEASE_S, "the replay moves to worker B")

    _wait(lambda: _count(database) == N, 120, f"every mention stored (had {at_kill} at the kill)")
    time.sleep(1.0)  # let reclaimed redeliveries of the dead worker's entries arrive: they must change nothing
    (row,) = pg_execute(database, """
        SELECT (SELECT count(*) FROM mention),
               (SELECT count(DISTINCT (network, external_id)) FROM mention),
               (SELECT count(*) FROM conversation c
                 WHERE c.message_count <> (SELECT count(*) FROM mention m WHERE m.conversation_id = c.id)),
               (SELECT count(*) FROM (SELECT network, external_user_id FROM identity
                                      GROUP BY 1, 2 HAVING count(*) > 1) d),
               (SELECT count(*) FROM slaclock k WHERE k.target = 'first_response'),
               (SELECT count(*) FROM conversation),
               (SELECT value FROM cursor WHERE connector = 'replay')""")
    mentions, distinct, bad_counts, twin_identities, first_clocks, convs, cursor = row
    assert (mentions, distinct) == (N, N)
    assert bad_counts == 0
    assert twin_identities == 0
    assert first_clocks == convs  # one first-response clock per conversation, none doubled by redelivery
    assert cursor == str(N)
    assert _get(port_web, "/healthz")[0] == 200
