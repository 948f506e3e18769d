"""VADER's valence lexicon (vaderSentiment, MIT) as a fast compound score, one feature of the learned model.

`compound(text)` follows VADER's rules (lexicon valence, booster words, negation in the three
preceding words, ALL-CAPS emphasis, `but`, `least`, `!`/`?` emphasis, normalisation x/sqrt(x²+15))
over a simpler tokenisation, at a fraction of `SentimentIntensityAnalyzer.polarity_scores`'s cost;
it leaves out the emoji-to-description pass and VADER's few multi-word idioms.
benchmarks/triage_quality.py prints how often its sign agrees with VADER's own.
"""

from __future__ import annotations

import math
import re
import string
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources

B_INCR = 0.293
B_DECR = -0.293
C_INCR = 0.733
N_SCALAR = -0.74

def _words(text: str) -> frozenset[str]:
    """A word set written as one space-separated string."""
    return frozenset(text.split())


_EN_NEGATE = _words(
    "aint arent cannot cant couldnt darent didnt doesnt ain't aren't can't couldn't daren't didn't "
    "doesn't dont hadnt hasnt havent isnt mightnt mustnt neither don't hadn't hasn't haven't isn't "
    "mightn't mustn't neednt needn't never none nope nor not nothing nowhere oughtnt shant shouldnt "
    "uhuh wasnt werent oughtn't shan't shouldn't uh-uh wasn't weren't without wont wouldnt won't "
    "wouldn't rarely seldom despite"
)
_EN_BOOST_UP = (
    "absolutely amazingly awfully completely considerable considerably decidedly deeply effing "
    "enormous enormously entirely especially exceptional exceptionally extreme extremely fabulously "
    "flipping flippin frackin fracking fricking frickin frigging friggin fully fuckin fucking fuggin "
    "fugging greatly hella highly hugely incredible incredibly intensely major majorly more most "
    "particularly purely quite really remarkably so substantially thoroughly total totally tremendous "
    "tremendously uber unbelievably unusually utter utterly very"
)
_EN_BOOST_DOWN = (
    "almost barely hardly kinda kindof kind-of less little marginal marginally occasional occasionally "
    "partly scarce scarcely slight slightly somewhat sorta sortof sort-of"
)
# vaderSentiment-fr's negations and degree adverbs (accents folded, as its lexicon keys are).
_FR_NEGATE = _words("pas jamais plus rien aucunement nullement sans ni aucun aucune")
_FR_BOOST_UP = (
    "absolument archi beaucoup bigrement carrement completement considerablement davantage "
    "diablement drolement entierement exceptionnellement excessivement extra extremement "
    "fabuleusement grandement hyper incroyablement infiniment profondement rudement sacrement "
    "specialement super tellement terriblement totalement trop tres ultra vachement vraiment enormement"
)
_FR_BOOST_DOWN = (
    "approximativement assez difficilement environ guere insuffisamment juste legerement moins peu "
    "plutot presque quasi quasiment rarement"
)
_BIGRAM_BOOSTERS = {"kind of": B_DECR, "sort of": B_DECR, "just enough": B_DECR}
_BIGRAM_FIRSTS = frozenset(b.split()[0] for b in _BIGRAM_BOOSTERS)
_NEGATION_QUIRKS = frozenset(("never", "without"))  # words _negation looks at in any language
_STRIP = string.punctuation + "\u2019\u2018\u201c\u201d\u00ab\u00bb\u2026"
_ELISION = re.compile(r"(?i)\b(?:jusqu|lorsqu|puisqu|qu|[ldnjcsmt])'(?=\w)")
_FOLD = str.maketrans({
    "à": "a", "â": "a", "ä": "a", "á": "a", "ç": "c", "é": "e", "è": "e", "ê": "e", "ë": "e",
    "í": "i", "î": "i", "ï": "i", "ñ": "n", "ó": "o", "ô": "o", "ö": "o", "ú": "u", "ù": "u",
    "û": "u", "ü": "u", "ÿ": "y", "œ": "oe", "æ": "ae", "\u2019": "'",
})


