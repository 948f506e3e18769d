"""Sentiment: the fast path equals TextBlob, and the care layer fixes what TextBlob gets wrong."""

from __future__ import annotations

import random

import pytest

from carebox import sentiment
from carebox.care_lexicon import care_terms
from carebox.sentiment import SentimentAnalyzer, base_polarity, reference_polarity

ANALYZER = SentimentAnalyzer()

_PUNCT = [",", ".", "!", "?", "...", "(!)", "!!", "?!", ":", ";", "(", ")", '"', "'", "-", "\n\n"]
_EMOTICONS = [":)", ":-)", ":(", ":-(", ":D", "XD", ";)", "<3", ":/", ":'(", ": )", ":P", "o.O", "=/"]
_FILLER = {
    "en": ["the", "a", "is", "it", "I", "this", "my", "was", "and", "to", "of", "Mr.", "U.S.",
           "etc.", "10", "3.5", "it's", "I'm", "we've", "you'll", "x", "D"],
    "fr": ["le", "la", "est", "c'est", "je", "un", "et", "de", "mon", "l'appli", "j'ai",
           "l\u2019eau", "qu\u2019il", "L'avis", "n'est", "M.", "10", "d'accord", "QU'IL"],
}


def _vocabulary(lang: str) -> list[str]:
    """TextBlob lexicon words, negations and modifiers that the care layer does not touch."""
    language = sentiment._FR if lang == "fr" else sentiment._EN
    excluded = care_terms(lang)
    words = sorted(
        w for w in language.table
        if w not in excluded and w.isalpha() and not any(c * 3 in w for c in w)
    )
    rng = random.Random(lang)
    modifiers = [w for w in words if language.table[w][2]]
    negations = sorted(n for n in language.negations if n not in excluded)
    return rng.sample(words, 600) + modifiers[:150] + negations


def _generated_texts(lang: str, count: int, seed: int) -> list[str]:
    """Seeded texts mixing lexicon words, negations, modifiers, punctuation and emoticons."""
    rng = random.Random(seed)
    vocab = _vocabulary(lang)
    texts = []
    for _ in range(count):
        parts = []
        for _ in range(rng.randint(1, 18)):
            roll = rng.random()
            if roll < 0.55:
                word = rng.choice(vocab)
                word = rng.choice([word, word, word.capitalize(), word.upper()])
                if rng.random() < 0.15:
                    word += rng.choice(_PUNCT[:6])
                parts.append(word)
            elif roll < 0.75:
                parts.append(rng.choice(_FILLER[lang]))
            elif roll < 0.92:
                parts.append(rng.choice(_PUNCT))
            else:
                parts.append(rng.choice(_EMOTICONS))
        texts.append(rng.choice([" ", " ", "  ", "\t"]).join(parts))
    return texts


@pytest.mark.parametrize("lang", ["en", "fr"])
def test_fast_path_equals_textblob_on_thousands_of_generated_texts(lang: str) -> None:
    texts = _generated_texts(lang, 2000, seed=2026)
    mismatches = [
        (t, base_polarity(t, lang), reference_polarity(t, lang))
        for t in texts
        if base_polarity(t, lang) != reference_polarity(t, lang)
    ]
    assert mismatches == []


@pytest.mark.parametrize("lang", ["en", "fr"])
def test_care_polarity_equals_textblob_on_texts_without_care_terms(lang: str) -> None:
    texts = _generated_texts(lang, 1000, seed=7)
    mismatches = [t for t in texts if ANALYZER.polarity(t, lang) != reference_polarity(t, lang)]
    assert mismatches == []


def test_generated_texts_are_not_trivially_neutral() -> None:
    texts = _generated_texts("en", 500, seed=1)
    assert sum(reference_polarity(t) != 0 for t in texts) > 300
    assert sum(reference_polarity(t) < 0 for t in texts) > 50


@pytest.mark.parametrize(
    ("text", "lang"),
    [
        ("The app is not working since this morning", "en"),
        ("Still no signal in my area, third day", "en"),
        ("Outage again. Unacceptable.", "en"),
        ("I was overcharged and nobody answers, what a scam", "en"),
        ("doesn't load, ugh", "en"),
        ("Been on hold for 2 hours #fail", "en"),
        ("Toujours pas de réseau depuis ce matin", "fr"),
        ("Plus de connexion internet, c'est inadmissible", "fr"),
        ("Service client injoignable, quelle arnaque", "fr"),
        ("Ma box ne marche plus", "fr"),
        ("Panne de 4G dans tout le quartier \U0001F621", "fr"),
        ("J'attends mon remboursement depuis un mois, honteux", "fr"),
        ("Never again.", "en"),
        ("thanks for nothing", "en"),
        ("Votre appli, c'est pas terrible", "fr"),
        ("merci pour rien", "fr"),
    ],
)
def test_care_complaints_are_negative(text: str, lang: str) -> None:
    assert ANALYZER.polarity(text, lang) < 0


@pytest.mark.parametrize(
    ("text", "lang"),
    [
        ("Thanks for the quick fix!", "en"),
        ("Problem sorted in minutes, kudos to the team \U0001F44D", "en"),
        ("sooooo happy with the new plan", "en"),
        ("Merci pour votre réactivité", "fr"),
        ("Bravo, tout fonctionne à nouveau \U0001F60D", "fr"),
        ("Top le conseiller, merci !", "fr"),
    ],
)
def test_thanks_and_praise_are_positive(text: str, lang: str) -> None:
    assert ANALYZER.polarity(text, lang) > 0


@pytest.mark.parametrize(
    ("word", "lang"),
    [("outage", "en"), ("unacceptable", "en"), ("panne", "fr"), ("injoignable", "fr"),
     ("arnaque", "fr"), ("inadmissible", "fr")],
)
def test_care_words_textblob_misses_are_negative(word: str, lang: str) -> None:
    assert reference_polarity(f"c'est {word}" if lang == "fr" else f"this is {word}", lang) >= 0
    assert ANALYZER.polarity(f"c'est {word}" if lang == "fr" else f"this is {word}", lang) < 0


def test_mentions_and_urls_do_not_change_polarity() -> None:
    plain = ANALYZER.polarity("the app is down again", "en")
    noisy = ANALYZER.polarity("@acme_help the app is down again https://t.co/xYz", "en")
    assert noisy == plain


def test_hashtags_are_split_into_words() -> None:
    assert ANALYZER.polarity("#NotWorking", "en") == ANALYZER.polarity("not working", "en")


def test_negated_praise_turns_negative() -> None:
    assert ANALYZER.polarity("not happy at all", "en") < 0
    assert ANALYZER.polarity("pas content du tout", "fr") < 0


@pytest.mark.parametrize(
    "text",
    ["TERRIBLE!!!!!! worst worst worst awful", "great great great!!! :D :D <3", "", "   ", "?!"],
)
def test_polarity_stays_within_bounds(text: str) -> None:
    assert -1.0 <= ANALYZER.polarity(text, "en") <= 1.0


def test_configured_extra_words_override_the_lexicon() -> None:
    custom = SentimentAnalyzer({"en": {"meh": -0.6}, "fr": {"bof": -0.5}})
    assert ANALYZER.polarity("meh", "en") == 0
    assert custom.polarity("meh", "en") < 0
    assert custom.polarity("bof", "fr") < 0
