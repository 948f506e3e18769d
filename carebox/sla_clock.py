"""The SLA clock: started, paused, resumed, fulfilled, rebased; evaluated on both clocks at `now`."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import NamedTuple

from carebox.calendar import (
    ALWAYS_OPEN,
    Calendar,
    add_business,
    add_micros,
    between_micros,
    from_micros,
    is_open,
    is_open_micros,
    next_opening,
    next_opening_micros,
    to_micros,
)
from carebox.sla_policy import (
    DEFAULT_LADDER,
    EscalationStep,
    ReplyKind,
    ResponseRule,
    Target,
    TargetKind,
    Trigger,
    counts_as_response,
)


class ClockStatus(StrEnum):
    """Where a clock stands at a given instant."""

    RUNNING = "running"
    PAUSED = "paused"
    WARNING = "warning"
    BREACHED = "breached"
    FULFILLED = "fulfilled"


Pause = tuple[datetime, datetime | None]
_US = 1_000_000


@dataclass(frozen=True, slots=True)
class Clock:
    """One running promise: started at the customer's message, paused, rebased, fulfilled."""

    target: Target
    policy: str
    started_at: datetime
    calendar_version: int = 1
    paused: tuple[Pause, ...] = ()
    fulfilled_at: datetime | None = None
    carried_s: float = 0.0  # business seconds used on earlier calendar versions
    rebased_at: datetime | None = None  # when the current calendar version took over
    # the due times depend only on this frozen clock and its calendar: computed once, kept for re-evaluations
    _plan: list[_Plan] = field(default_factory=list, init=False, repr=False, compare=False)

    @property
    def is_paused(self) -> bool:
        """Whether the last pause is still open."""
        return bool(self.paused) and self.paused[-1][1] is None


@dataclass(frozen=True, slots=True)
class ClockState:
    """A clock evaluated at `now`, on both the business and the wall clock."""

    kind: TargetKind
    state: ClockStatus
    business_due: datetime
    wall_due: datetime
    warn_at: datetime | None
    business_used_s: float
    business_left_s: float
    wall_waited_s: float
    breached: bool


def start_clock(target: Target, policy: str, at: datetime, calendar_version: int = 1) -> Clock:
    """A clock started by the customer's message at `at`."""
    return Clock(target=target, policy=policy, started_at=at, calendar_version=calendar_version)


def pause(clock: Clock, at: datetime) -> Clock:
    """Stop the clock (a pausing status); no change when already paused or fulfilled."""
    if clock.is_paused or clock.fulfilled_at is not None:
        return clock
    return replace(clock, paused=(*clock.paused, (at, None)))


def resume(clock: Clock, at: datetime) -> Clock:
    """Restart a paused clock."""
    if not clock.is_paused:
        return clock
    began, _ = clock.paused[-1]
    return replace(clock, paused=(*clock.paused[:-1], (began, max(at, began))))


def fulfil(clock: Clock, at: datetime) -> Clock:
    """Stop the clock for good at the response (the first fulfilment wins)."""
    if clock.fulfilled_at is not None:
        return clock
    return replace(resume(clock, at), fulfilled_at=at)


def rebase(clock: Clock, old: Calendar, new: Calendar, at: datetime) -> Clock:
    """Move a clock to a new calendar version at `at`, keeping the business time already used."""
    stretches = running_stretches(clock.rebased_at or clock.started_at, clock.paused)
    used = time_counted(old, stretches, at) + clock.carried_s
    return replace(clock, calendar_version=new.version, carried_s=used, rebased_at=at)


def running_stretches(anchor: datetime, paused: tuple[Pause, ...]) -> list[Pause]:
    """Stretches from `anchor` on while the clock runs; the last one is open-ended unless paused."""
    out: list[Pause] = []
    cursor: datetime | None = anchor
    for began, ended in paused:
        if cursor is None:
            break
        if ended is not None and ended <= cursor:
            continue
        if began > cursor:
            out.append((cursor, began))
        cursor = ended
    if cursor is not None:
        out.append((cursor, None))
    return out


