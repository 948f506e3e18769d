"""Timed SLA events: a warning at its instant, a breach at the due time, and the escalation ladder after it.

Each fires at most once (the clock row records it inside the same transaction), is skipped once the
clock is fulfilled or the conversation is no longer open, and is logged as an SlaEvent with both
clocks' values so reports can trace it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncEngine

from carebox import sla
from carebox.calendar import Calendar
from carebox.clocks import ClockBook, calendar_from_json, calendar_to_json
from carebox.errors import ConfigError
from carebox.fanout import Fanout
from carebox.sla_tables import with_edits
from carebox.store import clocks as store
from carebox.store import locked, sla_edits
from carebox.store.engine import write_transaction

log = logging.getLogger(__name__)
REBASE_BATCH = 1000  # clocks moved per write transaction when a calendar changes
EDITED = "sla.edited"  # the fan-out event telling every process that a calendar or policy was saved
T = TypeVar("T")


class StillLocked(Exception):
    """A timed SLA write gave up: the store stayed locked by another writer (logged; the next sweep retries)."""


@dataclass(frozen=True, slots=True)
class Timer:
    """One instant at which something must happen to a clock."""

    clock_id: int
    kind: str  # "warn", "breach" or "escalate:<n>"
    at: datetime


@dataclass(frozen=True, slots=True)
class Fired:
    """An SLA event that happened, for the in-app feed and the notifiers."""

    clock_id: int
    conversation_id: int
    kind: str
    notify: tuple[str, ...]
    at: datetime
    business_s: float
    wall_s: float


def timers(book: ClockBook, clock: Mapping[str, Any], now: datetime) -> list[Timer]:
    """The future (or overdue) instants of a clock: its warning, its breach, the ladder's later steps."""
    if clock.get("fulfilled_at") is not None or clock.get("status", "open") != "open":
        return []
    state = book.evaluate(clock, now)
    if state is None:
        return []
    if clock.get("business_due") is not None:
        # the stored instants are authoritative: a resumed or rebased clock was re-planned from where it was
        state = replace(state, business_due=clock["business_due"], warn_at=clock.get("warn_at"))
    out = []
    if clock.get("warned_at") is None and clock.get("breached_at") is None and state.warn_at is not None:
        out.append(Timer(clock["id"], "warn", state.warn_at))
    if clock.get("breached_at") is None:
        out.append(Timer(clock["id"], "breach", state.business_due))
    ladder = book.settings.ladder
    for at, step in sla.escalations(state, book.calendar_of(clock), ladder):
        if step.after_s > 0:
            out.append(Timer(clock["id"], f"escalate:{ladder.index(step)}", at))
    return out


def _ladder(book: ClockBook, trigger: sla.Trigger, immediate: bool) -> tuple[str, ...]:
    return tuple(s.notify for s in book.settings.ladder if s.trigger == trigger and (s.after_s == 0) == immediate)


async def fire(engine: AsyncEngine, book: ClockBook, clock_id: int, kind: str, now: datetime) -> Fired | None:
    """Record a timed event if it still applies; None when the clock was answered, paused or already told."""
    async with write_transaction(engine) as conn:
        clock = await store.load_for_update(conn, clock_id)
        if clock is None or clock["fulfilled_at"] is not None or clock["status"] != "open":
            return None
        if _moved_later(clock, kind, now):
            return None  # a job armed before a re-plan (a calendar edit): the new instant has its own job
        business_s, wall_s = book.elapsed(clock, now)
        values: dict[str, Any]
        if kind == "warn":
            if clock["warned_at"] is not None or clock["breached_at"] is not None:
                return None
            values, notify = {"warned_at": now, "state": "warning"}, _ladder(book, sla.Trigger.WARNING, True)
        elif kind == "breach":
            if clock["breached_at"] is not None:
                return None
            values, notify = {"breached_at": now, "state": "breached"}, _ladder(book, sla.Trigger.BREACH, True)
        else:
            ladder = book.settings.ladder
            index = int(kind.split(":", 1)[1])
            if index >= len(ladder) or ladder[index].after_s <= 0:
                return None
            step = ladder[index]
            notify = (step.notify,)
            detail = f"notify {step.notify} ({step.trigger.value} + {step.after_s:g}s)"
            if await store.event_logged(conn, clock_id, "escalate", detail):
                return None
            values = {}
        if not kind.startswith("escalate"):
            detail = "notify " + ", ".join(notify) if notify else ""
        await store.mark(conn, clock_id, values, {
            "conversation_id": clock["conversation_id"], "clock_id": clock_id, "target": clock["target"],
            "kind": kind.split(":", 1)[0], "at": now, "business_s": business_s, "wall_s": wall_s,
            "business_due": clock["business_due"], "wall_due": clock["wall_due"], "detail": detail,
        })
    log.info("SLA %s on conversation %d (%s)", kind, clock["conversation_id"], detail or "no one to notify")
    return Fired(clock_id, clock["conversation_id"], kind, notify, now, business_s, wall_s)


