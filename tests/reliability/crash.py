"""The crash harness: runs carebox as a subprocess, kills it with SIGKILL at random moments, restarts it,
and checks the store: every acknowledged mention stored once, conversations and SLA clocks consistent,
timed SLA events fired once after the restart. Used by tests/reliability/test_crash.py and the benchmark."""

from __future__ import annotations

import os
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

SEED = 5
FIRST_RESPONSE_S = 4.0
DUE_MARGIN_S = 5.0  # clocks due this close to the end are not judged: their breach may be a moment late
TIMERS_TIMEOUT_S = 90.0  # how long the last process gets to fire what fell due (a loaded machine is slow)


@dataclass
class CrashRun:
    """What one harness run did and found."""

    kills: int = 0
    starts: int = 0
    counts_at_kill: list[int] = field(default_factory=list)
    stored: int = 0
    acknowledged: int = 0
    clocks_fired_after_restart: int = 0
    answered_late_before_sweep: int = 0  # due while down, answered before the restarted scheduler's sweep ran
    problems: list[str] = field(default_factory=list)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve_config(root: Path, *, rate: float = 3000.0) -> Path:
    """A config: SQLite in `root`, the simulator at `rate` per minute, a 24/7 policy due in a few seconds."""
    data = root / "data"
    path = root / "carebox.toml"
    path.write_text(f"""
[carebox]
data_dir = "{data}"
[database]
url = "sqlite+aiosqlite:///{data / 'carebox.db'}"
[web]
port = {free_port()}
[[connectors]]
type = "simulator"
name = "simulator"
account = "acme"
rate = {rate}
seed = {SEED}
rhythm = false
outage_every = "0"
brand_replies = 0.05
tick = "50ms"
[[policies]]
name = "fast"
calendar = "24/7"
first_response = "{FIRST_RESPONSE_S:g}s"
warn = "50%"
""", encoding="utf-8")
    return path


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAREBOX_")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def carebox(*args: str, log: Path) -> subprocess.Popen[bytes]:
    """Start `python -m carebox ARGS` with its output appended to `log`."""
    with open(log, "ab") as out:
        return subprocess.Popen([sys.executable, "-m", "carebox", *args], env=_env(), stdout=out, stderr=out)


def count(db: Path, sql: str = "SELECT count(*) FROM mention") -> int:
    """One number from the store (0 while it does not exist yet)."""
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10) as conn:
            return int(conn.execute(sql).fetchone()[0] or 0)
    except sqlite3.OperationalError:
        return 0


