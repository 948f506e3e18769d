"""Polarity of EN/FR customer-care messages: TextBlob's lexicons through a fast path, plus a care lexicon.

The fast path is a faithful port of pattern's tokenizer and `Sentiment.assessments` over
precomputed dictionaries: on texts without care-layer terms it returns exactly TextBlob's
PatternAnalyzer polarity (EN) and textblob-fr's (FR), several times faster.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import textblob._text as _tb_text
import textblob_fr.fr as _fr
from textblob.en import sentiment as _en_sentiment

from carebox import care_lexicon as _care

LANGS = ("en", "fr")

# Per token: (polarity, intensity, is_modifier); the same triple pattern's Sentiment uses.
_Entry = tuple[float, float, bool]


@dataclass(frozen=True, slots=True)
class _Tokenizer:
    """Port of pattern's find_tokens with its regexes compiled once; same output."""

    replace: tuple[tuple[str, re.Pattern[str], str], ...]
    replace_keys: frozenset[str]
    abbreviations: frozenset[str]
    balance_quotes: bool
    rsquo_fix: bool

    def tokens(self, string: str) -> list[str]:
        """Return the lower-cased tokens pattern's Sentiment would assess for `string`."""
        if "'" in string or "\u2019" in string:
            for needle, pattern, repl in self.replace:
                if needle in string:  # skipping a sub that cannot match keeps the output
                    string = pattern.sub(repl, string)
        string = (
            string.replace("\u201c", " \u201c ")
            .replace("\u201d", " \u201d ")
            .replace("\u2018", " \u2018 ")
            .replace("\u2019", " \u2019 ")
            .replace("'", " ' ")
            .replace('"', ' " ')
        )
        if "\n" in string:
            string = _LINEBREAK.sub(f" {_tb_text.EOS} ", string.replace("\r\n", "\n"))
        tokens: list[str] = []
        for t in string.split():
            if t[0] in _PUNCT_SET or t[-1] in _PUNCT_DOT_SET:
                self._split(t, tokens)
            else:  # nothing to split: the common case, kept out of the function call
                tokens.append(t)
        sentences = self._sentences(tokens)
        for k, s in enumerate(sentences):
            if "(" in s:
                s = _tb_text.RE_SARCASM.sub("(!)", s)
            if _SPACED_EMOTICON.search(s):  # otherwise joining emoticons changes nothing
                s = _tb_text.RE_EMOTICONS.sub(_join_emoticon, s)
            if self.rsquo_fix:
                s = s.replace("&rsquo ;", "\u2019")
            sentences[k] = s
        return " ".join(sentences).lower().split()

    def _split(self, t: str, tokens: list[str]) -> None:
        """Split leading and trailing punctuation off one whitespace-delimited chunk."""
        replace_keys = self.replace_keys
        while t.startswith(_PUNCT) and t not in replace_keys:
            tokens.append(t[0])
            t = t[1:]
        tail: list[str] = []
        while t.endswith(_PUNCT_DOT) and t not in replace_keys:
            if t.endswith(_PUNCT):
                tail.append(t[-1])
                t = t[:-1]
            if t.endswith("..."):
                tail.append("...")
                t = t[:-3].rstrip(".")
            if t.endswith("."):
                if (
                    t in self.abbreviations
                    or _tb_text.RE_ABBR1.match(t) is not None
                    or _tb_text.RE_ABBR2.match(t) is not None
                    or _tb_text.RE_ABBR3.match(t) is not None
                ):
                    break
                tail.append(t[-1])
                t = t[:-1]
        if t != "":
            tokens.append(t)
        tokens.extend(reversed(tail))

    def _sentences(self, tokens: list[str]) -> list[str]:
        """Group tokens into sentences as pattern does (it matters for emoticon joining)."""
        if not _SENTENCE_END.intersection(tokens):
            return [" ".join(tokens)] if tokens else []
        eos = _tb_text.EOS
        sentences: list[list[str]] = [[]]
        i = j = 0
        follow = _FOLLOW_EN if self.balance_quotes else _FOLLOW_FR
        while j < len(tokens):
            if tokens[j] in _SENTENCE_END:
                while j < len(tokens) and tokens[j] in follow:
                    if (
                        self.balance_quotes
                        and tokens[j] in ("'", '"')
                        and sentences[-1].count(tokens[j]) % 2 == 0
                    ):
                        break
                    j += 1
                chunk = tokens[i:j]
                sentences[-1].extend([t for t in chunk if t != eos] if eos in chunk else chunk)
                sentences.append([])
                i = j
            j += 1
        sentences[-1].extend(tokens[i:j])
        return [" ".join(s) for s in sentences if s]


