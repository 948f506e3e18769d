"""Generate carebox/lexicon_learned_{en,fr}.py from the labelled TRAIN splits only.

    python benchmarks/build_lexicon.py --data ../shared/data/sentiment

The learned model is an L2-regularised logistic regression of positive vs negative tweets (labels 2
vs 0, neutral tweets (label 1) as targets of 1/2, which pulls the words of neutral messages
towards 0) on the care layer's polarity, VADER's compound score (carebox.lexicon_vader: VADER's
lexicon for English, vaderSentiment-fr's for French) and the presence of each learned word
(distinct words): z = CARE_WEIGHT x care + VADER_WEIGHT x vader + sum of the weights of the
distinct learned words found (no intercept: a text whose words cancel out keeps the care layer's
side), and
polarity = |care| x care + (1 - |care|) x tanh(z / 2), so the learned words count most where the
care layer is unsure, and a text without any learned or VADER word keeps the care polarity. The L2 penalty
(1 / C on the word weights) shrinks rare and ambiguous words towards 0. Topic words are left out: a
word written with a capital (not all-caps) or as a hashtag in more than 60% of its occurrences is a
name or an event. Only alphabetic words seen in >= min_count tweets are learned (no punctuation,
emoticons or digits). French words are keyed by their unaccented light stem
(`care_lexicon.learned_key`). min_count and C are chosen by repeated k-fold cross-validation on
the train split alone, maximising balanced accuracy (polarity >= 0 read as positive).
The held-out sets (en_tweeteval_val, fr_deft_train/val_*) are never read here.
Fitting needs numpy (installed with py3langid).
"""

from __future__ import annotations

import argparse
import itertools
import random
import re
import statistics
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout

from benchmarks.triage_quality import balanced_accuracy, load
from carebox.care_lexicon import learned_key, normalise
from carebox.lexicon_vader import lexicon as vader_lexicon
from carebox.sentiment import SentimentAnalyzer, learned_polarity

TRAIN = {"en": ("en_umsab_train", "train_text.txt", "train_labels.txt"),
         "fr": ("fr_deft_train", "train_text.txt", "train_labels.txt")}
NAMES = {"en": "English", "fr": "French"}
TOPIC_SHARE = 0.6


def _words(text: str) -> frozenset[str]:
    """A word set written as one space-separated string."""
    return frozenset(text.split())


# Function words are not learned: their weights in the train tweets reflect style (rhetorical
# questions in political tweets), and care messages use them neutrally ("quels sont vos horaires").
FUNCTION_WORDS = {
    "en": _words(
        "a an the this that these those i me my mine you your yours he him his she her hers it its we us our "
        "they them their what which who whom whose where when why how is are was were be been being am do "
        "does did have has had will would shall should can could may might must of to in on at by for with "
        "from about as into than then so and or but if there here not no"
    ),
    "fr": _words(
        "le la les un une des du de au aux ce cet cette ces je tu il elle on nous vous ils elles me te se "
        "moi toi lui leur leurs mon ma mes ton ta tes son sa ses notre nos votre vos que qui quoi quel quels "
        "quelle quelles ou où quand comment pourquoi est sont suis es sommes etes êtes était ai as avons avez "
        "ont avait été être avoir fait et mais donc or ni car dans sur sous pour par avec sans en à y ne pas "
        "si ça cela ceci"
    ),
}
GRID_MIN_COUNT = (2, 3)
GRID_C = (0.1, 0.3, 1.0)
FREE_C = 1000.0  # CARE_WEIGHT and VADER_WEIGHT are all but unpenalised
TIE = 0.002  # CV scores this close are a tie, won by the smaller C (weights closer to 0)
_WORD = re.compile(r"(?<![\w@])(#?)([^\W\d_][\w'\u2019-]*)")


@dataclass(frozen=True, slots=True)
class Example:
    """One labelled train tweet, with what the learner needs from it."""

    text: str
    label: int  # 0 negative, 1 neutral, 2 positive
    keys: frozenset[str]  # distinct learned-table keys of its words
    base: float  # care polarity without the learned table
    vader: float  # VADER compound score of the cleaned text


@dataclass(frozen=True, slots=True)
class Model:
    """A fitted learned table: word weights plus the weights of the care and VADER polarities."""

    weights: dict[str, float]
    care_weight: float
    vader_weight: float


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


