"""Microseconds per mention: Triager.triage vs TextBlob alone, on the same texts, medians of repeats.

    python benchmarks/triage_speed.py [--data ../shared/data/sentiment] [--repeats 7]

Texts: the hand-written care fixtures, plus (when --data is present) the English and French
tweets of the sentiment sets. Times are the thread's CPU time (time.thread_time), so waiting for
a busy core does not count; a shared machine still adds cache and frequency noise, so compare the
ratios printed by one run. Scorers are interleaved within each repeat.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout

from carebox.lexicon_vader import lexicon as vader_lexicon
from carebox.sentiment import SentimentAnalyzer, reference_polarity
from carebox.triage import Triager

FIXTURES = ROOT / "tests" / "fixtures" / "care_messages.jsonl"


def load_texts(data: Path | None, limit: int) -> list[tuple[str, str]]:
    """(text, lang) pairs: fixtures first, then tweets from the data folder if given."""
    pairs = [(d["text"], d["lang"]) for d in map(json.loads, FIXTURES.read_text("utf-8").splitlines())]
    if data is not None and data.is_dir():
        for folder, name, lang in (("en_tweeteval_val", "val_text.txt", "en"),
                                   ("fr_deft_train", "val_text.txt", "fr")):
            path = data / folder / name
            if path.is_file():
                pairs += [(t, lang) for t in path.read_text("utf-8").splitlines()[:limit]]
    elif data is not None:
        print(f"note: {data} not found, timing the fixtures only", file=sys.stderr)
    return pairs


def per_text_us(fn: Callable[[str, str], object], pairs: list[tuple[str, str]], repeats: int) -> list[float]:
    """CPU microseconds per text for each repeat over the whole list (single thread)."""
    runs = []
    for _ in range(repeats):
        start = time.thread_time()
        for text, lang in pairs:
            fn(text, lang)
        runs.append((time.thread_time() - start) / len(pairs) * 1e6)
    return runs


def main(argv: list[str] | None = None) -> int:
    """Print the timing table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None, help="sentiment data folder (optional)")
    parser.add_argument("--limit", type=int, default=500, help="tweets per language from --data")
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args(argv)
    pairs = load_texts(args.data, args.limit)
    triager = Triager()
    analyzer = SentimentAnalyzer()
    care_only = SentimentAnalyzer(learned=False)
    scorers: dict[str, Callable[[str, str], object]] = {
        "textblob alone (EN PatternAnalyzer / textblob-fr)": reference_polarity,
        "carebox sentiment only": analyzer.polarity,
        "carebox sentiment, no learned table": care_only.polarity,
        "VADER feature alone (lexicon_vader.compound)": lambda t, lang: vader_lexicon(lang).compound(t),
        "Triager.triage (language detected)": lambda t, _lang: triager.triage(t),
        "Triager.triage (lang_hint given)": lambda t, lang: triager.triage(t, lang_hint=lang),
    }
    for fn in scorers.values():  # warm caches and lazy lexicons
        per_text_us(fn, pairs[:50], 1)
    runs: dict[str, list[float]] = {name: [] for name in scorers}
    for _ in range(args.repeats):  # interleaved, so every scorer sees the same machine load
        for name, fn in scorers.items():
            runs[name] += per_text_us(fn, pairs, 1)
    print(f"{len(pairs)} texts, {args.repeats} interleaved repeats, µs per text: median (min-max)")
    medians = {}
    for name in scorers:
        medians[name] = statistics.median(runs[name])
        print(f"  {name:52} {medians[name]:7.1f}  ({min(runs[name]):.1f}-{max(runs[name]):.1f})")
    base = medians["textblob alone (EN PatternAnalyzer / textblob-fr)"]
    for name in list(scorers)[1:]:
        print(f"  ratio {name} / textblob alone: {medians[name] / base:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
