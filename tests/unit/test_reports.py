"""Report rules: percentiles, local time and service hours as arithmetic, settings, what-if, charts, digest."""

from __future__ import annotations

import random
import statistics
from datetime import UTC, date, datetime, timedelta

import pytest

from carebox import reports, reports_config
from carebox.calendar import ALWAYS_OPEN, is_open, parse_calendar
from carebox.errors import ConfigError
from carebox.reports_charts import heatmap_svg, render_digest, text_table, trend_svg
from carebox.reports_whatif import (
    Scenario,
    compare,
    configured_scenario,
    outcome,
    scenarios,
    with_hours,
)
from carebox.sla_config import parse_settings as parse_sla

SERVICE_HOURS = parse_calendar(
    "service-hours", {"timezone": "Europe/Paris", "hours": {"mon-fri": ["09:00-19:00"]}, "holidays": "FR"})
NIGHT_SHIFT = parse_calendar(
    "nights", {"timezone": "America/New_York", "hours": {"mon-fri": ["22:00-06:00"], "sat": ["10:00-14:00"]},
               "closed": ["2026-11-26"], "partial": {"2026-12-24": ["09:00-12:00"]}})


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


# --- percentiles ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("values", "q", "expected"), [
    ([1.0, 2.0, 3.0, 4.0], 0.5, 2.5),
    ([1.0, 2.0, 3.0, 4.0], 0.9, 3.7),
    ([1.0, 2.0, 3.0, 4.0], 0.95, 3.85),
    ([10.0], 0.9, 10.0),
    ([5.0, 1.0, 3.0], 0.5, 3.0),
    ([], 0.5, None),
])
def test_percentile_interpolates_linearly_between_closest_ranks(values, q, expected):
    result = reports.percentile(sorted(values), q)
    assert result == pytest.approx(expected) if expected is not None else result is None


def test_percentile_agrees_with_the_standard_library_inclusive_method():
    rng = random.Random(3)
    for n in (2, 3, 7, 10, 101, 1000):
        values = sorted(rng.expovariate(1 / 3600) for _ in range(n))
        cuts = statistics.quantiles(values, n=100, method="inclusive")
        for q in (0.5, 0.9, 0.95):
            assert reports.percentile(values, q) == pytest.approx(cuts[round(q * 100) - 1])


def test_summary_from_the_ranks_sql_picks_equals_the_summary_of_all_values():
    values = sorted(random.Random(5).uniform(0, 1e5) for _ in range(57))
    picks = {r: values[r - 1] for q in reports.QUANTILES for r in reports.quantile_ranks(len(values), q)}
    assert len(picks) <= 6
    full = reports.summarize(values)
    assert reports.summary_from_picks(len(values), full.mean, picks) == full


@pytest.mark.parametrize(("q", "fraction"), [(0.5, (1, 2)), (0.9, (9, 10)), (0.95, (19, 20)), (0.99, (99, 100))])
def test_quantiles_are_exact_fractions_for_integer_rank_arithmetic_in_sql(q, fraction):
    assert reports.quantile_fraction(q) == fraction


def test_pct_is_none_when_nothing_is_decided():
    assert reports.pct(0, 0) is None
    assert reports.pct(1, 4) == 25.0


# --- local time plan: the rule SQL encodes must agree with the calendar -----------------------------------


