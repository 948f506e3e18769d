from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from carebox.calendar import (
    ALWAYS_OPEN,
    add_business,
    add_micros,
    business_seconds,
    day_windows,
    from_micros,
    is_open,
    next_opening,
    open_intervals,
    parse_calendar,
    replan,
    to_micros,
)
from carebox.errors import ConfigError

try:  # on a failure hypothesis imports libcst, whose DeprecationWarning would turn the report into an INTERNALERROR
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import libcst.metadata  # noqa: F401
except ImportError:
    pass

PARIS = ZoneInfo("Europe/Paris")
NEW_YORK = ZoneInfo("America/New_York")
H = 3600

SERVICE_HOURS = parse_calendar(
    "service-hours", {"timezone": "Europe/Paris", "hours": {"mon-fri": ["09:00-19:00"]}, "holidays": "FR"}
)
SPLIT_SHIFT = parse_calendar(
    "split", {"timezone": "America/New_York", "hours": {"mon-fri": ["09:00-12:00", "14:00-18:00"]},
              "holidays": "US-NY"}
)
NIGHT_SHIFT = parse_calendar("night", {"timezone": "Europe/Paris", "hours": {"mon-fri": ["22:00-06:00"]}})
PARIS_ROUND_THE_CLOCK = parse_calendar(
    "paris-all-day", {"timezone": "Europe/Paris", "hours": {"mon-sun": ["00:00-24:00"]}}
)
NY_ROUND_THE_CLOCK = parse_calendar(
    "ny-all-day", {"timezone": "America/New_York", "hours": {"mon-sun": "00:00-24:00"}}
)
EARLY_SUNDAY = parse_calendar("early", {"timezone": "Europe/Paris", "hours": {"sun": ["00:00-06:00"]}})
UNTIL_HALF_TWO = parse_calendar("until-half-two", {"timezone": "Europe/Paris", "hours": {"sun": ["00:00-02:30"]}})
WITH_PARTIAL_DAYS = parse_calendar(
    "partial", {"timezone": "Europe/Paris", "hours": {"mon-fri": ["09:00-19:00"]}, "holidays": "FR",
                "partial": {"2026-12-24": ["09:00-12:00"], "2026-12-31": []}, "closed": ["2026-12-30"]}
)


def paris(*args: int) -> datetime:
    return datetime(*args, tzinfo=PARIS)


def new_york(*args: int) -> datetime:
    return datetime(*args, tzinfo=NEW_YORK)


