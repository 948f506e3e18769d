"""Inbox pages: saved views, one conversation, and what an agent does to it (assign, status, notes, tags)."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import aiohttp_jinja2
import orjson
from aiohttp import web
from yarl import URL

from carebox.errors import NotFound
from carebox.models import MAX_ROW_ID
from carebox.ports import Status
from carebox.store import actions, queries
from web import explain
from web.auth import csrf_token, has_role
from web.i18n import duration, local
from web.i18n import gettext as _
from web.keys import (
    clocks_key,
    connectors_key,
    counts_cache_key,
    engine_key,
    inbox_settings_key,
    now_key,
    pipeline_key,
    presence_key,
    user_key,
)
from web.live import LiveEvent, announce
from web.reply_kinds import reply_kinds

log = logging.getLogger(__name__)
FILTERS = ("network", "account", "language", "priority", "category", "tag", "assignee", "q")


def number(value: str, what: str) -> int:
    """An integer from the URL or a form; 400 otherwise."""
    try:
        return int(value)
    except ValueError:
        raise web.HTTPBadRequest(text=_("%(what)s must be a number") % {"what": what}) from None


def parse_accounts(text: str | None) -> frozenset[tuple[str, str]]:
    """The stored account list of a user (JSON of "network/account") as (network, account) pairs."""
    try:
        items = orjson.loads(text or "[]")
    except orjson.JSONDecodeError:
        log.error("unreadable account list %r: the user sees no account until an admin saves it again", text)
        return frozenset({("", "")})  # fail closed
    return frozenset(tuple(str(i).split("/", 1)) for i in items if "/" in str(i))  # type: ignore[misc]


def account_list(text: str) -> list[str]:
    """An admin's list of accounts ("network/account", separated by commas or lines), checked; ValueError names the
    first bad entry."""
    out: list[str] = []
    for item in (i.strip() for i in text.replace("\n", ",").split(",")):
        network, _sep, account = item.partition("/")
        if not item:
            continue
        if not (network and account and network.isascii() and network.replace("_", "").replace("-", "").isalnum()
                and len(item) <= 200):
            raise ValueError(item)
        if item not in out:
            out.append(item)
    return sorted(out)


def stored_accounts(text: str) -> str:
    """The stored form (JSON) of an admin's list of accounts; ValueError names the first bad entry."""
    return orjson.dumps(account_list(text)).decode()


def scope_of(user: dict[str, Any]) -> queries.Accounts:
    """The accounts an agent may see; None (every account) for managers, admins and agents without a list."""
    if has_role(user, "manager"):
        return None
    return parse_accounts(user.get("accounts")) or None


def _filters(request: web.Request) -> queries.Filters:
    q = request.query
    assignee = q.get("assignee") or None
    return queries.Filters(
        network=q.get("network") or None, account=q.get("account") or None, language=q.get("language") or None,
        priority=q.get("priority") or None, category=q.get("category") or None, tag=q.get("tag") or None,
        assignee_id=number(assignee, "assignee") if assignee else None, search=(q.get("q") or "").strip()[:100] or None,
        accounts=scope_of(request[user_key]),
    )


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def visible_only(handler: Handler) -> Handler:
    """Guard a /conversations/{id} route: 404 (not 403, so ids cannot be probed) outside the user's accounts."""
    @functools.wraps(handler)
    async def guarded(request: web.Request) -> web.StreamResponse:
        accounts = scope_of(request[user_key])
        if accounts is not None and not await queries.can_see(
                request.app[engine_key], number(request.match_info["id"], "conversation id"), accounts):
            raise web.HTTPNotFound(text=_("There is no such conversation."))
        return await handler(request)
    return guarded


