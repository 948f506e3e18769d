"""The benchmarks cannot rot: their quick modes run end to end and leave JSON behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from benchmarks import __main__ as runner
from benchmarks import _common as common

ROOT = Path(__file__).resolve().parents[2]
SMOKE = ("ingest", "memory", "sla")  # the pipeline, the memory harness, and a main(argv) benchmark via QUICK_ARGS
QUIET_LIMIT_S = 58  # what the smoke may take on a machine with a core free for each runnable process
MOST_STRETCH = 10  # under load the limit stretches with the load average, never past 10x: a hung run still fails


def fair_share(seconds: float, load: float, cores: int) -> float:
    """The part of `seconds` of wall time that a process had a core for, when `load` processes want `cores`."""
    return seconds * min(1.0, cores / load) if load > 0 else seconds


def run_with_fair_limit(cmd: list[str], limit: float, poll: float = 0.5) -> subprocess.CompletedProcess[str]:
    """Run `cmd`; past `limit` seconds of its fair share of the machine, kill its process group and fail."""
    # a loaded machine stretches the limit (the load of a hung run is nil), up to MOST_STRETCH x in wall time
    cores = len(os.sched_getaffinity(0))
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=err, text=True, start_new_session=True)
        started = last = time.monotonic()
        charged = 0.0
        try:
            while proc.poll() is None:
                time.sleep(poll)
                now = time.monotonic()
                charged += fair_share(now - last, os.getloadavg()[0], cores)
                last = now
                if charged > limit or now - started > limit * MOST_STRETCH:
                    pytest.fail(f"{' '.join(cmd[1:])} still running after {now - started:.0f} s "
                                f"({charged:.0f} s of fair share, limit {limit:.0f} s, load {os.getloadavg()[0]:.1f})")
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)  # the runner and every benchmark process it started
                proc.wait()
        out.seek(0)
        err.seek(0)
        return subprocess.CompletedProcess(cmd, proc.returncode, out.read(), err.read())


@pytest.mark.parametrize(("seconds", "load", "cores", "expected"), [(10, 0.5, 2, 10), (10, 2, 2, 10), (10, 8, 2, 2.5)])
def test_a_second_counts_in_full_while_a_core_is_free_and_in_part_under_load(seconds, load, cores, expected):
    assert fair_share(seconds, load, cores) == expected


def test_a_hung_run_still_fails_and_is_killed_with_its_children(tmp_path):
    pid_file = tmp_path / "child.pid"
    hung = ("import os, subprocess, sys, time; "
            "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
            f"open({str(pid_file)!r}, 'w').write(str(child.pid)); time.sleep(60)")
    started = time.monotonic()
    with pytest.raises(pytest.fail.Exception, match="still running"):
        run_with_fair_limit([sys.executable, "-c", hung], limit=1.5, poll=0.1)
    assert time.monotonic() - started < 1.5 * MOST_STRETCH + 5
    child = int(pid_file.read_text())
    deadline = time.monotonic() + 5
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child), "a benchmark process outlived the run that was killed"


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie is dead, waiting to be reaped
    except FileNotFoundError:
        return False


def test_every_benchmark_module_is_found_with_its_entry_point():
    found = {b.name: b for b in runner.discover()}
    assert {"ingest", "memory", "sla"} <= set(found)
    assert found["ingest"].has_run and found["memory"].has_run
    assert not any(name.startswith(("_", "proto_")) for name in found)


def test_a_benchmark_without_a_quick_mode_is_skipped_with_the_reason_not_run_long():
    reason = runner.command(runner.Benchmark("outage_latency", False, True, False), quick=True)
    assert isinstance(reason, str) and "no quick mode" in reason


def test_quick_run_exits_zero_and_writes_json_in_the_quick_folder_without_touching_real_results():
    real = {name: common.result_path(name) for name in SMOKE}
    before = {name: path.read_bytes() if path.exists() else None for name, path in real.items()}
    started = time.time()
    proc = run_with_fair_limit(
        [sys.executable, "-m", "benchmarks", "--quick", "--only", ",".join(SMOKE), "--jobs", str(len(SMOKE))],
        QUIET_LIMIT_S,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for name in SMOKE:
        path = common.result_path(name, quick=True)
        assert path.exists() and path.stat().st_mtime >= started, f"{path} not written"
        assert json.loads(path.read_text())
        now = real[name].read_bytes() if real[name].exists() else None
        assert now == before[name], f"a quick run replaced {real[name]}"
    ingest = json.loads(common.result_path("ingest", quick=True).read_text())
    assert ingest["full_speed"]["mentions"] > 0 and ingest["sqlite_executemany"]["per_second"] > 0
    summary = json.loads(common.result_path("_summary", quick=True).read_text())
    assert {r["name"]: r["exit_code"] for r in summary["runs"]} == dict.fromkeys(SMOKE, 0)