def time_counted(cal: Calendar, segments: list[Pause], end: datetime) -> float:
    """Seconds of `cal` time the clock ran before `end`."""
    return _counted_us(cal, _micros(segments), to_micros(end)) / _US


_Stretch = tuple[int, int | None]


def _micros(segments: list[Pause]) -> list[_Stretch]:
    """Running stretches in epoch microseconds."""
    return [(to_micros(a), None if b is None else to_micros(b)) for a, b in segments]


def _counted_us(cal: Calendar, stretches: list[_Stretch], end: int) -> int:
    """Microseconds of `cal` time run before `end`."""
    total = 0
    for began, ended in stretches:
        if began >= end:
            break
        total += between_micros(cal, began, end if ended is None or ended > end else ended)
    return total


def _due_us(cal: Calendar, stretches: list[_Stretch], left: int, now: int) -> int:
    """When `left` microseconds of `cal` time will have run; a paused clock is planned as if resumed now."""
    if left <= 0:
        return stretches[0][0] if stretches else now
    for began, ended in stretches:
        if ended is None:
            return add_micros(cal, began, left)
        run = between_micros(cal, began, ended)
        if left <= run:
            return add_micros(cal, began, left)
        left -= run
    last = stretches[-1][1] if stretches else None
    return add_micros(cal, now if last is None else max(now, last), left)


def evaluate(clock: Clock, calendars: Mapping[str, Calendar], now: datetime) -> ClockState:
    """The clock at `now`: both due times, time used and left, waiting, and its state."""
    return _evaluate(clock, calendars, now, to_micros(now))


def evaluate_all(clocks: Iterable[Clock], calendars: Mapping[str, Calendar], now: datetime) -> list[ClockState]:
    """`evaluate` for many clocks at one instant (the sweep)."""
    t_now = to_micros(now)
    return [_evaluate(clock, calendars, now, t_now) for clock in clocks]


class _Plan(NamedTuple):
    """A clock's due times on one calendar, in microseconds and as datetimes (internal: a tuple is cheap)."""

    calendar: Calendar
    start: int
    business: list[_Stretch] | None  # None: no pause and no rebase, the clock runs from `start`
    wall: list[_Stretch] | None
    due: int
    warn: int | None
    due_at: datetime
    wall_due_at: datetime
    warn_at: datetime | None


def _straight_due(target: Target, cal: Calendar, t0: int) -> tuple[int, int | None]:
    """Due and warning instants (µs) of a clock started at `t0` that never paused nor moved."""
    lead = target.warn_lead()
    need = round(target.seconds * _US)
    # open_only: a warning outside service hours waits for the next opening (a no-op on 24/7)
    return add_micros(cal, t0, need), None if lead is None else add_micros(cal, t0, need - round(lead * _US), open_only=True)


def planned_due(target: Target, cal: Calendar, started_at: datetime) -> tuple[datetime, datetime | None]:
    """(business due, warn at) of a clock just started at `started_at`: what `evaluate` gives it then, for less."""
    due, warn = _straight_due(target, cal, to_micros(started_at))
    return from_micros(due), None if warn is None else from_micros(warn)


def _make_plan(clock: Clock, cal: Calendar, t_now: int) -> _Plan:
    """Compute a clock's due and warning instants (a paused clock as if resumed at `t_now`)."""
    target = clock.target
    lead = target.warn_lead()
    need = round(target.seconds * _US)
    t0 = to_micros(clock.started_at)
    business = wall = None
    if not clock.paused and clock.rebased_at is None:
        due, warn = _straight_due(target, cal, t0)
        wall_due = t0 + need
    else:
        business = _micros(running_stretches(clock.rebased_at or clock.started_at, clock.paused))
        wall = _micros(running_stretches(clock.started_at, clock.paused))
        left = need - round(clock.carried_s * _US)
        due = _due_us(cal, business, left, t_now)
        wall_due = _due_us(ALWAYS_OPEN, wall, need, t_now)
        warn = None if lead is None else _due_us(cal, business, max(0, left - round(lead * _US)), t_now)
        if warn is not None and not cal.always_open and not is_open_micros(cal, warn):
            warn = next_opening_micros(cal, warn)  # nobody is there to be warned: wait for the next opening
    return _Plan(cal, t0, business, wall, due, warn, from_micros(due), from_micros(wall_due),
                 None if warn is None else from_micros(warn))


