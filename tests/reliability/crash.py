"""The crash harness: runs carebox as a subprocess, kills it with SIGKILL at random moments, restarts it,
and checks the store: every acknowledged mention stored once, conversations and SLA clocks consistent,
timed SLA events fired once after the restart. Used by tests/reliability/test_crash.py and the benchmark."""

from __future__ import annotations

import os
import random
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

SEED = 5
FIRST_RESPONSE_S = 4.0
DUE_MARGIN_S = 5.0  # clocks due this close to the end are not judged: their breach may be a moment late
# No fixed deadline for a start: a process is waited on while it uses CPU (at load average 20 a start is a
# minute of CPU-starved imports), and is stuck when it used none for STUCK_S; CAP_S bounds any one wait.
STUCK_S = 120.0
CAP_S = 900.0
QUIET_READY_S = 5.0  # a start on a quiet machine is ready within this; slower starts scale the timer wait
TIMERS_QUIET_S = 90.0  # how long the last process gets to fire what fell due, on a quiet machine (x slowness)
SWEEP_S = 60.0  # the scheduler's sweep period: a breach reconstructed from a late answer may wait one sweep


@dataclass
class CrashRun:
    """What one harness run did and found."""

    kills: int = 0
    starts: int = 0
    counts_at_kill: list[int] = field(default_factory=list)
    stored: int = 0
    acknowledged: int = 0
    clocks_fired_after_restart: int = 0
    ready_s: list[float] = field(default_factory=list)  # seconds from each start to its /healthz answering
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


def cpu_seconds(pid: int) -> float | None:
    """CPU seconds a process has used so far (Linux /proc), None where that is unknown."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime
    except (OSError, ValueError, IndexError):
        return None


class Patience:
    """Waiting on a process with a deadline that scales with the machine: it lasts while the process is alive
    and has used CPU in the last `stuck_s` (so a start starved by a loaded machine is not called dead), and
    never beyond `cap_s`."""

    def __init__(self, proc: subprocess.Popen[bytes], *, stuck_s: float = STUCK_S, cap_s: float = CAP_S) -> None:
        self.proc, self.stuck_s = proc, stuck_s
        self.until = time.monotonic() + cap_s
        self._cpu, self._moved = cpu_seconds(proc.pid), time.monotonic()

    def lasts(self) -> bool:
        """Whether to keep waiting."""
        now = time.monotonic()
        if self.proc.poll() is not None or now > self.until:
            return False
        cpu = cpu_seconds(self.proc.pid)
        if cpu is not None and (self._cpu is None or cpu > self._cpu):
            self._cpu, self._moved = cpu, now
        return now - self._moved < self.stuck_s


def healthy(port: int) -> bool:
    """Whether a carebox process answers /healthz on this port (it has started: store, scheduler, connectors)."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as resp:
            return resp.status == 200
    except (OSError, urllib.error.URLError):
        return False


def wait_ready(proc: subprocess.Popen[bytes], port: int) -> float | None:
    """Wait for /healthz to answer; the seconds it took, None if the process died or got stuck first."""
    started, patience = time.monotonic(), Patience(proc)
    while patience.lasts():
        if healthy(port):
            return time.monotonic() - started
        time.sleep(0.1)
    return None


def wait_for_progress(db: Path, proc: subprocess.Popen[bytes], at_least: int) -> bool:
    """Wait until the store holds at least `at_least` mentions; False if the process died or got stuck first."""
    patience = Patience(proc)
    while patience.lasts():
        if count(db) >= at_least:
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


def _start(run: CrashRun, cfg: Path, log: Path, db: Path) -> tuple[subprocess.Popen[bytes], bool]:
    """Start `serve`, wait until it answers /healthz and stores something new; (process, whether it did)."""
    before = count(db)
    port = free_port()  # a fresh one each start: another test may have taken the last one since
    cfg.write_text(re.sub(r"(?m)^port = \d+$", f"port = {port}", cfg.read_text(encoding="utf-8")), encoding="utf-8")
    proc = carebox("serve", "--config", str(cfg), log=log)
    run.starts += 1
    ready = wait_ready(proc, port)
    if ready is None:
        why = "it exited" if proc.poll() is not None else f"no CPU used for {STUCK_S:g}s or {CAP_S:g}s passed"
        run.problems.append(f"start {run.starts} never answered /healthz: {why} (see {log})")
        return proc, False
    run.ready_s.append(round(ready, 1))
    if not wait_for_progress(db, proc, before + 1):
        run.problems.append(f"start {run.starts} answered /healthz but stored nothing (see {log})")
        return proc, False
    return proc, True


