"""The SLA panel's words: "why this deadline" from sla_explain, and what each status does to the clocks."""

from __future__ import annotations

import logging
import unicodedata
from collections.abc import Mapping
from datetime import UTC, date, datetime, time
from typing import Any

import orjson
from markupsafe import Markup, escape

from carebox import sla, sla_explain
from web import i18n
from web.i18n import gettext as _

log = logging.getLogger(__name__)


def facts(conv: Mapping[str, Any]) -> sla.ConversationFacts:
    """What policy matching looks at, from a conversation row."""
    return sla.ConversationFacts(
        network=conv["network"], account=conv["account"], priority=conv.get("priority") or "",
        category=conv.get("category") or "", language=conv.get("language") or "",
        tags=frozenset(orjson.loads(conv.get("tags") or "[]")),
    )


def _clock(settings: sla.SlaSettings, row: Mapping[str, Any]) -> sla.Clock | None:
    try:
        target = settings.policy(row["policy"]).target(sla.TargetKind(row["target"]))
    except (KeyError, ValueError):
        return None
    if target is None:
        return None
    paused = ((row["paused_at"], None),) if row.get("paused_at") else ()
    return sla.Clock(target=target, policy=row["policy"], started_at=row["started_at"],
                     calendar_version=row.get("calendar_version") or 1, paused=paused, fulfilled_at=row.get("fulfilled_at"),
                     rebased_at=row.get("rebased_at"), carried_s=float(row.get("carried_s") or 0.0))


_WEEKDAYS = {"en": ["Mondays", "Tuesdays", "Wednesdays", "Thursdays", "Fridays", "Saturdays", "Sundays"],
             "fr": ["le lundi", "le mardi", "le mercredi", "le jeudi", "le vendredi", "le samedi", "le dimanche"]}
_TIME = Markup('<time datetime="{}">{}</time>')