@pytest.mark.parametrize("cal", [SERVICE_HOURS, NIGHT_SHIFT], ids=["paris-office", "ny-nights-holidays-partial"])
def test_local_plan_says_open_exactly_when_the_calendar_does(cal):
    since, until = utc("2026-10-20T00:00:00+00:00"), utc("2027-01-10T00:00:00+00:00")
    plan = reports.local_plan(cal, since, until)
    rng = random.Random(11)
    instants = [since + timedelta(seconds=rng.randrange(int((until - since).total_seconds()))) for _ in range(4000)]
    instants += [since + timedelta(minutes=15 * i) for i in range(int((until - since).total_seconds()) // 900)]
    wrong = [t for t in instants if reports.plan_is_open(plan, t) != is_open(cal, t)]
    assert wrong == []


def test_local_plan_follows_daylight_saving_changes():
    plan = reports.local_plan(SERVICE_HOURS, utc("2026-10-20T00:00:00+00:00"), utc("2026-11-10T00:00:00+00:00"))
    assert [offset for _, offset in plan.offsets] == [7200, 3600]
    assert plan.offsets[1][0] == int(utc("2026-10-25T01:00:00+00:00").timestamp())


@pytest.mark.parametrize(("instant", "how"), [
    ("2026-11-16T00:00:00+01:00", 0),  # Monday midnight, Paris
    ("2026-11-16T09:30:00+01:00", 9),
    ("2026-11-22T23:59:00+01:00", 167),  # Sunday night
    ("2026-10-19T09:30:00+02:00", 9),  # summer time: same local hour
])
def test_hour_of_week_is_local_to_the_calendar(instant, how):
    plan = reports.local_plan(SERVICE_HOURS, utc("2026-10-01T00:00:00+00:00"), utc("2026-12-01T00:00:00+00:00"))
    assert reports.hour_of_week(plan, utc(instant)) == how


def test_heatmap_has_every_hour_of_the_week_and_marks_service_hours():
    plan = reports.local_plan(SERVICE_HOURS, utc("2026-11-02T00:00:00+00:00"), utc("2026-11-09T00:00:00+00:00"))
    cells = reports.heatmap({9: {"conversations": 4, "sla_met": 3, "sla_breached": 1, "frt_wall_p50_s": 60.0}}, plan)
    assert len(cells) == 168
    assert cells[9].open and cells[9].breach_rate_pct == 25.0 and cells[9].conversations == 4
    assert not cells[8].open and not cells[5 * 24 + 10].open  # Monday 08h, Saturday 10h
    assert cells[0].conversations == 0 and cells[0].breach_rate_pct is None


def test_week_start_is_the_monday_of_the_local_week():
    thursday = reports.day_number(date(2026, 11, 19))
    assert reports.local_day(reports.week_start(thursday)) == date(2026, 11, 16)


# --- settings ------------------------------------------------------------------------------------------------


def test_report_settings_default_to_the_sla_expectation_and_the_first_contract_calendar():
    rs = reports_config.parse_settings({}, parse_sla({}))
    assert rs.customer_expectation_s == 3600.0
    assert rs.calendar.name == "service-hours"
    assert rs.contract_policies == frozenset({"social"})
    assert (rs.exclude_incidents, rs.drill_limit, rs.digest_period) == (False, 200, "weekly")


@pytest.mark.parametrize(("table", "key"), [
    ({"customer_expectation": "soon"}, "reports.customer_expectation"),
    ({"calendar": "nowhere"}, "reports.calendar"),
    ({"exclude_incidents": "yes"}, "reports.exclude_incidents"),
    ({"drill_limit": 0}, "reports.drill_limit"),
    ({"digest": {"period": "hourly"}}, "reports.digest.period"),
    ({"digest": {"at": "25:00"}}, "reports.digest.at"),
    ({"digest": {"recipients": ["not-an-address"]}}, "reports.digest.recipients"),
    ({"colour": "red"}, "reports.colour"),
])
def test_bad_report_settings_name_the_key(table, key):
    with pytest.raises(ConfigError) as err:
        reports_config.parse_settings({"reports": table}, parse_sla({}))
    assert err.value.key == key


@pytest.mark.parametrize(("text", "expected"), [
    ("2017-11-06", datetime(2017, 11, 6, tzinfo=UTC)),
    ("2017-11-06T10:00:00+01:00", datetime(2017, 11, 6, 9, tzinfo=UTC)),
    (None, None),
])
def test_parse_instant_takes_dates_as_utc_midnight_and_instants_with_offsets(text, expected):
    assert reports_config.parse_instant(text, "--since") == expected


def test_parse_instant_refuses_a_naive_time():
    with pytest.raises(ConfigError):
        reports_config.parse_instant("2017-11-06T10:00:00", "--since")


# --- what-if -------------------------------------------------------------------------------------------------

FRIDAY_EVENING = (utc("2026-11-20T18:50:00+01:00"), utc("2026-11-21T10:30:00+01:00"))  # answered Saturday
MONDAY_MORNING = (utc("2026-11-16T10:00:00+01:00"), utc("2026-11-16T10:40:00+01:00"))  # 40 min
UNANSWERED = (utc("2026-11-17T10:00:00+01:00"), None)
NOW = utc("2026-11-30T00:00:00+00:00")


def test_what_if_saturday_opening_turns_a_saturday_answer_into_a_breach():
    actual = Scenario("as configured", SERVICE_HOURS, 3600)
    saturday = Scenario("sat", with_hours(SERVICE_HOURS, "sat=09:00-17:00"), 3600)
    now_, then = compare([FRIDAY_EVENING, MONDAY_MORNING], [actual, saturday], NOW)
    assert (now_.met, now_.breached) == (2, 0)  # answered Saturday, before Monday's opening: within the contract
    assert (then.met, then.breached) == (1, 1)  # due Saturday 09:50 if we opened Saturday
    assert then.attainment_pct == 50.0


def test_what_if_a_30_minute_target_breaches_a_40_minute_answer():
    result = outcome([MONDAY_MORNING], Scenario("30m", SERVICE_HOURS, 1800), NOW)
    assert (result.met, result.breached, result.business.p50) == (0, 1, 2400.0)


def test_what_if_counts_unanswered_as_breached_once_due_and_pending_before():
    due_later = outcome([UNANSWERED], Scenario("x", SERVICE_HOURS, 3600), utc("2026-11-17T10:30:00+01:00"))
    overdue = outcome([UNANSWERED], Scenario("x", SERVICE_HOURS, 3600), NOW)
    assert (due_later.pending, due_later.attainment_pct) == (1, None)
    assert overdue.breached == 1


@pytest.mark.parametrize("spec", ["someday=09:00-10:00", "sat=9h", "fri-mon=09:00-10:00"])
def test_what_if_hours_with_bad_syntax_are_refused(spec):
    with pytest.raises(ConfigError):
        with_hours(SERVICE_HOURS, spec)


def test_what_if_scenarios_start_with_the_configured_policy():
    actual = configured_scenario(parse_sla({}))
    assert actual is not None and actual.target_s == 3600 and actual.calendar.name == "service-hours"
    both = scenarios(actual, "sat=09:00-17:00", "30m")
    assert [s.target_s for s in both] == [3600, 1800]
    assert both[1].calendar.weekly[5] == ((9 * 3600, 17 * 3600),)
    assert scenarios(actual, None, None) == [actual]


# --- charts and digest ----------------------------------------------------------------------------------------


def _report() -> reports.Report:
    f = reports.figures("acme", {"conversations": 3, "answered": 2, "n_wall": 2, "wall_mean": 150.0, "n_business": 2,
                                 "business_mean": 100.0, "sla_met": 1, "sla_breached": 1, "customers": 2,
                                 "network": "x"}, {1: 100.0, 2: 200.0}, {1: 50.0, 2: 150.0})
    day = reports.TrendPoint(date(2026, 11, 16), 3, 2, 150.0, 100.0, 50.0, 0)
    plan = reports.local_plan(ALWAYS_OPEN, utc("2026-11-16T00:00:00+00:00"), utc("2026-11-17T00:00:00+00:00"))
    return reports.Report(None, None, utc("2026-11-20T00:00:00+00:00"), "UTC", 3600.0, False, "account", f, (f,), (f,),
                          (day,), (day,), reports.heatmap({}, plan))


def test_figures_from_aggregates_compute_rates_and_repeats():
    f = _report().totals
    assert f.frt_wall.p50 == 150.0 and f.frt_business.p90 == pytest.approx(140.0)
    assert f.sla_attainment_pct == 50.0 and f.repeat_contacts == 1


def test_charts_are_plain_svg_without_scripts_or_style_attributes():
    report = _report()
    for svg in (trend_svg(report.daily, link="/reports/drill?day="), heatmap_svg(report.heatmap, link="/reports/drill?how=")):
        assert svg.startswith("<svg") and svg.endswith("</svg>")
        assert "<script" not in svg and "style=" not in svg
    assert heatmap_svg(report.heatmap).count("<rect") == 168 + 1  # the cells and the legend swatch
    assert f'href="/reports/drill?day={reports.day_number(date(2026, 11, 16))}"' in trend_svg(report.daily, link="/reports/drill?day=")


def test_digest_has_a_subject_a_text_table_and_html_with_an_inline_chart():
    subject, text, html = render_digest(_report())
    assert "3 conversations" in subject and "SLA 50.0%" in subject
    assert "acme" in text and "2m 30s" not in text
    assert "<svg" in html and "<table" in html


def test_to_json_keeps_the_promised_per_account_keys():
    doc = reports.to_json(_report())
    row = doc["by_account"][0]
    for key in ("account", "network", "conversations", "answered", "frt_wall_p50_s", "frt_wall_p90_s",
                "frt_business_p50_s", "frt_business_p90_s", "sla_attainment_pct", "within_1h_wall_pct"):
        assert key in row
    assert doc["groups"][0]["account"] == "acme" and len(doc["heatmap"]) == 168


def test_text_table_names_the_breakdown():
    report = _report()
    assert text_table(report.groups, report.totals, "category").startswith("category")


def test_a_trend_of_instant_answers_draws_without_dividing_by_zero():
    # on a weekend every business-clock median is 0 s, and answers within the second make the wall clock 0 s too
    day = reports.TrendPoint(date(2026, 11, 22), 3, 3, 0.0, 0.0, 100.0, 0)
    svg = trend_svg([day, reports.TrendPoint(date(2026, 11, 23), 0, 0, None, None, None, 0)])
    assert svg.startswith("<svg") and "NaN" not in svg
