"""The customer-care layer over TextBlob's lexicons: care words, emoji, failure phrases, text clean-up.

Word lists are general care and social-media vocabulary chosen by hand (service failure, waiting,
money, cancellation, contact failure, thanks), never copied from evaluation texts.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping

from carebox.lexicon_care import (
    EN_INTENSIFIERS,
    EN_NEUTRAL,
    EN_PHRASES,
    EN_WORDS,
    FR_INTENSIFIERS,
    FR_NEUTRAL,
    FR_PHRASES,
    FR_WORDS,
)
from carebox.lexicon_emoji import EMOJI


def _words(text: str) -> frozenset[str]:
    """A word set written as one space-separated string."""
    return frozenset(text.split())


# Synthetic token standing for "a service failed" ("not working", "pas de réseau", ...).
FAIL = "<fail>"
FAIL_POLARITY = -0.6
CANT_WAIT = "<cant_wait>"  # "can't wait", "cannot wait": eager, not a failure (in EN_WORDS)


def phrase_token(phrase: tuple[str, ...]) -> str:
    """The synthetic token a care phrase is rewritten to."""
    return "<" + "_".join(phrase) + ">"


def _phrase_index(phrases: Mapping[tuple[str, ...], float]) -> dict[str, list[tuple[str, ...]]]:
    index: dict[str, list[tuple[str, ...]]] = {}
    for phrase in sorted(phrases, key=len, reverse=True):  # longest first
        index.setdefault(phrase[0], []).append(phrase)
    return index


# "not working", "n'a pas de réseau": a negation next to one of these means a service failed.
EN_FAIL_VERBS = _words(
    "work working works worked function functioning load loading loads connect connecting "
    "connects respond responding responded answer answering answered reply replied replying "
    "open opening opens charge charging send sending sent receive received arrive arrived "
    "deliver delivered show showing showed help helped helping fix fixed resolve resolved "
    "refund refunded call called return returned get getting got log login sync syncing start "
    "starting stream streaming update updating heard hear letting let allow allowing accept "
    "accepting accepted recognize recognise pay paying purchase download downloading play "
    "playing boot booting turn ring ringing dial find track access see reach contact"
)
EN_NEGATORS = frozenset(("not", "never", "no", "cannot", "cant", "nt", "won't", "unable", "without"))
EN_SERVICE_NOUNS = _words(
    "signal service internet wifi wi-fi network connection coverage power electricity "
    "response reply answer help refund phone line data 4g 5g 3g lte broadband reception "
    "update news dial tone water heating gas delivery"
)
FR_FAIL_VERBS = _words(
    "marche marchent fonctionne fonctionnent répond répondent repond capte captent charge "
    "chargent connecte fonctionnait marchait répondait reçu recu livré livre arrivé arrive "
    "remboursé rappelé réglé résolu passe passent connecter accéder acceder payer appeler "
    "joindre télécharger telecharger ouvrir envoyer recevoir activer reçois recois accepte "
    "acceptée autorise télécharge lance démarre allume"
)
FR_NEGATORS = frozenset(
    ("pas", "plus", "jamais", "aucun", "aucune", "sans", "zéro", "zero", "impossible")
)
FR_SERVICE_NOUNS = _words(
    "réseau reseau connexion internet wifi wi-fi 4g 5g 3g signal service courant électricité "
    "electricite réponse reponse nouvelle nouvelles retour remboursement livraison colis tonalité "
    "ligne box fibre adsl données data eau chauffage gaz appel appels"
)

_EN_CONTRACTED = frozenset(
    ("dont", "doesnt", "didnt", "isnt", "wasnt", "arent", "wont", "cant", "aint", "couldnt")
)
_EN_PHRASE_INDEX = _phrase_index(EN_PHRASES)
_FR_PHRASE_INDEX = _phrase_index(FR_PHRASES)
_NT_STEMS = {"ca": "can", "wo": "will", "sha": "shall"}
_APOSTROPHES = ("'", "\u2019")
_APOSTROPHES_SET = frozenset(_APOSTROPHES)
_MENTION = re.compile(r"(?<!\w)@\w+")
_URL = re.compile(r"https?://\S*|\bwww\.\S+")
_HASHTAG = re.compile(r"#(\w+)")
_CAMEL = re.compile(r"(?<=[a-z])(?=[A-Z])")
_ELONGATED = re.compile(r"([^\W\d_])\1{2,}")
_ELONGATED_WORD = re.compile(r"\w*([^\W\d_])\1{2,}\w*")
_EMOJI = re.compile("[\U0001F300-\U0001FAFF\u2600-\u27BF]\ufe0f?")
# Cheap pre-checks (simple patterns scan fast); the exact patterns run only when they hit.
_MAYBE_ELONGATED = re.compile(r"(.)\1\1")
_MAYBE_GLUED = re.compile(r"[.,!?;][^\W\d_]")
# "down.Again", "Yes,I": punctuation glued between words hides both words from the lexicon.
_GLUED = re.compile(r"(?<=[^\W\d_]{2})([.,!?;]+)(?=[^\W\d_])")


def care_terms(lang: str) -> frozenset[str]:
    """Every lower-cased token the care layer reacts to in `lang` (elsewhere TextBlob rules)."""
    words: tuple[Iterable[str], ...]
    if lang == "fr":
        words = (FR_WORDS, FR_INTENSIFIERS, FR_NEUTRAL, FR_FAIL_VERBS, FR_SERVICE_NOUNS)
    else:
        words = (EN_WORDS, EN_INTENSIFIERS, EN_NEUTRAL, EN_FAIL_VERBS, EN_SERVICE_NOUNS,
                 _EN_CONTRACTED, ("n", "n't", "cannot", "nt"))
    phrases = FR_PHRASES if lang == "fr" else EN_PHRASES
    words += ([p[-1] for p in phrases],)  # a phrase needs its last word: keep that one out
    terms = {w for group in words for w in group} | set(EMOJI)
    return frozenset(terms | {fold(w) for w in terms})


def fold(word: str) -> str:
    """Strip French accents ("déçu" -> "decu"), as textblob-fr does for its own lexicon."""
    return "".join(
        c for c in unicodedata.normalize("NFD", word) if unicodedata.category(c) != "Mn"
    )


_FOLD = str.maketrans({
    "à": "a", "â": "a", "ä": "a", "á": "a", "ã": "a", "å": "a", "ç": "c", "é": "e", "è": "e",
    "ê": "e", "ë": "e", "í": "i", "ì": "i", "î": "i", "ï": "i", "ñ": "n", "ó": "o", "ò": "o",
    "ô": "o", "ö": "o", "õ": "o", "ú": "u", "ù": "u", "û": "u", "ü": "u", "ý": "y", "ÿ": "y",
    "œ": "oe", "æ": "ae",
})
# Longest first; a stem keeps at least 4 letters, so short words are left whole.
_FR_SUFFIXES = ("ements", "ement", "ations", "ation", "euses", "euse", "eux", "ees", "ee", "es",
                "s", "x", "e")


def learned_key(word: str, lang: str) -> str:
    """The key a word is looked up under in the learned table (French: unaccented light stem)."""
    if lang != "fr":
        return word
    word = word.translate(_FOLD)
    for suffix in _FR_SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 4:
            return word[: -len(suffix)]
    return word


def merged_table(
    base: Mapping[str, tuple[float, float, bool]], lang: str, extra: Mapping[str, float]
) -> dict[str, tuple[float, float, bool]]:
    """TextBlob's table overlaid with the care words, intensifiers, emoji and configured extras."""
    neutral = EN_NEUTRAL if lang == "en" else FR_NEUTRAL
    table = {w: e for w, e in base.items() if w not in neutral}
    words = EN_WORDS if lang == "en" else FR_WORDS
    intensifiers = EN_INTENSIFIERS if lang == "en" else FR_INTENSIFIERS
    for source in (words, EMOJI, extra):
        for word, p in source.items():
            table[word] = (p, 1.0, False)
            if lang == "fr":
                table.setdefault(fold(word), (p, 1.0, False))
    for word, i in intensifiers.items():
        table[word] = (0.0, i, True)
    table[FAIL] = (FAIL_POLARITY, 1.0, False)
    for phrase, p in (FR_PHRASES if lang == "fr" else EN_PHRASES).items():
        table[phrase_token(phrase)] = (p, 1.0, False)
    return table


