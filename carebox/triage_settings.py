"""The [triage] settings: languages, priority points and thresholds, word-list additions, parsed from TOML."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from carebox.errors import ConfigError
from carebox.sentiment import LANGS as SENTIMENT_LANGS

_CATEGORY_DEFAULTS = {"outage": 4, "complaint": 3, "question": 3, "praise": 0, "other": 1}


@dataclass(frozen=True, slots=True)
class TriageSettings:
    """The [triage] table: languages, priority points and thresholds, word-list additions."""

    languages: tuple[str, ...] = ("en", "fr")
    default_language: str = "en"
    p1: int = 7
    p2: int = 5
    p3: int = 3
    category_points: Mapping[str, int] = field(default_factory=lambda: dict(_CATEGORY_DEFAULTS))
    negative: float = -0.2
    very_negative: float = -0.5
    negative_points: int = 1
    very_negative_points: int = 2
    praise: float = 0.3
    urgent_points: int = 2
    followers_high: int = 10_000
    followers_very_high: int = 100_000
    followers_points: int = 1
    followers_very_high_points: int = 2
    verified_points: int = 1
    reposts_high: int = 20
    reposts_points: int = 1
    public_negative_points: int = 1
    repeat_contacts: int = 1
    repeat_points: int = 1
    many_contacts: int = 3
    many_contacts_points: int = 2
    urgency_words: frozenset[str] = frozenset()
    spam_phrases: tuple[str, ...] = ()
    services: Mapping[str, str] = field(default_factory=dict)
    lexicon: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    learned_table: bool = True  # add the learned word weights (carebox/lexicon_learned_*.py) to polarity


def _get(raw: Mapping[str, Any], key: str, kind: type, default: Any, expected: str) -> Any:
    value = raw.get(key, default)
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise ConfigError(f"triage.{key}", expected)
    return value


def _table(raw: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = raw.get(key, {})
    if not isinstance(value, Mapping):
        raise ConfigError(f"triage.{key}", "a table")
    return value


def _int(raw: Mapping[str, Any], section: str, key: str, default: int) -> int:
    value = _table(raw, section).get(key, default) if section else raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"triage.{section}.{key}", "a non-negative integer")
    return value


def _float(raw: Mapping[str, Any], section: str, key: str, default: float) -> float:
    value = _table(raw, section).get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not -1 <= value <= 1:
        raise ConfigError(f"triage.{section}.{key}", "a number between -1 and 1")
    return float(value)


def _words(raw: Mapping[str, Any], key: str) -> list[str]:
    value = _table(raw, "words").get(key, [])
    if not isinstance(value, list) or not all(isinstance(w, str) and w.strip() for w in value):
        raise ConfigError(f"triage.words.{key}", "a list of non-empty strings")
    return [w.strip().lower() for w in value]


def _languages(raw: Mapping[str, Any]) -> tuple[tuple[str, ...], str]:
    langs = raw.get("languages", ["en", "fr"])
    if (
        not isinstance(langs, list)
        or not langs
        or not all(isinstance(x, str) and re.fullmatch(r"[a-z]{2,3}", x) for x in langs)
    ):
        raise ConfigError("triage.languages", 'a non-empty list of ISO 639-1 codes, e.g. ["en", "fr"]')
    default = raw.get("default_language", langs[0])
    if default not in langs:
        raise ConfigError("triage.default_language", f"one of {', '.join(langs)}")
    return tuple(langs), default


def _services(raw: Mapping[str, Any]) -> dict[str, str]:
    services = _table(_table(raw, "words"), "services") if "words" in raw else {}
    if not all(isinstance(k, str) and isinstance(v, str) and v for k, v in services.items()):
        raise ConfigError("triage.words.services", 'a table of term = "cluster key" strings')
    return {k.lower(): v.lower() for k, v in services.items()}


def _lexicon(raw: Mapping[str, Any]) -> dict[str, dict[str, float]]:
    lexicon = _table(raw, "lexicon")
    out: dict[str, dict[str, float]] = {}
    for lang, words in lexicon.items():
        if lang not in SENTIMENT_LANGS or not isinstance(words, Mapping):
            raise ConfigError(f"triage.lexicon.{lang}", f"a table for one of {', '.join(SENTIMENT_LANGS)}")
        for word, p in words.items():
            if isinstance(p, bool) or not isinstance(p, (int, float)) or not -1 <= p <= 1:
                raise ConfigError(f"triage.lexicon.{lang}.{word}", "a polarity between -1 and 1")
        if words:
            out[lang] = {w.lower(): float(p) for w, p in words.items()}
    return out


def parse_settings(raw: Mapping[str, Any]) -> TriageSettings:
    """Build TriageSettings from the loaded [triage] table; {} gives the defaults."""
    languages, default_language = _languages(raw)
    points = _table(raw, "points")
    for key in points:
        if key not in _CATEGORY_DEFAULTS and key not in _POINT_KEYS:
            raise ConfigError(f"triage.points.{key}", "a known point name: " + ", ".join(
                [*_CATEGORY_DEFAULTS, *_POINT_KEYS]))
    d = TriageSettings()
    p1, p2, p3 = (_int(raw, "priority", k, getattr(d, k)) for k in ("p1", "p2", "p3"))
    if not p1 >= p2 >= p3:
        raise ConfigError("triage.priority", "thresholds with p1 >= p2 >= p3")
    kwargs = {k: _int(raw, "points", k, getattr(d, attr)) for k, attr in _POINT_KEYS.items()}
    return TriageSettings(
        languages=languages,
        default_language=default_language,
        p1=p1,
        p2=p2,
        p3=p3,
        category_points={k: _int(raw, "points", k, v) for k, v in _CATEGORY_DEFAULTS.items()},
        negative=_float(raw, "sentiment", "negative", d.negative),
        very_negative=_float(raw, "sentiment", "very_negative", d.very_negative),
        praise=_float(raw, "sentiment", "praise", d.praise),
        followers_high=_int(raw, "reach", "followers_high", d.followers_high),
        followers_very_high=_int(raw, "reach", "followers_very_high", d.followers_very_high),
        reposts_high=_int(raw, "reach", "reposts_high", d.reposts_high),
        repeat_contacts=_int(raw, "reach", "repeat_contacts", d.repeat_contacts),
        many_contacts=_int(raw, "reach", "many_contacts", d.many_contacts),
        urgency_words=frozenset(_words(raw, "urgency")),
        spam_phrases=tuple(_words(raw, "spam")),
        services=_services(raw),
        lexicon=_lexicon(raw),
        learned_table=_get(raw, "learned_table", bool, d.learned_table, "true or false"),
        **{_POINT_KEYS[k]: v for k, v in kwargs.items()},
    )


# [triage.points] names -> TriageSettings attributes (besides the category names).
_POINT_KEYS = {
    "negative": "negative_points",
    "very_negative": "very_negative_points",
    "urgent": "urgent_points",
    "followers": "followers_points",
    "followers_very_high": "followers_very_high_points",
    "verified": "verified_points",
    "reposts": "reposts_points",
    "public_negative": "public_negative_points",
    "repeat": "repeat_points",
    "many_contacts": "many_contacts_points",
}
