"""Nothing acknowledged is lost: a replay killed with SIGKILL at random moments, then restarted, stores every
mention exactly once, with consistent conversations and a cursor that only moves with what it covers."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
N = 12_000


def _carebox(*args: str, env: dict[str, str], keep_stderr: bool = False) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "carebox", *args], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE if keep_stderr else subprocess.DEVNULL)


def _count(db: Path) -> int:
    if not db.exists():
        return 0
    with sqlite3.connect(db) as conn:
        try:
            return conn.execute("SELECT count(*) FROM mention").fetchone()[0]
        except sqlite3.OperationalError:
            return 0


def test_replay_killed_with_sigkill_loses_and_duplicates_nothing(tmp_path):
    db = tmp_path / "carebox.db"
    env = {**os.environ, "CAREBOX_DATABASE_URL": f"sqlite+aiosqlite:///{db}"}
    env.pop("CAREBOX_CONFIG", None)
    data = tmp_path / "mentions.jsonl"
    subprocess.run([sys.executable, "-m", "carebox", "simulate", "--n", str(N), "--out", str(data), "--seed", "7",
                    "--start", "2026-11-16T08:00:00+01:00"], check=True, env=env, capture_output=True)
    lines = data.read_bytes().splitlines()
    assert len(lines) == N
    rng = random.Random(20261122)
    kills, seen = 0, []
    for _ in range(4):
        proc = _carebox("replay", str(data), "--batch-size", "100", env=env)
        before = _count(db)
        deadline = time.monotonic() + 60
        # wait until this run has stored something new, then kill it at a random moment soon after
        while _count(db) == before and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(rng.uniform(0.0, 0.4))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait(30)
        seen.append(_count(db))
    final = _carebox("replay", str(data), "--batch-size", "100", env=env, keep_stderr=True)
    _, err = final.communicate(timeout=300)
    assert final.returncode == 0, err.decode()[-2000:]
    assert kills >= 2, f"the replay finished before it could be killed (counts {seen})"
    assert any(0 < c < N for c in seen), f"no kill happened mid-stream (counts {seen})"
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM mention").fetchone()[0] == N
        assert conn.execute("SELECT count(DISTINCT network || ':' || external_id) FROM mention").fetchone()[0] == N
        orphans = conn.execute(
            "SELECT count(*) FROM mention m WHERE m.direction = 'in' AND (m.conversation_id IS NULL OR NOT EXISTS "
            "(SELECT 1 FROM conversation c WHERE c.id = m.conversation_id))").fetchone()[0]
        assert orphans == 0
        bad_counts = conn.execute(
            "SELECT count(*) FROM conversation c WHERE c.message_count != "
            "(SELECT count(*) FROM mention m WHERE m.conversation_id = c.id)").fetchone()[0]
        assert bad_counts == 0
        not_one = conn.execute(
            "SELECT count(*) FROM conversation c WHERE (SELECT count(*) FROM slaclock k "
            "WHERE k.conversation_id = c.id AND k.target = 'first_response') != 1").fetchone()[0]
        assert not_one == 0  # one first-response clock per conversation, none lost or doubled
        stray = conn.execute("SELECT count(*) FROM slaclock k WHERE NOT EXISTS "
                             "(SELECT 1 FROM conversation c WHERE c.id = k.conversation_id)").fetchone()[0]
        assert stray == 0
        cursor = conn.execute("SELECT value FROM cursor WHERE connector LIKE 'replay:%'").fetchone()[0]
        assert int(cursor) == N
