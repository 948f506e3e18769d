""""Why this deadline": human lines explaining a clock's due time, for the conversation page and the CLI."""

from __future__ import annotations

from datetime import date, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo

from carebox.calendar import (
    ALWAYS_OPEN,
    Calendar,
    day_windows,
    holiday_name,
    open_intervals,
)
from carebox.duration import format_duration
from carebox.sla_clock import (
    Clock,
    ClockState,
    evaluate,
    pause,
    resume,
    running_stretches,
    start_clock,
    time_counted,
)
from carebox.sla_policy import ConversationFacts, SlaSettings, match_reasons

_MAX_WINDOW_LINES = 12
_MAX_SKIP_LINES = 12


def _zone(cal: Calendar, started_at: datetime) -> tzinfo:
    """The zone to show times in: the calendar's, or the customer's offset for 24/7 targets."""
    if cal.always_open and started_at.tzinfo is not None:
        return started_at.tzinfo
    return ZoneInfo(cal.timezone)


def _fmt(at: datetime, tz: tzinfo) -> str:
    """`at` in the calendar's zone, e.g. "Fri 2026-11-20 18:50 CET"."""
    return at.astimezone(tz).strftime("%a %Y-%m-%d %H:%M %Z")


def _hours(seconds: float) -> str:
    """Waiting time in hours as people say it: "63h" or "1.5h", with the short form beside it."""
    return f"{seconds / 3600:g}h ({format_duration(seconds)})"


def explain_due(
    settings: SlaSettings, clock: Clock, *, facts: ConversationFacts | None = None, now: datetime | None = None
) -> list[str]:
    """Lines saying which policy, calendar, windows, skipped days and pauses produce the clock's due time."""
    lines = _policy_lines(settings, clock, facts)
    target = clock.target
    cal = settings.calendar_for(target)
    tz = _zone(cal, clock.started_at)
    if cal.always_open:
        lines.append(f"target {target.kind}: {format_duration(target.seconds)} on the wall clock (24/7)")
    else:
        lines.append(
            f"target {target.kind}: {format_duration(target.seconds)} of business time on calendar "
            f"{cal.name!r} version {cal.version} ({cal.timezone})"
        )
        if clock.rebased_at is not None:
            lines.append(
                f"the calendar changed at {_fmt(clock.rebased_at, tz)}: {format_duration(clock.carried_s)} used on "
                f"earlier versions are kept; the rest is planned on version {clock.calendar_version}"
            )
        if clock.calendar_version != cal.version:
            lines.append(f"the clock was planned on version {clock.calendar_version}, not the current {cal.version}")
    lines.append(f"clock started {_fmt(clock.started_at, tz)} (the customer's message)")
    state = evaluate(clock, settings.calendars, now or clock.started_at)
    lines += _pause_lines(cal, clock, tz)
    if not cal.always_open:
        lines += _window_lines(cal, clock, state, tz)
    lines.append(
        f"business due {_fmt(state.business_due, tz)}; wall-clock due {_fmt(state.wall_due, tz)} "
        f"({format_duration(target.seconds)} of wall time)"
    )
    lines += _customer_lines(settings, clock, state, tz)
    return lines


def _policy_lines(settings: SlaSettings, clock: Clock, facts: ConversationFacts | None) -> list[str]:
    """Which policy applies and why."""
    if facts is None:
        return [f"policy {clock.policy!r} (chosen by name)"]
    skipped: list[str] = []
    for policy in settings.policies:
        reasons = match_reasons(policy, facts)
        if reasons is not None:
            before = f"; earlier policies {skipped} did not match" if skipped else " (the first policy)"
            return [f"policy {policy.name!r} matched because " + "; ".join(reasons) + before]
        skipped.append(policy.name)
    return [f"no policy matched (tried {skipped}); only the customer expectation is tracked"]