def _unelongate(m: re.Match[str]) -> str:
    word = m.group(0)
    return _ELONGATED.sub(r"\1\1", word) if len(word) > 4 else word


def normalise(text: str, lang: str) -> str:
    """Remove @-mentions and URLs, split hashtags, shorten elongations, space out emoji."""
    if "@" in text:
        text = _MENTION.sub(" ", text)
    if "http" in text or "www." in text:
        text = _URL.sub(" ", text)
    if "#" in text:
        text = _HASHTAG.sub(lambda m: " " + _CAMEL.sub(" ", m.group(1)) + " ", text)
    if _MAYBE_GLUED.search(text):
        text = _GLUED.sub(r"\1 ", text)
    if _MAYBE_ELONGATED.search(text) and _ELONGATED.search(text):
        text = _ELONGATED_WORD.sub(_unelongate, text)
    if _EMOJI.search(text):
        text = _EMOJI.sub(lambda m: " " + m.group(0).rstrip("\ufe0f") + " ", text)
    return text


def rewrite(tokens: list[str], lang: str) -> list[str]:
    """Rewrite care phrases into lexicon tokens: contractions, failures, elongated words."""
    return _rewrite_fr(tokens) if lang == "fr" else _rewrite_en(tokens)


def _rewrite_en(tokens: list[str]) -> list[str]:
    # the loop below changes only a contraction, "wait", or "n ' t" (so a "t" after an apostrophe)
    if _EN_CONTRACTED.isdisjoint(tokens) and "wait" not in tokens and (
        "t" not in tokens or _APOSTROPHES_SET.isdisjoint(tokens)
    ):
        tokens = _join_phrases(tokens, _EN_PHRASE_INDEX)
        return _mark_failures(tokens, EN_NEGATORS, EN_FAIL_VERBS, EN_SERVICE_NOUNS, english=True)
    out: list[str] = []
    k = 0
    size = len(tokens)
    while k < size:
        w = tokens[k]
        # pattern splits "don't" into "do n ' t" and "don’t" into "don ’ t": restore "not"
        if k + 2 < size and tokens[k + 1] in _APOSTROPHES and tokens[k + 2] == "t" and w.endswith("n"):
            stem = w[:-1] or (out.pop() if out else "")
            if stem:
                out.append(_NT_STEMS.get(stem, stem))
            out.append("not")
            k += 3
        elif w in _EN_CONTRACTED:
            out.append("not")
            k += 1
        else:
            out.append(w)
            k += 1
        if k < size and tokens[k] == "wait" and out[-1] in ("not", "cannot") and (
            out[-1] == "cannot" or out[-2:-1] == ["can"] or w == "cant"
        ):  # "can't wait" is eagerness, not a failure
            del out[-2 if out[-2:-1] == ["can"] else -1 :]
            out.append(CANT_WAIT)
            k += 1
    out = _join_phrases(out, _EN_PHRASE_INDEX)
    return _mark_failures(out, EN_NEGATORS, EN_FAIL_VERBS, EN_SERVICE_NOUNS, english=True)


