"""Triage of one customer message: language, polarity, category (with outage cluster key), priority."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import NamedTuple

from py3langid.langid import MODEL_FILE, LanguageIdentifier

from carebox import lexicon_triage as lex
from carebox.errors import ConfigError
from carebox.ports import Category, Priority
from carebox.sentiment import LANGS as SENTIMENT_LANGS
from carebox.sentiment import SentimentAnalyzer
from carebox.triage_settings import TriageSettings, parse_settings

__all__ = ["Triage", "TriageInput", "TriageSettings", "Triager", "parse_settings"]


@dataclass(frozen=True, slots=True)
class Triage:
    """What triage decided about one message, with a short human reason."""

    language: str
    polarity: float
    category: Category
    cluster_key: str | None
    priority: Priority
    reason: str


@dataclass(frozen=True, slots=True)
class TriageInput:
    """One message to triage in batch form (picklable, for a process pool)."""

    text: str
    followers: int | None = None
    verified: bool = False
    public: bool = True
    reposts: int = 0
    recent_contacts: int = 0
    lang_hint: str | None = None


class _Reach(NamedTuple):
    """What raises a message's priority besides its words (a tuple: built once per message triaged)."""

    followers: int | None
    verified: bool
    public: bool
    reposts: int
    recent_contacts: int


@lru_cache(maxsize=8)
def _identifier(languages: tuple[str, ...]) -> LanguageIdentifier:
    """py3langid restricted to `languages` (the model ships with the package; loaded once)."""
    ident = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=False)
    try:
        ident.set_languages(list(languages))
    except ValueError as err:
        raise ConfigError("triage.languages", f"codes py3langid knows ({err})") from err
    return ident


_ACTIONABLE = frozenset((Category.OUTAGE, Category.COMPLAINT, Category.QUESTION))
# Broad keys that yield to a more specific one in the same message ("réseau 4G" -> 4g).
_GENERIC_SERVICES = frozenset(("network", "internet", "calls"))
_STRIP = ".,;:!?()[]{}\"'`*#@&~|<>«»“”‘’-"


@lru_cache(maxsize=256)
def _hint_code(hint: str) -> str:
    """The language code of a hint such as "fr", "en-GB" or "pt_BR"."""
    return hint.lower().split("-")[0].split("_")[0]


def _first(tokens: Sequence[str], words: frozenset[str]) -> str | None:
    """The first token found in `words` (a set test first: most messages have none)."""
    if words.isdisjoint(tokens):
        return None
    return next(t for t in tokens if t in words)


