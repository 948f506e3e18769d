"""Shared benchmark helpers: medians and percentiles, RSS from /proc, the machine, tables and JSON results."""

from __future__ import annotations

import json
import os
import platform
import sqlite3
import statistics
import threading
import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Self

RESULTS = Path(__file__).resolve().parent / "results"
SHARED_NOTE = "machine shared with other engineers while measuring: compare ratios from one run, not absolutes"


def median(values: Iterable[float]) -> float:
    """The median, 0.0 for no values."""
    values = list(values)
    return statistics.median(values) if values else 0.0


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) by nearest rank, 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def _status_kb(pid: int | str, field: str) -> int:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return 0
    return 0


def rss_mb(pid: int | str = "self") -> float:
    """Current resident set size of a process, in MB (VmRSS)."""
    return _status_kb(pid, "VmRSS") / 1024


def pss_mb(pid: int | str = "self") -> float:
    """Proportional set size in MB: pages shared with forked workers counted once across processes."""
    try:
        with open(f"/proc/{pid}/smaps_rollup", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return rss_mb(pid)
    return rss_mb(pid)


def peak_rss_mb(pid: int | str = "self") -> float:
    """Peak resident set size of a process since it started, in MB (VmHWM)."""
    return _status_kb(pid, "VmHWM") / 1024


def children(pid: int | str = "self") -> list[int]:
    """Every descendant process id (pool workers, and a forkserver's children)."""
    pid = os.getpid() if pid == "self" else pid
    out: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children", encoding="ascii") as handle:
                out += [int(p) for p in handle.read().split()]
    except OSError:
        return out
    return out + [d for child in out for d in children(child)]


def cpu_seconds_tree() -> float:
    """CPU seconds (user + system) used so far by this process and its live children (pool workers)."""
    total = time.process_time()
    tick = os.sysconf("SC_CLK_TCK")
    for pid in children():
        try:
            with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
        except (OSError, IndexError, ValueError):
            continue
    return total


class RssSampler:
    """Samples every `every_s` in a thread: peak RSS of this process, peak PSS summed over it and its descendants.

    Reading PSS makes the kernel walk every page table: keep `every_s` coarse (it costs CPU in this process).
    """

    def __init__(self, every_s: float = 0.5) -> None:
        self.every_s = every_s
        self.peak_total_mb = 0.0
        self.peak_self_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def _sample(self) -> None:
        own = rss_mb()
        total = pss_mb() + sum(pss_mb(p) for p in children())
        self.peak_self_mb = max(self.peak_self_mb, own)
        self.peak_total_mb = max(self.peak_total_mb, total)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(self.every_s)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine() -> dict[str, Any]:
    """What the figures were measured on, including the load when the run started."""
    mem_kb = 0
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            mem_kb = int(handle.readline().split()[1])
    except OSError:
        pass
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "memory_gb": round(mem_kb / 1024 / 1024, 1),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "os": platform.platform(),
        "loadavg_at_start": list(os.getloadavg()),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "note": SHARED_NOTE,
    }


def describe(info: dict[str, Any]) -> str:
    """One line naming the machine."""
    load = ", ".join(f"{x:.2f}" for x in info["loadavg_at_start"])
    return (f"{info['cpu']} x{info['cores']}, {info['memory_gb']} GB, Python {info['python']}, "
            f"SQLite {info['sqlite']}, load {load} at start ({info['date']})")


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A plain-text table, numbers right-aligned."""
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[k]) for r in cells)) if cells else len(h) for k, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)),
             "  ".join("-" * w for w in widths)]
    for row in cells:
        lines.append("  ".join(c.rjust(w) if k else c.ljust(w) for k, (c, w) in enumerate(zip(row, widths, strict=True))))
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def result_path(name: str, quick: bool = False) -> Path:
    """benchmarks/results/<name>.json, or results/quick/<name>.json for smoke runs (real figures stay)."""
    return (RESULTS / "quick" if quick else RESULTS) / f"{name}.json"


def write_result(name: str, data: dict[str, Any], quick: bool = False) -> Path:
    """Write the JSON results of a benchmark and return the path."""
    path = result_path(name, quick)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")
    return path


def elapsed(start: float) -> float:
    """Seconds since a time.perf_counter() value."""
    return time.perf_counter() - start