def _pause_lines(cal: Calendar, clock: Clock, tz: tzinfo) -> list[str]:
    """One line per pause, with the business time it did not count."""
    lines = []
    for began, ended in clock.paused:
        if ended is None:
            lines.append(f"paused since {_fmt(began, tz)} (waiting on the customer): the due time moves until resumed")
            continue
        lost = format_duration(max(0.0, _business(cal, began, ended)))
        clock_name = "wall" if cal.always_open else "business"
        lines.append(f"paused {_fmt(began, tz)} to {_fmt(ended, tz)}: {lost} of {clock_name} time not counted")
    return lines


def _business(cal: Calendar, began: datetime, ended: datetime) -> float:
    """Business seconds inside one pause."""
    return time_counted(cal, [(began, ended)], ended)


def _window_lines(cal: Calendar, clock: Clock, state: ClockState, tz: tzinfo) -> list[str]:
    """The opening windows counted toward the target, and the local days skipped between them."""
    counted: list[tuple[datetime, datetime]] = []
    for began, ended in running_stretches(clock.rebased_at or clock.started_at, clock.paused):
        stop = state.business_due if ended is None or ended > state.business_due else ended
        if began < stop:
            counted += open_intervals(cal, began, stop)
    lines = []
    for began, ended in counted[:_MAX_WINDOW_LINES]:
        lines.append(
            f"counted {_fmt(began, tz)} to {ended.astimezone(tz):%H:%M} "
            f"({format_duration((ended - began).total_seconds())})"
        )
    if len(counted) > _MAX_WINDOW_LINES:
        lines.append(f"... and {len(counted) - _MAX_WINDOW_LINES} more windows")
    used_days = {d for a, b in counted for d in _local_days(a, b, tz)}
    first = clock.started_at.astimezone(tz).date()
    last = state.business_due.astimezone(tz).date()
    days = (first + timedelta(days=i) for i in range((last - first).days + 1))
    skips = [reason for day in days if day not in used_days and (reason := _skip_reason(cal, day))]
    lines += skips[:_MAX_SKIP_LINES]
    if len(skips) > _MAX_SKIP_LINES:
        lines.append(f"... and {len(skips) - _MAX_SKIP_LINES} more days skipped")
    return lines


def _local_days(began: datetime, ended: datetime, tz: tzinfo) -> set[date]:
    """Local dates an interval touches."""
    a, b = began.astimezone(tz).date(), (ended - timedelta(microseconds=1)).astimezone(tz).date()
    return {a + timedelta(days=i) for i in range((b - a).days + 1)}


def _skip_reason(cal: Calendar, day: date) -> str | None:
    """Why no time was counted on `day`, when the calendar itself closed it."""
    label = f"{day:%a %Y-%m-%d}"
    if day in cal.partial_days:
        return None if day_windows(cal, day) else f"skipped {label}: closed that day (partial day with no hours)"
    if day in cal.closed_dates:
        return f"skipped {label}: closed date"
    name = holiday_name(cal, day)
    if name is not None and cal.holiday_country is not None:
        region = cal.holiday_country + (f"-{cal.holiday_subdivision}" if cal.holiday_subdivision else "")
        return f"skipped {label}: public holiday {name} ({region})"
    if not cal.weekly[day.weekday()]:
        return f"skipped {label}: no opening hours on {day:%A}s"
    return None


def _customer_lines(settings: SlaSettings, clock: Clock, state: ClockState, tz: tzinfo) -> list[str]:
    """The customer-expectation clock beside the contract."""
    expectation = start_clock(settings.expectation_target(), clock.policy, clock.started_at)
    for began, ended in clock.paused:
        expectation = _replay_pause(expectation, began, ended)
    due = evaluate(expectation, settings.calendars, clock.started_at).wall_due
    waited = time_counted(ALWAYS_OPEN, running_stretches(clock.started_at, clock.paused), state.business_due)
    return [
        f"customer expectation ({format_duration(settings.customer_expectation_s)}, 24/7) due {_fmt(due, tz)}",
        f"at the business due time the customer has waited {_hours(waited)}",
    ]


def _replay_pause(clock: Clock, began: datetime, ended: datetime | None) -> Clock:
    """The same pause applied to another clock."""
    paused = pause(clock, began)
    return paused if ended is None else resume(paused, ended)
