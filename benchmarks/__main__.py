"""Run every benchmark in benchmarks/, each in its own process; `--quick` runs a seconds-long smoke of each.

    python -m benchmarks [--quick] [--only ingest,memory] [--skip nab] [--timeout 3600]

A benchmark is a module here (not `_*` or `proto_*`) that defines `run(quick)` or `main(argv)`. `run` gets
the quick flag; `main` gets `--quick` when its source accepts it, else the arguments in QUICK_ARGS. Each
prints its table; a module that writes no JSON itself gets one written from its output (command, exit code,
seconds, stdout): benchmarks/results/<name>.json, or results/quick/<name>.json for a quick run, so smoke
runs never replace real figures. A failed run's JSON goes to results/failed/<name>.json.
"""

from __future__ import annotations

import argparse
import ast
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import _common as common

HERE = Path(__file__).resolve().parent
_PRINT = threading.Lock()
DATA = ROOT.parent / "shared" / "data"
# Modules here that are tools, not benchmarks: never run by the suite.
NOT_BENCHMARKS = {"build_lexicon": "regenerates carebox/lexicon_learned_*.py"}
# Smoke arguments for benchmarks whose main() has no --quick; None = not run in quick mode, with why.
# A module in neither list nor accepting --quick is skipped in quick mode rather than run at full size.
QUICK_ARGS: dict[str, list[str] | None] = {
    "sla": ["--n", "2000", "--repeat", "1"],
    "reports": ["--n", "2000", "--repeat", "1"],
    "triage_speed": ["--repeats", "1"],
    "triage_quality": ["--sets", "en_tweeteval_val"],
    "twcs": ["--data", str(DATA / "twcs" / "twcs_head5000.csv")],
    "outage_latency": None,  # its shortest meaningful run (2 weeks) takes ~100 s here
    "nab": None,  # ~20 s and needs the NAB corpus outside the repository
    "scaleout": None,  # needs PostgreSQL and Redis, and starts several processes
}
# Arguments a benchmark needs in a full run.
FULL_ARGS: dict[str, list[str]] = {"twcs": ["--data", str(DATA / "twcs" / "twcs_head5000.csv")]}
# Benchmarks that need services listening (host, port): skipped when one does not answer.
NEEDS_SERVICES = {"scaleout": (("127.0.0.1", 5432), ("127.0.0.1", 6379))}
# Benchmarks that read data kept outside the repository: skipped (not failed) when it is absent.
NEEDS_DATA = {"triage_quality": DATA / "sentiment", "nab": DATA / "nab", "twcs": DATA / "twcs" / "twcs_head5000.csv"}


@dataclass(frozen=True, slots=True)
class Benchmark:
    """A benchmark module and how it is entered."""

    name: str
    has_run: bool
    has_main: bool
    takes_quick: bool


def discover(folder: Path = HERE) -> list[Benchmark]:
    """Benchmark modules in `folder`, read without importing them (imports are heavy)."""
    found = []
    for path in sorted(folder.glob("*.py")):
        if path.name.startswith(("_", "proto_")) or path.stem in NOT_BENCHMARKS:
            continue
        source = path.read_text(encoding="utf-8")
        funcs = {n.name: n for n in ast.parse(source).body if isinstance(n, ast.FunctionDef)}
        run = funcs.get("run")
        has_run = run is not None and [a.arg for a in run.args.args] == ["quick"]
        if has_run or "main" in funcs:
            found.append(Benchmark(path.stem, has_run, "main" in funcs, '"--quick"' in source))
    return found


def command(b: Benchmark, quick: bool) -> list[str] | str:
    """The command that runs `b`, or the reason it is skipped."""
    if b.name in NEEDS_DATA and not NEEDS_DATA[b.name].exists():
        return f"data {NEEDS_DATA[b.name]} absent"
    for host, port in NEEDS_SERVICES.get(b.name, ()):
        try:
            socket.create_connection((host, port), timeout=1).close()
        except OSError:
            return f"nothing listening on {host}:{port}"
    if b.has_run:
        return [sys.executable, "-c", f"import sys; from benchmarks.{b.name} import run; sys.exit(run(quick={quick}) or 0)"]
    base = [sys.executable, "-m", f"benchmarks.{b.name}"]
    if not quick:
        return [*base, *FULL_ARGS.get(b.name, [])]
    if b.takes_quick:
        return [*base, "--quick"]
    args = QUICK_ARGS.get(b.name)
    return f"no quick mode (see QUICK_ARGS in {Path(__file__).name})" if args is None else [*base, *args]


