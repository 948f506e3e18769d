"""Live updates: a broadcaster behind a small interface, Server-Sent Events, and who is viewing or typing."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson
from aiohttp import web

from carebox.fanout import Fanout
from carebox.store import actions, queries
from web.keys import (
    broadcaster_key,
    engine_key,
    now_key,
    presence_key,
    tasks_key,
    user_key,
)

log = logging.getLogger(__name__)
HEARTBEAT_S = 15.0
VIEWING_TTL_S = 45.0
SUBSCRIBER_BUFFER = 256


@dataclass(frozen=True, slots=True)
class LiveEvent:
    """Something that changed: `kind` is mention, assign, status, reply, note, tags or presence."""

    kind: str
    conversation_id: int | None
    data: dict[str, Any] = field(default_factory=dict)

    def encode(self) -> bytes:
        """The SSE frame of the event."""
        body = orjson.dumps({"conversation_id": self.conversation_id, **self.data})
        return b"event: " + self.kind.encode() + b"\ndata: " + body + b"\n\n"


class Broadcaster(Protocol):
    """Fan-out of live events to every open page; in-process now, Redis/PostgreSQL later behind the same calls."""

    def publish(self, event: LiveEvent) -> None:
        """Deliver `event` to every subscriber (never blocks)."""

    def subscribe(self) -> contextlib.AbstractAsyncContextManager[asyncio.Queue[LiveEvent]]:
        """A queue receiving every event published while the context is open."""

    def share_mark(self, conversation_id: int, user_id: int, username: str, state: str, ttl_s: float) -> None:
        """Tell the other web processes that a user is viewing, typing or left (no-op with one process)."""


class InProcessBroadcaster:
    """Subscribers of this process only; a slow subscriber loses events rather than slowing others."""

    def __init__(self, buffer: int = SUBSCRIBER_BUFFER) -> None:
        self.buffer = buffer
        self.queues: set[asyncio.Queue[LiveEvent]] = set()

    def publish(self, event: LiveEvent) -> None:
        """Deliver `event` to every subscriber (never blocks)."""
        for queue in self.queues:
            try:
                queue.put_nowait(event)
            except asyncio.QueueFull:
                log.debug("live subscriber is full; dropping %s", event.kind)

    @contextlib.asynccontextmanager
    async def subscribe(self) -> AsyncIterator[asyncio.Queue[LiveEvent]]:
        """A queue receiving every event published while the context is open."""
        queue: asyncio.Queue[LiveEvent] = asyncio.Queue(self.buffer)
        self.queues.add(queue)
        try:
            yield queue
        finally:
            self.queues.discard(queue)

    def share_mark(self, conversation_id: int, user_id: int, username: str, state: str, ttl_s: float) -> None:
        """One process: nobody else to tell."""


LIVE, PRESENCE = "live", "presence"  # the fan-out kinds of a page event and of a presence mark


class SharedBroadcaster(InProcessBroadcaster):
    """Several web processes (embedded `[inbox] processes`, or scale-out over Redis): an event reaches this
    process's pages at once and the other processes' pages through the fan-out; presence marks travel the same
    way, so every process knows who is viewing or typing. Each event is published once, by the process where
    it happened."""

    def __init__(self, fan: Fanout, presence: Presence, buffer: int = SUBSCRIBER_BUFFER,
                 derived: frozenset[str] = frozenset()) -> None:
        super().__init__(buffer)
        self.fan, self.presence, self.derived = fan, presence, derived

    def publish(self, event: LiveEvent) -> None:
        """Deliver `event` here and to every other process (never blocks)."""
        super().publish(event)
        if event.kind in self.derived:
            return
        self.fan.publish_nowait({"kind": LIVE, "event": event.kind, "conversation_id": event.conversation_id,
                                 "data": event.data})

    def share_mark(self, conversation_id: int, user_id: int, username: str, state: str, ttl_s: float) -> None:
        """Tell the other processes that a user is viewing, typing or left."""
        self.fan.publish_nowait({"kind": PRESENCE, "mark": [conversation_id, user_id, username, state, ttl_s]})

    async def relay(self) -> None:
        """Until cancelled: the other processes' page events to this process's pages, their marks to its presence."""
        async with self.fan.subscribe() as events:
            async for e in events:
                if e.get("origin") == self.fan.origin or e.get("kind") not in (LIVE, PRESENCE):
                    continue
                try:
                    if e["kind"] == LIVE:
                        super().publish(LiveEvent(str(e["event"]), e.get("conversation_id"), dict(e.get("data") or {})))
                    else:
                        cid, uid, name, state, ttl = e["mark"]
                        self.presence.mark(int(cid), int(uid), str(name), str(state), float(ttl))
                except (KeyError, TypeError, ValueError) as err:
                    log.warning("ignored a malformed live event from another process: %s", err)


# Scale-out (Redis): every web process derives these page events itself from the fan-out's "committed" and "sla"
# events of the workers and the leader; sharing them as well would show each new mention twice.
DERIVED = frozenset({"mention", "sla"})


def share(app: web.Application, fan: Fanout, derived: frozenset[str] = frozenset()) -> SharedBroadcaster:
    """Make this app's live events shared through `fan` (the composition root starts `relay()` with the app);
    events of a `derived` kind stay in this process."""
    broadcaster = SharedBroadcaster(fan, app[presence_key], derived=derived)
    app[broadcaster_key] = broadcaster
    return broadcaster


class Presence:
    """Who is viewing or typing in each conversation, expiring on their own."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.seen: dict[int, dict[int, tuple[str, str, float]]] = {}

    def mark(self, conversation_id: int, user_id: int, username: str, state: str, ttl_s: float) -> None:
        """Record `state` (viewing, typing) or forget the user (left)."""
        people = self.seen.setdefault(conversation_id, {})
        if state == "left":
            people.pop(user_id, None)
        else:
            people[user_id] = (username, state, self.clock() + ttl_s)

    def who(self, conversation_id: int) -> list[dict[str, Any]]:
        """The people currently on a conversation, by name."""
        now = self.clock()
        people = self.seen.get(conversation_id, {})
        for uid in [uid for uid, (_, _, until) in people.items() if until < now]:
            del people[uid]
        return sorted(({"user_id": uid, "username": name, "state": state} for uid, (name, state, _) in people.items()),
                      key=lambda p: p["username"])


