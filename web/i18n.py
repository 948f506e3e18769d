"""French and English: the request's language and time zone, gettext for Jinja2, localized dates."""

from __future__ import annotations

import contextvars
import json
import logging
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from carebox.duration import format_duration

log = logging.getLogger(__name__)
LANGUAGES = ("en", "fr")
CATALOGS: dict[str, dict[str, str]] = {
    lang: json.loads((Path(__file__).parent / "translations" / f"{lang}.json").read_text(encoding="utf-8"))
    for lang in LANGUAGES if (Path(__file__).parent / "translations" / f"{lang}.json").exists()
}
_DAYS = {"en": ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"], "fr": ["lun.", "mar.", "mer.", "jeu.", "ven.", "sam.", "dim."]}
_MONTHS = {"en": ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"],
           "fr": ["janv.", "févr.", "mars", "avr.", "mai", "juin", "juil.", "août", "sept.", "oct.", "nov.", "déc."]}


@dataclass(frozen=True, slots=True)
class Locale:
    """The language and time zone a page is rendered in."""

    language: str = "en"
    timezone: str = "Europe/Paris"

    def zone(self) -> ZoneInfo:
        """The time zone, UTC when the name is unknown."""
        try:
            return ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            return ZoneInfo("UTC")


CURRENT: contextvars.ContextVar[Locale] = contextvars.ContextVar("carebox_locale", default=Locale())  # noqa: B039 - frozen


def negotiate(accept_language: str | None) -> str:
    """The best of LANGUAGES for an Accept-Language header; English by default."""
    best, best_q = "en", -1.0
    for part in (accept_language or "").split(","):
        tag, _, params = part.strip().partition(";")
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                q = 0.0
        lang = tag.strip().lower()[:2]
        if lang in LANGUAGES and q > best_q:
            best, best_q = lang, q
    return best


def choose(user_language: str | None, accept_language: str | None) -> str:
    """The user's choice when they made one, else the browser's."""
    return user_language if user_language in LANGUAGES else negotiate(accept_language)


def gettext(message: str) -> str:
    """`message` in the current language."""
    return CATALOGS.get(CURRENT.get().language, {}).get(message, message)


def ngettext(singular: str, plural: str, n: int) -> str:
    """Singular or plural form of `message` in the current language."""
    return gettext(singular if n == 1 else plural)


def local(value: datetime | None, fmt: str = "short") -> str:
    """An instant in the user's zone: "short" (Fri 20 Nov 18:50), "long" (with the year), "day" or "iso"."""
    if value is None:
        return ""
    loc = CURRENT.get()
    at = value.astimezone(loc.zone())
    day, month = _DAYS[loc.language][at.weekday()], _MONTHS[loc.language][at.month - 1]
    if fmt == "iso":
        return at.isoformat(timespec="minutes")
    if fmt == "day":
        return f"{at.day} {month} {at.year}"
    text = f"{day} {at.day} {month}"
    if fmt == "long":
        text += f" {at.year}"
    return f"{text} {at:%H:%M}"


def duration(seconds: float | None) -> str:
    """A duration in the current language: "1h 05m", "2d 3h" in English; "1 h 5 min", "2 j 3 h" in French."""
    if seconds is None:
        return ""
    return _french_duration(seconds) if CURRENT.get().language == "fr" else format_duration(seconds)


def _french_duration(seconds: float) -> str:
    """A duration as French writes it: "45 s", "12 min", "1 h 5 min", "2 j 3 h" (zero parts left out)."""
    sign, s = ("-" if seconds < 0 else ""), int(abs(seconds))
    if s < 60:
        return f"{sign}{s} s"
    if s < 3600:
        return f"{sign}{s // 60} min"
    big, small, units = (s // 3600, s % 3600 // 60, ("h", "min")) if s < 86400 else (s // 86400, s % 86400 // 3600, ("j", "h"))
    return f"{sign}{big} {units[0]}" + (f" {small} {units[1]}" if small else "")
