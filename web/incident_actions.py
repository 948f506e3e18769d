"""What people do to an incident, shared by the incident pages (web/incidents.py) and the JSON API
(web/api_incidents.py): each action checks who may do it, what the store allows, writes the audit log and moves
the SLA clocks of the conversations it touches. An incident outside an agent's accounts does not exist for them."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from aiohttp import web

from carebox import pipeline
from carebox.errors import ConnectorError, NotFound
from carebox.incident_policy import render
from carebox.store import actions, queries
from carebox.store import incident_policy as policy_store
from carebox.store import incidents as store
from web.auth import has_role
from web.compose import connector_for
from web.i18n import gettext as _
from web.keys import (
    clocks_key,
    connectors_key,
    engine_key,
    inbox_settings_key,
    now_key,
    pipeline_key,
    settings_key,
)
from web.live import LiveEvent, announce
from web.views import scope_of

log = logging.getLogger(__name__)
User = dict[str, Any]


class Refused(Exception):
    """The action is not possible in the incident's present state; the message says why, for the user."""


def _require(user: User, role: str) -> None:
    if not has_role(user, role):
        raise web.HTTPForbidden(text=f"this action needs the {role} role")


def accounts_of(user: User) -> frozenset[str] | None:
    """The accounts whose incidents `user` may see (None: every account)."""
    scope = scope_of(user)
    return None if scope is None else frozenset(account for _network, account in scope)


async def load(app: web.Application, user: User, incident_id: int) -> dict[str, Any]:
    """The incident with the linked conversations `user` may see and every window of its SLA policy; NotFound when
    it does not exist or belongs to an account they cannot see."""
    found = await store.incident(app[engine_key], incident_id)
    accounts, scope = accounts_of(user), scope_of(user)
    if found is None or (accounts is not None and found["account"] not in accounts):
        raise NotFound(f"incident {incident_id}")
    found["policy_windows"] = (await policy_store.windows(app[engine_key], [incident_id]))[incident_id]
    if scope is not None:
        found["conversations"] = [c for c in found["conversations"] if (c["network"], c["account"]) in scope]
    return found


def policy_active(found: Mapping[str, Any]) -> bool:
    """Whether the incident's conversations are on its SLA policy now."""
    return found["policy"] is not None and found["policy_until"] is None and found["state"] != "resolved"


def configured_policy(app: web.Application) -> str | None:
    """The incident SLA policy of the configuration, when it names a policy in force (the file's, or as edited
    from the admin pages)."""
    name = app[settings_key].incidents.policy
    return name if name is not None and name in {p.name for p in app[clocks_key].settings.policies} else None


async def reconcile(app: web.Application, conversation_ids: list[int], now: datetime) -> int:
    """Put these conversations' clocks on the policy their incident asks for, re-arm the moved ones; how many moved."""
    moved = await policy_store.reconcile(app[engine_key], app[clocks_key], app[settings_key].incidents.policy, now,
                                         conversation_ids)
    rearm = app[pipeline_key].on_clocks
    if moved and rearm is not None:
        rearm(moved)  # new due times: the scheduler plans their warnings and breaches again
    return len(moved)


async def _reconcile_incident(app: web.Application, incident_id: int, now: datetime) -> int:
    return await reconcile(app, await policy_store.conversations_of(app[engine_key], incident_id), now)


async def _policy_ended(app: web.Application, user: User, found: Mapping[str, Any], now: datetime, reason: str) -> None:
    """Audit the end of an incident's SLA policy that came with another action (resolve, merge)."""
    if policy_active(found):
        await policy_store.end_window(app[engine_key], found["id"], now, user["id"])
        await actions.record_audit(app[engine_key], now, user["id"], "incident.policy_off", incident_id=found["id"],
                                   policy=found["policy"], reason=reason)


async def set_state(app: web.Application, user: User, incident_id: int, state: str) -> bool:
    """Acknowledge or resolve an incident (manager); False when it already was. Resolving ends its SLA policy.
    The watcher's next tick tells ops: PagerDuty's acknowledge, or the resolve on every receiver (docs/alerting.md)."""
    found = await load(app, user, incident_id)
    _require(user, "manager")
    engine, now = app[engine_key], app[now_key]()
    action = {"acknowledged": "acknowledge", "resolved": "resolve"}[state]
    changed = await (store.acknowledge if state == "acknowledged" else store.resolve)(engine, incident_id, now)
    if changed:
        await actions.record_audit(engine, now, user["id"], f"incident.{action}", incident_id=incident_id)
        log.info("incident %d: %s by user %d", incident_id, action, user["id"])
        if state == "resolved":  # its SLA policy ended with it: the conversations go back to their own
            await _policy_ended(app, user, found, now, "the incident was resolved")
            await _reconcile_incident(app, incident_id, now)
    return changed


