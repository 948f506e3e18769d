"""The SLA panel's words: "why this deadline" from sla_explain, and what each status does to the clocks."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import orjson

from carebox import sla, sla_explain
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


def why_lines(settings: sla.SlaSettings, conv: Mapping[str, Any], now: datetime) -> list[str]:
    """Why each stored clock of the conversation is due when it is (read-only; never fails the page)."""
    lines: list[str] = []
    for row in conv.get("clocks", []):
        clock = _clock(settings, row)
        if clock is None:
            lines.append(_("Clock %(target)s: policy %(policy)s is no longer configured; due %(due)s as planned.")
                         % {"target": row["target"], "policy": row["policy"], "due": row["business_due"].isoformat()})
            continue
        lines += _incident_lines(settings, conv, row)
        try:
            lines += sla_explain.explain_due(settings, clock, facts=facts(conv), now=now)
        except Exception:
            log.exception("explaining clock %s of conversation %s failed", row.get("id"), conv.get("id"))
            lines.append(_("The explanation of this deadline is not available."))
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


def _incident_lines(settings: sla.SlaSettings, conv: Mapping[str, Any], row: Mapping[str, Any]) -> list[str]:
    """Why a clock moved to an incident's SLA policy (or back to the conversation's own when it ended)."""
    switched = any(e.get("kind") == "policy" and e.get("clock_id") == row.get("id") for e in conv.get("sla_events", []))
    if row.get("rebased_at") is None or not switched:  # a calendar rebase is explained by sla_explain itself
        return []
    own = settings.match_policy(facts(conv)).name
    values = {"policy": row["policy"], "own": own, "incident": conv.get("incident_id") or "?",
              "at": row["rebased_at"].isoformat(timespec="minutes"), "used": round(float(row.get("carried_s") or 0) / 60)}
    if row["policy"] != own:
        return [_("Incident #%(incident)s: its SLA policy %(policy)s applies from %(at)s (the target counts from then); "
                  "the conversation's own policy %(own)s returns when the incident is resolved.") % values]
    return [_("Back on policy %(own)s at %(at)s after the incident policy: %(used)s min of business time used before "
              "the incident count, the rest runs from then.") % values]