@aiohttp_jinja2.template("inbox.html")
async def inbox(request: web.Request) -> dict[str, Any]:
    """A saved view of conversations, soonest business due first, both clocks on every row, keyset pages."""
    view = request.query.get("view", "awaiting")
    if view not in queries.VIEWS:
        raise web.HTTPNotFound(text=_("There is no view called %(view)s.") % {"view": view})
    app, user = request.app, request[user_key]
    filters, settings = _filters(request), app[inbox_settings_key]
    now = app[now_key]()
    try:
        page = await queries.inbox(app[engine_key], view, user["id"], now=now, limit=settings.page_size,
                                   cursor=request.query.get("after") or None, filters=filters,
                                   due_soon_s=settings.due_soon_s, with_counts=("mine",), with_users=True)
    except ValueError:
        raise web.HTTPBadRequest(text=_("This page link is not valid any more; start from the first page.")) from None
    counts = {**await _shared_counts(app, filters, now), **page.counts}
    rows = inbox_rows(page.rows, app[clocks_key], now)
    kept = {k: request.query[k] for k in FILTERS if request.query.get(k)}
    return {"view": view, "rows": rows, "counts": counts, "next_cursor": page.next_cursor, "filters": kept,
            "first_page": not request.query.get("after"), "users": page.users,
            "csrf": await csrf_token(request), **_done_notice(request)}


DONE = {"replied": "Reply sent on conversation %(id)s.", "resolved": "Conversation %(id)s resolved.",
        "replied-resolved": "Reply sent and conversation %(id)s resolved."}


def after_done(target: str, done: str, conversation_id: int) -> str:
    """`target` (a local path) with what was just done, for the next page to confirm it."""
    return str(URL(target).update_query(done=done, done_id=conversation_id))


def _done_notice(request: web.Request) -> dict[str, Any]:
    """The confirmation of what the agent just did on a conversation, from `after_done`."""
    done, done_id = DONE.get(request.query.get("done", "")), request.query.get("done_id", "")
    if done is None or not done_id.isdigit():
        return {"notice": None}
    return {"notice": _(done) % {"id": done_id}, "notice_id": int(done_id)}


CATEGORIES = ("outage", "complaint", "question", "praise", "spam", "other")


@dataclass(frozen=True, slots=True)
class Row:
    """One inbox row formatted once in Python: the template only places the fields (50 rows render in a fraction
    of the time the same formatting takes in Jinja)."""

    id: int
    state: str
    network: str
    account: str
    handle: str
    snippet: str
    meta: str
    incident_id: int | None
    tags: list[str]
    priority: str
    sentiment: str
    mood: str
    business: str
    due: str
    waited: str
    assignee: str


def inbox_rows(rows: list[dict[str, Any]], book: Any, now: datetime) -> list[Row]:
    """The rows of an inbox page with both clocks, in the request's language and time zone."""
    overdue, left_, due_, answered, msg = _("overdue"), _("left"), _("due"), _("answered"), "msg"
    categories = {c: _(c) for c in CATEGORIES}
    out = []
    for r in rows:
        clock = book.view(r, now)
        left = clock.business_left_s
        if left is None:
            business, due = answered, ""
        else:
            business = f"{overdue} {duration(-left)}" if left < 0 else f"{duration(left)} {left_}"
            due = f"{due_} {local(r['due_business'])}"
        meta = categories.get(r["category"], r["category"]) + (f" · {r['cluster_key']}" if r.get("cluster_key") else "")
        sentiment = r["sentiment_last"]
        out.append(Row(
            id=r["id"], state=clock.state, network=r["network"], account=r["account"],
            handle=r["customer_handle"] or "?", snippet=r["snippet"],
            meta=f"{meta} · {r['message_count']} {msg} · {local(r['last_message_at'])}", incident_id=r["incident_id"],
            tags=orjson.loads(r["tags"]) if r["tags"] and r["tags"] != "[]" else [], priority=r["priority"],
            sentiment="" if sentiment is None else f"{sentiment:+.2f}",
            mood="" if sentiment is None else "neg" if sentiment < -0.05 else "pos" if sentiment > 0.05 else "neu",
            business=business, due=due,
            waited=duration(clock.wall_waited_s) if clock.wall_waited_s is not None else "",
            assignee=r["assignee"] or "—"))
    return out