@dataclass(frozen=True, slots=True)
class VaderLexicon:
    """One language's VADER lexicon and rule words."""

    valence: Mapping[str, float]
    boosters: Mapping[str, float]
    negations: frozenset[str]
    french: bool

    def tokens(self, text: str) -> list[str]:
        """VADER's tokens: whitespace split, punctuation stripped unless that leaves <= 2 characters."""
        if self.french:  # accents folded as vaderSentiment-fr does; elided articles dropped
            if not text.isascii():
                text = text.translate(_FOLD)
            if "'" in text:
                text = _ELISION.sub("", text)
        return [s if len(s := w.strip(_STRIP)) > 2 else w for w in text.split()]

    def compound(self, text: str) -> float:
        """VADER's normalised compound score in [-1, 1] (0 when no lexicon word is found)."""
        lower = self.tokens(text.lower())
        valence = self.valence
        if valence.keys().isdisjoint(lower):
            return 0.0
        words = text.split()  # aligned with `lower`: only for ALL-CAPS checks, which ignore punctuation
        caps = sum(map(str.isupper, words))
        cap_diff = 0 < len(words) - caps < len(words)
        scored = [(i, self._valence(words, lower, i, cap_diff)) for i, w in enumerate(lower) if w in valence]
        if "but" in lower and not self.french:
            b = lower.index("but")
            scored = [(k, s * 0.5 if k < b else s * 1.5 if k > b else s) for k, s in scored]
        total = sum(s for _, s in scored)
        if total == 0:
            return 0.0
        emphasis = min(text.count("!"), 4) * 0.292
        questions = text.count("?")
        if questions > 1:
            emphasis += questions * 0.18 if questions <= 3 else 0.96
        total += emphasis if total > 0 else -emphasis
        return max(-1.0, min(total / math.sqrt(total * total + 15), 1.0))

    def _valence(self, words: list[str], lower: list[str], i: int, cap_diff: bool) -> float:
        """One word's valence after VADER's no/caps/booster/negation/least rules."""
        item = lower[i]
        lexicon = self.valence
        v = lexicon[item]
        if item in self.boosters or (item == "kind" and lower[i + 1 : i + 2] == ["of"]):
            return 0.0
        if item == "no" and i + 1 < len(lower) and lower[i + 1] in lexicon:
            v = 0.0
        if (i > 0 and lower[i - 1] == "no") or (i > 1 and lower[i - 2] == "no"):
            v = lexicon[item] * N_SCALAR
        if cap_diff and words[i].isupper():
            v += C_INCR if v > 0 else -C_INCR
        for back in (1, 2, 3):
            if i < back or lower[i - back] in lexicon:
                continue
            before = lower[i - back]
            scalar = self.boosters.get(before, 0.0)
            if scalar:
                scalar = -scalar if v < 0 else scalar
                if cap_diff and words[i - back].isupper():
                    scalar += C_INCR if v > 0 else -C_INCR
                v += scalar * (1.0, 0.95, 0.9)[back - 1]
            if (before in self.negations or before in _NEGATION_QUIRKS or (not self.french and "n't" in before)
                    or (back == 3 and lower[i - 1] in ("so", "this"))):  # else _negation returns v as is
                v = self._negation(v, lower, i, back)
            if back == 3 and (lower[i - 3] in _BIGRAM_FIRSTS or lower[i - 2] in _BIGRAM_FIRSTS):
                for bigram in (f"{lower[i - 3]} {lower[i - 2]}", f"{lower[i - 2]} {lower[i - 1]}"):
                    v += _BIGRAM_BOOSTERS.get(bigram, 0.0)
        if i > 0 and lower[i - 1] == "least" and (i < 2 or lower[i - 2] not in ("at", "very")):
            v *= N_SCALAR
        return v

    def _negation(self, v: float, lower: list[str], i: int, back: int) -> float:
        """VADER's negation check of the word `back` places before word `i` (with its quirks)."""
        if back == 2 and lower[i - 2] == "never" and lower[i - 1] in ("so", "this"):
            return v * 1.25
        if back == 3 and ((lower[i - 3] == "never" and lower[i - 2] in ("so", "this"))
                          or lower[i - 1] in ("so", "this")):
            return v * 1.25
        if back > 1 and lower[i - back] == "without" and "doubt" in lower[i - back + 1 : i]:
            return v
        before = lower[i - back]
        if before in self.negations or (not self.french and "n't" in before):
            return v * N_SCALAR
        return v


def _read(package: str, name: str, fold: bool) -> dict[str, float]:
    """word -> valence from a VADER lexicon file shipped in `package` at `name` (tab-separated)."""
    text = resources.files(package).joinpath(name).read_text(encoding="utf-8")
    table: dict[str, float] = {}
    for line in text.splitlines():
        parts = line.split("\t") if "\t" in line else line.split("->")
        if len(parts) >= 2:
            word = parts[0].strip().lower()
            table.setdefault(word.translate(_FOLD) if fold else word, float(parts[1]))
    return table


def _boosters(up: str, down: str) -> dict[str, float]:
    return {**{w: B_INCR for w in up.split()}, **{w: B_DECR for w in down.split()}}


@cache
def lexicon(lang: str) -> VaderLexicon:
    """The VADER lexicon of `lang` ("en" or "fr"), read once from the installed package."""
    if lang == "fr":
        return VaderLexicon(_read("carebox", "data/vader_fr/fr_lexicon.txt", True),
                            _boosters(_FR_BOOST_UP, _FR_BOOST_DOWN), _FR_NEGATE, True)
    return VaderLexicon(_read("vaderSentiment", "vader_lexicon.txt", False),
                        _boosters(_EN_BOOST_UP, _EN_BOOST_DOWN), _EN_NEGATE, False)
