"""Sentiment quality of carebox vs plain TextBlob / textblob-fr on labelled tweets.

    python benchmarks/triage_quality.py --data ../shared/data/sentiment

Balanced accuracy is over negative (label 0) and positive (label 2) texts, neutral excluded:
`bacc` is strict (a polarity of exactly 0 is a miss for both classes), `bacc0+` reads polarity >= 0
as positive (the convention under which TextBlob scores about 0.65 EN / 0.60 FR). Coverage is the
share of those texts with a non-zero polarity. `carebox` is the full analyzer, `care-only` the same
without the learned model (word table carebox/lexicon_learned_*.py and VADER feature), `vader` is
vaderSentiment's own SentimentIntensityAnalyzer (English), and `care fixtures` are the hand-written
care messages of tests/fixtures/care_messages.jsonl with a negative or positive sentiment. The care lexicon was built by hand
and the learned table by benchmarks/build_lexicon.py, both from the `train` splits only
(en_umsab_train and fr_deft_train/train_*): report on en_tweeteval_val and fr_deft_train/val_*
(held out). Both English sets come from SemEval-2017: 1,430 of en_umsab_train's texts are also in
en_tweeteval_val, so a held-out set leaves out every text found in its language's train split
(case and spacing ignored) and says how many it left out.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

from carebox.lexicon_vader import lexicon as vader_lexicon
from carebox.sentiment import SentimentAnalyzer, reference_polarity

FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "care_messages.jsonl"

SETS = {
    # name: (folder, text file, label file, lang, role)
    "en_tweeteval_val": ("en_tweeteval_val", "val_text.txt", "val_labels.txt", "en", "held-out"),
    "fr_deft_val": ("fr_deft_train", "val_text.txt", "val_labels.txt", "fr", "held-out"),
    "en_umsab_train": ("en_umsab_train", "train_text.txt", "train_labels.txt", "en", "train"),
    "fr_deft_train": ("fr_deft_train", "train_text.txt", "train_labels.txt", "fr", "train"),
}
_ESCAPE = re.compile(r"\\u([0-9a-fA-F]{4})")


def load(folder: Path, text_file: str, label_file: str, neutral: bool = False) -> list[tuple[str, int]]:
    """Return (text, label) pairs for labels 0 (negative) and 2 (positive), and 1 (neutral) if asked."""
    texts = (folder / text_file).read_text(encoding="utf-8").splitlines()
    labels = (folder / label_file).read_text(encoding="utf-8").split()
    wanted = ("0", "1", "2") if neutral else ("0", "2")
    pairs = []
    for text, label in zip(texts, labels):
        if label in wanted:
            pairs.append((_ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), text), int(label)))
    return pairs


def _same(text: str) -> str:
    return " ".join(text.lower().split())


def unseen(pairs: list[tuple[str, int]], seen: list[tuple[str, int]]) -> list[tuple[str, int]]:
    """The pairs whose text is not among `seen` (case and spacing ignored)."""
    known = {_same(text) for text, _ in seen}
    return [(text, label) for text, label in pairs if _same(text) not in known]


def balanced_accuracy(labels: list[int], values: list[float], zero_is_positive: bool) -> float:
    """Mean of the recalls of negative (0) and positive (2) texts."""
    hits = {0: 0, 2: 0}
    totals = {0: 0, 2: 0}
    for label, p in zip(labels, values):
        totals[label] += 1
        positive = p > 0 or (zero_is_positive and p == 0)
        if (label == 2 and positive) or (label == 0 and p < 0):
            hits[label] += 1
    return sum(hits[c] / totals[c] for c in totals if totals[c]) / 2


def score(pairs: list[tuple[str, int]], polarity: Callable[[str], float]) -> tuple[float, float, float, float]:
    """Strict and zero-as-positive balanced accuracy, coverage and texts per second of one scorer."""
    start = time.perf_counter()
    values = [polarity(text) for text, _ in pairs]
    elapsed = time.perf_counter() - start
    labels = [label for _, label in pairs]
    coverage = sum(1 for p in values if p != 0) / len(values)
    return (balanced_accuracy(labels, values, False), balanced_accuracy(labels, values, True),
            coverage, len(values) / elapsed)


def main(argv: list[str] | None = None) -> int:
    """Print the quality table; exit 2 when the data folder is absent."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data/sentiment", type=Path)
    parser.add_argument("--sets", default=",".join(SETS), help="comma-separated set names")
    parser.add_argument("--errors", type=int, default=0, help="print N misclassified texts per set")
    args = parser.parse_args(argv)
    if not args.data.is_dir():
        print(f"data folder {args.data} not found; pass --data PATH/TO/sentiment", file=sys.stderr)
        return 2
    analyzer = SentimentAnalyzer()
    care_only = SentimentAnalyzer(learned=False)
    print(f"{'set':18} {'role':9} {'n':>5}  {'scorer':12} {'bacc':>6} {'bacc0+':>6} {'coverage':>8} "
          f"{'texts/s':>8}")
    for name in args.sets.split(","):
        folder, text_file, label_file, lang, role = SETS[name]
        if not (args.data / folder / text_file).is_file():
            print(f"{name}: missing {args.data / folder / text_file}", file=sys.stderr)
            continue
        pairs = load(args.data / folder, text_file, label_file)
        if role == "held-out":
            train = next(SETS[n] for n in SETS if SETS[n][3] == lang and SETS[n][4] == "train")
            kept = unseen(pairs, load(args.data / train[0], train[1], train[2]))
            if len(kept) < len(pairs):
                print(f"{name}: {len(pairs) - len(kept)} of {len(pairs)} polar texts also in {train[0]}, "
                      "left out")
            pairs = kept
        report(name, role, lang, pairs, analyzer, care_only, args.errors)
    for lang in ("en", "fr"):
        report(f"care fixtures {lang}", "own", lang, fixtures(lang), analyzer, care_only, args.errors)
    return 0