async def open_by_hand(app: web.Application, user: User, account: str, cluster_key: str | None,
                       title: str) -> tuple[int, int]:
    """Open an incident (manager), linking the matching open conversations of the last hour; with
    [incidents] auto_policy = "all" they switch to the incident policy at once. (id, linked)."""
    _require(user, "manager")
    if not account or not title:
        raise Refused(_("An incident needs an account and a title."))
    engine, now = app[engine_key], app[now_key]()
    incident_id, linked = await store.open_by_hand(engine, account, cluster_key, title, now)
    await actions.record_audit(engine, now, user["id"], "incident.open", incident_id=incident_id, account=account,
                               cluster_key=cluster_key, title=title, linked=linked)
    log.warning("incident %d opened by hand by user %d (%d conversations linked)", incident_id, user["id"], linked)
    name = configured_policy(app)
    if (name is not None and app[settings_key].incidents.switches_on_open("manual")
            and await policy_store.switch_on_automatically(engine, incident_id, name, now,
                                                           'opened by hand ([incidents] auto_policy = "all")')):
        await _reconcile_incident(app, incident_id, now)
    return incident_id, linked


async def merge(app: web.Application, user: User, incident_id: int, target: int) -> int:
    """Merge an incident into another one (manager); how many conversations moved."""
    found = await load(app, user, incident_id)
    _require(user, "manager")
    try:
        await load(app, user, target)
    except NotFound:
        raise Refused(_("There is no such incident.") + f" (incident {target})") from None
    engine, now = app[engine_key], app[now_key]()
    try:
        moved = await store.merge(engine, incident_id, target, now)
    except ValueError as err:
        raise Refused(str(err)) from None
    await actions.record_audit(engine, now, user["id"], "incident.merge", incident_id=incident_id, into=target, moved=moved)
    await _policy_ended(app, user, found, now, f"merged into incident {target}")
    await _reconcile_incident(app, target, now)
    return moved


async def _visible_conversation(app: web.Application, user: User, conversation_id: int) -> None:
    if not await queries.can_see(app[engine_key], conversation_id, scope_of(user)):
        raise NotFound(f"conversation {conversation_id}")


async def link(app: web.Application, user: User, incident_id: int, conversation_id: int) -> bool:
    """Link a conversation to the incident (manager); False when it already was. Refused when it belongs to
    another incident (unlink it there, or merge) or when this one was merged."""
    found = await load(app, user, incident_id)
    _require(user, "manager")
    await _visible_conversation(app, user, conversation_id)
    if found["merged_into_id"] is not None:
        raise Refused(_("Incident %(id)d was merged into incident %(into)d.") % {"id": incident_id,
                                                                                 "into": found["merged_into_id"]})
    engine, now = app[engine_key], app[now_key]()
    changed, current = await store.link_one(engine, incident_id, conversation_id)
    if current != incident_id:
        raise Refused(_("Conversation %(id)d is linked to incident %(other)d: unlink it there first.") % {
            "id": conversation_id, "other": current})
    if changed:
        await actions.record_audit(engine, now, user["id"], "incident.link", conversation_id, incident_id=incident_id)
        await reconcile(app, [conversation_id], now)
    return changed


async def unlink(app: web.Application, user: User, incident_id: int, conversation_id: int) -> None:
    """Detach one conversation from the incident (manager); it goes back to its own SLA policy."""
    await load(app, user, incident_id)
    _require(user, "manager")
    await _visible_conversation(app, user, conversation_id)
    engine, now = app[engine_key], app[now_key]()
    if not await store.unlink(engine, incident_id, conversation_id):
        raise Refused(_("That conversation is not linked to this incident."))
    await actions.record_audit(engine, now, user["id"], "incident.unlink", conversation_id, incident_id=incident_id)
    await reconcile(app, [conversation_id], now)


async def split(app: web.Application, user: User, incident_id: int, conversation_ids: Iterable[int],
                title: str) -> tuple[int, int]:
    """Move linked conversations to a new incident (manager); (new id, moved)."""
    found = await load(app, user, incident_id)
    _require(user, "manager")
    ids = sorted(set(conversation_ids))
    if not ids:
        raise Refused(_("Choose the conversations to move to the new incident."))
    if not title:
        raise Refused(_("The new incident needs a title."))
    strangers = sorted(set(ids) - {c["id"] for c in found["conversations"]})
    if strangers:
        raise Refused(_("Not linked to this incident: conversations %(ids)s.") % {"ids": ", ".join(map(str, strangers))})
    engine, now = app[engine_key], app[now_key]()
    try:
        new_id, moved = await store.split(engine, incident_id, ids, title, now)
    except ValueError as err:
        raise Refused(_(str(err))) from None
    await policy_store.copy_windows(engine, incident_id, new_id)
    await actions.record_audit(engine, now, user["id"], "incident.split", incident_id=incident_id, into=new_id,
                               conversations=ids, title=title)
    log.info("incident %d: %d conversations split off into incident %d by user %d", incident_id, moved, new_id, user["id"])
    await reconcile(app, ids, now)
    return new_id, moved