@pytest.mark.parametrize(
    ("cal", "start", "seconds", "due"),
    [
        # the literal example: Friday 18:50 + 1h of Mon-Fri 09:00-19:00 business time
        (SERVICE_HOURS, paris(2026, 11, 20, 18, 50), H, paris(2026, 11, 23, 9, 50)),
        (SERVICE_HOURS, paris(2026, 11, 20, 9, 0), 10 * H, paris(2026, 11, 20, 19, 0)),
        (SERVICE_HOURS, paris(2026, 11, 21, 15, 0), H, paris(2026, 11, 23, 10, 0)),
        (SERVICE_HOURS, paris(2026, 11, 23, 7, 0), 30 * 60, paris(2026, 11, 23, 9, 30)),
        # Christmas: 25 December is a French public holiday (a Friday in 2026)
        (SERVICE_HOURS, paris(2026, 12, 24, 18, 30), H, paris(2026, 12, 28, 9, 30)),
        (SERVICE_HOURS, paris(2026, 12, 25, 10, 0), H, paris(2026, 12, 28, 10, 0)),
        # partial days and closed dates
        (WITH_PARTIAL_DAYS, paris(2026, 12, 24, 11, 30), H, paris(2026, 12, 28, 9, 30)),
        (WITH_PARTIAL_DAYS, paris(2026, 12, 29, 18, 30), H, paris(2027, 1, 4, 9, 30)),
        # DST 2026 in Paris: Friday before each change to the Monday after
        (SERVICE_HOURS, paris(2026, 3, 27, 18, 30), H, paris(2026, 3, 30, 9, 30)),
        (SERVICE_HOURS, paris(2026, 10, 23, 18, 30), H, paris(2026, 10, 26, 9, 30)),
        # DST 2026 in New York (8 March, 1 November), on a split-shift calendar
        (SPLIT_SHIFT, new_york(2026, 3, 6, 17, 30), H, new_york(2026, 3, 9, 9, 30)),
        (SPLIT_SHIFT, new_york(2026, 10, 30, 17, 30), H, new_york(2026, 11, 2, 9, 30)),
        # split shift: the lunch break is skipped
        (SPLIT_SHIFT, new_york(2026, 11, 23, 11, 30), H, new_york(2026, 11, 23, 14, 30)),
        (SPLIT_SHIFT, new_york(2026, 11, 23, 12, 30), H, new_york(2026, 11, 23, 15, 0)),
        # US-NY: Lincoln's Birthday (Thursday 12 February 2026) is closed in New York state
        (SPLIT_SHIFT, new_york(2026, 2, 11, 17, 30), H, new_york(2026, 2, 13, 9, 30)),
        # a window crossing midnight runs into the next day
        (NIGHT_SHIFT, paris(2026, 11, 20, 23, 0), 5 * H, paris(2026, 11, 21, 4, 0)),
        (NIGHT_SHIFT, paris(2026, 11, 21, 5, 0), 2 * H, paris(2026, 11, 23, 23, 0)),
        # round-the-clock windows: the DST day has 23 hours in March, 25 in October
        (PARIS_ROUND_THE_CLOCK, paris(2026, 3, 29, 0, 0), 23 * H, paris(2026, 3, 30, 0, 0)),
        (PARIS_ROUND_THE_CLOCK, paris(2026, 10, 25, 0, 0), 25 * H, paris(2026, 10, 26, 0, 0)),
        (NY_ROUND_THE_CLOCK, new_york(2026, 3, 8, 0, 0), 23 * H, new_york(2026, 3, 9, 0, 0)),
        (NY_ROUND_THE_CLOCK, new_york(2026, 11, 1, 0, 0), 25 * H, new_york(2026, 11, 2, 0, 0)),
        # a window spanning the spring-forward gap is one hour shorter
        (EARLY_SUNDAY, paris(2026, 3, 29, 0, 0), 5 * H, paris(2026, 3, 29, 6, 0)),
        (EARLY_SUNDAY, paris(2026, 10, 25, 0, 0), 7 * H, paris(2026, 10, 25, 6, 0)),
        # a window ending inside the repeated hour ends at its second pass (clocks went back at 03:00)
        (UNTIL_HALF_TWO, paris(2026, 10, 25, 0, 0), 3 * H + 30 * 60, datetime(2026, 10, 25, 1, 30, tzinfo=UTC)),
        (ALWAYS_OPEN, paris(2026, 11, 20, 18, 50), H, paris(2026, 11, 20, 19, 50)),
    ],
)
def test_add_business_lands_on_the_due_instant(cal, start, seconds, due):
    assert add_business(cal, start, seconds) == due
    assert business_seconds(cal, start, due) == seconds


def test_adding_business_time_returns_utc():
    assert add_business(SERVICE_HOURS, paris(2026, 11, 20, 18, 50), H).tzinfo is UTC


def test_adding_zero_returns_the_start_unchanged_even_when_closed():
    assert add_business(SERVICE_HOURS, paris(2026, 11, 21, 12, 0), 0) == paris(2026, 11, 21, 12, 0)


def test_naive_datetimes_are_refused():
    with pytest.raises(ValueError, match="naive"):
        add_business(SERVICE_HOURS, datetime(2026, 11, 20, 18, 50), H)