def _moved_later(clock: Mapping[str, Any], kind: str, now: datetime) -> bool:
    """Whether the instant of this warning or breach is now later than `now` (with a second of slack for timers)."""
    instant = clock.get("warn_at") if kind == "warn" else clock.get("business_due") if kind == "breach" else None
    return instant is not None and instant > now + timedelta(seconds=1)


async def sweep(engine: AsyncEngine, book: ClockBook, now: Callable[[], datetime]) -> list[Fired]:
    """Fire whatever should have fired already (a missed job, a restart): the reconciliation pass."""
    fired = []
    for clock_id, kind in await store.overdue(engine, now()):
        try:
            event = await when_unlocked(f"SLA {kind} of clock {clock_id}", lambda c=clock_id, k=kind: fire(
                engine, book, c, k, now()))
        except StillLocked:
            break  # logged: the next sweep goes on from here
        if event is not None:
            fired.append(event)
    return fired


async def breach_answered_late(engine: AsyncEngine, book: ClockBook, clock_ids: Sequence[int]) -> list[Fired]:
    """Log the breach of clocks answered after their due time whose breach was never logged (carebox was down
    at the due time and the answer came in before the sweep, or the job ran late): dated at the due time,
    notifying no one (the customer has had the answer). Clocks with nothing to log are skipped."""
    fired = []
    async with write_transaction(engine) as conn:
        for clock_id in clock_ids:
            clock = await store.load_for_update(conn, clock_id)
            if (clock is None or clock["breached_at"] is not None or clock["fulfilled_at"] is None
                    or clock["paused_at"] is not None or clock["fulfilled_at"] <= clock["business_due"]):
                continue
            due = clock["business_due"]
            business_s, wall_s = book.elapsed(clock, due)
            detail = f"answered late at {clock['fulfilled_at'].isoformat()}, before the breach was logged; no one notified"
            await store.mark(conn, clock_id, {"breached_at": due}, {
                "conversation_id": clock["conversation_id"], "clock_id": clock_id, "target": clock["target"],
                "kind": "breach", "at": due, "business_s": business_s, "wall_s": wall_s,
                "business_due": due, "wall_due": clock["wall_due"], "detail": detail,
            })
            fired.append(Fired(clock_id, clock["conversation_id"], "breach", (), due, business_s, wall_s))
    for f in fired:
        log.info("SLA breach on conversation %d logged late (answered after its due time)", f.conversation_id)
    return fired


# Waits between tries of a write that found the store locked (each try already waits busy_timeout): about a
# minute in all, the sweep's period, after which the next sweep is the retry.
LOCKED_RETRY_S = locked.LOCKED_RETRY_S