def french_duration(seconds: float) -> str:
    """A duration as French writes it: "45 s", "12 min", "1 h 5 min", "2 j 3 h" (zero parts left out)."""
    sign, s = ("-" if seconds < 0 else ""), int(abs(seconds))
    if s < 60:
        return f"{sign}{s} s"
    if s < 3600:
        return f"{sign}{s // 60} min"
    big, small, units = (s // 3600, s % 3600 // 60, ("h", "min")) if s < 86400 else (s // 86400, s % 86400 // 3600, ("j", "h"))
    return f"{sign}{big} {units[0]}" + (f" {small} {units[1]}" if small else "")


def _french(value: object) -> object:
    """The values French writes its own way; None for the others."""
    if isinstance(value, sla_explain.Duration):
        return french_duration(value.seconds)
    if isinstance(value, sla_explain.Hours):
        return f"{round(value.seconds / 3600, 1):g} h ({french_duration(value.seconds)})".replace(".", ",")
    if isinstance(value, sla_explain.Name):
        return f"« {_(value.text) if value.term else value.text} »"
    if isinstance(value, sla_explain.Names):
        items = sorted((_(item) for item in value.items), key=_alphabetical) if value.term else value.items
        return ", ".join(f"« {item} »" for item in items) or "aucune"
    if isinstance(value, sla_explain.Reasons):
        said = [_line(line.template, line.values) for line in value.lines]
        return Markup(" et ").join([Markup(", ").join(said[:-1]), said[-1]]) if len(said) > 1 else said[0]
    return None


def _alphabetical(word: str) -> str:
    """Sort key that puts "éloge" among the e's."""
    return unicodedata.normalize("NFD", word.casefold())


def _shown(value: object) -> object:
    """A value of a line as its reader sees it: instants in their zone and language, the exact one in <time>."""
    language = i18n.CURRENT.get().language
    if language == "fr" and (french := _french(value)) is not None:
        return french
    if isinstance(value, datetime):
        return _TIME.format(value.astimezone(UTC).isoformat(), i18n.local(value, "long"))
    if isinstance(value, sla_explain.HourOf):
        return _TIME.format(value.at.astimezone(UTC).isoformat(), f"{value.at.astimezone(i18n.CURRENT.get().zone()):%H:%M}")
    if isinstance(value, date):  # a day of the calendar: shown as it is, in no other zone
        return _TIME.format(value.isoformat(), i18n.local(datetime.combine(value, time(12), i18n.CURRENT.get().zone()), "day"))
    if isinstance(value, sla_explain.Weekday):
        return _WEEKDAYS.get(language, _WEEKDAYS["en"])[value.number]
    if isinstance(value, sla_explain.Holiday):
        return sla_explain.holiday_name_in(value, language)
    if isinstance(value, sla_explain.Reasons):
        return Markup("; ").join(_line(line.template, line.values) for line in value.lines)
    if isinstance(value, sla.TargetKind):
        return _(value.value)
    return sla_explain.plain(value, i18n.CURRENT.get().zone())


def _line(template: str, values: Mapping[str, object]) -> Markup:
    """`template` translated, with its values escaped and its times localized."""
    return Markup(escape(_(template))) % {key: _shown(value) for key, value in values.items()}


def why_lines(settings: sla.SlaSettings, conv: Mapping[str, Any], now: datetime) -> list[Markup]:
    """Why each stored clock of the conversation is due when it is (read-only; never fails the page)."""
    lines: list[Markup] = []
    for row in conv.get("clocks", []):
        clock = _clock(settings, row)
        if clock is None:
            lines.append(_line("Clock %(target)s: policy %(policy)s is no longer configured; due %(due)s as planned.",
                               {"target": _(row["target"]), "policy": row["policy"], "due": row["business_due"]}))
            continue
        lines += _incident_lines(settings, conv, row)
        try:
            explained = sla_explain.explain_lines(settings, clock, facts=facts(conv), now=now)
            lines += [_line(line.template, line.values) for line in explained]
        except Exception:
            log.exception("explaining clock %s of conversation %s failed", row.get("id"), conv.get("id"))
            lines.append(Markup(escape(_("The explanation of this deadline is not available."))))
    return lines


def status_effects(settings: sla.SlaSettings, conv: Mapping[str, Any]) -> dict[str, str]:
    """What setting each status would do to the clocks of this conversation."""
    try:
        pausing = "pending" in settings.policy(conv.get("policy") or "").pausing_statuses
    except KeyError:
        pausing = True  # no contract policy: the default pausing statuses apply
    pending = (_("the clocks pause and resume with the business time that was left") if pausing
               else _("the SLA clock keeps running"))
    return {
        "open": _("clocks run; the conversation is in the open views"),
        "pending": _("waiting on the customer: %(effect)s; a new customer message reopens it") % {"effect": pending},
        "resolved": _("stops every clock; a new customer message opens it again with a new clock"),
    }


def _incident_lines(settings: sla.SlaSettings, conv: Mapping[str, Any], row: Mapping[str, Any]) -> list[Markup]:
    """Why a clock moved to an incident's SLA policy (or back to the conversation's own when it ended)."""
    switched = any(e.get("kind") == "policy" and e.get("clock_id") == row.get("id") for e in conv.get("sla_events", []))
    if row.get("rebased_at") is None or not switched:  # a calendar rebase is explained by sla_explain itself
        return []
    own = settings.match_policy(facts(conv)).name
    values = {"policy": row["policy"], "own": own, "incident": conv.get("incident_id") or "?",
              "at": row["rebased_at"], "used": round(float(row.get("carried_s") or 0) / 60)}
    if row["policy"] != own:
        return [_line("Incident #%(incident)s: its SLA policy %(policy)s applies from %(at)s (the target counts from "
                      "then); the conversation's own policy %(own)s returns when the incident is resolved.", values)]
    return [_line("Back on policy %(own)s at %(at)s after the incident policy: %(used)s min of business time used "
                  "before the incident count, the rest runs from then.", values)]