@pytest.mark.parametrize(
    ("cal", "start", "end", "seconds"),
    [
        (SERVICE_HOURS, paris(2026, 11, 20, 18, 50), paris(2026, 11, 23, 9, 50), H),
        (SERVICE_HOURS, paris(2026, 11, 16, 0, 0), paris(2026, 11, 23, 0, 0), 50 * H),
        (SERVICE_HOURS, paris(2026, 12, 21, 0, 0), paris(2026, 12, 28, 0, 0), 40 * H),
        (SERVICE_HOURS, paris(2026, 11, 23, 9, 50), paris(2026, 11, 20, 18, 50), -H),
        (SPLIT_SHIFT, new_york(2026, 11, 23, 0, 0), new_york(2026, 11, 24, 0, 0), 7 * H),
        (NIGHT_SHIFT, paris(2026, 11, 20, 12, 0), paris(2026, 11, 23, 12, 0), 8 * H),
        (PARIS_ROUND_THE_CLOCK, paris(2026, 3, 28, 0, 0), paris(2026, 4, 4, 0, 0), 7 * 24 * H - H),
        (PARIS_ROUND_THE_CLOCK, paris(2026, 10, 24, 0, 0), paris(2026, 10, 31, 0, 0), 7 * 24 * H + H),
        (ALWAYS_OPEN, paris(2026, 3, 28, 0, 0), paris(2026, 4, 4, 0, 0), 7 * 24 * H - H),
    ],
)
def test_business_seconds_counts_only_open_time(cal, start, end, seconds):
    assert business_seconds(cal, start, end) == seconds


@pytest.mark.parametrize(
    ("cal", "at", "open_"),
    [
        (SERVICE_HOURS, paris(2026, 11, 20, 9, 0), True),  # a window's start is open
        (SERVICE_HOURS, paris(2026, 11, 20, 19, 0), False),  # its end is not
        (SERVICE_HOURS, paris(2026, 11, 21, 12, 0), False),  # Saturday
        (SERVICE_HOURS, paris(2026, 12, 25, 12, 0), False),  # Christmas
        (SERVICE_HOURS, paris(2026, 5, 1, 12, 0), False),  # Fête du Travail
        (SPLIT_SHIFT, new_york(2026, 11, 23, 12, 30), False),
        (SPLIT_SHIFT, new_york(2026, 11, 26, 10, 0), False),  # Thanksgiving
        (NIGHT_SHIFT, paris(2026, 11, 21, 5, 59), True),  # Friday's shift runs into Saturday
        (NIGHT_SHIFT, paris(2026, 11, 22, 5, 0), False),  # no Saturday shift
        (PARIS_ROUND_THE_CLOCK, paris(2026, 11, 21, 0, 0), True),
        (ALWAYS_OPEN, datetime(2026, 11, 21, 0, 0, tzinfo=UTC), True),
    ],
)
def test_is_open_follows_windows_holidays_and_midnight(cal, at, open_):
    assert is_open(cal, at) is open_


@pytest.mark.parametrize(
    ("cal", "at", "opening"),
    [
        (SERVICE_HOURS, paris(2026, 11, 20, 19, 0), paris(2026, 11, 23, 9, 0)),
        (SERVICE_HOURS, paris(2026, 11, 20, 10, 0), paris(2026, 11, 20, 10, 0)),
        (SERVICE_HOURS, paris(2026, 12, 31, 20, 0), paris(2027, 1, 4, 9, 0)),  # 1 January is a holiday
        (SPLIT_SHIFT, new_york(2026, 11, 23, 12, 0), new_york(2026, 11, 23, 14, 0)),
        (NIGHT_SHIFT, paris(2026, 11, 20, 12, 0), paris(2026, 11, 20, 22, 0)),
    ],
)
def test_next_opening_is_the_start_of_the_next_window(cal, at, opening):
    assert next_opening(cal, at) == opening


@pytest.mark.parametrize("cal", [ALWAYS_OPEN, PARIS_ROUND_THE_CLOCK, NY_ROUND_THE_CLOCK])
@pytest.mark.parametrize("day", [date(2026, 3, 8), date(2026, 3, 29), date(2026, 10, 25), date(2026, 11, 1),
                                 date(2026, 12, 31)])
def test_round_the_clock_calendars_have_no_gap_at_midnight(cal, day):
    tz = ZoneInfo(cal.timezone)
    midnight = datetime(day.year, day.month, day.day, tzinfo=tz) + timedelta(days=1)
    midnight = datetime(midnight.year, midnight.month, midnight.day, tzinfo=tz)
    before = midnight - timedelta(minutes=1)
    assert is_open(cal, midnight) and is_open(cal, before)
    assert business_seconds(cal, before, midnight + timedelta(minutes=1)) == 120
    assert len(open_intervals(cal, before, midnight + timedelta(minutes=1))) == 1


