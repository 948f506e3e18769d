"""Sentiment: the fast path equals TextBlob, and the care layer fixes what TextBlob gets wrong."""

from __future__ import annotations

import random
from functools import cache

import pytest

from carebox import lexicon_learned_en, lexicon_learned_fr, sentiment
from carebox.care_lexicon import care_terms, learned_key
from carebox.lexicon_vader import lexicon as vader_lexicon
from carebox.sentiment import (
    SentimentAnalyzer,
    base_polarity,
    learned_weight,
    reference_polarity,
)

ANALYZER = SentimentAnalyzer()

_PUNCT = [",", ".", "!", "?", "...", "(!)", "!!", "?!", ":", ";", "(", ")", '"', "'", "-", "\n\n"]
_EMOTICONS = [":)", ":-)", ":(", ":-(", ":D", "XD", ";)", "<3", ":/", ":'(", ": )", ":P", "o.O", "=/"]
_FILLER = {
    "en": ["the", "a", "is", "it", "I", "this", "my", "was", "and", "to", "of", "Mr.", "U.S.",
           "etc.", "10", "3.5", "it's", "I'm", "we've", "you'll", "x", "D"],
    "fr": ["le", "la", "est", "c'est", "je", "un", "et", "de", "mon", "l'appli", "j'ai",
           "l\u2019eau", "qu\u2019il", "L'avis", "n'est", "M.", "10", "d'accord", "QU'IL"],
}


def _learned(word: str, lang: str) -> bool:
    """Whether any token of `word` has a weight in the learned table or a valence in VADER's lexicon."""
    tokens = (sentiment._FR if lang == "fr" else sentiment._EN).tokenizer.tokens(word)
    vader = vader_lexicon(lang)
    return any(learned_weight(t, lang) is not None for t in tokens) or any(
        t in vader.valence for t in vader.tokens(word.lower()))


@cache
def _vocabulary(lang: str, learned_free: bool) -> tuple[str, ...]:
    """TextBlob lexicon words, negations and modifiers the care layer (and learned table) leave alone."""
    language = sentiment._FR if lang == "fr" else sentiment._EN
    excluded = care_terms(lang)
    words = sorted(
        w for w in language.table
        if w not in excluded and w.isalpha() and not any(c * 3 in w for c in w)
        and not (learned_free and _learned(w, lang))
    )
    rng = random.Random(lang)
    modifiers = [w for w in words if language.table[w][2]]
    negations = sorted(
        n for n in language.negations
        if n not in excluded and not (learned_free and _learned(n, lang))
    )
    return tuple(rng.sample(words, 600) + modifiers[:150] + negations)


def _filler(lang: str, learned_free: bool) -> list[str]:
    """The filler words (if asked, those the learned table does not know, alone or joined to
    another: pattern joins "x D" into the emoticon "xD", a learned word)."""
    if not learned_free:
        return list(_FILLER[lang])
    alone = [w for w in _FILLER[lang] if not _learned(w, lang)]
    return [w for w in alone if not any(_learned(f"{w} {v}", lang) for v in alone)]


def _emoticons(lang: str, learned_free: bool) -> list[str]:
    """The emoticons (those the learned table does not know, if asked: "XD" is a word to it)."""
    return [e for e in _EMOTICONS if not (learned_free and _learned(e, lang))]


def _generated_texts(lang: str, count: int, seed: int, *, learned_free: bool = False) -> list[str]:
    """Seeded texts mixing lexicon words, negations, modifiers, punctuation and emoticons."""
    rng = random.Random(seed)
    vocab = _vocabulary(lang, learned_free)
    filler = _filler(lang, learned_free)
    emoticons = _emoticons(lang, learned_free)
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
                parts.append(rng.choice(filler))
            elif roll < 0.92:
                parts.append(rng.choice(_PUNCT))
            else:
                parts.append(rng.choice(emoticons))
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
def test_care_layer_equals_textblob_on_texts_without_care_terms(lang: str) -> None:
    care_only = SentimentAnalyzer(learned=False)
    texts = _generated_texts(lang, 1000, seed=7)
    mismatches = [t for t in texts if care_only.polarity(t, lang) != reference_polarity(t, lang)]
    assert mismatches == []


