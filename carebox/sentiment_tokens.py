"""pattern's tokenizer (TextBlob's find_tokens) ported over precompiled rules: the tokens sentiment assesses."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

import textblob._text as _tb_text


@dataclass(frozen=True, slots=True)
class PatternTokenizer:
    """Port of pattern's find_tokens with its regexes compiled once; same output."""

    replace: tuple[tuple[str, re.Pattern[str], str], ...]
    replace_keys: frozenset[str]
    abbreviations: frozenset[str]
    balance_quotes: bool
    rsquo_fix: bool

    def tokens(self, string: str) -> list[str]:
        """Return the lower-cased tokens pattern's Sentiment would assess for `string`."""
        pieces = self.pieces(string)
        joined = " ".join(pieces)
        if "(" not in joined and _tb_text.EOS not in joined and not _SPACED_EMOTICON.search(joined):
            # no sarcasm mark, end-of-sentence mark or spaced emoticon: the sentence pass changes nothing
            # (and no "&rsquo ;" spans two sentences: none ends on a word)
            if self.rsquo_fix:
                joined = joined.replace("&rsquo ;", "\u2019")
            return joined.lower().split()
        sentences = self._sentences(pieces)
        for k, s in enumerate(sentences):
            if "(" in s:
                s = _tb_text.RE_SARCASM.sub("(!)", s)
            if _SPACED_EMOTICON.search(s):  # otherwise joining emoticons changes nothing
                s = _tb_text.RE_EMOTICONS.sub(_join_emoticon, s)
            if self.rsquo_fix:
                s = s.replace("&rsquo ;", "\u2019")
            sentences[k] = s
        return " ".join(sentences).lower().split()

    def pieces(self, string: str) -> list[str]:
        """pattern's tokens of `string` before its sentence pass (case kept)."""
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
        return tokens

    def _split(self, t: str, tokens: list[str]) -> None:
        """Split leading and trailing punctuation off one whitespace-delimited chunk."""
        replace_keys = self.replace_keys
        while t and t[0] in _PUNCT_SET and t not in replace_keys:  # every mark is one character
            tokens.append(t[0])
            t = t[1:]
        tail: list[str] = []
        while t and t[-1] in _PUNCT_DOT_SET and t not in replace_keys:
            if t[-1] in _PUNCT_SET:
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
_PUNCT_SET = frozenset(_tb_text.PUNCTUATION.replace(".", ""))
_PUNCT_DOT_SET = _PUNCT_SET | {"."}
_SENTENCE_END = frozenset(("...", ".", "!", "?", _tb_text.EOS))
_FOLLOW_EN = frozenset(("'", '"', "\u201d", "\u2019", "...", ".", "!", "?", ")", _tb_text.EOS))
_FOLLOW_FR = _FOLLOW_EN
_EMOTICON_FORMS = [e for forms in _tb_text.EMOTICONS.values() for e in forms]
# A space inside an emoticon match stands between two characters that follow each other in one emoticon.
_SPACED_EMOTICON = re.compile("|".join(sorted({re.escape(f"{e[k]} {e[k + 1]}")
                                               for e in _EMOTICON_FORMS for k in range(len(e) - 1)})))


def _join_emoticon(m: re.Match[str]) -> str:
    return m.group(1).replace(" ", "") + m.group(2)


def compile_replacements(
    replace: Mapping[str, str],
) -> tuple[tuple[str, re.Pattern[str], str], ...]:
    """Compile pattern's contraction rules, each with a literal that any match must contain."""
    rules = []
    for a, b in replace.items():
        needle = a if re.escape(a) == a else "\u2019"  # the one regex rule is about "’"
        rules.append((needle, re.compile(a), b))
    return tuple(rules)