def test_a_holiday_closes_the_whole_shift_that_starts_on_it():
    cal = parse_calendar("night-fr", {"timezone": "Europe/Paris", "hours": {"mon-fri": ["22:00-06:00"]},
                                      "holidays": "FR"})
    assert not is_open(cal, paris(2026, 12, 25, 23, 0))
    assert not is_open(cal, paris(2026, 12, 26, 1, 0))
    assert is_open(cal, paris(2026, 12, 25, 1, 0))  # Thursday's shift still runs into Christmas morning


def test_partial_days_replace_the_weekly_hours():
    assert day_windows(WITH_PARTIAL_DAYS, date(2026, 12, 24)) == ((9 * H, 12 * H),)
    assert day_windows(WITH_PARTIAL_DAYS, date(2026, 12, 30)) == ()
    assert day_windows(WITH_PARTIAL_DAYS, date(2026, 12, 31)) == ()


def test_open_intervals_lists_the_counted_windows():
    assert open_intervals(SERVICE_HOURS, paris(2026, 11, 20, 18, 50), paris(2026, 11, 23, 9, 50)) == [
        (paris(2026, 11, 20, 18, 50), paris(2026, 11, 20, 19, 0)),
        (paris(2026, 11, 23, 9, 0), paris(2026, 11, 23, 9, 50)),
    ]


def test_a_new_calendar_version_plans_only_the_remaining_time():
    v2 = parse_calendar("service-hours", {"timezone": "Europe/Paris", "hours": {"mon-sat": ["08:00-20:00"]},
                                          "holidays": "FR", "version": 2})
    # 40 minutes used on version 1; the remaining 20 minutes run on Saturday hours of version 2
    assert replan(v2, paris(2026, 11, 20, 20, 0), target_s=H, used_s=40 * 60) == paris(2026, 11, 21, 8, 20)
    assert replan(v2, paris(2026, 11, 20, 20, 0), target_s=H, used_s=2 * H) == paris(2026, 11, 20, 20, 0)


def test_calendars_with_equal_settings_are_equal_and_hashable():
    again = parse_calendar(
        "service-hours", {"timezone": "Europe/Paris", "hours": {"mon-fri": ["09:00-19:00"]}, "holidays": "FR"}
    )
    assert again == SERVICE_HOURS and hash(again) == hash(SERVICE_HOURS)


@pytest.mark.parametrize(
    ("table", "key"),
    [
        ({"timezone": "Europe/Pariss", "hours": {"mon": "09:00-17:00"}}, "calendars.c.timezone"),
        ({"hours": {"mon": ["09:00-12:00", "11:00-14:00"]}}, "calendars.c.hours.mon"),
        ({"hours": {"mon": "22:00-06:00", "tue": "05:00-09:00"}}, "calendars.c.hours"),
        ({"hours": {"sun": "22:00-06:00", "mon": "05:00-09:00"}}, "calendars.c.hours"),
        ({"hours": {"mon-fri": "09:00-12:00", "wed": "11:00-13:00"}}, "calendars.c.hours"),
        ({"hours": {}}, "calendars.c.hours"),
        ({}, "calendars.c.hours"),
        ({"hours": {"mon": "9h-17h"}}, "calendars.c.hours.mon"),
        ({"hours": {"mon": "09:00-25:00"}}, "calendars.c.hours.mon"),
        ({"hours": {"monday": "09:00-17:00"}}, "calendars.c.hours.monday"),
        ({"hours": {"mon": "09:00-17:00"}, "holidays": "XX"}, "calendars.c.holidays"),
        ({"hours": {"mon": "09:00-17:00"}, "holidays": "US-ZZ"}, "calendars.c.holidays"),
        ({"always_open": True, "holidays": "FR"}, "calendars.c"),
        ({"hours": {"mon": "09:00-17:00"}, "closed": ["2026-13-01"]}, "calendars.c.closed"),
        ({"hours": {"mon": "09:00-17:00"}, "version": 0}, "calendars.c.version"),
        ({"hours": {"mon": "09:00-17:00"}, "ical": "holidays.ics"}, "calendars.c.ical"),
        ({"hours": {"mon": "09:00-17:00"}, "opening": "x"}, "calendars.c.opening"),
    ],
)
def test_a_calendar_that_cannot_work_is_rejected_naming_the_key(table, key):
    with pytest.raises(ConfigError) as info:
        parse_calendar("c", table)
    assert info.value.key == key


