"""Check that two source trees triage the same texts identically (every field, polarity bit for bit).

    python benchmarks/triage_equivalence.py --old /tmp/headsrc_b [--new .] [--data ../shared/data]
                                            [--simulated FILE.jsonl] [--simulate-n 50000]

Each tree runs in its own subprocess (its `carebox` first on sys.path, so the modules never mix) over
the same inputs: the sentiment sets (every *_text.txt under DATA/sentiment, language detected and given),
the twcs sample (DATA/twcs/*.csv, language detected), tests/fixtures/care_messages.jsonl (detected and
given) and simulated mentions (`carebox simulate`, with their reach fields). Compared: Triager.triage's
result (language, polarity, category, cluster_key, priority, reason), the unrounded SentimentAnalyzer
analysis (polarity, tokens, failure) in EN and FR, and the same with `learned_table = false`. Both runs
share one PYTHONHASHSEED (--hash-seed; see run_tree).
Prints the differences per source and field; exits 1 when any.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import pickle
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "care_messages.jsonl"
# One input: (source, text, lang or None, followers, verified, public, reposts, recent_contacts)
Input = tuple[str, str, str | None, int | None, bool, bool, int, int]


def sentiment_inputs(data: Path) -> list[Input]:
    """Every line of every *_text.txt of the sentiment sets (folder prefix = language)."""
    out: list[Input] = []
    for path in sorted((data / "sentiment").glob("*/*_text.txt")):
        lang = path.parent.name.split("_")[0]
        out += [("sentiment", t, lang, None, False, True, 0, 0) for t in path.read_text("utf-8").splitlines()]
    return out


def twcs_inputs(data: Path) -> list[Input]:
    """Every text of the twcs sample (inbound and outbound), language unknown."""
    out: list[Input] = []
    for path in sorted((data / "twcs").glob("*.csv")):
        with path.open(encoding="utf-8", newline="") as f:
            texts = [row["text"] for row in csv.DictReader(f)]
        # a bare carriage return splits one row in two; its second half has no text column
        out += [("twcs", t, None, None, False, True, 0, 0) for t in texts if t is not None]
    return out


def fixture_inputs() -> list[Input]:
    """The hand-written care fixtures."""
    rows = map(json.loads, FIXTURES.read_text("utf-8").splitlines())
    return [("fixtures", d["text"], d["lang"], None, False, True, 0, 0) for d in rows]


def simulated_inputs(path: Path) -> list[Input]:
    """Simulated mentions with their reach; recent contacts cycle 0..3 to exercise those points."""
    out: list[Input] = []
    for k, line in enumerate(path.read_text("utf-8").splitlines()):
        d = json.loads(line)
        out.append(("simulated", d["text"], d.get("lang_hint"), d.get("followers"), bool(d.get("verified")),
                    bool(d.get("public", True)), int(d.get("reposts") or 0), k % 4))
    return out


def run_tree(tree: Path, inputs: list[Input], hash_seed: int) -> dict[str, list[Any]]:
    """Results of one tree, computed in a subprocess that imports only that tree's carebox."""
    # Why the fixed seed: the learned sum adds the weights of a set of words, in the set's order, which
    # follows the process's string hashes; the last bits of the unrounded polarity vary between processes.
    env = {**os.environ, "PYTHONHASHSEED": str(hash_seed)}
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "in.pickle", Path(tmp) / "out.pickle"
        src.write_bytes(pickle.dumps(inputs))
        subprocess.run([sys.executable, __file__, "--worker", str(tree), str(src), str(dst)], check=True, env=env)
        result: dict[str, list[Any]] = pickle.loads(dst.read_bytes())
        return result