class CountsCache:
    """View counts served stale-while-revalidate: one refresh at a time per key, marked stale on live events."""

    def __init__(self, ttl_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_s, self.clock = ttl_s, clock
        self.entries: dict[Any, tuple[float, dict[str, int]]] = {}
        self.refreshing: dict[Any, asyncio.Future[dict[str, int]]] = {}

    def get(self, key: Any) -> tuple[dict[str, int] | None, bool]:
        """(counts or None, whether they need a refresh); with a zero ttl nothing is ever reused."""
        hit = self.entries.get(key)
        if hit is None or self.ttl_s <= 0:
            return None, True
        return hit[1], self.clock() - hit[0] >= self.ttl_s

    def put(self, key: Any, counts: dict[str, int]) -> None:
        """Remember counts for `key`."""
        if len(self.entries) > 1000:
            self.entries.clear()
        self.entries[key] = (self.clock(), counts)

    def clear(self) -> None:
        """Something changed: every entry is stale (still served until its refresh lands)."""
        self.entries = {k: (float("-inf"), counts) for k, (_, counts) in self.entries.items()}


def announce(app: web.Application, event: LiveEvent) -> None:
    """Publish an event. The shared view counts are not dropped: they are at most `inbox.counts_cache` old anyway,
    and recounting on every event made 50 busy agents recount 100,000 rows several times a second."""
    app[broadcaster_key].publish(event)


def spawn(app: web.Application, coro: Any) -> None:
    """Run a background job tied to the app, keeping a reference until it ends."""
    task = asyncio.get_running_loop().create_task(coro)
    app[tasks_key].add(task)
    task.add_done_callback(app[tasks_key].discard)


async def events(request: web.Request) -> web.StreamResponse:
    """GET /events: the Server-Sent Events stream of every change, for live inbox and conversation pages."""
    app, user = request.app, request[user_key]
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache",
                                           "X-Accel-Buffering": "no"})
    await response.prepare(request)
    await response.write(b"retry: 3000\n: connected\n\n")
    async with app[broadcaster_key].subscribe() as queue:
        try:
            await _stream(app, user, queue, response)
        except ConnectionResetError:
            log.debug("live stream of user %s closed by the browser", user["id"])
    return response