@pytest.mark.parametrize("lang", ["en", "fr"])
def test_care_polarity_equals_textblob_on_texts_without_care_or_learned_terms(lang: str) -> None:
    texts = _generated_texts(lang, 1000, seed=11, learned_free=True)
    mismatches = [t for t in texts if ANALYZER.polarity(t, lang) != reference_polarity(t, lang)]
    assert mismatches == []


@pytest.mark.parametrize("lang", ["en", "fr"])
def test_generated_texts_with_learned_terms_do_differ_from_textblob(lang: str) -> None:
    texts = _generated_texts(lang, 300, seed=11)
    assert sum(ANALYZER.polarity(t, lang) != reference_polarity(t, lang) for t in texts) > 10


@pytest.mark.parametrize("lang", ["en", "fr"])
def test_texts_without_care_or_learned_terms_keep_most_of_the_vocabulary(lang: str) -> None:
    assert len(_vocabulary(lang, learned_free=True)) > 600
    assert len(_filler(lang, learned_free=True)) >= 4  # French function words are learned
    # VADER's lexicon scores emoticons, so the full analyzer's test keeps only ": )"; the two
    # tests above check every emoticon through the fast path and the care layer.
    assert len(_emoticons(lang, learned_free=False)) >= 10
    assert len(_emoticons(lang, learned_free=True)) >= 1


@pytest.mark.parametrize("lang", ["en", "fr"])
def test_learned_table_changes_polarity_of_texts_that_use_it(lang: str) -> None:
    plain = SentimentAnalyzer(learned=False)
    table = lexicon_learned_fr.WEIGHTS if lang == "fr" else lexicon_learned_en.WEIGHTS
    word = max(table, key=lambda k: abs(table[k]))
    text = f"{word} {word}"
    if lang == "fr":  # a key is a stem: pick a surface form that maps to it
        text = f"{word}es {word}es" if learned_key(word + "es", "fr") == word else text
    assert learned_weight(text.split()[0], lang) == table[word]
    assert ANALYZER.polarity(text, lang) != plain.polarity(text, lang)


@pytest.mark.parametrize("lang", ["en", "fr"])
def test_learned_tables_hold_lower_case_alphabetic_keys_with_bounded_weights(lang: str) -> None:
    module = lexicon_learned_fr if lang == "fr" else lexicon_learned_en
    assert len(module.WEIGHTS) > 300
    assert module.CARE_WEIGHT > 0  # the learned model trusts the care layer's direction
    assert all(k == k.lower() and k.replace("-", "").isalpha() for k in module.WEIGHTS)
    assert all(-5 < v < 5 for v in module.WEIGHTS.values())


@pytest.mark.parametrize("lang", ["en", "fr"])
def test_text_without_any_scored_word_stays_neutral(lang: str) -> None:
    assert ANALYZER.polarity("zxqv 42 qwxz", lang) == 0


@pytest.mark.parametrize(
    ("word", "key"),
    [("écologiques", "ecologiqu"), ("magnifique", "magnifiqu"), ("réchauffement", "rechauff"),
     ("pas", "pas"), ("bravo", "bravo"), ("géniales", "genial")],
)
def test_french_learned_keys_are_unaccented_light_stems(word: str, key: str) -> None:
    assert learned_key(word, "fr") == key
    assert learned_key(word, "en") == word


def test_learned_words_push_polarity_their_way_when_care_layer_is_silent() -> None:
    plain = SentimentAnalyzer(learned=False)
    weights = lexicon_learned_en.WEIGHTS
    neg = min(weights, key=weights.__getitem__)
    pos = max(weights, key=weights.__getitem__)
    assert plain.polarity(f"zxqv {neg}", "en") == 0 or weights[neg] < 0
    assert ANALYZER.polarity(f"zxqv {neg}", "en") < plain.polarity(f"zxqv {neg}", "en")
    assert ANALYZER.polarity(f"zxqv {pos}", "en") > plain.polarity(f"zxqv {pos}", "en")