SHARED_VIEWS = tuple(v for v in queries.VIEWS if v != "mine")  # the same for everyone: counted once for all


async def _shared_counts(app: web.Application, filters: queries.Filters, now: datetime) -> dict[str, int]:
    """Counts of the shared views; stale ones are served while one background refresh runs."""
    cache, settings = app[counts_cache_key], app[inbox_settings_key]

    async def refresh() -> dict[str, int]:
        try:
            fresh = await queries.counts(app[engine_key], None, now, filters, settings.due_soon_s, SHARED_VIEWS)
            cache.put(filters, fresh)
            return fresh
        finally:
            cache.refreshing.pop(filters, None)

    counts, stale = cache.get(filters)
    running = cache.refreshing.get(filters)
    if counts is None:
        if cache.ttl_s <= 0:
            return await refresh()
        if running is None:  # one computation for every request arriving meanwhile
            running = cache.refreshing[filters] = asyncio.ensure_future(refresh())
        return dict(await asyncio.shield(running))
    if stale and running is None:
        cache.refreshing[filters] = asyncio.ensure_future(refresh())
    return counts


async def _conversation_or_404(request: web.Request) -> dict[str, Any]:
    found = await queries.conversation(request.app[engine_key], number(request.match_info["id"], "conversation id"),
                                       scope_of(request[user_key]), for_page=True)
    if found is None:
        raise web.HTTPNotFound(text=_("There is no such conversation."))
    return found


def fill_canned(body: str, customer_name: str, agent_name: str) -> str:
    """A canned response with its variables filled in (only the documented ones)."""
    first = (agent_name or "").split()[0] if (agent_name or "").strip() else ""
    return body.replace("{customer_name}", customer_name).replace("{agent_first_name}", first)


async def conversation_context(request: web.Request, conv: dict[str, Any] | None = None) -> dict[str, Any]:
    """Everything the conversation page shows (also used when a reply is held or fails)."""
    app, user = request.app, request[user_key]
    conv = conv or await _conversation_or_404(request)
    accounts = scope_of(user)
    if accounts is not None:  # a conversation read by another handler: keep its history to the visible accounts
        conv = {**conv, "history": [h for h in conv["history"] if (h["network"], h["account"]) in accounts],
                "identities": [i for i in conv["identities"] if any(i["network"] == n for n, _ in accounts)]}
    now = app[now_key]()
    last_in = next((m for m in reversed(conv["mentions"]) if m["direction"] == "in"), None)
    customer_name = (last_in["author_name"] or last_in["author_handle"]) if last_in else ""
    if "canned" in conv:  # read with the page
        responses, users = conv["canned"], conv["users"]
    else:
        responses, users = await asyncio.gather(queries.canned_responses(app[engine_key], conv["language"]),
                                                queries.users(app[engine_key]))
    canned = [{**c, "text": fill_canned(c["body"], customer_name, user["display_name"] or user["username"])}
              for c in responses]
    sla = app[clocks_key].settings  # the configured settings with the versions saved from the web
    return {
        "c": conv, "clock": app[clocks_key].view(conv, now), "users": users,
        "csrf": await csrf_token(request), "error": request.query.get("error"), "canned": canned,
        "reply_limit": app[inbox_settings_key].reply_limit(conv["network"]),
        "why": explain.why_lines(sla, conv, now), "status_effects": explain.status_effects(sla, conv),
        "sla_events": explain.event_lines(conv["sla_events"]),
        "people": app[presence_key].who(conv["id"]), "is_manager": has_role(user, "manager"), "hold": None,
        "draft": "", "reply_kinds": reply_kinds(app[connectors_key], conv), "kind": "",
    }


async def conversation(request: web.Request) -> web.Response:
    """The thread, the customer's identities and timeline, notes, tags, status, SLA panel and the composer."""
    return aiohttp_jinja2.render_template("conversation.html", request, await conversation_context(request))


