"""Generate carebox/lexicon_learned_{en,fr}.py from the labelled TRAIN splits only.

    python benchmarks/build_lexicon.py --data ../shared/data/sentiment

Each word's weight is the smoothed log-odds of the word between positive and negative tweets
(document counts, add-one), shrunk towards 0 by n / (n + shrink) for a word seen in n tweets, kept
when n >= min_count and |weight| >= min_weight. Topic words are left out: a word written with a
capital (not all-caps) or as a hashtag in more than 60% of its occurrences is a name or an event.
Only alphabetic words are learned (no punctuation, emoticons or digits). French words are keyed by
their unaccented light stem (`care_lexicon.learned_key`). min_count, min_weight and the blend
weight are chosen by repeated k-fold cross-validation on the train split alone, maximising the
balanced accuracy (polarity >= 0 read as positive) of care + blend x (1 - |care|) x tanh(mean
learned weight): the learned words count most where the care layer is unsure.
The held-out sets (en_tweeteval_val, fr_deft_train/val_*) are never read here.
"""

from __future__ import annotations

import argparse
import itertools
import math
import random
import re
import sys
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout

from benchmarks.triage_quality import balanced_accuracy, load
from carebox.care_lexicon import learned_key
from carebox.sentiment import SentimentAnalyzer

TRAIN = {"en": ("en_umsab_train", "train_text.txt", "train_labels.txt"),
         "fr": ("fr_deft_train", "train_text.txt", "train_labels.txt")}
NAMES = {"en": "English", "fr": "French"}
SHRINK = 3.0
TOPIC_SHARE = 0.6
GRID_MIN_COUNT = (2, 3)
GRID_MIN_WEIGHT = (0.0, 0.1, 0.2, 0.3)
GRID_BLEND = (0.1, 0.25, 0.5, 1.0)
TIE = 0.002  # CV scores this close are a tie, won by the smaller blend (closer to the care layer)
_WORD = re.compile(r"(?<![\w@])(#?)([^\W\d_][\w'\u2019-]*)")


@dataclass(frozen=True, slots=True)
class Example:
    """One labelled train tweet, with what the learner needs from it."""

    text: str
    label: int  # 0 negative, 2 positive
    keys: tuple[str, ...]  # learned-table keys of its words
    base: float  # care polarity without the learned table


def topic_words(texts: Sequence[str], lang: str) -> frozenset[str]:
    """Keys mostly written capitalised or as hashtags in `texts`: names, places, events."""
    total: Counter[str] = Counter()
    marked: Counter[str] = Counter()
    for text in texts:
        for m in _WORD.finditer(text):
            word = m.group(2)
            key = learned_key(word.lower(), lang)
            total[key] += 1
            if m.group(1) or (word[0].isupper() and not word.isupper()):
                marked[key] += 1
    return frozenset(k for k, n in total.items() if marked[k] > TOPIC_SHARE * n)


def learn(examples: Sequence[Example], topics: frozenset[str], min_count: int,
          min_weight: float) -> dict[str, float]:
    """Shrunk log-odds (positive vs negative) of every key kept by the filters."""
    counts = {0: Counter[str](), 2: Counter[str]()}
    docs = {0: 0, 2: 0}
    for ex in examples:
        docs[ex.label] += 1
        counts[ex.label].update(set(ex.keys))
    table = {}
    for key in counts[0].keys() | counts[2].keys():
        neg, pos = counts[0][key], counts[2][key]
        n = neg + pos
        if n < min_count or key in topics or len(key) < 2 or not key.replace("-", "").isalpha():
            continue
        weight = math.log((pos + 1) / (docs[2] + 1)) - math.log((neg + 1) / (docs[0] + 1))
        weight *= n / (n + SHRINK)
        if abs(weight) >= min_weight:
            table[key] = weight
    return table


def polarity(ex: Example, table: Mapping[str, float], blend: float) -> float:
    """What SentimentAnalyzer computes: care + blend x (1 - |care|) x tanh(mean learned weight)."""
    hits = [table[k] for k in ex.keys if k in table]
    if not hits:
        return ex.base
    return ex.base + blend * (1.0 - abs(ex.base)) * math.tanh(sum(hits) / len(hits))