def run_one(b: Benchmark, cmd: list[str], timeout: float, quick: bool) -> dict[str, object]:
    """Run one benchmark, echo its output, and make sure its JSON exists."""
    real = common.result_path(b.name)
    kept = real.read_bytes() if quick and real.exists() else None  # a smoke run must not replace real figures
    mtimes = {p: p.stat().st_mtime if p.exists() else None for p in (real, common.result_path(b.name, True))}
    start = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False)
        code, out, err = proc.returncode, proc.stdout, proc.stderr
    except subprocess.TimeoutExpired as exc:
        code, out, err = -1, _text(exc.stdout), _text(exc.stderr) + f"\ntimed out after {timeout:.0f} s"
    seconds = time.perf_counter() - start
    with _PRINT:  # one benchmark's output at a time when run in parallel
        print(f"=== {b.name} ({seconds:.1f} s, exit {code})\n{out}", end="" if out.endswith("\n") else "\n", flush=True)
        if code != 0:
            print(err[-4000:], file=sys.stderr, flush=True)
    wrote = any(p.exists() and p.stat().st_mtime != before for p, before in mtimes.items())
    if quick and real.exists() and real.stat().st_mtime != mtimes[real]:  # a module that ignores quick paths
        common.result_path(b.name, True).parent.mkdir(parents=True, exist_ok=True)
        real.replace(common.result_path(b.name, True))
        if kept is not None:
            real.write_bytes(kept)
    if not wrote or code != 0:
        captured = {"name": b.name, "command": " ".join(cmd[1:]), "exit_code": code, "seconds": round(seconds, 2),
                    "stdout": out, "stderr_tail": err[-2000:], "machine": common.machine()}
        if code != 0:
            common.write_result(f"failed/{b.name}", captured)
        else:
            common.write_result(b.name, captured, quick=quick)
    return {"name": b.name, "exit_code": code, "seconds": seconds, "json": "own" if wrote else "captured"}


def _text(value: bytes | str | None) -> str:
    if value is None:
        return ""
    return value.decode(errors="replace") if isinstance(value, bytes) else value


def main(argv: list[str] | None = None) -> int:
    """Run the selected benchmarks; exit 1 when any failed."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a seconds-long smoke run of each (for CI)")
    parser.add_argument("--only", default="", help="comma-separated benchmark names")
    parser.add_argument("--skip", default="", help="comma-separated benchmark names to leave out")
    parser.add_argument("--timeout", type=float, default=None, help="seconds per benchmark (default 120 quick, 3600)")
    parser.add_argument("--jobs", type=int, default=1, help="benchmarks run at once (>1 only for smoke runs: they compete)")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    args = parser.parse_args(argv)
    only = {n for n in args.only.split(",") if n}
    skip = {n for n in args.skip.split(",") if n}
    selected = [b for b in discover() if (not only or b.name in only) and b.name not in skip]
    if args.list:
        for b in selected:
            print(b.name)
        return 0
    timeout = args.timeout or (120.0 if args.quick else 3600.0)
    print(f"{common.describe(common.machine())}\n{common.SHARED_NOTE}\n")
    commands = {b.name: command(b, args.quick) for b in selected}
    skipped = [{"name": n, "exit_code": None, "seconds": 0.0, "json": f"skipped: {c}"}
               for n, c in commands.items() if isinstance(c, str)]
    runnable = [(b, commands[b.name]) for b in selected if not isinstance(commands[b.name], str)]
    with ThreadPoolExecutor(max(1, args.jobs)) as ex:
        summary = list(ex.map(lambda bc: run_one(bc[0], bc[1], timeout, args.quick), runnable)) + skipped
    print(common.table(["benchmark", "exit", "seconds", "json"],
                       [[s["name"], "-" if s["exit_code"] is None else s["exit_code"], s["seconds"], s["json"]]
                        for s in summary]))
    common.write_result("_summary", {"quick": args.quick, "runs": summary}, quick=args.quick)
    return 1 if any(s["exit_code"] not in (0, None) for s in summary) else 0


if __name__ == "__main__":
    raise SystemExit(main())
