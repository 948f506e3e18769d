"""The SLA panel's words: "why this deadline" from sla_explain, and what each status does to the clocks."""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, time
from typing import Any

import orjson
from markupsafe import Markup, escape

from carebox import sla, sla_explain
from web import i18n
from web.display_names import target_name
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


def _french(value: object) -> object:
    """The values French writes its own way (called in French only); None for the others."""
    if isinstance(value, sla_explain.Duration):
        return i18n.duration(value.seconds)
    if isinstance(value, sla_explain.Hours):
        return f"{round(value.seconds / 3600, 1):g} h ({i18n.duration(value.seconds)})".replace(".", ",")
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
        alone = None if clock else sla_explain.expectation_only_lines(settings, row["policy"], row["target"],
                                                                      row["started_at"], row["business_due"])
        if alone is not None:  # the policy sets no such target: the customer expectation runs alone
            lines += [_line(line.template, line.values) for line in alone]
            continue
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


# what each SLA event means to the person answering (%(target)s: the clock's name); "policy" has its own two lines
_EVENTS = {
    "activate": "%(target)s: clock started, due %(due)s (the customer expects an answer by %(expected)s)",
    "pause": "%(target)s: paused while the conversation waits on the customer",
    "resume": "%(target)s: running again, due %(due)s",
    "warn": "%(target)s: due soon, at %(due)s",
    "breach": "%(target)s: breached, it was due %(due)s",
    "fulfil": "%(target)s: answered after %(wall)s (business time %(business)s)",
    "rebase": "%(target)s: its calendar was edited, due %(due)s",
    "escalate": "%(target)s: escalated (%(detail)s)",
    "resolve": "Conversation resolved: every clock stops",
}
_SWITCHED = re.compile(r"policy \S+ -> (\S+)$")  # the detail of a "policy" event (carebox.store.incident_policy)


def event_lines(events: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The conversation's SLA events as a community manager reads them: at, kind and a translated line."""
    return [{"at": e["at"], "kind": e["kind"], "text": _event_line(e)} for e in events]


def _event_line(event: Mapping[str, Any]) -> Markup:
    target = target_name(event["target"])
    due = event.get("business_due")
    values = {"target": target, "due": _near(due, event["at"]) if due else "—", "detail": event.get("detail") or "",
              "expected": _near(event["wall_due"], event["at"]) if event.get("wall_due") else "—",
              "wall": sla_explain.Duration(event.get("wall_s") or 0.0),
              "business": sla_explain.Duration(event.get("business_s") or 0.0)}
    if event["kind"] == "policy" and (switched := _SWITCHED.search(event.get("detail") or "")):
        values["policy"] = sla_explain.Name(switched.group(1))
        template = ("%(target)s: on the incident policy %(policy)s, due %(due)s"
                    if event["detail"].startswith("incident #") else
                    "%(target)s: back on its own policy %(policy)s after the incident, due %(due)s")
        return _line(template, values)
    if event["kind"] == "fulfil" and event.get("wall_s") is None:
        return _line("%(target)s: answered", values)
    return _line(_EVENTS.get(event["kind"], "%(target)s: " + event["kind"]), values)


def _near(instant: datetime, at: datetime) -> object:
    """An instant as a line shows it: its time of day alone when it falls on the day of the event."""
    zone = i18n.CURRENT.get().zone()
    return sla_explain.HourOf(instant) if instant.astimezone(zone).date() == at.astimezone(zone).date() else instant
