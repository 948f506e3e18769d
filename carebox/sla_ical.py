"""Closures read from an iCal (RFC 5545) text, for business calendars: closed dates and closed hours."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import icalendar

from carebox.errors import ConfigError

DAY_S = 86400
Span = tuple[int, int]  # local seconds from midnight, end exclusive


def ical_closures(text: str, tz: ZoneInfo, key: str) -> tuple[frozenset[date], dict[date, list[Span]]]:
    """All-day events as closed dates, timed events as closed spans per local date; cancelled events skipped."""
    try:
        parsed = icalendar.Calendar.from_ical(text)
    except (ValueError, IndexError, KeyError) as err:
        raise ConfigError(key, "an iCal file (RFC 5545) with VEVENT closures") from err
    closed: set[date] = set()
    spans: dict[date, list[Span]] = {}
    for event in parsed.walk("VEVENT"):
        if str(event.get("STATUS", "")).upper() == "CANCELLED":
            continue
        if "RRULE" in event or "RDATE" in event:
            raise ConfigError(key, "events without RRULE/RDATE (list each closure; recurring events are not expanded)")
        if "DTSTART" not in event:
            raise ConfigError(key, "events with a DTSTART")
        start = event.decoded("DTSTART")
        end = _end(event, start)
        if isinstance(start, datetime) != isinstance(end, datetime):
            raise ConfigError(key, "DTSTART and DTEND of the same kind (two dates or two date-times)")
        if isinstance(start, datetime):
            _add_spans(spans, _local(start, tz), _local(end, tz))
        else:
            day = start
            while day < end or day == start:
                closed.add(day)
                day += timedelta(days=1)
    return frozenset(closed), spans


def _end(event: icalendar.Component, start: date) -> date:
    """DTEND, else DTSTART + DURATION, else one day for a date and an instant for a date-time."""
    if "DTEND" in event:
        end = event.decoded("DTEND")
        return end if isinstance(end, date) else start
    if "DURATION" in event:
        duration = event.decoded("DURATION")
        return start + duration if isinstance(duration, timedelta) else start
    return start if isinstance(start, datetime) else start + timedelta(days=1)


def _local(at: date, tz: ZoneInfo) -> datetime:
    """A naive local wall-clock time in the calendar's zone; floating times are taken as already local."""
    if not isinstance(at, datetime):
        return datetime.combine(at, time())
    return at.astimezone(tz).replace(tzinfo=None) if at.tzinfo is not None else at


def _add_spans(spans: dict[date, list[Span]], start: datetime, end: datetime) -> None:
    """Split a local closure into per-day spans."""
    day = start.date()
    while datetime.combine(day, time()) < end:
        midnight = datetime.combine(day, time())
        a = max(start, midnight) - midnight
        b = min(end, midnight + timedelta(days=1)) - midnight
        if a < b:
            spans.setdefault(day, []).append((int(a.total_seconds()), int(b.total_seconds())))
        day += timedelta(days=1)


def subtract(windows: tuple[Span, ...], closures: list[Span]) -> tuple[Span, ...]:
    """The parts of `windows` left open once `closures` are taken out."""
    out: list[Span] = []
    for window in windows:
        pieces = [window]
        for a, b in closures:
            pieces = [p for s, e in pieces for p in ((s, min(e, a)), (max(s, b), e)) if p[0] < p[1]]
        out += pieces
    return tuple(sorted(out))
