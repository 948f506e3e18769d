"""NAB realTweets benchmark of the outage detector at its default sensitivity.

    python -m benchmarks.nab --data ../shared/data/nab [--out DIR] [--set threshold=6] [--split AAPL,AMZN,CRM]

Runs `carebox detect` logic on every file of DATA/realTweets, writes NAB's results layout and scores it
with ../shared/tools/score_nab.py (standard, reward-low-FP and reward-low-FN profiles). With --split, also
scores the named files (the tuning set) and the others (the check set) each on its own, normalised like NAB,
at the detector's own 0/1 decision.
"""

from __future__ import annotations

import argparse
import importlib.util
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
    parser.add_argument("--split", metavar="AAPL,AMZN,CRM",
                        help="also score these files (tuning set) and the others (check set) separately")
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
        if args.split:
            print_split(args.scorer, args.data, root / DETECTOR, args.split.split(","))
        return done.returncode


def print_split(scorer_path: Path, data: Path, results: Path, tune: list[str]) -> None:
    """Normalised scores of the tuning files and of the check files, each subset scored on its own."""
    spec = importlib.util.spec_from_file_location("score_nab", scorer_path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot load the scorer {scorer_path}")
    scorer = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(scorer)
    corpus = scorer.loadCorpus(str(data), str(data / "labels" / "combined_windows.json"), "realTweets")
    scores = {rel: scorer.readAnomalyScores(str(results / "realTweets" / f"{DETECTOR}_{Path(rel).name}"))
              for rel in corpus}
    for name, inside in (("tune", True), ("check", False)):
        part = {rel: d for rel, d in corpus.items() if any(t in rel for t in tune) == inside}
        figures = []
        for profile, cost in scorer.PROFILES.items():
            null = {rel: [0.5] * len(d["timestamps"]) for rel, d in part.items()}
            base = scorer.scoreCorpus(part, null, cost, scorer.optimizeThreshold(part, null, cost)[0])[0]
            raw = scorer.scoreCorpus(part, scores, cost, 1.0)[0]
            windows = sum(len(d["windows"]) for d in part.values())
            figures.append(f"{profile} {scorer.normalise(raw, base, cost, windows):.2f}")
        files = ", ".join(Path(rel).stem.rsplit("_", 1)[-1] for rel in part)
        print(f"{name} ({files}): " + ", ".join(figures))


if __name__ == "__main__":
    raise SystemExit(main())