def vocabulary(examples: Sequence[Example], topics: frozenset[str], min_count: int) -> list[str]:
    """Alphabetic keys, not in `topics` (topic and function words), found in >= `min_count` examples."""
    counts = Counter(k for ex in examples for k in ex.keys)
    return sorted(k for k, n in counts.items() if n >= min_count and k not in topics and len(k) >= 2
                  and k.replace("-", "").isalpha())


def learn(examples: Sequence[Example], topics: frozenset[str], min_count: int, c: float) -> Model:
    """L2-regularised logistic regression (Newton's method) of positive vs negative."""
    vocab = vocabulary(examples, topics, min_count)
    index = {k: j for j, k in enumerate(vocab)}
    x = np.zeros((len(examples), len(vocab) + 2))
    for i, ex in enumerate(examples):
        x[i, [index[k] for k in ex.keys if k in index]] = 1.0
        x[i, -2] = ex.base
        x[i, -1] = ex.vader
    y = np.array([ex.label / 2.0 for ex in examples])  # neutral: 1/2
    precision = np.full(x.shape[1], 1.0 / c)
    precision[-2:] = 1.0 / FREE_C
    theta = _newton(x, y, precision)
    return Model({k: float(theta[j]) for k, j in index.items()}, float(theta[-2]), float(theta[-1]))


def _newton(x: np.ndarray, y: np.ndarray, precision: np.ndarray, steps: int = 30) -> np.ndarray:
    """Minimise the penalised log-loss; each step solves in the (smaller) space of examples."""
    theta = np.zeros(x.shape[1])
    scaled = x / precision  # X Λ^-1: the Hessian is inverted through Woodbury's identity
    kernel = scaled @ x.T
    eye = np.eye(x.shape[0])

    def loss(t: np.ndarray) -> float:
        z = x @ t
        return float(np.sum(np.logaddexp(0.0, z) - y * z) + 0.5 * np.sum(precision * t * t))

    current = loss(theta)
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(-(x @ theta)))
        grad = x.T @ (p - y) + precision * theta
        root = np.sqrt(p * (1.0 - p))
        inner = np.linalg.solve(eye + root[:, None] * kernel * root[None, :], root * (scaled @ grad))
        step = grad / precision - scaled.T @ (root * inner)
        rate = 1.0
        while rate > 1e-4 and loss(theta - rate * step) > current:
            rate /= 2
        theta = theta - rate * step
        previous, current = current, loss(theta)
        if previous - current < 1e-7 * (1.0 + abs(current)):
            break
    return theta


def polarity(ex: Example, model: Model) -> float:
    """What SentimentAnalyzer computes for a train example (the same function)."""
    hits = [model.weights[k] for k in ex.keys if k in model.weights]
    if not hits and ex.vader == 0:
        return ex.base
    return learned_polarity(ex.base, model.care_weight * ex.base + model.vader_weight * ex.vader + sum(hits))


def cross_validate(examples: Sequence[Example], topics: frozenset[str], folds: int,
                   repeats: int) -> list[tuple[float, float, int, float]]:
    """Mean and sd (over repeats) of the held-in-fold balanced accuracy per grid point, best first."""
    results: dict[tuple[int, float], list[float]] = {}
    for r in range(repeats):
        order = list(range(len(examples)))
        random.Random(r).shuffle(order)
        for f in range(folds):
            held = set(order[f::folds])
            fit = [examples[i] for i in order if i not in held]
            val = [examples[i] for i in sorted(held) if examples[i].label != 1]
            for min_count, c in itertools.product(GRID_MIN_COUNT, GRID_C):
                model = learn(fit, topics, min_count, c)
                values = [polarity(ex, model) for ex in val]
                acc = balanced_accuracy([ex.label for ex in val], values, True)
                results.setdefault((min_count, c), []).append(acc)
    summary = []
    for key, accs in results.items():
        means = [sum(accs[r * folds:(r + 1) * folds]) / folds for r in range(repeats)]
        summary.append((statistics.mean(means), statistics.stdev(means) if repeats > 1 else 0.0, *key))
    return sorted(summary, reverse=True)