# --- properties ----------------------------------------------------------------------------------

CALENDARS = [SERVICE_HOURS, SPLIT_SHIFT, NIGHT_SHIFT, PARIS_ROUND_THE_CLOCK, NY_ROUND_THE_CLOCK, EARLY_SUNDAY,
             UNTIL_HALF_TWO, WITH_PARTIAL_DAYS]
# instants around both 2026 DST changes in Paris and New York, and Christmas, to the second
instants = st.sampled_from([paris(2026, 3, 20), paris(2026, 10, 18), new_york(2026, 3, 1), new_york(2026, 10, 25),
                            paris(2026, 12, 20)]).flatmap(
    lambda base: st.integers(0, 14 * 86400).map(lambda s: base.astimezone(UTC) + timedelta(seconds=s))
)
durations = st.integers(0, 80 * H)
calendars = st.sampled_from(CALENDARS)
FAST = settings(max_examples=150, deadline=None, derandomize=True, database=None)


def _reference_seconds(cal, start, end):
    """Open seconds between two instants, computed day by day straight from zoneinfo (no tables)."""
    tz = ZoneInfo(cal.timezone)
    spans = []
    day = start.astimezone(tz).date() - timedelta(days=2)
    while day <= end.astimezone(tz).date():
        for a, b in day_windows(cal, day):
            local = datetime(day.year, day.month, day.day)
            lo = (local + timedelta(seconds=a)).replace(tzinfo=tz).timestamp()
            hi_naive = local + timedelta(seconds=b)
            hi = max(hi_naive.replace(tzinfo=tz, fold=f).timestamp() for f in (0, 1))
            spans.append((max(lo, start.timestamp()), min(hi, end.timestamp())))
        day += timedelta(days=1)
    return sum(max(0.0, b - a) for a, b in spans)


@FAST
@given(calendars, instants, durations, durations)
def test_adding_a_then_b_equals_adding_a_plus_b(cal, t, a, b):
    assert add_business(cal, add_business(cal, t, a), b) == add_business(cal, t, a + b)


@FAST
@given(calendars, instants, st.integers(1, 80 * H))
def test_a_due_instant_falls_inside_an_open_window_or_on_its_end(cal, t, d):
    due = add_business(cal, t, d)
    assert is_open(cal, due) or is_open(cal, due - timedelta(microseconds=1))


@FAST
@given(calendars, instants, durations)
def test_business_seconds_undoes_add_business(cal, t, d):
    assert business_seconds(cal, t, add_business(cal, t, d)) == d


@FAST
@given(calendars, instants, instants, durations)
def test_add_business_is_monotonic_in_the_start(cal, t1, t2, d):
    t1, t2 = sorted((t1, t2))
    assert add_business(cal, t1, d) <= add_business(cal, t2, d)


@FAST
@given(calendars, instants, durations, durations)
def test_add_business_is_monotonic_in_the_duration(cal, t, d1, d2):
    d1, d2 = sorted((d1, d2))
    assert add_business(cal, t, d1) <= add_business(cal, t, d2)


@FAST
@given(calendars, instants, st.integers(0, 20 * 86400))
def test_business_seconds_match_a_day_by_day_reference(cal, t, span):
    end = t + timedelta(seconds=span)
    assert business_seconds(cal, t, end) == _reference_seconds(cal, t, end)


@FAST
@given(st.sampled_from([PARIS_ROUND_THE_CLOCK, NY_ROUND_THE_CLOCK, ALWAYS_OPEN]), instants, durations)
def test_round_the_clock_business_time_is_real_time_across_dst(cal, t, d):
    assert add_business(cal, t, d) == t + timedelta(seconds=d)


