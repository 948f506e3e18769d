"""NAB realTweets benchmark of the outage detector at its default sensitivity.

    python -m benchmarks.nab --data ../shared/data/nab [--out DIR] [--set threshold=6]

Runs `carebox detect` logic on every file of DATA/realTweets, writes NAB's results layout and scores it
with ../shared/tools/score_nab.py (standard, reward-low-FP and reward-low-FN profiles).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from carebox.commands.detect import detect_nab_file
from carebox.outage import parse_settings

DETECTOR = "carebox"


def settings_overrides(pairs: list[str]) -> dict[str, object]:
    """`key=value` pairs as an [outage] table (numbers when they parse, else strings)."""
    table: dict[str, object] = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        if value in ("true", "false"):
            table[key] = value == "true"
            continue
        try:
            table[key] = int(value)
        except ValueError:
            try:
                table[key] = float(value)
            except ValueError:
                table[key] = value
    return table


def main(argv: list[str] | None = None) -> int:
    """Run the detector on every realTweets file and print the NAB scores."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("../shared/data/nab"), help="NAB data root")
    parser.add_argument("--scorer", type=Path, default=Path("../shared/tools/score_nab.py"))
    parser.add_argument("--out", type=Path, help="results root to keep (default: a temporary folder)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override an [outage] setting (exploration only; the benchmark is the default)")
    args = parser.parse_args(argv)
    files = sorted((args.data / "realTweets").glob("*.csv"))
    if not files or not args.scorer.exists():
        print(f"NAB data or scorer not found under {args.data} / {args.scorer}; nothing to do", file=sys.stderr)
        return 2
    settings = parse_settings(settings_overrides(args.set))
    with tempfile.TemporaryDirectory() as tmp:
        root = args.out or Path(tmp)
        started = time.perf_counter()
        for data in files:
            detect_nab_file(data, root / DETECTOR / "realTweets" / f"{DETECTOR}_{data.name}", settings)
        elapsed = time.perf_counter() - started
        print(f"detector ran on {len(files)} files in {elapsed:.1f}s; settings overrides: {args.set or 'none'}")
        done = subprocess.run(
            [sys.executable, str(args.scorer), str(root / DETECTOR), "--data", str(args.data),
             "--windows", str(args.data / "labels" / "combined_windows.json"),
             "--labels", str(args.data / "labels" / "combined_labels.json"), "--per-file"],
            check=False, capture_output=True, text=True,
        )
        print(done.stdout, end="")
        print(done.stderr, end="", file=sys.stderr)
        return done.returncode


if __name__ == "__main__":
    raise SystemExit(main())