def render(lang: str, model: Model, params: str, command: str) -> str:
    """The generated Python data module."""
    folder, text_file, _labels = TRAIN[lang]
    lines = [
        (f'"""Learned {NAMES[lang]} word weights: L2-regularised logistic regression, positive vs '
         "negative tweets."),
        "",
        "GENERATED, do not edit. Produced by:",
        "",
        f"    {command}",
        "",
        f"from {folder}/{text_file} (labels 0, 1 and 2) only; held-out sets never read.",
        f"{params}",
        "Keys are lower-cased words" + (" (unaccented light stems, care_lexicon.learned_key)."
                                        if lang == "fr" else "."),
        "polarity = |care| x care + (1 - |care|) x tanh(z / 2) with",
        "z = CARE_WEIGHT x care + VADER_WEIGHT x vader + sum of WEIGHTS of the distinct words found",
        "(care when no word is found and vader is 0).",
        '"""',
        "",
        f"CARE_WEIGHT = {model.care_weight:.4f}",
        f"VADER_WEIGHT = {model.vader_weight:.4f}",
        "",
        "WEIGHTS: dict[str, float] = {",
    ]
    row = "   "
    for key in sorted(model.weights):
        item = f" {key!r}: {model.weights[key]:.3f},"
        if len(row) + len(item) > 99:
            lines.append(row)
            row = "   "
        row += item
    if row.strip():
        lines.append(row)
    lines.append("}")
    return "\n".join(lines) + "\n"


def examples_of(pairs: Sequence[tuple[str, int]], lang: str) -> list[Example]:
    """Train examples: the care layer's words (as learned keys) and polarity of each text."""
    analyzer = SentimentAnalyzer(learned=False)
    vader = vader_lexicon(lang)
    return [
        Example(text, label, frozenset(learned_key(w, lang) for w in analyzer.words(text, lang)),
                analyzer.polarity(text, lang), vader.compound(normalise(text, lang)))
        for text, label in pairs
    ]


def build(lang: str, data: Path, folds: int, repeats: int, out: Path, command: str) -> None:
    """Cross-validate, learn on the whole train split, write the module, print a summary."""
    folder, text_file, label_file = TRAIN[lang]
    pairs = load(data / folder, text_file, label_file, neutral=True)
    examples = examples_of(pairs, lang)
    topics = topic_words([text for text, _ in pairs], lang)
    topics |= {learned_key(w, lang) for w in FUNCTION_WORDS[lang]}
    ranked = cross_validate(examples, topics, folds, repeats)
    polar = [ex for ex in examples if ex.label != 1]
    base = balanced_accuracy([ex.label for ex in polar], [ex.base for ex in polar], True)
    acc, sd, min_count, c = min((r for r in ranked if r[0] >= ranked[0][0] - TIE), key=lambda r: (r[3], -r[2]))
    model = learn(examples, topics, min_count, c)
    model = Model({k: round(v, 3) for k, v in model.weights.items()}, round(model.care_weight, 4),
                  round(model.vader_weight, 4))
    params = (f"Chosen by {folds}-fold cross-validation x {repeats} on that split: min_count={min_count},\n"
              f"C={c} (CV balanced accuracy {acc:.3f} ± {sd:.3f} (sd over repeats) vs {base:.3f} for the\n"
              f"care layer alone on the same split); {len(model.weights)} keys, {len(topics)} topic words\n"
              "left out.")
    out.write_text(render(lang, model, params, command), encoding="utf-8")
    print(f"{lang}: {out.relative_to(ROOT)}: {len(model.weights)} keys, care weight "
          f"{model.care_weight:.2f}, VADER weight {model.vader_weight:.2f}; care layer alone {base:.3f}; "
          f"CV ({folds}-fold x {repeats}) top 5:")
    for cv_acc, cv_sd, count, share in ranked[:5]:
        print(f"   bacc0+ {cv_acc:.3f} ± {cv_sd:.3f}  min_count={count} C={share}")


def main(argv: list[str] | None = None) -> int:
    """Write the learned tables; exit 2 when the data folder is absent."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data/sentiment", type=Path)
    parser.add_argument("--langs", default="en,fr")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    if not args.data.is_dir():
        print(f"data folder {args.data} not found; pass --data PATH/TO/sentiment", file=sys.stderr)
        return 2
    command = "python benchmarks/build_lexicon.py --data ../shared/data/sentiment"
    if (args.folds, args.repeats) != (5, 3):
        command += f" --folds {args.folds} --repeats {args.repeats}"
    for lang in args.langs.split(","):
        build(lang, args.data, args.folds, args.repeats,
              ROOT / "carebox" / f"lexicon_learned_{lang}.py", command)
    return 0


if __name__ == "__main__":
    sys.exit(main())