def cross_validate(examples: Sequence[Example], topics: frozenset[str], folds: int,
                   repeats: int) -> list[tuple[float, int, float, float]]:
    """Mean held-in-fold balanced accuracy for every grid point, best first."""
    results: dict[tuple[int, float, float], list[float]] = {}
    for r in range(repeats):
        order = list(range(len(examples)))
        random.Random(r).shuffle(order)
        for f in range(folds):
            held = set(order[f::folds])
            fit = [examples[i] for i in order if i not in held]
            val = [examples[i] for i in sorted(held)]
            for min_count, min_weight in itertools.product(GRID_MIN_COUNT, GRID_MIN_WEIGHT):
                table = learn(fit, topics, min_count, min_weight)
                for blend in GRID_BLEND:
                    values = [polarity(ex, table, blend) for ex in val]
                    acc = balanced_accuracy([ex.label for ex in val], values, True)
                    results.setdefault((min_count, min_weight, blend), []).append(acc)
    return sorted(((sum(v) / len(v), *k) for k, v in results.items()), reverse=True)


def render(lang: str, table: Mapping[str, float], blend: float, params: str, command: str) -> str:
    """The generated Python data module."""
    folder, text_file, _labels = TRAIN[lang]
    lines = [
        (f'"""Learned {NAMES[lang]} word polarities: smoothed, shrunk log-odds between positive and '
         "negative tweets."),
        "",
        "GENERATED, do not edit. Produced by:",
        "",
        f"    {command}",
        "",
        f"from {folder}/{text_file} (labels 0 and 2) only; held-out sets never read.",
        f"{params}",
        "Keys are lower-cased words" + (" (unaccented light stems, care_lexicon.learned_key)."
                                        if lang == "fr" else "."),
        '"""',
        "",
        f"BLEND = {blend}  # polarity = care + BLEND x (1 - |care|) x tanh(mean weight of the words found)",
        "",
        "WEIGHTS: dict[str, float] = {",
    ]
    row = "   "
    for key in sorted(table):
        item = f" {key!r}: {table[key]:.3f},"
        if len(row) + len(item) > 99:
            lines.append(row)
            row = "   "
        row += item
    if row.strip():
        lines.append(row)
    lines.append("}")
    return "\n".join(lines) + "\n"


def build(lang: str, data: Path, folds: int, repeats: int, out: Path, command: str) -> None:
    """Cross-validate, learn on the whole train split, write the module, print a summary."""
    folder, text_file, label_file = TRAIN[lang]
    pairs = load(data / folder, text_file, label_file)
    analyzer = SentimentAnalyzer(learned=False)
    examples = [
        Example(text, label, tuple(learned_key(w, lang) for w in analyzer.words(text, lang)),
                analyzer.polarity(text, lang))
        for text, label in pairs
    ]
    topics = topic_words([text for text, _ in pairs], lang)
    ranked = cross_validate(examples, topics, folds, repeats)
    base = balanced_accuracy([ex.label for ex in examples], [ex.base for ex in examples], True)
    acc, min_count, min_weight, blend = min(
        (r for r in ranked if r[0] >= ranked[0][0] - TIE), key=lambda r: (r[3], -r[0])
    )
    table = learn(examples, topics, min_count, min_weight)
    params = (f"Chosen by {folds}-fold cross-validation x {repeats} on that split: min_count={min_count},\n"
              f"min_weight={min_weight}, shrink={SHRINK}, blend={blend} (CV balanced accuracy {acc:.3f}\n"
              f"vs {base:.3f} for the care layer alone on the same split); {len(table)} keys, "
              f"{len(topics)} topic words left out.")
    out.write_text(render(lang, table, blend, params, command), encoding="utf-8")
    print(f"{lang}: {out.relative_to(ROOT)}: {len(table)} keys; CV top 5:")
    for cv_acc, count, weight, share in ranked[:5]:
        print(f"   bacc0+ {cv_acc:.3f}  min_count={count} min_weight={weight:.1f} blend={share:.3f}")


def main(argv: list[str] | None = None) -> int:
    """Write the learned tables; exit 2 when the data folder is absent."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data/sentiment", type=Path)
    parser.add_argument("--langs", default="en,fr")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=4)
    args = parser.parse_args(argv)
    if not args.data.is_dir():
        print(f"data folder {args.data} not found; pass --data PATH/TO/sentiment", file=sys.stderr)
        return 2
    command = "python benchmarks/build_lexicon.py --data ../shared/data/sentiment"
    if (args.folds, args.repeats) != (5, 4):
        command += f" --folds {args.folds} --repeats {args.repeats}"
    for lang in args.langs.split(","):
        build(lang, args.data, args.folds, args.repeats,
              ROOT / "carebox" / f"lexicon_learned_{lang}.py", command)
    return 0


if __name__ == "__main__":
    sys.exit(main())