@pytest.mark.parametrize(
    ("start", "seconds", "expected"),
    [
        (paris(2026, 11, 20, 18, 50), 600, paris(2026, 11, 23, 9, 0)),  # lands on Friday's close
        (paris(2026, 11, 20, 18, 50), 300, paris(2026, 11, 20, 18, 55)),
        (paris(2026, 11, 21, 12, 0), 0, paris(2026, 11, 23, 9, 0)),  # nothing to add, but closed now
    ],
)
def test_add_micros_open_only_moves_a_closing_instant_to_the_next_opening(start, seconds, expected):
    at = add_micros(SERVICE_HOURS, to_micros(start), seconds * 1_000_000, open_only=True)
    assert from_micros(at) == expected


# --- iCal closures -------------------------------------------------------------------------------

ICS = """BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//carebox tests//EN
BEGIN:VEVENT
UID:1
DTSTART;VALUE=DATE:20261127
DTEND;VALUE=DATE:20261128
SUMMARY:Team day
END:VEVENT
BEGIN:VEVENT
UID:2
DTSTART;VALUE=DATE:20261203
DTEND;VALUE=DATE:20261205
SUMMARY:Move
END:VEVENT
BEGIN:VEVENT
UID:3
DTSTART;TZID=Europe/Paris:20261123T120000
DTEND;TZID=Europe/Paris:20261123T140000
SUMMARY:All-hands
END:VEVENT
BEGIN:VEVENT
UID:4
DTSTART:20261124T170000Z
DTEND:20261124T190000Z
SUMMARY:Early close (UTC)
END:VEVENT
BEGIN:VEVENT
UID:5
STATUS:CANCELLED
DTSTART;VALUE=DATE:20261125
SUMMARY:Cancelled closure
END:VEVENT
END:VCALENDAR
"""
ICAL_TABLE = {"timezone": "Europe/Paris", "hours": {"mon-fri": ["09:00-19:00"]}, "holidays": "FR",
              "ical": "closures.ics"}
WITH_ICAL = parse_calendar("ical", ICAL_TABLE, read_file={"closures.ics": ICS}.__getitem__)


@pytest.mark.parametrize(
    ("start", "seconds", "due"),
    [
        (paris(2026, 11, 26, 18, 30), H, paris(2026, 11, 30, 9, 30)),  # all-day event closes Friday 27
        (paris(2026, 12, 2, 18, 30), H, paris(2026, 12, 7, 9, 30)),  # two-day event: DTEND is exclusive
        (paris(2026, 11, 23, 11, 30), H, paris(2026, 11, 23, 14, 30)),  # closed 12:00-14:00 local
        (paris(2026, 11, 24, 17, 30), H, paris(2026, 11, 25, 9, 30)),  # closed from 18:00 Paris (17:00Z)
        (paris(2026, 11, 25, 18, 30), H, paris(2026, 11, 26, 9, 30)),  # a cancelled closure is ignored
    ],
)
def test_ical_events_close_dates_and_hours(start, seconds, due):
    assert add_business(WITH_ICAL, start, seconds) == due


RECURRING = (
    "BEGIN:VCALENDAR\nBEGIN:VEVENT\nUID:1\nDTSTART;VALUE=DATE:20261127\nRRULE:FREQ=YEARLY\nEND:VEVENT\n"
    "END:VCALENDAR\n"
)


@pytest.mark.parametrize(
    ("text", "read_file"),
    [
        (None, None),  # nothing can read the file: only the config loader may
        (RECURRING, True),
        ("this is not iCal", True),
        (None, "missing"),
    ],
)
def test_an_ical_file_that_cannot_be_used_is_rejected_naming_the_key(text, read_file):
    def missing(path: str) -> str:
        raise FileNotFoundError(path)

    reader = {None: None, True: lambda path: text, "missing": missing}[read_file]
    with pytest.raises(ConfigError) as info:
        parse_calendar("ical", ICAL_TABLE, read_file=reader)
    assert info.value.key == "calendars.ical.ical"