_LINEBREAK = re.compile(r"\n{2,}")
_PUNCT = tuple(_tb_text.PUNCTUATION.replace(".", ""))
_PUNCT_DOT = _PUNCT + (".",)
_PUNCT_SET = frozenset(_PUNCT)
_PUNCT_DOT_SET = frozenset(_PUNCT_DOT)
_SENTENCE_END = frozenset(("...", ".", "!", "?", _tb_text.EOS))
_FOLLOW_EN = frozenset(("'", '"', "\u201d", "\u2019", "...", ".", "!", "?", ")", _tb_text.EOS))
_FOLLOW_FR = _FOLLOW_EN
_EMOTICON_CHARS = "".join(sorted({ch for v in _tb_text.EMOTICONS.values() for e in v for ch in e}))
# Every emoticon match that contains a space has an emoticon character on both sides of it.
_SPACED_EMOTICON = re.compile("[%s] [%s]" % ((re.escape(_EMOTICON_CHARS),) * 2))


def _join_emoticon(m: re.Match[str]) -> str:
    return m.group(1).replace(" ", "") + m.group(2)


def _compile_replacements(
    replace: Mapping[str, str],
) -> tuple[tuple[str, re.Pattern[str], str], ...]:
    """Compile pattern's contraction rules, each with a literal that any match must contain."""
    rules = []
    for a, b in replace.items():
        needle = a if re.escape(a) == a else "\u2019"  # the one regex rule is about "’"
        rules.append((needle, re.compile(a), b))
    return tuple(rules)


def _base_table(sentiment: Any) -> dict[str, _Entry]:
    """Flatten a pattern Sentiment lexicon into word -> (polarity, intensity, is_modifier)."""
    if not dict.__len__(sentiment):  # pattern lexicons load lazily
        sentiment.load()
    table: dict[str, _Entry] = {}
    senses: dict[str | None, list[float]]
    for word, senses in dict.items(sentiment):
        p, _s, i = senses[None]
        table[word] = (p, i, "RB" in senses)
    return table


def _emoticon_table() -> dict[str, float]:
    """Emoticons pattern recognises on unknown tokens, lower-cased, first sentiment wins."""
    table: dict[str, float] = {}
    for (_kind, p), forms in _tb_text.EMOTICONS.items():
        for form in forms:
            w = form.lower()
            if not w.isalpha() and len(w) <= 5 and w not in _tb_text.PUNCTUATION:
                table.setdefault(w, p)
    return table


@dataclass(frozen=True, slots=True)
class _Language:
    """Everything the fast path needs for one language."""

    tokenizer: _Tokenizer
    table: dict[str, _Entry]
    negations: frozenset[str]
    modifier: Callable[[str], bool]


_EN = _Language(
    tokenizer=_Tokenizer(
        replace=_compile_replacements(_tb_text.replacements),
        replace_keys=frozenset(_tb_text.replacements),
        abbreviations=frozenset(_tb_text.ABBREVIATIONS),
        balance_quotes=True,
        rsquo_fix=False,
    ),
    table=_base_table(_en_sentiment),
    negations=frozenset(_en_sentiment.negations),
    modifier=lambda w: w.endswith("ly"),
)
_FR = _Language(
    tokenizer=_Tokenizer(
        replace=_compile_replacements(_fr.replacements),
        replace_keys=frozenset(_fr.replacements),
        abbreviations=frozenset(_fr.ABBREVIATIONS),
        balance_quotes=False,
        rsquo_fix=True,
    ),
    table=_base_table(_fr.sentiment),
    negations=frozenset(_fr.sentiment.negations),
    modifier=lambda w: w.endswith("ment"),
)
_EMOTICONS = _emoticon_table()


