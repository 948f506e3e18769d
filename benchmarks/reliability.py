"""Reliability, the long variants: many SIGKILLs of `serve` and `replay`, the fuzz suite at 100,000 cases
per target, connector and notifier faults over many seeds. Nothing lost, nothing duplicated, no crash.

    python -m benchmarks.reliability [--kills 20] [--replay-n 50000] [--fuzz-examples 100000] [--fault-seeds 10]
                                     [--fuzz-targets tests/fuzz/test_parsers.py,...] [--resume] [--fuzz-table]
                                     [--only crash-serve,crash-replay,fuzz,faults]

Writes benchmarks/results/reliability.json and prints it. Wall-clock times are for information only:
the machine is usually shared. A failure (a problem found, a test failing) exits with status 1.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Iterable
from dataclasses import asdict
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results" / "reliability.json"
PROGRESS = RESULTS.with_name("reliability_progress.jsonl")  # one line per finished test, appended
STEPS = ("crash-serve", "crash-replay", "fuzz", "faults")
FAULT_TESTS = ("test_connector_faults", "test_faults_bluesky_graph", "test_faults_imap", "test_notifier_faults")


def crash_serve(kills: int) -> dict[str, Any]:
    """`carebox serve` with the simulator at 3,000 mentions/min, SIGKILLed `kills` times."""
    from tests.reliability.crash import crash_serve as run

    with tempfile.TemporaryDirectory() as tmp:
        started = time.monotonic()
        result = run(Path(tmp), kills, random.Random(kills))
        if result.problems:  # keep the processes' log: the temporary directory goes
            RESULTS.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(Path(tmp) / "carebox.log", RESULTS.with_name("crash_serve_failed.log"))
        return {**asdict(result), "seconds": round(time.monotonic() - started, 1)}


def crash_replay(n: int, kills: int) -> dict[str, Any]:
    """`carebox replay` of `n` simulated mentions, SIGKILLed `kills` times, then finished."""
    from tests.reliability.crash import crash_replay as run

    with tempfile.TemporaryDirectory() as tmp:
        started = time.monotonic()
        result = run(Path(tmp), n, kills, random.Random(n), batch_size=max(100, n // (kills * 4)))
        return {**asdict(result), "seconds": round(time.monotonic() - started, 1)}


def _examples_run(report: Any) -> int:
    """Hypothesis examples a test really ran (its statistics note), 0 when it is not a hypothesis test."""
    stats = report.__dict__.get("_hypothesis_stats") or ""
    return sum(int(n) for n in re.findall(r"(\d+) passing examples", stats))


def _pytest(paths: list[str], env: dict[str, str], skip: Iterable[str] = ()) -> tuple[int, dict[str, int], list[dict[str, Any]]]:
    """Run pytest in this process with `env` set (leaving out the test ids in `skip`); its exit code, outcome
    counts and one row per test (also appended to PROGRESS as each test ends, with its CPU time and the load)."""
    import pytest

    class Counts:
        def __init__(self) -> None:
            self.outcomes: dict[str, int] = {}
            self.tests: list[dict[str, Any]] = []
            self._calls: dict[str, dict[str, Any]] = {}
            self._cpu_at: dict[str, float] = {}

        def pytest_runtest_logstart(self, nodeid: str, location: Any) -> None:
            self._cpu_at[nodeid] = time.process_time()

        def pytest_runtest_logreport(self, report: Any) -> None:
            if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
                key = "xfailed" if hasattr(report, "wasxfail") else report.outcome
                self.outcomes[key] = self.outcomes.get(key, 0) + 1
                row = {"test": report.nodeid, "outcome": key, "seconds": round(report.duration, 1)}
                self._calls[report.nodeid] = row
                self.tests.append(row)
            elif report.when == "teardown" and report.nodeid in self._calls:
                row = self._calls[report.nodeid]
                row["examples"] = _examples_run(report)
                # CPU seconds compare across runs on a shared machine; wall seconds do not
                row["cpu_seconds"] = round(time.process_time() - self._cpu_at.get(report.nodeid, time.process_time()), 1)
                row["load_average"] = round(os.getloadavg()[0], 1)
                with PROGRESS.open("a") as log:  # a long run cut short still tells what ran
                    log.write(json.dumps({**row, "env": env}) + "\n")

    os.environ.update(env)
    PROGRESS.parent.mkdir(parents=True, exist_ok=True)
    counts = Counts()
    deselect = [arg for nodeid in skip for arg in ("--deselect", nodeid)]
    code = pytest.main(["-q", "-p", "no:cacheprovider", *deselect, *paths], plugins=[counts])
    return int(code), counts.outcomes, counts.tests


def finished_fuzz_targets(examples: int) -> dict[str, dict[str, Any]]:
    """The progress log's rows of fuzz targets that already passed at `examples` cases per target (a resumed
    run leaves them out and counts them)."""
    done: dict[str, dict[str, Any]] = {}
    if not PROGRESS.exists():
        return done
    for line in PROGRESS.read_text().splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue  # a line cut by a kill
        same_size = row.get("env", {}).get("CAREBOX_FUZZ_EXAMPLES") == str(examples)
        if row.get("test", "").startswith("tests/fuzz/") and same_size and row.get("outcome") == "passed":
            done[row["test"]] = row
    return done


def fuzz(examples: int, targets: list[str], *, resume: bool = False) -> dict[str, Any]:
    """The fuzz suite (or the `targets` given: files or test ids) with `examples` cases per target; `resume`
    leaves out the targets the progress log shows passed at this size, and counts them in."""
    started = time.monotonic()
    earlier = finished_fuzz_targets(examples) if resume else {}
    code, outcomes, tests = _pytest(targets, {"CAREBOX_FUZZ_EXAMPLES": str(examples)}, skip=earlier)
    tests = [{**row, "resumed": True} for row in earlier.values() if row["test"].startswith(tuple(targets))] + tests
    if earlier:
        outcomes["passed"] = outcomes.get("passed", 0) + len(earlier)
        code = 0 if code == 5 else code  # every target had passed already: pytest found nothing left to run
    # Imported only now: pytest must be the first to import hypothesis (assertion rewriting).
    from tests.fuzz.strategies import BATCH

    # Most targets check BATCH payloads per hypothesis example (tests/fuzz/strategies.py): cases = examples x BATCH.
    cases = sum(t.get("examples", 0) for t in tests if t["outcome"] == "passed") * BATCH
    return {"cases_per_target": examples, "targets": len(tests), "paths": targets, "cases": cases,
            "failures": [t["test"] for t in tests if t["outcome"] == "failed"], "outcomes": outcomes,
            "exit_code": code, "tests": tests, "seconds": round(time.monotonic() - started, 1)}


def fuzz_table(examples: int) -> str:
    """The progress log's fuzz targets at `examples` cases per target as a Markdown table (latest row per target)."""
    from tests.fuzz.strategies import BATCH

    rows: dict[str, dict[str, Any]] = {}
    for line in PROGRESS.read_text().splitlines() if PROGRESS.exists() else []:
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if row.get("test", "").startswith("tests/fuzz/") and row.get("env", {}).get("CAREBOX_FUZZ_EXAMPLES") == str(examples):
            rows[row["test"]] = row
    out = ["| target | outcome | cases | wall s | CPU s | load |", "|---|---|---:|---:|---:|---:|"]
    for test, row in rows.items():
        cases = row.get("examples", 0) * BATCH
        out.append(f"| `{test.removeprefix('tests/fuzz/')[:90]}` | {row['outcome']} | {cases:,} | {row['seconds']} "
                   f"| {row.get('cpu_seconds', '')} | {row.get('load_average', '')} |")
    hyp = [r for r in rows.values() if r.get("examples")]
    out.append(f"\n{len(rows)} targets logged ({len(hyp)} hypothesis targets), "
               f"{sum(r['examples'] for r in hyp) * BATCH:,} cases, "
               f"{sum(r['outcome'] == 'failed' for r in rows.values())} failed")
    return "\n".join(out)