def wait_for_progress(db: Path, proc: subprocess.Popen[bytes], before: int, timeout: float = 180.0) -> bool:
    """Wait until the process has stored something new; False if it died or took too long (a start takes
    over a minute at load average 20)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if count(db) > before:
            return True
        time.sleep(0.05)
    return False


def kill(proc: subprocess.Popen[bytes]) -> bool:
    """SIGKILL the process (if still alive) and reap it; True when it was killed."""
    alive = proc.poll() is None
    if alive:
        proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    return alive


def crash_serve(root: Path, kills: int, rng: random.Random, *, rate: float = 3000.0, alive_s: tuple[float, float] = (0.0, 1.5)) -> CrashRun:
    """Run `carebox serve` with the simulator, kill it `kills` times, restart it, then check the store."""
    cfg, log, db = serve_config(root, rate=rate), root / "carebox.log", root / "data" / "carebox.db"
    run = CrashRun()
    for _ in range(kills):
        proc = carebox("serve", "--config", str(cfg), log=log)
        run.starts += 1
        if not wait_for_progress(db, proc, count(db)):
            kill(proc)
            run.problems.append(f"start {run.starts} stored nothing (see {log})")
            return run
        time.sleep(rng.uniform(*alive_s))
        run.kills += kill(proc)
        run.counts_at_kill.append(count(db))
    restarted_at = datetime.now(UTC)
    last_event = count(db, "SELECT coalesce(max(id), 0) FROM slaevent")
    proc = carebox("serve", "--config", str(cfg), log=log)
    run.starts += 1
    if not wait_for_progress(db, proc, count(db)):
        run.problems.append(f"the final start stored nothing (see {log})")
    # every clock started before the restart passes its breach instant; wait until each is breached (or
    # fulfilled), not a fixed time: quick on a quiet machine, and still fair on a loaded one
    ended_at = wait_for_timers(db, proc, restarted_at, lambda: led_at(log, restarted_at))
    kill(proc)
    run.problems += check_store(db, connector="simulator", prefix=f"sim-{SEED}-")
    fired, problems = check_timers(db, restarted_at, ended_at, last_event, led_at(log, restarted_at))
    run.clocks_fired_after_restart, run.problems = fired, run.problems + problems
    run.answered_late_before_sweep = len(_excused(db, restarted_at, ended_at, led_at(log, restarted_at)))
    run.stored, run.acknowledged = count(db), int(_scalar(db, "SELECT value FROM cursor WHERE connector = 'simulator'") or 0)
    return run


def crash_replay(root: Path, n: int, kills: int, rng: random.Random, *, batch_size: int = 100) -> CrashRun:
    """Replay `n` simulated mentions, killing the replay `kills` times, then finish it and check the store."""
    data, log, db = root / "mentions.jsonl", root / "carebox.log", root / "carebox.db"
    env = {**_env(), "CAREBOX_DATABASE_URL": f"sqlite+aiosqlite:///{db}"}
    subprocess.run([sys.executable, "-m", "carebox", "simulate", "--n", str(n), "--out", str(data), "--seed", str(SEED),
                    "--start", "2026-11-16T08:00:00+01:00"], check=True, env=env, capture_output=True)
    run = CrashRun()

    def start() -> subprocess.Popen[bytes]:
        with open(log, "ab") as out:
            return subprocess.Popen([sys.executable, "-m", "carebox", "replay", str(data), "--batch-size", str(batch_size)],
                                    env=env, stdout=out, stderr=out)

    for _ in range(kills):
        proc = start()
        run.starts += 1
        before = count(db)
        if before >= n or not wait_for_progress(db, proc, before):
            kill(proc)
            break
        time.sleep(rng.uniform(0.0, 0.5))
        run.kills += kill(proc)
        run.counts_at_kill.append(count(db))
    proc = start()
    run.starts += 1
    if proc.wait(600) != 0:
        run.problems.append(f"the final replay failed (see {log})")
    run.problems += check_store(db, connector="replay:%", prefix=None, expected=n)
    run.stored = count(db)
    run.acknowledged = int(_scalar(db, "SELECT value FROM cursor WHERE connector LIKE 'replay:%'") or 0)
    return run


def _scalar(db: Path, sql: str) -> object:
    rows = _rows(db, sql)
    return rows[0][0] if rows else None


def _rows(db: Path, sql: str, *args: object) -> list[tuple]:
    # read-only, and closed after each question: the harness must never be the one holding a lock
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


def check_store(db: Path, *, connector: str, prefix: str | None, expected: int | None = None) -> list[str]:
    """The invariants after any number of crashes; a list of what is wrong (empty when all holds)."""
    problems = []
    cursor = int(_scalar(db, f"SELECT value FROM cursor WHERE connector LIKE '{connector}'") or 0)
    if expected is not None and cursor != expected:
        problems.append(f"cursor {cursor}, expected {expected}")
    if prefix is not None:
        ks = sorted(int(r[0].removeprefix(prefix)) for r in _rows(
            db, "SELECT external_id FROM mention WHERE external_id LIKE ? AND external_id NOT LIKE '%reply%'", prefix + "%"))
        if ks != list(range(cursor)):
            missing = sorted(set(range(cursor)) - set(ks))
            beyond = [k for k in ks if k >= cursor]
            problems.append(f"acknowledged items 0..{cursor - 1}: {len(missing)} missing {missing[:5]}, "
                            f"{len(ks) - len(set(ks))} duplicated, {len(beyond)} stored beyond the cursor")
    elif expected is not None and count(db) != expected:
        problems.append(f"{count(db)} mentions stored, expected {expected}")
    dup = _scalar(db, "SELECT count(*) - count(DISTINCT network || ':' || external_id) FROM mention")
    if dup:
        problems.append(f"{dup} mentions stored twice")
    bad = _scalar(db, "SELECT count(*) FROM conversation c WHERE c.message_count != "
                      "(SELECT count(*) FROM mention m WHERE m.conversation_id = c.id)")
    if bad:
        problems.append(f"{bad} conversations whose message_count disagrees with their mentions")
    orphans = _scalar(db, "SELECT count(*) FROM mention WHERE direction = 'in' AND (conversation_id IS NULL OR "
                          "conversation_id NOT IN (SELECT id FROM conversation))")
    if orphans:
        problems.append(f"{orphans} inbound mentions without a conversation")
    doubled = _scalar(db, "SELECT count(*) FROM (SELECT conversation_id, policy FROM slaclock WHERE target = "
                          "'first_response' GROUP BY 1, 2 HAVING count(*) > 1)")
    if doubled:
        problems.append(f"{doubled} conversations with two first-response clocks for one policy")
    clockless = _scalar(db, "SELECT count(*) FROM slaclock WHERE conversation_id NOT IN (SELECT id FROM conversation)")
    if clockless:
        problems.append(f"{clockless} clocks without a conversation")
    missing_clock = _scalar(db, "SELECT count(*) FROM conversation c WHERE EXISTS (SELECT 1 FROM mention m WHERE "
                                "m.conversation_id = c.id AND m.direction = 'in') AND NOT EXISTS (SELECT 1 FROM slaclock "
                                "k WHERE k.conversation_id = c.id AND k.target = 'first_response')")
    if missing_clock:
        problems.append(f"{missing_clock} conversations with a customer message but no first-response clock")
    twice = _scalar(db, "SELECT count(*) FROM (SELECT clock_id, kind FROM slaevent WHERE kind IN ('warn', 'breach') "
                        "GROUP BY 1, 2 HAVING count(*) > 1)")
    if twice:
        problems.append(f"{twice} SLA warnings or breaches logged twice for one clock")
    return problems


def _at(value: str) -> datetime:
    return datetime.fromisoformat(value).replace(tzinfo=UTC)


def led_at(log: Path, since: datetime) -> datetime | None:
    """When the last process started after `since` took the scheduler's lead (its start sweep follows), from
    its log; None before it has."""
    found = None
    for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
        if line.endswith("this process leads the scheduler"):
            at = datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").astimezone(UTC)  # the log's local time
            found = at if at >= since else found
    return found


def _late_clocks(db: Path, restarted_at: datetime, ended_at: datetime) -> list[tuple]:
    """(id, due, answered, breach events, last breach event id) of the clocks started before the last restart,
    due before the end (less the margin) and not answered in time."""
    rows = _rows(db, "SELECT k.id, k.started_at, k.business_due, k.fulfilled_at, "
                     "(SELECT count(*) FROM slaevent e WHERE e.clock_id = k.id AND e.kind = 'breach'), "
                     "(SELECT max(e.id) FROM slaevent e WHERE e.clock_id = k.id AND e.kind = 'breach') "
                     "FROM slaclock k WHERE k.policy = 'fast' AND k.target = 'first_response'")
    return [(clock_id, due, fulfilled, breaches, breach_id)
            for clock_id, started, due, fulfilled, breaches, breach_id in rows
            if _at(started) < restarted_at and _at(due) < ended_at - _seconds(DUE_MARGIN_S)
            and (fulfilled is None or _at(fulfilled) > _at(due))]


def _excused(db: Path, restarted_at: datetime, ended_at: datetime, led: datetime | None) -> list[tuple]:
    """Late clocks whose answer was stored before the restarted process's scheduler swept: the sweep skips
    answered clocks, so no breach event is owed (the late answer is in the fulfil event)."""
    return [c for c in _late_clocks(db, restarted_at, ended_at)
            if c[2] is not None and c[3] == 0 and (led is None or _at(c[2]) <= led + _seconds(1.0))]


def _judged_clocks(db: Path, restarted_at: datetime, ended_at: datetime, led: datetime | None) -> list[tuple]:
    """(id, due, breach events, last breach event id) of the late clocks that must have exactly one breach."""
    excused = {c[0] for c in _excused(db, restarted_at, ended_at, led)}
    return [(clock_id, due, breaches, breach_id) for clock_id, due, _, breaches, breach_id
            in _late_clocks(db, restarted_at, ended_at) if clock_id not in excused]


def wait_for_timers(db: Path, proc: subprocess.Popen[bytes], restarted_at: datetime,
                    led: Callable[[], datetime | None], timeout: float = TIMERS_TIMEOUT_S) -> datetime:
    """Wait until every clock started before the restart is due (plus the margin) and breached; returns the
    moment that held (or the timeout passed, or the process died: the check then reports what is missing)."""
    judged_from = restarted_at + _seconds(FIRST_RESPONSE_S + DUE_MARGIN_S + 0.5)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        now = datetime.now(UTC)
        try:
            pending = [c for c in _judged_clocks(db, restarted_at, now, led()) if c[2] == 0]
        except sqlite3.OperationalError:  # the store is busy: ask again
            pending = [None]
        if now >= judged_from and not pending:
            return now
        time.sleep(0.5)
    return datetime.now(UTC)


def check_timers(db: Path, restarted_at: datetime, ended_at: datetime, last_event: int,
                 led: datetime | None) -> tuple[int, list[str]]:
    """Clocks started before the last restart and due before the end: each breached exactly once; returns how
    many of those breaches were logged after the restart (event ids above `last_event`; an event's `at` is
    the instant it was due, not when it was logged)."""
    fired, problems = 0, []
    for clock_id, due, breaches, breach_id in _judged_clocks(db, restarted_at, ended_at, led):
        if breaches != 1:
            problems.append(f"clock {clock_id} due {due} has {breaches} breach events")
        elif breach_id > last_event:
            fired += 1  # logged after the restart: due while carebox was down (the sweep) or after it came back
    return fired, problems[:10]


def _seconds(s: float):
    from datetime import timedelta

    return timedelta(seconds=s)