def fixtures(lang: str) -> list[tuple[str, int]]:
    """The hand-written care messages of one language with a negative (0) or positive (2) sentiment."""
    cases = [json.loads(line) for line in FIXTURES.read_text(encoding="utf-8").splitlines() if line.strip()]
    labels = {"negative": 0, "positive": 2}
    return [(c["text"], labels[c["sentiment"]]) for c in cases if c["lang"] == lang and c["sentiment"] in labels]


def report(name: str, role: str, lang: str, pairs: list[tuple[str, int]], analyzer: SentimentAnalyzer,
           care_only: SentimentAnalyzer, errors: int) -> None:
    """Print one set's rows: carebox, care-only, TextBlob, and VADER itself for English."""
    baseline = "textblob-fr" if lang == "fr" else "textblob"
    scorers = {
        "carebox": lambda t: analyzer.polarity(t, lang),
        "care-only": lambda t: care_only.polarity(t, lang),
        baseline: lambda t: reference_polarity(t, lang),
    }
    if lang == "en":
        scorers["vader"] = _vader_reference()
    for scorer, fn in scorers.items():
        strict, zero_pos, cov, tps = score(pairs, fn)
        print(f"{name:18} {role:9} {len(pairs):5d}  {scorer:12} {strict:6.3f} {zero_pos:6.3f} {cov:8.3f} "
              f"{tps:8.0f}")
    if lang == "en":  # carebox's port of VADER (lexicon_vader) against vaderSentiment itself
        fast = vader_lexicon("en")
        same = sum(_sign(fast.compound(t)) == _sign(scorers["vader"](t)) for t, _ in pairs)
        print(f"{'':18} {'':9} {'':5}  lexicon_vader: same sign as vaderSentiment on {same / len(pairs):.1%} "
              "of the raw texts")
    for text, label in pairs[: errors * 20]:
        p = analyzer.polarity(text, lang)
        if (label == 2 and p <= 0) or (label == 0 and p >= 0):
            print(f"  miss label={label} p={p:+.2f} {text[:150]}")


def _sign(x: float) -> int:
    return (x > 0) - (x < 0)


def _vader_reference() -> Callable[[str], float]:
    """vaderSentiment's own compound score (slow; for comparison only)."""
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    vader = SentimentIntensityAnalyzer()
    return lambda text: float(vader.polarity_scores(text)["compound"])

if __name__ == "__main__":
    sys.exit(main())
