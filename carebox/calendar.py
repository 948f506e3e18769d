"""Business-hours calendars: weekly windows in a time zone, holidays, and business-time arithmetic."""

from __future__ import annotations

import functools
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from itertools import pairwise
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays

from carebox.errors import ConfigError

DAY_S = 86400
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_US = 1_000_000
_CHUNK_US = 7 * DAY_S * _US  # the timeline is precomputed in UTC weeks, built lazily and kept
_MAX_CHUNKS = 52 * 30  # a calendar that stays shut for 30 years cannot work
_CACHE_LIMIT = 4096

Window = tuple[int, int]  # local seconds from the day's midnight; end > 86400 crosses midnight


@dataclass(frozen=True, slots=True)
class Calendar:
    """Opening windows per weekday in an IANA zone, minus holidays and closed dates, versioned."""

    name: str
    timezone: str = "UTC"
    weekly: tuple[tuple[Window, ...], ...] = ((),) * 7
    always_open: bool = False
    holiday_country: str | None = None
    holiday_subdivision: str | None = None
    closed_dates: frozenset[date] = frozenset()
    partial_days: Mapping[date, tuple[Window, ...]] = field(default_factory=dict, hash=False)
    version: int = 1
    _chunks: dict[int, _Chunk] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __hash__(self) -> int:
        return hash((self.name, self.timezone, self.weekly, self.always_open, self.version))


@dataclass(frozen=True, slots=True)
class _Chunk:
    """Open intervals of one UTC week in microseconds, with cumulative business time."""

    starts: list[int]
    ends: list[int]
    before: list[int]  # business microseconds in this chunk before interval i
    after: list[int]  # ... up to the end of interval i
    total: int


ALWAYS_OPEN = Calendar(name="24/7", timezone="UTC", always_open=True)


@functools.lru_cache(maxsize=512)
def holiday_names(country: str, subdivision: str | None, year: int, language: str | None = None) -> dict[date, str]:
    """Public holidays of one year, as the `holidays` package knows them, named in `language` when given (its
    own names when it lacks that language)."""
    table = holidays.country_holidays(country, subdiv=subdivision, years=year, language=language)
    return {day: str(name) for day, name in table.items()}


def holiday_name(cal: Calendar, day: date) -> str | None:
    """The holiday that closes `day` in this calendar, if any."""
    if cal.holiday_country is None:
        return None
    return holiday_names(cal.holiday_country, cal.holiday_subdivision, day.year).get(day)


def day_windows(cal: Calendar, day: date) -> tuple[Window, ...]:
    """The windows that open on local date `day`: partial day, else none on closed days, else weekly."""
    if cal.always_open:
        return ((0, DAY_S),)
    if day in cal.partial_days:
        return cal.partial_days[day]
    if day in cal.closed_dates or holiday_name(cal, day) is not None:
        return ()
    return cal.weekly[day.weekday()]


def _local_micros(tz: ZoneInfo, day: date, seconds: int, is_end: bool) -> int:
    """UTC microseconds of local `day` + `seconds`; an end in a repeated hour takes its second pass."""
    naive = datetime(day.year, day.month, day.day) + timedelta(seconds=seconds)
    first = naive.replace(tzinfo=tz, fold=0)
    if is_end:
        second = naive.replace(tzinfo=tz, fold=1)
        if second.timestamp() > first.timestamp():  # ambiguous (clocks went back): open until the later one
            first = second
    return int(first.timestamp()) * _US