def faults(seeds: int) -> dict[str, Any]:
    """Connector and notifier fault tests over `seeds` seeds each."""
    started = time.monotonic()
    code, outcomes, _tests = _pytest([f"tests/reliability/{name}.py" for name in FAULT_TESTS],
                                     {"CAREBOX_FAULT_SEEDS": str(seeds)})
    from tests.reliability import chaos, test_notifier_faults

    runs = chaos.FIGURES + test_notifier_faults.FIGURES
    injected = sum(sum(r["faults"].values()) for r in runs)  # type: ignore[union-attr]
    return {"seeds": seeds, "runs": len(runs), "faults_injected": injected,
            "mentions_delivered": sum(int(r.get("mentions", 0)) for r in runs), "outcomes": outcomes,
            "exit_code": code, "details": runs, "seconds": round(time.monotonic() - started, 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--replay-n", type=int, default=50_000)
    parser.add_argument("--fuzz-examples", type=int, default=100_000)
    parser.add_argument("--fuzz-targets", default="tests/fuzz",
                        help="comma-separated pytest paths or test ids for the fuzz step (default: all of tests/fuzz)")
    parser.add_argument("--resume", action="store_true",
                        help="fuzz: leave out the targets that benchmarks/results/reliability_progress.jsonl shows "
                             "passed at this size (a run cut short goes on where it stopped)")
    parser.add_argument("--fuzz-table", action="store_true",
                        help="print the progress log's fuzz targets at --fuzz-examples as a Markdown table and exit")
    parser.add_argument("--fault-seeds", type=int, default=10)
    parser.add_argument("--only", default=",".join(STEPS), help=f"comma-separated steps among {', '.join(STEPS)}")
    args = parser.parse_args(argv)
    if args.fuzz_table:
        print(fuzz_table(args.fuzz_examples))
        return 0
    steps = [s for s in args.only.split(",") if s]
    out: dict[str, Any] = {"python": platform.python_version(), "cpus": os.cpu_count(),
                           "load_average": os.getloadavg(), "shared_machine": True}
    if "crash-serve" in steps:
        out["crash_serve"] = crash_serve(args.kills)
    if "crash-replay" in steps:
        out["crash_replay"] = crash_replay(args.replay_n, args.kills)
    if "fuzz" in steps:
        out["fuzz"] = fuzz(args.fuzz_examples, [t for t in args.fuzz_targets.split(",") if t], resume=args.resume)
    if "faults" in steps:
        out["faults"] = faults(args.fault_seeds)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    earlier = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    RESULTS.write_text(json.dumps({**earlier, **out}, indent=2, default=str))  # a partial run keeps the other steps
    print(json.dumps(out, indent=2, default=str))
    failed = any(out.get(k, {}).get("problems") for k in ("crash_serve", "crash_replay")) or any(
        out.get(k, {}).get("exit_code") for k in ("fuzz", "faults"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
