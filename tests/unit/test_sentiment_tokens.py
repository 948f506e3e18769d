"""The port of pattern's tokenizer gives pattern's own tokens, sentence pass included."""

from __future__ import annotations

import random

import pytest
import textblob._text as tb_text
import textblob_fr.fr as tb_fr

from carebox import care_lexicon, sentiment

# Pieces chosen for pattern's sentence pass: emoticons it joins back (": )", "x D", "> . >"), its sarcasm
# mark "( ! )", line breaks and its end-of-sentence mark, quotes, contractions, the French "’" fix.
_PIECES = [
    "great", "NOT", "working", "down", "merci", "l\u2019appli", "qu\u2019il", "j'ai", "don't", "it's", "U.S.",
    "Mr.", "etc.", "x", "D", "X", ":", ")", "(", "!", "?", ".", "...", ",", ":)", ": )", ":-)", ": - )", "xD",
    "x D", "< 3", ";)", "; )", ">.>", "> . >", "o.O", "=/", "(!)", "( ! )", "!!!", "\"", "'", "\u201c", "\u201d",
    "\n\n", "\n", "\r\n\r\n", "&rsquo;", "&rsquo ;", "END-OF-SENTENCE", "d'accord", "QU'IL", "c\u2019est", ":'(",
]


def _texts(count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(_PIECES) for _ in range(rng.randint(0, 16))) for _ in range(count)]


def _pattern_tokens(text: str, lang: str) -> list[str]:
    """What pattern's find_tokens (and textblob-fr's, with its "&rsquo ;" fix) gives, lower-cased."""
    if lang == "fr":
        sentences = tb_text.find_tokens(text, abbreviations=tb_fr.ABBREVIATIONS, replace=tb_fr.replacements)
        sentences = [s.replace("&rsquo ;", "\u2019") for s in sentences]
    else:
        sentences = tb_text.find_tokens(text)
    return " ".join(sentences).lower().split()


@pytest.mark.parametrize("lang", ["en", "fr"])
def test_tokens_are_pattern_tokens_on_texts_its_sentence_pass_acts_on(lang: str) -> None:
    tokenizer = sentiment._language(lang).tokenizer
    mismatches = [t for t in _texts(3000, seed=5) if tokenizer.tokens(t) != _pattern_tokens(t, lang)]
    assert mismatches == []


@pytest.mark.parametrize(("text", "token"), [
    ("so happy : ) today", ":)"), ("great x D", "xd"), ("meh : - ( ok", ":-("), ("really ( ! ) nice", "(!)"),
])
def test_spaced_emoticons_and_sarcasm_marks_are_joined_into_one_token(text: str, token: str) -> None:
    assert token in sentiment._EN.tokenizer.tokens(text)


@pytest.mark.parametrize(("tokens", "joined"), [
    ("sick and tired of being on hold", "<sick_and_tired> of being <on_hold>"),
    ("sick of it , sick of", "<sick_of> it , <sick_of>"),
    ("fed fed up still still waiting", "fed <fed_up> still <still_waiting>"),
    ("thank you for nothing", "<thank_you_for_nothing>"),
    ("thank you", "thank you"),
])
def test_care_phrases_become_one_token_longest_first_left_to_right(tokens: str, joined: str) -> None:
    assert care_lexicon.rewrite(tokens.split(), "en") == joined.split()