def _rewrite_fr(tokens: list[str]) -> list[str]:
    tokens = _join_phrases(tokens, _FR_PHRASE_INDEX)
    return _mark_failures(tokens, FR_NEGATORS, FR_FAIL_VERBS, FR_SERVICE_NOUNS, english=False)


def _join_phrases(tokens: list[str], index: Mapping[str, list[tuple[str, ...]]]) -> list[str]:
    """Replace each care phrase by its synthetic token (longest match first)."""
    if index.keys().isdisjoint(tokens):
        return tokens
    out: list[str] = []
    done = 0  # tokens before this index are in `out`
    for k in [k for k, t in enumerate(tokens) if t in index]:  # only where a phrase can start
        if k < done:
            continue
        for phrase in index[tokens[k]]:
            end = k + len(phrase)
            if tuple(tokens[k:end]) == phrase:
                out += tokens[done:k]
                out.append(phrase_token(phrase))
                done = end
                break
    out += tokens[done:]
    return out


_EN_GAP = frozenset(
    ("be", "been", "even", "yet", "still", "really", "always", "ever", "to", "a", "any", "seem", "seems")
)
_FR_GAP = frozenset(
    ("de", "d", "'", "du", "des", "toujours", "encore", "vraiment", "la", "le", "même", "me", "m",
     "se", "s", "te", "t", "nous", "vous", "y", "un", "une", "eu")
)


def _mark_failures(
    tokens: list[str],
    negators: frozenset[str],
    verbs: frozenset[str],
    nouns: frozenset[str],
    *,
    english: bool,
) -> list[str]:
    """Replace "negation (+ small words) + service verb/noun" and its mirror with FAIL."""
    if negators.isdisjoint(tokens) and (english or verbs.isdisjoint(tokens)):
        return tokens
    gap = _EN_GAP if english else _FR_GAP
    out: list[str] = []
    k = 0
    size = len(tokens)
    while k < size:
        w = tokens[k]
        if w in negators:
            j = k + 1
            while j < size and j - k <= 3 and tokens[j] in gap:
                j += 1
            if j < size and (tokens[j] in verbs or tokens[j] in nouns):
                out.append(FAIL)
                k = j + 1
                continue
        elif not english and w in verbs and k + 1 < size:
            j = k + 1
            while j < size and j - k <= 2 and tokens[j] in gap:
                j += 1
            if j < size and tokens[j] in negators:  # "marche pas", "fonctionne toujours pas"
                if out and out[-1] in ("ne", "n"):
                    out.pop()
                out.append(FAIL)
                k = j + 1
                continue
        out.append(w)
        k += 1
    return out