def back(conversation_id: int, error: str | None = None) -> web.HTTPSeeOther:
    """Redirect to the conversation page, with an error to show."""
    from urllib.parse import quote

    return web.HTTPSeeOther(f"/conversations/{conversation_id}" + (f"?error={quote(error)}" if error else ""))


async def assign(request: web.Request) -> web.StreamResponse:
    """Assign to a user, to me, or to nobody (audited)."""
    conversation_id = number(request.match_info["id"], "conversation id")
    form = await request.post()
    value = str(form.get("assignee", ""))
    me = request[user_key]["id"]
    assignee = me if value == "me" else (None if value in ("", "none") else number(value, "assignee"))
    if not await can_take(request.app, conversation_id, assignee):
        raise web.HTTPBadRequest(text=_("This agent cannot see this conversation's account."))
    try:
        await actions.assign(request.app[engine_key], conversation_id, assignee, me, request.app[now_key]())
    except NotFound as err:
        raise web.HTTPNotFound(text=str(err)) from None
    announce(request.app, LiveEvent("assign", conversation_id, {"assignee_id": assignee, "by": me}))
    raise web.HTTPSeeOther(str(form.get("next") or f"/conversations/{conversation_id}")
                           if str(form.get("next", "")).startswith("/") else f"/conversations/{conversation_id}")


async def can_take(app: web.Application, conversation_id: int, assignee_id: int | None) -> bool:
    """Whether `assignee_id` may be given the conversation: their accounts hold its account (nobody always may)."""
    if assignee_id is None or not 0 < assignee_id <= MAX_ROW_ID:
        return True  # unassigning, or an id the store answers 404 for
    assignee = await queries.user_by_id(app[engine_key], assignee_id)
    accounts = scope_of(assignee) if assignee else None
    return accounts is None or await queries.can_see(app[engine_key], conversation_id, accounts)


async def status(request: web.Request) -> web.StreamResponse:
    """Open, pending (waiting on the customer) or resolved."""
    conversation_id = number(request.match_info["id"], "conversation id")
    form = await request.post()
    try:
        new = Status(str(form.get("status", "")))
    except ValueError:
        raise web.HTTPBadRequest(text=_("The status must be open, pending or resolved.")) from None
    try:
        changed = await actions.set_status(request.app[engine_key], conversation_id, new, request[user_key]["id"],
                                           request.app[now_key](), clocks=request.app[clocks_key])
    except NotFound as err:
        raise web.HTTPNotFound(text=str(err)) from None
    rearm = request.app[pipeline_key].on_clocks
    if changed and rearm is not None:
        rearm(changed)  # resumed clocks have new due times: the scheduler plans them again
    announce(request.app, LiveEvent("status", conversation_id, {"status": new.value, "by": request[user_key]["id"]}))
    raise web.HTTPSeeOther(after_done("/", "resolved", conversation_id) if new is Status.RESOLVED
                           else f"/conversations/{conversation_id}")


async def note(request: web.Request) -> web.StreamResponse:
    """An internal note (never a response)."""
    conversation_id = number(request.match_info["id"], "conversation id")
    form = await request.post()
    text = str(form.get("text", "")).strip()
    if text:
        try:
            await actions.add_note(request.app[engine_key], conversation_id, request[user_key]["id"], text[:5000],
                                   request.app[now_key]())
        except NotFound as err:
            raise web.HTTPNotFound(text=str(err)) from None
        announce(request.app, LiveEvent("note", conversation_id, {"by": request[user_key]["id"]}))
    raise back(conversation_id)


async def tags(request: web.Request) -> web.StreamResponse:
    """Replace the conversation's tags with the comma-separated list sent."""
    conversation_id = number(request.match_info["id"], "conversation id")
    form = await request.post()
    try:
        await actions.set_tags(request.app[engine_key], conversation_id, str(form.get("tags", "")).split(","),
                               request[user_key]["id"], request.app[now_key]())
    except NotFound as err:
        raise web.HTTPNotFound(text=str(err)) from None
    announce(request.app, LiveEvent("tags", conversation_id, {}))
    raise back(conversation_id)
