"""Next-response and resolution times on both clocks, checked against values worked out by hand and against
the calendar's own business-time arithmetic."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from carebox import config, reports, reports_config
from carebox.calendar import business_seconds
from carebox.ports import Direction, IngestBatch, Status
from carebox.store import actions, reporting

NOW = datetime.fromisoformat("2025-11-28T12:00:00+01:00").astimezone(UTC)
OUT = Direction.OUTBOUND


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


@pytest.fixture
def settings(tmp_path, db_url):
    """The default service hours (Paris, Mon-Fri 09:00-19:00) with a next-response target as well."""
    policy = {"name": "social", "calendar": "service-hours", "first_response": "1h", "next_response": "4h"}
    return config.parse({"carebox": {"data_dir": str(tmp_path)}, "database": {"url": db_url}, "policies": [policy]},
                        environ={})


@pytest.fixture
def report_settings(settings):
    return reports_config.parse_settings(settings.raw, settings.sla)


@pytest.fixture
async def store(settings, engine, mention):
    from carebox.runtime import make_pipeline

    pipeline = make_pipeline(replace(settings, pipeline=replace(settings.pipeline, quiet_gap_s=0.0)), engine)[0]
    script = [
        # Monday 24 Nov: answered at 10:30; the customer writes again at 11:00 and 11:10 (one next-response
        # clock), answered 12:00 (1 h on both clocks); again at 18:30, answered Tuesday 09:30 (15 h wall, 1 h business)
        mention("my 4G is down", when="2025-11-24T10:00:00+01:00", author="c1", external_id="m1"),
        mention("looking", when="2025-11-24T10:30:00+01:00", direction=OUT, author_id="acme", external_id="r1",
                in_reply_to="m1"),
        mention("still nothing", when="2025-11-24T11:00:00+01:00", author="c1", external_id="m2", in_reply_to="r1"),
        mention("hello??", when="2025-11-24T11:10:00+01:00", author="c1", external_id="m3", in_reply_to="r1"),
        mention("fixed?", when="2025-11-24T12:00:00+01:00", direction=OUT, author_id="acme", external_id="r2",
                in_reply_to="m3"),
        mention("down again", when="2025-11-24T18:30:00+01:00", author="c1", external_id="m4", in_reply_to="r2"),
        mention("on it", when="2025-11-25T09:30:00+01:00", direction=OUT, author_id="acme", external_id="r3",
                in_reply_to="m4"),
        # Monday 10 Nov 17:00, resolved Wednesday 12 Nov 10:00 over the 11 November holiday
        mention("wrong bill", when="2025-11-10T17:00:00+01:00", author="c2", external_id="h1"),
        mention("sorry", when="2025-11-10T17:20:00+01:00", direction=OUT, author_id="acme", external_id="h2",
                in_reply_to="h1"),
    ]
    await pipeline.ingest([IngestBatch("sim", tuple(script))], NOW)
    async with engine.connect() as c:
        ids = dict((await c.execute(sa.text("SELECT external_id, conversation_id FROM mention"))).all())
    await actions.set_status(engine, ids["m1"], Status.RESOLVED, None, _at("2025-11-25T10:00:00+01:00"))
    await actions.set_status(engine, ids["h1"], Status.RESOLVED, None, _at("2025-11-12T10:00:00+01:00"))
    return engine


async def test_next_response_runs_from_each_later_customer_message_to_the_next_reply(store, report_settings):
    report = await reporting.build_report(store, reporting.make_scope(report_settings, NOW), report_settings)
    t = report.totals
    assert (t.nrt_wall.count, t.nrt_wall.mean, t.nrt_wall.p50) == (2, 28800.0, 28800.0)  # 3600 and 54000
    assert t.nrt_wall.p90 == pytest.approx(3600 + 0.9 * 50400)
    assert (t.nrt_business.count, t.nrt_business.p50, t.nrt_business.p95) == (2, 3600.0, 3600.0)
    row = reports.figures_row(report.by_account[0])
    assert (row["next_responses"], row["nrt_wall_p50_s"], row["nrt_business_mean_s"]) == (2, 28800.0, 3600.0)


async def test_resolution_time_is_measured_on_both_clocks_holidays_included(store, report_settings):
    report = await reporting.build_report(store, reporting.make_scope(report_settings, NOW), report_settings)
    t = report.totals
    cal = report_settings.calendar
    expected = sorted([
        business_seconds(cal, _at("2025-11-24T10:00:00+01:00"), _at("2025-11-25T10:00:00+01:00")),
        business_seconds(cal, _at("2025-11-10T17:00:00+01:00"), _at("2025-11-12T10:00:00+01:00")),
    ])
    assert expected == [10800.0, 36000.0]  # 17:00-19:00 + Wednesday 09:00-10:00; 09:00 + 1 h
    assert (t.resolved, t.resolution_wall.count) == (2, 2)
    assert t.resolution_wall.p50 == pytest.approx((86400 + 147600) / 2)
    assert (t.resolution_business.p50, t.resolution_business.mean) == (23400.0, 23400.0)
    assert t.resolution_business.p90 == pytest.approx(10800 + 0.9 * 25200)
    doc = reports.to_json(report)
    assert doc["totals"]["resolution_business_p95_s"] == pytest.approx(10800 + 0.95 * 25200)
    assert doc["by_account"][0]["resolution_wall_mean_s"] == pytest.approx(117000.0)


async def test_csv_rows_carry_resolution_and_next_response_times(store, report_settings):
    rows = [r async for r in reporting.conversation_rows(store, reporting.make_scope(report_settings, NOW),
                                                         report_settings)]
    holiday, monday = rows
    assert (holiday["resolution_wall_s"], holiday["resolution_business_s"], holiday["next_responses"]) == (147600, 10800, 0)
    assert (monday["next_responses"], monday["nrt_wall_max_s"], monday["nrt_business_max_s"]) == (2, 54000.0, 3600.0)
    assert (monday["resolution_wall_s"], monday["resolution_business_s"]) == (86400, 36000)


def test_business_time_in_sql_matches_the_calendar_arithmetic_over_a_year_of_holidays(settings):
    """open_before(b) - open_before(a), evaluated by SQLite, equals calendar.business_seconds(a, b)."""
    import random
    from datetime import timedelta

    from carebox.store.report_measures import open_before

    cal = reports_config.parse_settings(settings.raw, settings.sla).calendar
    start, end = _at("2025-01-01T00:00:00+01:00"), _at("2026-01-01T00:00:00+01:00")
    plan = reports.local_plan(cal, start, end)
    x = sa.bindparam("x", type_=sa.BigInteger)
    stmt = sa.select(open_before(plan, x))
    rng = random.Random(8)
    engine = sa.create_engine("sqlite://")
    with engine.connect() as conn:
        def value(at: datetime) -> int:
            return conn.execute(stmt, {"x": reports.local_seconds(plan, at)}).scalar_one()

        for _ in range(150):
            a = start + timedelta(minutes=rng.randrange(525_000))
            b = a + timedelta(minutes=rng.randrange(20_000))
            assert value(b) - value(a) == business_seconds(cal, a, b), (a, b)
    engine.dispose()