def _evaluate(clock: Clock, calendars: Mapping[str, Calendar], now: datetime, t_now: int) -> ClockState:
    """`evaluate` with `now` already in microseconds."""
    target = clock.target
    cal = ALWAYS_OPEN if target.calendar is None else calendars[target.calendar]
    memo = clock._plan
    if memo and memo[0].calendar is cal:
        plan = memo[0]
    else:
        plan = _make_plan(clock, cal, t_now)
        if not clock.is_paused:  # an open pause moves the due time with `now`: nothing to keep
            memo[:] = [plan]
    t_end = t_now if clock.fulfilled_at is None else min(t_now, to_micros(clock.fulfilled_at))
    if plan.business is None or plan.wall is None:
        used = between_micros(cal, plan.start, t_end) if t_end > plan.start else 0
        waited = max(0, t_end - plan.start)
    else:
        used = round(clock.carried_s * _US) + _counted_us(cal, plan.business, t_end)
        waited = _counted_us(ALWAYS_OPEN, plan.wall, t_end)
    used_s = used / _US
    breached = used_s > target.seconds
    if clock.fulfilled_at is not None and clock.fulfilled_at <= now:
        state = ClockStatus.FULFILLED
    elif breached:
        state = ClockStatus.BREACHED
    elif clock.is_paused:
        state = ClockStatus.PAUSED
    elif plan.warn is not None and t_now >= plan.warn:
        state = ClockStatus.WARNING
    else:
        state = ClockStatus.RUNNING
    return ClockState(
        kind=target.kind, state=state, business_due=plan.due_at, wall_due=plan.wall_due_at, warn_at=plan.warn_at,
        business_used_s=used_s, business_left_s=target.seconds - used_s, wall_waited_s=waited / _US,
        breached=breached,
    )


def escalations(
    state: ClockState, cal: Calendar, ladder: tuple[EscalationStep, ...] = DEFAULT_LADDER
) -> list[tuple[datetime, EscalationStep]]:
    """When each ladder step fires for this clock, in order; none for paused or fulfilled clocks."""
    if state.state in (ClockStatus.PAUSED, ClockStatus.FULFILLED):
        return []
    out = []
    for step in ladder:
        base = state.warn_at if step.trigger == Trigger.WARNING else state.business_due
        if base is None:
            continue
        at = add_business(cal, base, step.after_s)
        if not cal.always_open and not is_open(cal, at):
            at = next_opening(cal, at)  # never page anyone outside service hours unless the policy is 24/7
        out.append((at, step))
    out.sort(key=lambda pair: pair[0])
    return out


@dataclass(frozen=True, slots=True)
class Message:
    """One message of a conversation, as the response clocks see it."""

    at: datetime
    inbound: bool
    reply: ReplyKind | None = None  # how an outbound message was sent


def response_clocks(
    messages: Iterable[Message], rule: ResponseRule
) -> list[tuple[TargetKind, datetime, datetime | None]]:
    """(kind, started_at, fulfilled_at) of the first- and next-response clocks a conversation's messages run."""
    out: list[tuple[TargetKind, datetime, datetime | None]] = []
    running: tuple[TargetKind, datetime] | None = None
    for message in sorted(messages, key=lambda m: m.at):
        if message.inbound:
            if running is None:  # the first customer message, or the first one after a reply that counted
                running = (TargetKind.NEXT_RESPONSE if out else TargetKind.FIRST_RESPONSE, message.at)
            continue
        if running is not None and counts_as_response(rule, message.reply or ReplyKind.PUBLIC, running[0]):
            out.append((*running, message.at))
            running = None
    if running is not None:
        out.append((*running, None))
    return out