class Visibility:
    """Which events a stream may carry: those of conversations on the user's accounts (see views.scope_of)."""

    def __init__(self, app: web.Application, user: dict[str, Any]) -> None:
        from web.views import scope_of  # views imports this module

        self.app, self.accounts = app, scope_of(user)
        self.where: dict[int, tuple[str, str] | None] = {}  # conversation id -> its account (never changes)

    async def allows(self, event: LiveEvent) -> bool:
        """Whether the user may receive `event` (events about no conversation carry no customer data)."""
        cid = event.conversation_id
        if self.accounts is None or cid is None:
            return True
        if cid not in self.where:
            if len(self.where) > 10_000:
                self.where.clear()
            self.where[cid] = (await queries.accounts_of(self.app[engine_key], [cid])).get(cid)
        return self.where[cid] in self.accounts


async def _stream(app: web.Application, user: dict[str, Any], queue: asyncio.Queue[LiveEvent],
                  response: web.StreamResponse) -> None:
    last_touch, visibility = 0.0, Visibility(app, user)
    while True:
        if time.monotonic() - last_touch > 60:
            await actions.touch_presence(app[engine_key], user["id"], app[now_key]())
            fresh = await queries.user_by_id(app[engine_key], user["id"])  # role or accounts changed by an admin
            if fresh is None or not fresh["active"]:
                return
            if Visibility(app, fresh).accounts != visibility.accounts:
                visibility = Visibility(app, fresh)
            last_touch = time.monotonic()
        try:
            event = await asyncio.wait_for(queue.get(), HEARTBEAT_S)
        except TimeoutError:
            await response.write(b": heartbeat\n\n")
            continue
        if await visibility.allows(event):
            await response.write(event.encode())


async def presence(request: web.Request) -> web.Response:
    """POST /conversations/{id}/presence state=viewing|typing|left: tell the others, return who is here."""
    from web.keys import inbox_settings_key

    conversation_id = int(request.match_info["id"]) if request.match_info["id"].isdigit() else 0
    state = str((await request.post()).get("state", "viewing"))
    if state not in ("viewing", "typing", "left") or not conversation_id:
        raise web.HTTPBadRequest(text="state must be viewing, typing or left")
    user = request[user_key]
    ttl = request.app[inbox_settings_key].typing_ttl_s if state == "typing" else VIEWING_TTL_S
    tracker = request.app[presence_key]
    before = tracker.who(conversation_id)
    tracker.mark(conversation_id, user["id"], user["username"], state, ttl)
    request.app[broadcaster_key].share_mark(conversation_id, user["id"], user["username"], state, ttl)
    people = tracker.who(conversation_id)
    if people != before:
        request.app[broadcaster_key].publish(LiveEvent("presence", conversation_id, {"people": people}))
    return web.json_response({"people": people})


def on_committed(app: web.Application) -> Callable[[list[dict[str, Any]]], None]:
    """The pipeline's after-commit callback: announce new mentions with their conversation's assignee."""
    def committed(rows: list[dict[str, Any]]) -> None:
        ids = sorted({r["conversation_id"] for r in rows if r.get("conversation_id") is not None})
        if ids:
            spawn(app, _announce_mentions(app, ids, [r for r in rows if r.get("direction") == "in"]))
    return committed


async def _announce_mentions(app: web.Application, ids: list[int], inbound: list[dict[str, Any]]) -> None:
    from web import assigning

    try:
        if inbound:
            await assigning.auto_assign(app)
        assignees = await queries.assignees(app[engine_key], ids)
        inbound_ids = {r["conversation_id"] for r in inbound}
        for cid in ids:
            announce(app, LiveEvent("mention", cid, {"assignee_id": assignees.get(cid), "inbound": cid in inbound_ids}))
    except Exception:
        log.exception("announcing new mentions failed")


def on_sla(app: web.Application) -> Callable[[list[dict[str, Any]]], None]:
    """Announce SLA warnings, breaches and escalations as they fire (one event per conversation)."""
    def fired(events: list[dict[str, Any]]) -> None:
        for e in events:
            announce(app, LiveEvent("sla", e["conversation_id"], {"event": e["kind"], "notify": list(e["notify"])}))
    return fired