def _assess(words: Iterable[str], lang: _Language, table: Mapping[str, _Entry]) -> float:
    """Average polarity of the assessed chunks, exactly as pattern's Sentiment.assessments."""
    ps: list[float] = []
    ins: list[float] = []
    neg: list[bool] = []
    m: str | None = None
    n: str | None = None
    negations = lang.negations
    for w in words:
        e = table.get(w)
        if e is not None:
            p, i, is_mod = e
            if m is None:
                ps.append(p)
                ins.append(i)
                neg.append(False)
            else:
                ps[-1] = max(-1.0, min(p * ins[-1], 1.0))
                ins[-1] = i
            if n is not None:
                ins[-1] = 1.0 / ins[-1]
                neg[-1] = True
            m = w if is_mod else None
            n = w if w in negations else None
            continue
        if w in negations:
            n = w
        elif n and len(w.strip("'")) > 1:
            n = None
        if n is not None and m is not None and lang.modifier(m):
            neg[-1] = True
            n = None
        elif m and len(w) > 2:
            m = None
        if w == "!" and ps:
            ps[-1] = max(-1.0, min(ps[-1] * 1.25, 1.0))
        elif w == "(!)":
            ps.append(0.0)
            ins.append(1.0)
            neg.append(False)
        else:
            emo = _EMOTICONS.get(w)
            if emo is not None:
                ps.append(emo)
                ins.append(1.0)
                neg.append(False)
    if not ps:
        return 0.0
    total = 0.0
    for p, negated in zip(ps, neg):
        total += p * -0.5 if negated else p
    return total / float(len(ps))


def _language(lang: str) -> _Language:
    return _FR if lang == "fr" else _EN


def base_polarity(text: str, lang: str = "en") -> float:
    """TextBlob's own polarity for `text` (PatternAnalyzer / textblob-fr), through the fast path."""
    language = _language(lang)
    return _assess(language.tokenizer.tokens(text), language, language.table)


def reference_polarity(text: str, lang: str = "en") -> float:
    """Polarity from TextBlob itself (slow; for tests and benchmarks)."""
    if lang == "fr":
        return float(_fr.sentiment(text)[0])
    return float(_en_sentiment(text)[0])


class SentimentAnalyzer:
    """Care-aware polarity in [-1, 1] for English and French messages."""

    def __init__(self, extra_words: Mapping[str, Mapping[str, float]] | None = None) -> None:
        self._tables = {
            "en": _care.merged_table(_EN.table, "en", (extra_words or {}).get("en", {})),
            "fr": _care.merged_table(_FR.table, "fr", (extra_words or {}).get("fr", {})),
        }

    def polarity(self, text: str, lang: str = "en") -> float:
        """Polarity of one message; `lang` is "en" or "fr" (anything else is scored as English)."""
        return self.analyse(text, lang).polarity

    def analyse(self, text: str, lang: str = "en") -> Scored:
        """Polarity plus the cleaned tokens and whether a service-failure phrase was seen."""
        code = "fr" if lang == "fr" else "en"
        language = _language(code)
        tokens = language.tokenizer.tokens(_care.normalise(text, code))
        words = _care.rewrite(tokens, code)
        score = _assess(words, language, self._tables[code])
        return Scored(max(-1.0, min(score, 1.0)), tuple(tokens), _care.FAIL in words)


@dataclass(frozen=True, slots=True)
class Scored:
    """A message's polarity, its lower-cased tokens, and whether it reports a service failure."""

    polarity: float
    tokens: tuple[str, ...]
    failure: bool
