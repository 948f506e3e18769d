"""When the digest runs and which period it covers, in the report calendar's local time (DST included)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from carebox.reports_digest import DigestPlan, digest_email


def _paris(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


@pytest.mark.parametrize(("period", "after", "expected"), [
    ("weekly", "2025-11-21T12:00:00+01:00", "2025-11-24T08:00:00+01:00"),  # Friday: next Monday
    ("weekly", "2025-11-24T08:00:00+01:00", "2025-12-01T08:00:00+01:00"),  # exactly at a run: the next one
    ("daily", "2025-11-24T07:59:00+01:00", "2025-11-24T08:00:00+01:00"),
    ("daily", "2025-10-25T09:00:00+02:00", "2025-10-26T08:00:00+01:00"),  # the night summer time ends
])
def test_next_run_is_at_the_local_hour_of_the_report_calendar(period, after, expected):
    plan = DigestPlan(period, "08:00", "Europe/Paris")
    assert plan.next_run(_paris(after)) == _paris(expected)


@pytest.mark.parametrize(("period", "run_at", "since", "until"), [
    ("weekly", "2025-11-24T08:00:00+01:00", "2025-11-17T00:00:00+01:00", "2025-11-24T00:00:00+01:00"),
    ("daily", "2025-11-24T08:00:00+01:00", "2025-11-23T00:00:00+01:00", "2025-11-24T00:00:00+01:00"),
    ("daily", "2025-10-27T08:00:00+01:00", "2025-10-26T00:00:00+02:00", "2025-10-27T00:00:00+01:00"),  # 25 h day
    ("weekly", "2025-03-31T08:00:00+02:00", "2025-03-24T00:00:00+01:00", "2025-03-31T00:00:00+02:00"),
])
def test_a_run_reports_on_the_local_day_or_week_that_just_ended(period, run_at, since, until):
    assert DigestPlan(period, "08:00", "Europe/Paris").window(_paris(run_at)) == (_paris(since), _paris(until))


def test_cron_fields_fire_on_mondays_for_a_weekly_digest_only():
    assert DigestPlan("weekly", "07:30", "UTC").cron()["day_of_week"] == "mon"
    daily = DigestPlan("daily", "07:30", "UTC").cron()
    assert (daily["hour"], daily["minute"], "day_of_week" in daily) == (7, 30, False)


def test_the_email_has_text_and_html_with_the_inline_chart():
    message = digest_email("carebox digest\nline", "table", "<html><svg></svg></html>", "cb@acme.example",
                           ["a@acme.example", "b@acme.example"])
    assert message["Subject"] == "carebox digest line" and message["To"] == "a@acme.example, b@acme.example"
    assert "<svg>" in message.get_body(("html",)).get_content()
    assert message.get_body(("plain",)).get_content().strip() == "table"