def crash_serve(root: Path, kills: int, rng: random.Random, *, rate: float = 3000.0,
                alive_mentions: tuple[int, int] = (1, 40)) -> CrashRun:
    """Run `carebox serve` with the simulator, kill it `kills` times, restart it, then check the store. Each
    process is killed once it has stored a random number of new mentions in `alive_mentions` (and a random
    fraction of a second more): mid-ingest however fast or slow the machine is."""
    cfg, log, db = serve_config(root, rate=rate), root / "carebox.log", root / "data" / "carebox.db"
    run = CrashRun()
    for _ in range(kills):
        proc, ok = _start(run, cfg, log, db)
        if not ok:
            kill(proc)
            return run
        if not wait_for_progress(db, proc, count(db) + rng.randint(*alive_mentions)):
            run.problems.append(f"start {run.starts} stopped storing mentions (see {log})")
            kill(proc)
            return run
        time.sleep(rng.uniform(0.0, 0.3))
        run.kills += kill(proc)
        run.counts_at_kill.append(count(db))
    restarted_at = datetime.now(UTC)
    last_event = count(db, "SELECT coalesce(max(id), 0) FROM slaevent")
    proc, ok = _start(run, cfg, log, db)
    if ok:
        # every clock started before the restart passes its breach instant; wait until each is breached, not a
        # fixed time: quick on a quiet machine, and as much longer as this start was slower than a quiet one
        slowness = min(10.0, max(1.0, run.ready_s[-1] / QUIET_READY_S))
        ended_at = wait_for_timers(db, proc, restarted_at, timeout=TIMERS_QUIET_S * slowness + SWEEP_S)
    else:
        ended_at = datetime.now(UTC)
    kill(proc)
    run.problems += check_store(db, connector="simulator", prefix=f"sim-{SEED}-")
    fired, problems = check_timers(db, restarted_at, ended_at, last_event) if ok else (0, [])
    run.clocks_fired_after_restart, run.problems = fired, run.problems + problems
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
        if before >= n or not wait_for_progress(db, proc, before + 1):
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


def _judged_clocks(db: Path, restarted_at: datetime, ended_at: datetime) -> list[tuple]:
    """(id, due, breach events, last breach event id) of the late clocks: each must have exactly one breach,
    answered late or not (a late answer stored before the restarted scheduler swept still owes its breach)."""
    return [(clock_id, due, breaches, breach_id) for clock_id, due, _, breaches, breach_id
            in _late_clocks(db, restarted_at, ended_at)]


def wait_for_timers(db: Path, proc: subprocess.Popen[bytes], restarted_at: datetime, *, timeout: float) -> datetime:
    """Wait until every clock started before the restart is due (plus the margin) and breached; returns the
    moment that held (or the timeout passed, or the process died: the check then reports what is missing)."""
    judged_from = restarted_at + _seconds(FIRST_RESPONSE_S + DUE_MARGIN_S + 0.5)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        now = datetime.now(UTC)
        try:
            pending = [c for c in _judged_clocks(db, restarted_at, now) if c[2] == 0]
        except sqlite3.OperationalError:  # the store is busy: ask again
            pending = [None]
        if now >= judged_from and not pending:
            return now
        time.sleep(0.5)
    return datetime.now(UTC)


def check_timers(db: Path, restarted_at: datetime, ended_at: datetime, last_event: int) -> tuple[int, list[str]]:
    """Clocks started before the last restart and due before the end: each breached exactly once; returns how
    many of those breaches were logged after the restart (event ids above `last_event`; an event's `at` is
    the instant it was due, not when it was logged)."""
    fired, problems = 0, []
    for clock_id, due, breaches, breach_id in _judged_clocks(db, restarted_at, ended_at):
        if breaches != 1:
            problems.append(f"clock {clock_id} due {due} has {breaches} breach events")
        elif breach_id > last_event:
            fired += 1  # logged after the restart: due while carebox was down (the sweep) or after it came back
    return fired, problems[:10]


def _seconds(s: float):
    from datetime import timedelta

    return timedelta(seconds=s)