async def switch_policy(app: web.Application, user: User, incident_id: int, on: bool) -> tuple[bool, int]:
    """Put the linked conversations on the incident SLA policy (on) or back on their own (agent: it is answering
    work, not policy editing); (changed, clocks moved)."""
    found = await load(app, user, incident_id)
    _require(user, "agent")
    name, engine, now = configured_policy(app), app[engine_key], app[now_key]()
    if on and name is None:
        raise Refused(_("No incident SLA policy is configured ([incidents] policy)."))
    if on and found["state"] == "resolved":
        raise Refused(_("The incident is resolved: its conversations follow their own policy."))
    changed = await (policy_store.switch_on(engine, incident_id, name, now, user["id"]) if on and name is not None
                     else policy_store.switch_off(engine, incident_id, now, user["id"]))
    moved = 0
    if changed:
        moved = await _reconcile_incident(app, incident_id, now)
        await actions.record_audit(engine, now, user["id"], f"incident.policy_{'on' if on else 'off'}",
                                   incident_id=incident_id, policy=name if on else found["policy"])
        log.info("incident %d: SLA policy switched %s by user %d (%d clocks moved)", incident_id, "on" if on else "off",
                 user["id"], moved)
    return changed, moved


def answered(found: Mapping[str, Any]) -> set[int]:
    """Linked conversations already answered since the incident started: the acknowledgement skips them."""
    return {c["id"] for c in found["conversations"]
            if c["last_outbound_at"] is not None and c["last_outbound_at"] >= found["started_at"]}


def ack_groups(app: web.Application, found: Mapping[str, Any], texts: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
    """The acknowledgement to send, one text per network and language of the open linked conversations not yet
    answered: the configured template (or the text being edited), its length and the network's limit."""
    settings, limits, done = app[settings_key], app[inbox_settings_key], answered(found)
    groups: dict[str, dict[str, Any]] = {}
    for conv in found["conversations"]:
        if conv["status"] == "resolved" or conv["id"] in done:
            continue
        lang, template = settings.incidents.template(conv["network"], conv["language"], settings.languages)
        field = f"text_{conv['network']}_{lang}"
        group = groups.setdefault(field, {"field": field, "network": conv["network"], "language": lang,
                                          "limit": limits.reply_limit(conv["network"]), "conversations": [],
                                          "text": render(template, found["cluster_key"], lang)})
        group["conversations"].append(conv)
    for group in groups.values():
        if texts is not None:
            group["text"] = texts.get(group["field"], group["text"])
        group["length"] = len(group["text"])
        group["over"] = group["length"] > group["limit"]
    return sorted(groups.values(), key=lambda g: (g["network"], g["language"]))


async def acknowledge_customers(app: web.Application, user: User, found: Mapping[str, Any],
                                texts: Mapping[str, str]) -> dict[str, Any]:
    """Send each group's text (`texts` by group field, else the template) to its conversations (agent); what
    was sent, skipped (answered since the incident started) and failed, with the reason."""
    _require(user, "agent")
    done = answered(found)
    sent: list[int] = []
    skipped = sorted(c["id"] for c in found["conversations"] if c["status"] != "resolved" and c["id"] in done)
    failed: list[tuple[int, str]] = []
    for group in ack_groups(app, found, texts):
        for conv in group["conversations"]:
            error = await _send_one(app, conv, group["text"].strip(), user["id"])
            if error is None:
                sent.append(conv["id"])
            else:
                failed.append((conv["id"], error))
    await actions.record_audit(app[engine_key], app[now_key](), user["id"], "incident.bulk_ack", incident_id=found["id"],
                               sent=sent, skipped=skipped, failed=[cid for cid, _e in failed])
    log.info("incident %d: bulk acknowledgement sent to %d, skipped %d, failed %d",
             found["id"], len(sent), len(skipped), len(failed))
    return {"sent": sent, "skipped": skipped, "failed": failed}


async def _send_one(app: web.Application, conv: Mapping[str, Any], text: str, user_id: int) -> str | None:
    """Reply to one conversation; the error to show when it was not sent."""
    if not text:
        return _("The message is empty.")
    limit = app[inbox_settings_key].reply_limit(conv["network"])
    if len(text) > limit:
        return _("The reply has %(n)d characters; %(network)s accepts %(limit)d.") % {
            "n": len(text), "network": conv["network"], "limit": limit}
    connector = connector_for(app[connectors_key], dict(conv))
    if connector is None:
        return _("No connector is running for %(network)s/%(account)s; the reply was not sent.") % conv
    try:
        await pipeline.reply(app[pipeline_key], connector, conv["id"], text, user_id, app[now_key])
    except ConnectorError as err:
        log.warning("bulk acknowledgement to conversation %d failed: %s", conv["id"], err)
        return str(err) or type(err).__name__
    except NotFound as err:
        return str(err)
    announce(app, LiveEvent("reply", conv["id"], {"by": user_id}))
    return None