def _build_chunk(cal: Calendar, k: int) -> _Chunk:
    """Merge the windows of every local day touching UTC week `k` into a sorted timeline."""
    lo, hi = k * _CHUNK_US, (k + 1) * _CHUNK_US
    tz = ZoneInfo(cal.timezone)
    first = datetime.fromtimestamp(lo // _US, tz).date() - timedelta(days=2)
    last = datetime.fromtimestamp(hi // _US, tz).date() + timedelta(days=1)
    spans: list[tuple[int, int]] = []
    day = first
    while day <= last:
        for start_s, end_s in day_windows(cal, day):
            a = max(lo, _local_micros(tz, day, start_s, False))
            b = min(hi, _local_micros(tz, day, end_s, True))
            if a < b:
                spans.append((a, b))
        day += timedelta(days=1)
    spans.sort()
    starts: list[int] = []
    ends: list[int] = []
    for a, b in spans:
        if ends and a <= ends[-1]:
            ends[-1] = max(ends[-1], b)
        else:
            starts.append(a)
            ends.append(b)
    before, after, total = [], [], 0
    for a, b in zip(starts, ends, strict=True):
        before.append(total)
        total += b - a
        after.append(total)
    return _Chunk(starts, ends, before, after, total)


def _chunk(cal: Calendar, k: int) -> _Chunk:
    """The precomputed week `k`, built on first use."""
    found = cal._chunks.get(k)
    if found is None:
        if len(cal._chunks) >= _CACHE_LIMIT:
            cal._chunks.clear()
        found = cal._chunks[k] = _build_chunk(cal, k)
    return found


def to_micros(at: datetime) -> int:
    """UTC microseconds since the epoch of an aware datetime (exact)."""
    if at.tzinfo is None:
        raise ValueError(f"naive datetime {at.isoformat()}: carebox needs timezone-aware instants")
    return round(at.timestamp() * _US)  # exact: the float error is far below half a microsecond


def from_micros(us: int) -> datetime:
    """An aware UTC datetime from epoch microseconds."""
    return datetime.fromtimestamp(us / _US, UTC)


def _offset(tab: _Chunk, t: int) -> int:
    """Business microseconds of the chunk elapsed before instant `t`."""
    i = bisect_right(tab.ends, t)
    if i == len(tab.ends):
        return tab.total
    return tab.before[i] + max(0, t - tab.starts[i])


def add_micros(cal: Calendar, t: int, need: int, *, open_only: bool = False) -> int:
    """`add_business` on epoch microseconds; `open_only` moves a result on a window's end to the next opening."""
    if cal.always_open:
        return t + max(0, need)
    if need <= 0:
        return next_opening_micros(cal, t) if open_only else t
    k = t // _CHUNK_US
    tab = cal._chunks.get(k) or _chunk(cal, k)
    target = _offset(tab, t) + need
    for _ in range(_MAX_CHUNKS):
        if target <= tab.total:
            j = bisect_left(tab.after, target)
            if open_only and target == tab.after[j]:
                return next_opening_micros(cal, tab.ends[j])
            return tab.starts[j] + target - tab.before[j]
        target -= tab.total
        k += 1
        tab = _chunk(cal, k)
    raise ValueError(f"calendar {cal.name!r} has no opening hours for 30 years")


def between_micros(cal: Calendar, a: int, b: int) -> int:
    """`business_seconds` on epoch microseconds, for a <= b."""
    if cal.always_open:
        return b - a
    ka, kb = a // _CHUNK_US, b // _CHUNK_US
    tab = cal._chunks.get(ka) or _chunk(cal, ka)
    if ka == kb:
        return _offset(tab, b) - _offset(tab, a)
    total = tab.total - _offset(tab, a)
    for k in range(ka + 1, kb):
        total += _chunk(cal, k).total
    return total + _offset(_chunk(cal, kb), b)


def is_open_micros(cal: Calendar, t: int) -> bool:
    """`is_open` on epoch microseconds."""
    if cal.always_open:
        return True
    tab = _chunk(cal, t // _CHUNK_US)
    i = bisect_right(tab.starts, t) - 1
    return i >= 0 and t < tab.ends[i]


def next_opening_micros(cal: Calendar, t: int) -> int:
    """`next_opening` on epoch microseconds."""
    if cal.always_open:
        return t
    k = t // _CHUNK_US
    for _ in range(_MAX_CHUNKS):
        tab = _chunk(cal, k)
        i = bisect_right(tab.ends, t)
        if i < len(tab.ends):
            return max(t, tab.starts[i])
        k += 1
    raise ValueError(f"calendar {cal.name!r} has no opening hours for 30 years")


def add_business(cal: Calendar, start: datetime, seconds: float) -> datetime:
    """The UTC instant when `seconds` of business time have passed since `start` (zero returns `start`)."""
    if seconds < 0:
        raise ValueError("cannot add a negative business duration")
    return from_micros(add_micros(cal, to_micros(start), round(seconds * _US)))


def business_seconds(cal: Calendar, start: datetime, end: datetime) -> float:
    """Business seconds between two instants; negative when `end` comes before `start`."""
    a, b = to_micros(start), to_micros(end)
    return between_micros(cal, a, b) / _US if a <= b else -between_micros(cal, b, a) / _US


def is_open(cal: Calendar, at: datetime) -> bool:
    """Whether `at` falls inside an opening window (a window's start is open, its end is not)."""
    return is_open_micros(cal, to_micros(at))


def next_opening(cal: Calendar, at: datetime) -> datetime:
    """`at` itself when open, else the start of the next opening window (UTC)."""
    return from_micros(next_opening_micros(cal, to_micros(at)))


def open_intervals(cal: Calendar, start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
    """The open stretches between two instants, clipped to them, in UTC."""
    a, b = to_micros(start), to_micros(end)
    if cal.always_open:
        return [(from_micros(a), from_micros(b))] if a < b else []
    out: list[list[int]] = []
    for k in range(a // _CHUNK_US, b // _CHUNK_US + 1):
        tab = _chunk(cal, k)
        for s, e in zip(tab.starts, tab.ends, strict=True):
            s, e = max(s, a), min(e, b)
            if s >= e:
                continue
            if out and out[-1][1] == s:
                out[-1][1] = e
            else:
                out.append([s, e])
    return [(from_micros(s), from_micros(e)) for s, e in out]


def replan(cal: Calendar, at: datetime, target_s: float, used_s: float) -> datetime:
    """Due instant on a new calendar version for a clock that already used `used_s` business seconds."""
    return add_business(cal, at, max(0.0, target_s - used_s))


# --- configuration -------------------------------------------------------------------------------

_WINDOW_HELP = 'a list of "HH:MM-HH:MM" windows (an end at or before the start crosses midnight)'


def _parse_clock(text: str, key: str) -> int:
    """Seconds after midnight of "HH:MM" (24:00 allowed)."""
    try:
        hours, minutes = (int(part) for part in text.strip().split(":"))
    except ValueError as err:
        raise ConfigError(key, _WINDOW_HELP) from err
    if not (0 <= hours <= 24 and 0 <= minutes < 60) or (hours == 24 and minutes):
        raise ConfigError(key, _WINDOW_HELP)
    return hours * 3600 + minutes * 60


def parse_windows(value: object, key: str) -> tuple[Window, ...]:
    """Windows of one day from config, sorted; rejects malformed and overlapping windows."""
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise ConfigError(key, _WINDOW_HELP)
    out = []
    for item in value:
        if not isinstance(item, str) or item.count("-") != 1:
            raise ConfigError(key, _WINDOW_HELP)
        start, end = (_parse_clock(part, key) for part in item.split("-"))
        if start == DAY_S:
            raise ConfigError(key, _WINDOW_HELP + " (a window cannot start at 24:00)")
        out.append((start, end if end > start else end + DAY_S))
    out.sort()
    for (_, end), (start, _) in pairwise(out):
        if start < end:
            raise ConfigError(key, "windows that do not overlap")
    return tuple(out)


def _day_keys(key: str, where: str) -> list[int]:
    """Weekday indexes named by "mon" or a range such as "mon-fri"."""
    names = key.lower().split("-")
    if not all(name in DAYS for name in names) or len(names) > 2:
        raise ConfigError(where, 'weekday keys "mon".."sun" or ranges such as "mon-fri"')
    first, last = DAYS.index(names[0]), DAYS.index(names[-1])
    return list(range(first, last + 1)) if first <= last else [*range(first, 7), *range(last + 1)]


def _check_week(weekly: list[tuple[Window, ...]], key: str) -> None:
    """Reject windows that overlap across midnight, including Sunday into Monday."""
    spans = sorted((d * DAY_S + s, d * DAY_S + e) for d in range(7) for s, e in weekly[d])
    spans += [(s + 7 * DAY_S, e + 7 * DAY_S) for s, e in spans[:1]]
    for (_, end), (start, _) in pairwise(spans):
        if start < end:
            raise ConfigError(key, "opening windows that do not overlap (check windows crossing midnight)")


def _parse_holidays(value: object, key: str) -> tuple[str | None, str | None]:
    """Country and subdivision of "FR" or "US-NY", checked against the `holidays` package."""
    if value in (None, "", False):
        return None, None
    expected = 'a country code known to the holidays package, such as "FR" or "US-NY"'
    if not isinstance(value, str):
        raise ConfigError(key, expected)
    country, _, subdivision = value.strip().upper().partition("-")
    try:
        holidays.country_holidays(country, subdiv=subdivision or None, years=2026)
    except (NotImplementedError, KeyError, ValueError) as err:
        raise ConfigError(key, expected) from err
    return country, subdivision or None


def _parse_dates(value: object, key: str) -> frozenset[date]:
    """A list of ISO dates."""
    if not isinstance(value, list):
        raise ConfigError(key, 'a list of dates such as ["2026-12-26"]')
    try:
        return frozenset(v if isinstance(v, date) else date.fromisoformat(str(v)) for v in value)
    except ValueError as err:
        raise ConfigError(key, 'a list of dates such as ["2026-12-26"]') from err


def parse_calendar(
    name: str, table: Mapping[str, Any], *, read_file: Callable[[str], str] | None = None
) -> Calendar:
    """A Calendar from its `[calendars.<name>]` table; ConfigError names the bad key."""
    key = f"calendars.{name}"
    known = {"timezone", "hours", "always_open", "holidays", "closed", "partial", "version", "ical"}
    for unknown in set(table) - known:
        raise ConfigError(f"{key}.{unknown}", "one of " + ", ".join(sorted(known)))
    zone = table.get("timezone", "UTC")
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError, TypeError, OSError) as err:  # OSError: "Europe" is a folder
        raise ConfigError(f"{key}.timezone", 'an IANA time zone such as "Europe/Paris"') from err
    always = table.get("always_open", False)
    if not isinstance(always, bool):
        raise ConfigError(f"{key}.always_open", "true or false")
    version = table.get("version", 1)
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ConfigError(f"{key}.version", "a positive integer")
    hours = table.get("hours", {})
    if not isinstance(hours, Mapping):
        raise ConfigError(f"{key}.hours", 'a table such as { mon-fri = ["09:00-19:00"] }')
    weekly: list[tuple[Window, ...]] = [()] * 7
    for day_key, windows in hours.items():
        parsed = parse_windows(windows, f"{key}.hours.{day_key}")
        for day in _day_keys(day_key, f"{key}.hours.{day_key}"):
            weekly[day] = tuple(sorted(weekly[day] + parsed))
    _check_week(weekly, f"{key}.hours")
    country, subdivision = _parse_holidays(table.get("holidays"), f"{key}.holidays")
    if always and (hours or country or table.get("closed") or table.get("partial") or table.get("ical")):
        raise ConfigError(key, "always_open = true alone (a 24/7 calendar has no hours, holidays or closed days)")
    if not always and not any(weekly):
        raise ConfigError(f"{key}.hours", "at least one opening window (or always_open = true)")
    partial_table = table.get("partial", {})
    if not isinstance(partial_table, Mapping):
        raise ConfigError(f"{key}.partial", 'a table such as { "2026-12-24" = ["09:00-12:00"] }')
    partial: dict[date, tuple[Window, ...]] = {}
    for day_text, windows in partial_table.items():
        (when,) = _parse_dates([day_text], f"{key}.partial.{day_text}")
        partial[when] = parse_windows(windows, f"{key}.partial.{day_text}")
    cal = Calendar(
        name=name, timezone=zone, weekly=tuple(weekly), always_open=always, holiday_country=country,
        holiday_subdivision=subdivision, closed_dates=_parse_dates(table.get("closed", []), f"{key}.closed"),
        partial_days=partial, version=version,
    )
    if "ical" in table:
        cal = _with_ical(cal, table["ical"], f"{key}.ical", read_file)
    return cal


def _with_ical(cal: Calendar, path: object, key: str, read_file: Callable[[str], str] | None) -> Calendar:
    """The calendar closed further by the events of an iCal file (read through the config loader)."""
    # imported here: icalendar is only needed by calendars that use it
    from carebox.sla_ical import ical_closures, subtract

    if not isinstance(path, str) or not path:
        raise ConfigError(key, "the path of an .ics file")
    if read_file is None:
        raise ConfigError(key, "no ical key here (iCal files are read only when loading a config file)")
    try:
        text = read_file(path)
    except OSError as err:
        raise ConfigError(key, f"a readable .ics file ({err})") from err
    closed, spans = ical_closures(text, ZoneInfo(cal.timezone), key)
    partial = dict(cal.partial_days)
    for day, closures in spans.items():
        if day not in closed:
            partial[day] = subtract(day_windows(cal, day), closures)
    return replace(cal, closed_dates=cal.closed_dates | closed, partial_days=partial)

