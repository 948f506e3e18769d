"""The inbox row and "why this deadline" of a conversation whose customer writes again after an answer.

Calendar `service-hours` (the default): Mon-Fri 09:00-19:00 Europe/Paris; in November Paris is CET (UTC+1), so
every time below is Paris local time. Sunday 2026-11-22 is closed all day; Monday 2026-11-23 opens at 09:00.
"""

from __future__ import annotations

import html
import re
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from carebox import config
from carebox.clocks import ClockBook
from carebox.ports import Direction, IngestBatch
from carebox.runtime import make_pipeline
from carebox.store import queries
from tests.conftest import at
from web import explain, i18n
from web.views import inbox_rows

PARIS = ZoneInfo("Europe/Paris")
FIRST_ONLY = {"name": "social", "calendar": "service-hours", "first_response": "1h"}  # the demo's policy
NEXT_24_7 = {**FIRST_ONLY, "next_response": {"target": "30m", "calendar": "24/7"}}
NEXT_BUSINESS = {**FIRST_ONLY, "next_response": "1h"}


async def _asked_again(tmp_path, db_url, engine, mention, policy: dict, day: str, times: tuple[str, str, str]):
    """A customer writes, an agent answers publicly, the customer writes again (Paris times on `day`)."""
    settings = config.parse({"carebox": {"data_dir": str(tmp_path)}, "database": {"url": db_url},
                             "policies": [policy]}, environ={})
    pipeline = make_pipeline(settings, engine)[0]
    asked, answered, again = (f"{day}T{t}:00+01:00" for t in times)
    question = mention("my fibre is down", when=asked)
    reply = mention("on it", when=answered, author="acme", direction=Direction.OUTBOUND, in_reply_to=question.external_id)
    for m in (question, reply, mention("still down", when=again)):
        await pipeline.ingest([IngestBatch("sim", (m,))], m.created_at)
    return settings, await queries.conversation(engine, 1)


def _row(settings, conv: dict, now: datetime):
    token = i18n.CURRENT.set(i18n.Locale("en", "Europe/Paris"))
    try:
        [row] = inbox_rows([{**conv, "customer_handle": "u1", "assignee": None}], ClockBook(settings.sla), now)
        why = [html.unescape(re.sub(r"<[^>]+>", "", str(line))) for line in explain.why_lines(settings.sla, conv, now)]
        return row, why
    finally:
        i18n.CURRENT.reset(token)


@pytest.mark.parametrize(("day", "times", "now", "late"), [
    # Sunday: asked 19:00, answered 20:00, asked again 20:31. No next-response target, so the clock is the customer
    # expectation alone, 1 h on the wall clock: due 20:31 + 1 h = Sun 21:31. At 20:41: 21:31 - 20:41 = 50 min left.
    # (Counted on service-hours, closed all Sunday, it was 0 s left, in warning: the bug.) At 21:41, 10 min late.
    ("2026-11-22", ("19:00", "20:00", "20:31"), "20:41", "21:41"),
    # Monday evening, after closing: asked 18:00, answered 18:30, asked again 19:20: due 20:20; at 19:30, 50 min
    # left on the wall clock (service-hours counts 0 after 19:00); at 20:30, 10 min late.
    ("2026-11-23", ("18:00", "18:30", "19:20"), "19:30", "20:30"),
])
async def test_without_a_next_response_target_the_row_shows_the_customer_expectation(
        tmp_path, db_url, engine, mention, day, times, now, late):
    settings, conv = await _asked_again(tmp_path, db_url, engine, mention, FIRST_ONLY, day, times)
    due = at(f"{day}T{times[2]}:00+01:00") + timedelta(hours=1)
    assert conv["due_business"] == due and conv["due_wall"] == due
    row, why = _row(settings, conv, at(f"{day}T{now}:00+01:00"))
    assert (row.state, row.business) == ("running", "50m left"), row
    row, why = _row(settings, conv, at(f"{day}T{late}:00+01:00"))
    assert (row.state, row.business) == ("late", "overdue 10m"), row  # no contract was breached
    text = " | ".join(why)
    assert "no longer configured" not in text
    assert "policy 'social' sets no next_response target: only the customer expectation (1h 00m, 24/7) runs" in text
    shown = f"{'Sun 22' if day.endswith('22') else 'Mon 23'} Nov 2026 {due.astimezone(PARIS):%H:%M}"
    assert f"customer expectation due {shown}; without a contract target it neither warns nor breaches" in text


async def test_a_next_response_target_on_24_7_counts_on_the_wall_clock_on_a_sunday(tmp_path, db_url, engine, mention):
    # next_response 30 min, 24/7: asked again Sun 20:31, due 21:01. At 20:41: 20 min left; its warning lead is 20% of
    # 30 min = 6 min, so running (it was 0 s left and warning on the first response's closed calendar); at 20:56,
    # 5 min left <= 6 min: warning; at 21:02, 1 min overdue: breached (a contract target).
    settings, conv = await _asked_again(tmp_path, db_url, engine, mention, NEXT_24_7, "2026-11-22", ("19:00", "20:00", "20:31"))
    assert conv["due_business"] == at("2026-11-22T21:01:00+01:00")
    for now, state, business in (("20:41", "running", "20m left"), ("20:56", "warning", "5m left"),
                                 ("21:02", "breached", "overdue 1m")):
        row, why = _row(settings, conv, at(f"2026-11-22T{now}:00+01:00"))
        assert (row.state, row.business) == (state, business), now
    assert "target next_response: 30m on the wall clock (24/7)" in " | ".join(why)


async def test_a_next_response_target_on_service_hours_waits_for_monday(tmp_path, db_url, engine, mention):
    # next_response 1 h on service-hours: asked again Sun 20:31, closed until Mon 09:00, so business due Mon 10:00.
    # At Sun 20:41 the whole hour is left (running); the customer's own hour ends Sun 21:31: at 21:41 it is "late"
    # while the contract still has 1 h.
    settings, conv = await _asked_again(tmp_path, db_url, engine, mention, NEXT_BUSINESS, "2026-11-22",
                                        ("19:00", "20:00", "20:31"))
    assert conv["due_business"] == at("2026-11-23T10:00:00+01:00")
    row, _ = _row(settings, conv, at("2026-11-22T20:41:00+01:00"))
    assert (row.state, row.business) == ("running", "1h 00m left")
    row, why = _row(settings, conv, at("2026-11-22T21:41:00+01:00"))
    assert (row.state, row.business) == ("late", "1h 00m left")
    text = " | ".join(why)
    assert "target next_response: 1h 00m of business time on calendar 'service-hours'" in text
    assert "business due Mon 23 Nov 2026 10:00; wall-clock due Sun 22 Nov 2026 21:31" in text
    assert "no longer configured" not in text
