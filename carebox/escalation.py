"""Timed SLA events: a warning at its instant, a breach at the due time, and the escalation ladder after it.

Each fires at most once (the clock row records it inside the same transaction), is skipped once the
clock is fulfilled or the conversation is no longer open, and is logged as an SlaEvent with both
clocks' values so reports can trace it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from carebox import sla
from carebox.clocks import ClockBook, calendar_from_json, calendar_to_json
from carebox.store import clocks as store
from carebox.store.engine import write_transaction

log = logging.getLogger(__name__)


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


async def sweep(engine: AsyncEngine, book: ClockBook, now: Callable[[], datetime]) -> list[Fired]:
    """Fire whatever should have fired already (a missed job, a restart): the reconciliation pass."""
    fired = []
    for clock_id, kind in await store.overdue(engine, now()):
        event = await fire(engine, book, clock_id, kind, now())
        if event is not None:
            fired.append(event)
    return fired


async def rebase_on_new_calendars(engine: AsyncEngine, book: ClockBook, now: datetime) -> list[dict[str, Any]]:
    """Keep every configured calendar version, and move running clocks started on an older version to the
    current one: the business time they had left is planned on the new hours. Returns the moved clocks."""
    kept = await store.keep_calendar_versions(
        engine, {(c.name, c.version): calendar_to_json(c) for c in book.settings.calendars.values()}, now)
    moved = []
    for clock in await store.running(engine):
        old_definition = kept.get((clock["calendar"], clock["calendar_version"]))
        if old_definition is None:
            continue  # a version from before versions were kept: it stays planned as it was
        update = book.rebased(clock, calendar_from_json(old_definition), now)
        if update is None:
            continue
        detail = f"calendar {clock['calendar']} version {clock['calendar_version']} -> {update['calendar_version']}"
        await store.rebase(engine, clock, update, {
            "conversation_id": clock["conversation_id"], "clock_id": clock["id"], "target": clock["target"],
            "kind": "rebase", "at": now, "business_due": update.get("business_due", clock["business_due"]),
            "wall_due": clock["wall_due"], "detail": detail,
        })
        log.info("SLA clock %d: %s", clock["id"], detail)
        moved.append({**clock, **update})
    return moved