def test_configured_word_replaces_its_learned_weight() -> None:
    weights = lexicon_learned_en.WEIGHTS
    word = next(w for w in sorted(weights) if weights[w] < -0.5)
    custom = SentimentAnalyzer({"en": {word: 0.5}})
    assert custom.polarity(word, "en") == 0.5


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
    ["TERRIBLE!!!!!! worst worst worst awful", "great great great!!! :D :D <3", "", "   ", "?!",
     " ".join(sorted(lexicon_learned_en.WEIGHTS, key=lexicon_learned_en.WEIGHTS.__getitem__)[:30]),
     " ".join(sorted(lexicon_learned_en.WEIGHTS, key=lexicon_learned_en.WEIGHTS.__getitem__)[-30:])],
)
def test_polarity_stays_within_bounds(text: str) -> None:
    assert -1.0 <= ANALYZER.polarity(text, "en") <= 1.0


def test_configured_extra_words_override_the_lexicon() -> None:
    custom = SentimentAnalyzer({"en": {"meh": -0.6, "zorgle": -0.4}, "fr": {"bof": -0.5}})
    assert ANALYZER.polarity("zorgle", "en") == 0
    assert custom.polarity("zorgle", "en") == -0.4
    assert custom.polarity("meh", "en") == -0.6  # VADER's own valence of "meh" is replaced too
    assert custom.polarity("bof", "fr") == -0.5


@pytest.mark.parametrize(
    "text",
    ["VADER is smart, handsome, and funny!", "The book was only kind of good.", "Not bad at all",
     "At least it isn't a horrible book.", "Today SUX!", "Make sure you :) or :D today!",
     "It was one of the worst movies I've seen, despite good reviews.", "Most tools are VERY bad!!",
     "The plot was good, but the characters are uncompelling and the dialog is not great.",
     "no problem, this is not so terrible", "I am barely happy ???", "never so happy"],
)
def test_vader_port_gives_vader_sentiment_compound_score(text: str) -> None:
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    expected = SentimentIntensityAnalyzer().polarity_scores(text)["compound"]
    assert vader_lexicon("en").compound(text) == pytest.approx(expected, abs=5e-4)


@pytest.mark.parametrize(
    ("text", "sign"),
    [("C'est génial", 1), ("L\u2019accueil était excellent", 1), ("J\u2019adore", 1), ("c'est NUL", -1),
     ("pas génial", -1), ("Je ne suis pas satisfait", -1), ("où est mon colis", 0)],
)
def test_french_vader_folds_accents_and_elisions_and_negates(text: str, sign: int) -> None:
    score = vader_lexicon("fr").compound(text)
    assert (score > 0) - (score < 0) == sign


@pytest.mark.parametrize(
    ("text", "lang"),
    [("still no solution", "en"), ("that is not a solution", "en"), ("aucune solution proposée", "fr"),
     ("ce n'est pas une solution", "fr"), ("Je n'ai jamais eu de réponse", "fr"),
     ("pas eu de retour depuis lundi", "fr"), ("Toujours aucune nouvelle de ma commande", "fr")],
)
def test_no_solution_and_no_answer_are_negative(text: str, lang: str) -> None:
    assert ANALYZER.polarity(text, lang) < 0


def test_no_solution_is_a_complaint_not_a_service_failure() -> None:
    assert not ANALYZER.analyse("still no solution", "en").failure
    assert ANALYZER.analyse("pas eu de réponse", "fr").failure


@pytest.mark.parametrize(
    ("text", "lang"),
    [("où est mon colis", "fr"), ("Commande passée il y a une semaine", "fr"), ("where is my parcel", "en")],
)
def test_neutral_care_questions_stay_near_zero(text: str, lang: str) -> None:
    assert abs(ANALYZER.polarity(text, lang)) < 0.2
