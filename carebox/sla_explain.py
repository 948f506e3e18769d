""""Why this deadline": human lines explaining a clock's due time, for the conversation page and the CLI."""

from __future__ import annotations

import calendar as weekdays
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo

from carebox.calendar import (
    ALWAYS_OPEN,
    Calendar,
    day_windows,
    holiday_name,
    holiday_names,
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
from carebox.sla_policy import (
    NO_CONDITIONS,
    ConversationFacts,
    MatchReason,
    SlaSettings,
    TargetKind,
    policy_match,
)

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


@dataclass(frozen=True, slots=True)
class HourOf:
    """An instant shown as its time of day only (the end of a window that began the same day)."""

    at: datetime


@dataclass(frozen=True, slots=True)
class Weekday:
    """A day of the week in general ("no opening hours on Saturdays"); 0 is Monday."""

    number: int


@dataclass(frozen=True, slots=True)
class Duration:
    """A length of time, written "2d 3h" in English and as its reader's language writes it on a page."""

    seconds: float


@dataclass(frozen=True, slots=True)
class Hours:
    """A long wait in hours, with the short form beside it: "63h (2d 15h)"."""

    seconds: float


@dataclass(frozen=True, slots=True)
class Name:
    """A configured name or fact value, quoted; `term` when it is a word the page translates (a category)."""

    text: str
    term: bool = False


@dataclass(frozen=True, slots=True)
class Names:
    """Several names, e.g. the policies tried or the values a condition allows."""

    items: tuple[str, ...]
    term: bool = False


@dataclass(frozen=True, slots=True)
class Holiday:
    """A public holiday: its English name, and where and when it falls, to name it in another language."""

    name: str
    country: str
    subdivision: str | None
    day: date


@dataclass(frozen=True, slots=True)
class Line:
    """One line: an English %-template and its values; instants stay datetimes so a page can localize them."""

    template: str
    values: Mapping[str, object] = field(default_factory=dict)

    def text(self, tz: tzinfo) -> str:
        """The English line with times in `tz`, e.g. "clock started Fri 2026-11-20 18:50 CET (...)"."""
        return self.template % {key: plain(value, tz) for key, value in self.values.items()}


@dataclass(frozen=True, slots=True)
class Reasons:
    """The reasons a policy matched, each a line of its own, read one after the other."""

    lines: tuple[Line, ...]


def plain(value: object, tz: tzinfo) -> object:
    """A line's value as the English text (and the CLI) shows it, instants in `tz`."""
    if isinstance(value, datetime):
        return _fmt(value, tz)
    if isinstance(value, HourOf):
        return f"{value.at.astimezone(tz):%H:%M}"
    if isinstance(value, date):
        return f"{value:%a %Y-%m-%d}"
    if isinstance(value, Weekday):
        return weekdays.day_name[value.number] + "s"
    if isinstance(value, Duration):
        return format_duration(value.seconds)
    if isinstance(value, Hours):  # waiting time in hours as people say it: "63h" or "1.5h"
        return f"{round(value.seconds / 3600, 1):g}h ({format_duration(value.seconds)})"
    if isinstance(value, Name):
        return repr(value.text)
    if isinstance(value, Names):
        return str(list(value.items))
    if isinstance(value, Holiday):
        return value.name
    if isinstance(value, Reasons):
        return "; ".join(line.text(tz) for line in value.lines)
    return value


def holiday_name_in(holiday: Holiday, language: str) -> str:
    """The holiday's name in `language` ("fr": "Noël"), its English name when that is unknown."""
    if language == "en":
        return holiday.name
    try:
        names = holiday_names(holiday.country, holiday.subdivision, holiday.day.year, language)
    except (NotImplementedError, KeyError, ValueError):
        return holiday.name
    return names.get(holiday.day, holiday.name)


def explain_due(
    settings: SlaSettings, clock: Clock, *, facts: ConversationFacts | None = None, now: datetime | None = None
) -> list[str]:
    """Lines saying which policy, calendar, windows, skipped days and pauses produce the clock's due time."""
    tz = _zone(settings.calendar_for(clock.target), clock.started_at)
    return [line.text(tz) for line in explain_lines(settings, clock, facts=facts, now=now)]


def explain_lines(
    settings: SlaSettings, clock: Clock, *, facts: ConversationFacts | None = None, now: datetime | None = None
) -> list[Line]:
    """explain_due as templates and values, for a page that shows times in its reader's zone and language."""
    lines = _policy_lines(settings, clock, facts)
    target = clock.target
    cal = settings.calendar_for(target)
    tz = _zone(cal, clock.started_at)
    length = Duration(target.seconds)
    if cal.always_open:
        lines.append(Line("target %(kind)s: %(length)s on the wall clock (24/7)", {"kind": target.kind, "length": length}))
    else:
        lines.append(Line(
            "target %(kind)s: %(length)s of business time on calendar '%(calendar)s' version %(version)s (%(zone)s)",
            {"kind": target.kind, "length": length, "calendar": cal.name, "version": cal.version, "zone": cal.timezone},
        ))
        if clock.rebased_at is not None:
            lines.append(Line(
                "the calendar changed at %(at)s: %(used)s used on earlier versions are kept; "
                "the rest is planned on version %(version)s",
                {"at": clock.rebased_at, "used": Duration(clock.carried_s), "version": clock.calendar_version},
            ))
        if clock.calendar_version != cal.version:
            lines.append(Line("the clock was planned on version %(planned)s, not the current %(current)s",
                              {"planned": clock.calendar_version, "current": cal.version}))
    lines.append(Line("clock started %(at)s (the customer's message)", {"at": clock.started_at}))
    state = evaluate(clock, settings.calendars, now or clock.started_at)
    lines += _pause_lines(cal, clock)
    if not cal.always_open:
        lines += _window_lines(cal, clock, state, tz)
    lines.append(Line(
        "business due %(business)s; wall-clock due %(wall)s (%(length)s of wall time)",
        {"business": state.business_due, "wall": state.wall_due, "length": length},
    ))
    lines += _customer_lines(settings, clock, state)
    return lines


def expectation_only_lines(settings: SlaSettings, policy: str, kind: str, started_at: datetime,
                           due: datetime) -> list[Line] | None:
    """Why a stored clock of a policy that sets no `kind` target is due when it is: it is the customer expectation
    alone, on the wall clock (`ClockBook.start`). None when the policy is gone or does set that target."""
    try:
        target = settings.policy(policy).target(TargetKind(kind))
    except (KeyError, ValueError):
        return None
    if target is not None:
        return None
    return [
        Line("policy '%(policy)s' sets no %(kind)s target: only the customer expectation (%(length)s, 24/7) runs",
             {"policy": policy, "kind": TargetKind(kind), "length": Duration(settings.customer_expectation_s)}),
        Line("clock started %(at)s (the customer's message)", {"at": started_at}),
        Line("customer expectation due %(due)s; without a contract target it neither warns nor breaches",
             {"due": due}),
    ]


def _policy_lines(settings: SlaSettings, clock: Clock, facts: ConversationFacts | None) -> list[Line]:
    """Which policy applies and why."""
    if facts is None:
        return [Line("policy '%(policy)s' (chosen by name)", {"policy": clock.policy})]
    skipped: list[str] = []
    for policy in settings.policies:
        reasons = policy_match(policy, facts)
        if reasons is not None:
            said = Reasons(tuple(_reason_line(r) for r in reasons) or (Line(NO_CONDITIONS),))
            values = {"policy": policy.name, "reasons": said, "skipped": Names(tuple(skipped))}
            if skipped:
                return [Line("policy '%(policy)s' matched because %(reasons)s; earlier policies %(skipped)s did not match",
                             values)]
            return [Line("policy '%(policy)s' matched because %(reasons)s (the first policy)", values)]
        skipped.append(policy.name)
    return [Line("no policy matched (tried %(skipped)s); only the customer expectation is tracked",
                 {"skipped": Names(tuple(skipped))})]


_REASONS = {
    "network": "network %(value)s is in %(allowed)s",
    "account": "account %(value)s is in %(allowed)s",
    "priority": "priority %(value)s is in %(allowed)s",
    "category": "category %(value)s is in %(allowed)s",
    "language": "language %(value)s is in %(allowed)s",
}


def _reason_line(reason: MatchReason) -> Line:
    """One condition that held, in the words of sla_policy.match_reasons."""
    term = reason.fact == "category"
    if reason.fact == "tags":
        return Line("tags %(value)s are among %(allowed)s", {"value": Names(reason.values), "allowed": Names(reason.allowed)})
    return Line(_REASONS[reason.fact], {"value": Name(reason.values[0], term), "allowed": Names(reason.allowed, term)})


def _pause_lines(cal: Calendar, clock: Clock) -> list[Line]:
    """One line per pause, with the business time it did not count."""
    lines = []
    for began, ended in clock.paused:
        if ended is None:
            lines.append(Line("paused since %(began)s (waiting on the customer): the due time moves until resumed",
                              {"began": began}))
            continue
        lost = Duration(max(0.0, _business(cal, began, ended)))
        template = ("paused %(began)s to %(ended)s: %(lost)s of wall time not counted" if cal.always_open
                    else "paused %(began)s to %(ended)s: %(lost)s of business time not counted")
        lines.append(Line(template, {"began": began, "ended": ended, "lost": lost}))
    return lines


def _business(cal: Calendar, began: datetime, ended: datetime) -> float:
    """Business seconds inside one pause."""
    return time_counted(cal, [(began, ended)], ended)


def _window_lines(cal: Calendar, clock: Clock, state: ClockState, tz: tzinfo) -> list[Line]:
    """The opening windows counted toward the target, and the local days skipped between them."""
    counted: list[tuple[datetime, datetime]] = []
    for began, ended in running_stretches(clock.rebased_at or clock.started_at, clock.paused):
        stop = state.business_due if ended is None or ended > state.business_due else ended
        if began < stop:
            counted += open_intervals(cal, began, stop)
    lines = []
    for began, ended in counted[:_MAX_WINDOW_LINES]:
        lines.append(Line("counted %(began)s to %(ended)s (%(length)s)", {
            "began": began, "ended": HourOf(ended), "length": Duration((ended - began).total_seconds())}))
    if len(counted) > _MAX_WINDOW_LINES:
        lines.append(Line("... and %(count)s more windows", {"count": len(counted) - _MAX_WINDOW_LINES}))
    used_days = {d for a, b in counted for d in _local_days(a, b, tz)}
    first = clock.started_at.astimezone(tz).date()
    last = state.business_due.astimezone(tz).date()
    days = (first + timedelta(days=i) for i in range((last - first).days + 1))
    skips = [reason for day in days if day not in used_days and (reason := _skip_reason(cal, day))]
    lines += skips[:_MAX_SKIP_LINES]
    if len(skips) > _MAX_SKIP_LINES:
        lines.append(Line("... and %(count)s more days skipped", {"count": len(skips) - _MAX_SKIP_LINES}))
    return lines


def _local_days(began: datetime, ended: datetime, tz: tzinfo) -> set[date]:
    """Local dates an interval touches."""
    a, b = began.astimezone(tz).date(), (ended - timedelta(microseconds=1)).astimezone(tz).date()
    return {a + timedelta(days=i) for i in range((b - a).days + 1)}


def _skip_reason(cal: Calendar, day: date) -> Line | None:
    """Why no time was counted on `day`, when the calendar itself closed it."""
    if day in cal.partial_days:
        return None if day_windows(cal, day) else Line(
            "skipped %(day)s: closed that day (partial day with no hours)", {"day": day})
    if day in cal.closed_dates:
        return Line("skipped %(day)s: closed date", {"day": day})
    name = holiday_name(cal, day)
    if name is not None and cal.holiday_country is not None:
        region = cal.holiday_country + (f"-{cal.holiday_subdivision}" if cal.holiday_subdivision else "")
        holiday = Holiday(name, cal.holiday_country, cal.holiday_subdivision, day)
        return Line("skipped %(day)s: public holiday %(holiday)s (%(region)s)", {"day": day, "holiday": holiday,
                                                                              "region": region})
    if not cal.weekly[day.weekday()]:
        return Line("skipped %(day)s: no opening hours on %(weekdays)s", {"day": day, "weekdays": Weekday(day.weekday())})
    return None


def _customer_lines(settings: SlaSettings, clock: Clock, state: ClockState) -> list[Line]:
    """The customer-expectation clock beside the contract."""
    expectation = start_clock(settings.expectation_target(), clock.policy, clock.started_at)
    for began, ended in clock.paused:
        expectation = _replay_pause(expectation, began, ended)
    due = evaluate(expectation, settings.calendars, clock.started_at).wall_due
    waited = time_counted(ALWAYS_OPEN, running_stretches(clock.started_at, clock.paused), state.business_due)
    return [
        Line("customer expectation (%(length)s, 24/7) due %(due)s",
             {"length": Duration(settings.customer_expectation_s), "due": due}),
        Line("at the business due time the customer has waited %(waited)s", {"waited": Hours(waited)}),
    ]


def _replay_pause(clock: Clock, began: datetime, ended: datetime | None) -> Clock:
    """The same pause applied to another clock."""
    paused = pause(clock, began)
    return paused if ended is None else resume(paused, ended)
