"""The benchmarks cannot rot: their quick modes run end to end and leave JSON behind."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from benchmarks import __main__ as runner
from benchmarks import _common as common

ROOT = Path(__file__).resolve().parents[2]
SMOKE = ("ingest", "memory", "sla")  # the pipeline, the memory harness, and a main(argv) benchmark via QUICK_ARGS
TIMEOUT_S = 58


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
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--only", ",".join(SMOKE), "--jobs", str(len(SMOKE))],
        cwd=ROOT, capture_output=True, text=True, timeout=TIMEOUT_S, check=False,
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