class Triager:
    """Triage messages with the given settings (defaults when None)."""

    def __init__(self, settings: TriageSettings | None = None) -> None:
        self.settings = settings or TriageSettings()
        self._sentiment = SentimentAnalyzer(self.settings.lexicon, learned=self.settings.learned_table)
        self._langid = _identifier(self.settings.languages)
        self._en_fr = set(self.settings.languages) == {"en", "fr"}
        self._services = {**lex.SERVICES, **self.settings.services}
        self._bigram_firsts = frozenset(k.split()[0] for k in self._services if " " in k)
        self._service_words = frozenset(k for k in self._services if " " not in k) | self._bigram_firsts
        self._urgency = lex.URGENCY | self.settings.urgency_words
        self._spam = lex.SPAM_PHRASES + self.settings.spam_phrases
        firsts = [p.split()[0] for p in self._spam if p.split()]
        # A phrase is looked for only when its first word is a token; odd first words disable that.
        self._spam_firsts = frozenset(firsts) if all(re.fullmatch(r"[\w-]+", w) for w in firsts) else None
        # per-message lookups worked out once (an enum's .value is a property call)
        s = self.settings
        self._category_signal = {c: (s.category_points.get(c.value, 0), c.value) for c in Category}
        self._floors = ((Priority.P1, s.p1), (Priority.P2, s.p2), (Priority.P3, s.p3))

    def triage_many(self, items: Sequence[TriageInput]) -> list[Triage]:
        """Triage a batch; same results as calling triage() on each item."""
        return [
            self.triage(
                i.text, followers=i.followers, verified=i.verified, public=i.public,
                reposts=i.reposts, recent_contacts=i.recent_contacts, lang_hint=i.lang_hint,
            )
            for i in items
        ]

    def triage(
        self,
        text: str,
        *,
        followers: int | None = None,
        verified: bool = False,
        public: bool = True,
        reposts: int = 0,
        recent_contacts: int = 0,
        lang_hint: str | None = None,
    ) -> Triage:
        """Triage one message: language, polarity, category and cluster key, priority and why."""
        lang = self.language(text, lang_hint)
        if lang in SENTIMENT_LANGS:
            scored = self._sentiment.analyse(text, lang)
            polarity, tokens, failure = scored.polarity, scored.tokens, scored.failure
        else:  # no lexicon for this language: neutral, tokens still give categories a chance
            polarity, tokens, failure = 0.0, tuple(text.lower().split()), False
        category, cluster_key, why = self._categorise(text, tokens, polarity, failure)
        if category in (Category.PRAISE, Category.OTHER) and not self._urgency.isdisjoint(tokens):
            category, why = Category.QUESTION, "question: urgent request"
        reach = _Reach(followers, verified, public, reposts, recent_contacts)
        priority, how = self._prioritise(category, polarity, tokens, reach)
        return Triage(lang, round(polarity, 4), category, cluster_key, priority, f"{why}; {how}")

    def language(self, text: str, hint: str | None = None) -> str:
        """The message's language among the configured ones (hint first, then rules, then py3langid)."""
        languages = self.settings.languages
        if hint:
            code = _hint_code(hint)
            if code in languages:
                return code
        words = {w.strip(_STRIP) for w in text.lower().split()}
        words.discard("")
        if not words:
            return self.settings.default_language
        if self._en_fr:
            voted = lex.vote_en_fr(text, words)
            if voted:
                return voted
        lang, _score = self._langid.classify(text)
        return str(lang)

    def _categorise(
        self, text: str, tokens: Sequence[str], polarity: float, failure: bool
    ) -> tuple[Category, str | None, str]:
        lowered = text.lower()
        if self._spam_firsts is None or not self._spam_firsts.isdisjoint(tokens):
            for phrase in self._spam:
                if phrase in lowered:
                    return Category.SPAM, None, f'spam: "{phrase}"'
        if lowered.count("http") + lowered.count("www.") >= 3:
            return Category.SPAM, None, "spam: several links"
        service = self._service(tokens)
        outage_word = _first(tokens, lex.OUTAGE_WORDS)
        if service and (failure or outage_word):
            cue = "not working" if failure else outage_word
            return Category.OUTAGE, service, f'outage: {service} {cue}'
        if outage_word in lex.OUTAGE_NOUNS:
            return Category.OUTAGE, None, f'outage: "{outage_word}", no service named'
        s = self.settings
        if polarity <= s.negative or failure:
            return Category.COMPLAINT, None, f"complaint: negative tone ({polarity:+.2f})"
        if "?" in text or (tokens and tokens[0] in lex.QUESTION_STARTS) or not lex.QUESTION_WORDS.isdisjoint(tokens):
            return Category.QUESTION, None, "question: asks something"
        if polarity >= s.praise or (polarity > 0 and not lex.THANKS.isdisjoint(tokens)):
            return Category.PRAISE, None, f"praise: positive tone ({polarity:+.2f})"
        if polarity < 0:
            return Category.COMPLAINT, None, f"complaint: slightly negative ({polarity:+.2f})"
        return Category.OTHER, None, "other: no care signal"

    def _service(self, tokens: Sequence[str]) -> str | None:
        services = self._services
        firsts = self._bigram_firsts
        if self._service_words.isdisjoint(tokens):
            return None
        generic = None
        for k, t in enumerate(tokens):
            key = services.get(t)
            if t in firsts:
                key = services.get(" ".join(tokens[k : k + 3])) or services.get(
                    " ".join(tokens[k : k + 2])
                ) or key
            if key in _GENERIC_SERVICES:
                generic = generic or key
            elif key:
                return key
        return generic

    def _prioritise(
        self, category: Category, polarity: float, tokens: Sequence[str], reach: _Reach
    ) -> tuple[Priority, str]:
        if category is Category.SPAM:
            return Priority.P4, "P4: spam"
        signals = [self._category_signal[category], *self._signals(category, polarity, tokens, reach)]
        parts = [f"{label} +{value}" for value, label in signals if value]
        points = sum(value for value, _ in signals)
        priority = next((p for p, floor in self._floors if points >= floor), Priority.P4)
        return priority, f"{priority}: " + (", ".join(parts) or "no signal") + f" = {points}"

    def _signals(
        self, category: Category, polarity: float, tokens: Sequence[str], r: _Reach
    ) -> list[tuple[int, str]]:
        """The (points, label) pairs that raise a message's priority besides its category."""
        s = self.settings
        out: list[tuple[int, str]] = []
        if polarity <= s.very_negative:
            out.append((s.very_negative_points, "very negative"))
        elif polarity <= s.negative:
            out.append((s.negative_points, "negative"))
        urgent = _first(tokens, self._urgency)
        if urgent:
            out.append((s.urgent_points, f'urgent "{urgent}"'))
        if category in _ACTIONABLE:  # reach makes a problem urgent, not a thank-you
            if r.followers is not None and r.followers >= s.followers_very_high:
                out.append((s.followers_very_high_points, f"{r.followers} followers"))
            elif r.followers is not None and r.followers >= s.followers_high:
                out.append((s.followers_points, f"{r.followers} followers"))
            if r.verified:
                out.append((s.verified_points, "verified"))
            if r.reposts >= s.reposts_high:
                out.append((s.reposts_points, f"{r.reposts} reposts"))
        if r.public and polarity <= s.negative:
            out.append((s.public_negative_points, "public"))
        if r.recent_contacts >= s.many_contacts:
            out.append((s.many_contacts_points, f"{r.recent_contacts} recent contacts"))
        elif r.recent_contacts >= s.repeat_contacts > 0:
            out.append((s.repeat_points, "repeat contact"))
        return out

    def with_contacts(self, first: Triage, recent_contacts: int) -> Triage:
        """The triage of a message from a customer with `recent_contacts`, given its first-contact triage."""
        # Why: the pipeline triages in a process pool before its write transaction, where the customer's
        # recent contacts are not known yet; this adds their points exactly as _signals would have.
        s = self.settings
        if first.category is Category.SPAM:
            return first
        if recent_contacts >= s.many_contacts:
            value, label = s.many_contacts_points, f"{recent_contacts} recent contacts"
        elif recent_contacts >= s.repeat_contacts > 0:
            value, label = s.repeat_points, "repeat contact"
        else:
            return first
        if not value:
            return first
        why, how = first.reason.rsplit("; ", 1)
        body, points_text = how.split(": ", 1)[1].rsplit(" = ", 1)
        parts = [] if body == "no signal" else [body]
        parts.append(f"{label} +{value}")
        points = int(points_text) + value
        priority = next(
            (p for p, floor in ((Priority.P1, s.p1), (Priority.P2, s.p2), (Priority.P3, s.p3)) if points >= floor),
            Priority.P4,
        )
        reason = f"{why}; {priority.value}: {', '.join(parts)} = {points}"
        return Triage(first.language, first.polarity, first.category, first.cluster_key, priority, reason)
