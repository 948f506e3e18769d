"""What people read instead of internal names: networks as they spell themselves, audit actions as sentences."""

from __future__ import annotations

import aiohttp_jinja2
from aiohttp import web

from web.i18n import gettext as _
from web.sla_forms import kind_names

NETWORK_NAMES = {"x": "X", "mastodon": "Mastodon", "bluesky": "Bluesky", "facebook": "Facebook",
                 "instagram": "Instagram", "email": "E-mail", "webhook": "Webhook", "simulator": "Simulator"}

AUDIT_ACTIONS = {
    "assign": "assigned it", "assign.auto": "assigned it automatically", "assign.release": "released the assignment",
    "status": "changed the status", "note": "added a note", "tags": "changed the tags", "reply": "replied",
    "incident.link": "linked it to an incident", "incident.unlink": "unlinked it from an incident",
    "incident.policy_on": "switched on the incident policy", "incident.policy_off": "switched off the incident policy",
    "incident.bulk_ack": "sent the incident acknowledgement", "privacy.erase": "erased the customer's data",
}
LANGUAGE_NAMES = {"en": "English", "fr": "Français"}  # each in its own language, as language pickers show them


def network_name(network: str | None) -> str:
    """A network as it names itself ("X", "Bluesky"); an unknown one as stored."""
    return NETWORK_NAMES.get(network or "", network or "")


def audit_action(action: str) -> str:
    """An audit action as a phrase in the current language; an unknown one as stored."""
    phrase = AUDIT_ACTIONS.get(action)
    return _(phrase) if phrase else action


def target_name(kind: object) -> str:
    """An SLA target ("first_response") as people say it, in the current language."""
    value = str(getattr(kind, "value", kind))
    return kind_names().get(value, value)


def language_name(code: str | None) -> str:
    """An interface language by its own name; none chosen: the browser's."""
    if code in (None, "", "auto"):
        return _("the browser's")
    return LANGUAGE_NAMES.get(code, code)


def setup(app: web.Application) -> None:
    """Make the names available to every template as filters."""
    env = aiohttp_jinja2.get_env(app)
    env.filters["network"] = network_name
    env.filters["audit_action"] = audit_action
    env.filters["target"] = target_name
    env.filters["language_name"] = language_name