def worker(tree: str, src: str, dst: str) -> None:
    """In the subprocess: triage and analyse every input with `tree`'s carebox."""
    sys.path.insert(0, tree)
    import carebox
    from carebox.sentiment import SentimentAnalyzer
    from carebox.triage import Triager, TriageSettings

    assert Path(carebox.__file__).resolve().is_relative_to(Path(tree).resolve()), carebox.__file__
    inputs: list[Input] = pickle.loads(Path(src).read_bytes())
    triager, plain = Triager(), Triager(TriageSettings(learned_table=False))
    analyzers = {"learned": SentimentAnalyzer(), "care_only": SentimentAnalyzer(learned=False)}
    out: dict[str, list[Any]] = {"detected": [], "hinted": [], "plain": []}
    for name in analyzers:
        out[f"{name}_en"], out[f"{name}_fr"] = [], []
    for _source, text, lang, followers, verified, public, reposts, contacts in inputs:
        kw = {"followers": followers, "verified": verified, "public": public, "reposts": reposts,
              "recent_contacts": contacts}
        out["detected"].append(_row(triager.triage(text, **kw)))
        out["hinted"].append(_row(triager.triage(text, lang_hint=lang, **kw)) if lang else None)
        out["plain"].append(_row(plain.triage(text, lang_hint=lang, **kw)))
        for name, analyzer in analyzers.items():
            for code in ("en", "fr"):
                s = analyzer.analyse(text, code)
                out[f"{name}_{code}"].append((s.polarity.hex(), s.tokens, s.failure))
    Path(dst).write_bytes(pickle.dumps(out))


def _row(t: Any) -> tuple[Any, ...]:
    """A Triage as plain values, the polarity as its exact hex form."""
    return (t.language, t.polarity.hex(), t.category.value, t.cluster_key, t.priority.value, t.reason)


def compare(inputs: list[Input], old: dict[str, list[Any]], new: dict[str, list[Any]]) -> int:
    """Print the differences per source and check; return how many there are."""
    diffs: Counter[tuple[str, str]] = Counter()
    shown = 0
    for check, before in old.items():
        for k, (a, b) in enumerate(zip(before, new[check], strict=True)):
            if a != b:
                diffs[(inputs[k][0], check)] += 1
                if shown < 10:
                    shown += 1
                    print(f"DIFF {check} [{inputs[k][0]} #{k}] {inputs[k][1]!r}\n  old {a}\n  new {b}")
    sources = Counter(i[0] for i in inputs)
    for source, n in sources.items():
        bad = {c: diffs[(source, c)] for c in old if diffs[(source, c)]}
        print(f"{source:10} {n:6} texts: " + (f"DIFFERENCES {bad}" if bad else f"identical on {len(old)} checks"))
    return sum(diffs.values())


def main(argv: list[str] | None = None) -> int:
    """Run both trees and compare."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old", type=Path, required=True, help="the reference tree (e.g. git archive HEAD)")
    parser.add_argument("--new", type=Path, default=ROOT)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--simulated", type=Path, default=None, help="JSONL from carebox simulate")
    parser.add_argument("--simulate-n", type=int, default=50_000, help="mentions to simulate when no --simulated")
    parser.add_argument("--hash-seed", type=int, default=0, help="PYTHONHASHSEED of both runs (see run_tree)")
    args = parser.parse_args(argv)
    if not args.data.is_dir():
        print(f"note: {args.data} not found: fixtures and simulated mentions only", file=sys.stderr)
    inputs = fixture_inputs()
    if args.data.is_dir():
        inputs += sentiment_inputs(args.data) + twcs_inputs(args.data)
    with tempfile.TemporaryDirectory() as tmp:
        sim = args.simulated or Path(tmp) / "sim.jsonl"
        if args.simulated is None:
            subprocess.run([sys.executable, "-m", "carebox.cli", "simulate", "--n", str(args.simulate_n), "--out",
                            str(sim), "--seed", "7", "--start", "2026-01-05T08:00:00+00:00"], check=True,
                           cwd=args.new)
        inputs += simulated_inputs(sim)
    old, new = run_tree(args.old, inputs, args.hash_seed), run_tree(args.new, inputs, args.hash_seed)
    return 1 if compare(inputs, old, new) else 0


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--worker":
        worker(*sys.argv[2:])
    else:
        sys.exit(main())