async def when_unlocked(what: str, write: Callable[[], Awaitable[T]], *, waits: Sequence[float] | None = None,
                        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> T:
    """Run `write` (a transaction), trying again while SQLite says another writer holds the lock: one warning
    when it first waits, one line when it gets through or gives up (then StillLocked: the next sweep does it)."""
    try:
        return await locked.while_locked(what, write, LOCKED_RETRY_S if waits is None else waits, sleep)
    except locked.StayedLocked as err:
        log.warning("%s: the database stayed locked after %d tries; the next sweep will do it", what, err.tries)
        raise StillLocked(what) from err.__cause__


async def rebase_on_new_calendars(engine: AsyncEngine, book: ClockBook, now: datetime) -> list[dict[str, Any]]:
    """Keep every configured calendar version, and move running clocks started on an older version to the
    current one: the business time they had left is planned on the new hours. Returns the moved clocks."""
    kept = await store.keep_calendar_versions(
        engine, {(c.name, c.version): calendar_to_json(c) for c in book.settings.calendars.values()}, now)
    moved, batch = [], []
    old_calendars: dict[tuple[str, int], Calendar] = {}
    for clock in await store.running(engine):
        key = (clock["calendar"], clock["calendar_version"])
        if key not in kept:
            continue  # a version from before versions were kept: it stays planned as it was
        if key not in old_calendars:  # one parsed calendar per version: its weekly tables are built once
            old_calendars[key] = calendar_from_json(kept[key])
        update = book.rebased(clock, old_calendars[key], now)
        if update is None:
            continue
        detail = f"calendar {clock['calendar']} version {clock['calendar_version']} -> {update['calendar_version']}"
        batch.append((clock, update, {
            "conversation_id": clock["conversation_id"], "clock_id": clock["id"], "target": clock["target"],
            "kind": "rebase", "at": now, "business_due": update.get("business_due", clock["business_due"]),
            "wall_due": clock["wall_due"], "detail": detail,
        }))
        moved.append({**clock, **update})
        if len(batch) >= REBASE_BATCH:
            await sla_edits.rebase_many(engine, batch)
            batch = []
    await sla_edits.rebase_many(engine, batch)
    if moved:
        log.info("SLA: %d running clock(s) moved to new calendar versions", len(moved))
    return moved


async def settings_with_edits(engine: AsyncEngine, base: sla.SlaSettings) -> sla.SlaSettings:
    """The configured SLA settings with the calendars and policies saved from the web in force."""
    rows = await sla_edits.latest(engine)
    calendars = {r["name"]: r["definition"] for r in rows if r["kind"] == "calendar"}
    policies = {r["name"]: r["definition"] for r in rows if r["kind"] == "policy"}
    return with_edits(base, calendars, policies) if rows else base


async def use_edits(engine: AsyncEngine, book: ClockBook, base: sla.SlaSettings) -> bool:
    """Put the saved calendars and policies in force in this process; whether anything changed. A saved
    table that no longer parses (a calendar it names was removed from the file) keeps the settings as they
    were, logged once."""
    try:
        settings = await settings_with_edits(engine, base)
    except ConfigError as err:
        log.error("SLA settings saved from the web no longer apply (%s); keeping the current ones", err)
        return False
    if settings == book.settings:
        return False
    book.use(settings)
    log.info("SLA settings reloaded: calendars %s",
             ", ".join(f"{c.name} v{c.version}" for c in settings.calendars.values()) or "none")
    return True


class EditFollower:
    """Keeps this process's SLA settings in step with the calendars and policies saved from the web: at once
    after a save here, on the fan-out's word for a save elsewhere, and by a periodic check (the fan-out is
    at most once). The scheduler leader also rebases the running clocks and re-arms them."""

    def __init__(self, engine: AsyncEngine, book: ClockBook, base: sla.SlaSettings, now: Callable[[], datetime],
                 fan: Fanout, arm: Callable[[], Callable[[list[dict[str, Any]]], int] | None]) -> None:
        self.engine, self.book, self.base, self.now, self.fan, self.arm = engine, book, base, now, fan, arm
        self.seen = -1
        self.rebasing: asyncio.Task[None] | None = None
        self._one_at_a_time = asyncio.Lock()

    async def apply(self, *, background: bool = False) -> None:
        """Put the saved versions in force here; rebase and re-arm the running clocks when this process leads
        (in the background when asked: with many open conversations that takes a while)."""
        self.seen = await sla_edits.last_id(self.engine)
        await use_edits(self.engine, self.book, self.base)
        if self.arm() is None:
            return
        if background:
            self.rebasing = asyncio.create_task(self._rebase(), name="sla:rebase")
        else:
            await self._rebase()

    async def _rebase(self) -> None:
        async with self._one_at_a_time:  # two saves in a row: the second pass finds the first one's work done
            arm = self.arm()
            if arm is not None:
                arm(await rebase_on_new_calendars(self.engine, self.book, self.now()))

    async def settled(self) -> None:
        """Wait for the running clocks to be rebased after the last save (tests, shutdown)."""
        if self.rebasing is not None:
            await self.rebasing

    async def saved(self) -> None:
        """A calendar or policy was saved in this process: in force here at once, the running clocks rebased in
        the background, and the other processes told."""
        await self.apply(background=True)
        await self.fan.publish({"kind": EDITED})

    async def follow(self, poll_s: float = 60.0) -> None:
        """Until cancelled: apply other processes' saves as they are announced, or within `poll_s`."""
        async with self.fan.subscribe() as events:
            pending: asyncio.Task[dict[str, Any]] | None = None
            try:
                while True:
                    pending = pending or asyncio.ensure_future(anext(events))
                    done, _ = await asyncio.wait({pending}, timeout=poll_s)
                    if done:
                        event, pending = pending.result(), None
                        if event.get("kind") != EDITED or event.get("origin") == self.fan.origin:
                            continue
                    try:
                        if await sla_edits.last_id(self.engine) != self.seen:
                            await self.apply()
                    except Exception:  # a database hiccup: the next check tries again
                        log.exception("could not apply the SLA settings saved from the web")
            finally:
                if pending is not None:
                    pending.cancel()
