"""Reports over a real store: a TWCS fixture replayed through the pipeline, checked against an independent
computation over the file's rows; a hand-made history with known answers; CLI, drill-down, exports, web."""

from __future__ import annotations

import argparse
import csv
import io
import json
import re
from collections import defaultdict
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from carebox import reports_config
from carebox.ports import Direction, InboundMention, IngestBatch
from carebox.store import reporting

FIXTURE = Path(__file__).parent.parent / "fixtures" / "twcs_report.csv"
PARIS = ZoneInfo("Europe/Paris")
FR_HOLIDAYS_2017 = {date(2017, 11, 1), date(2017, 11, 11)}
TWCS_NOW = datetime(2017, 11, 20, tzinfo=UTC)
TWCS_TIME = "%a %b %d %H:%M:%S %z %Y"


# --- the independent computation: plain Python over the CSV rows --------------------------------------------


def _open_paris(at: datetime) -> bool:
    local = at.astimezone(PARIS)
    return local.weekday() < 5 and 9 <= local.hour < 19 and local.date() not in FR_HOLIDAYS_2017


def _business_minutes(start: datetime, end: datetime) -> float:
    """Service-hours seconds between two whole-minute instants, minute by minute."""
    total, t = 0, start
    while t < end:
        total += 60 if _open_paris(t) else 0
        t += timedelta(minutes=1)
    return float(total)


def _pctl(values: list[float], q: float) -> float | None:
    if not values:
        return None
    v = sorted(values)
    x = (len(v) - 1) * q
    i = int(x)
    return v[i] if i + 1 >= len(v) else v[i] + (v[i + 1] - v[i]) * (x - i)


def independent_twcs(path: Path) -> dict[str, dict]:
    """Per account, from the file alone: chains rooted at customers' openers, first brand tweet, both clocks."""
    with path.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    by_id = {r["tweet_id"]: r for r in rows}
    brands = {r["author_id"] for r in rows if r["inbound"] == "False"}
    children = defaultdict(list)
    for r in rows:
        if r["in_response_to_tweet_id"]:
            children[r["in_response_to_tweet_id"]].append(r)
    when = {r["tweet_id"]: datetime.strptime(r["created_at"], TWCS_TIME) for r in rows}
    out: dict[str, dict] = defaultdict(lambda: {"conversations": 0, "wall": [], "business": [], "met": 0,
                                                "breached": 0, "within": 0, "decided": 0, "off": 0, "customers": set()})
    for opener in rows:
        if opener["inbound"] != "True" or opener["in_response_to_tweet_id"] in by_id:
            continue
        chain, todo = [], [opener]
        while todo:
            node = todo.pop()
            chain.append(node)
            todo += children[node["tweet_id"]]
        answers = sorted((when[r["tweet_id"]], r["author_id"]) for r in chain if r["inbound"] == "False")
        mentioned = [b for b in brands if f"@{b.lower()}" in opener["text"].lower()]
        account = answers[0][1] if answers else (mentioned[0] if mentioned else "unknown")
        start = when[opener["tweet_id"]]
        acc = out[account]
        acc["conversations"] += 1
        acc["customers"].add(opener["author_id"])
        acc["off"] += not _open_paris(start)
        if answers:
            wall, business = (answers[0][0] - start).total_seconds(), _business_minutes(start, answers[0][0])
            acc["wall"].append(wall)
            acc["business"].append(business)
            acc["met" if business <= 3600 else "breached"] += 1
            acc["decided"] += 1
            acc["within"] += wall <= 3600
        else:
            acc["breached"] += 1  # every fixture opener is long overdue at TWCS_NOW
            acc["decided"] += 1
    return dict(out)


# --- replaying the fixture through the real pipeline ----------------------------------------------------------


@pytest.fixture
def chain_pipeline(settings, engine):
    from carebox.runtime import make_pipeline

    return make_pipeline(replace(settings, pipeline=replace(settings.pipeline, quiet_gap_s=0.0)), engine)[0]


@pytest.fixture
def report_settings(settings):
    return reports_config.parse_settings(settings.raw, settings.sla)


@pytest.fixture
async def twcs_store(engine, chain_pipeline):
    from connectors.social.replay import read_records

    records = [r for r in read_records(FIXTURE, "twcs") if isinstance(r, InboundMention)]
    assert len(records) == 26
    for i in range(0, len(records), 5):  # small batches: threading must hold across them
        await chain_pipeline.ingest([IngestBatch("replay:test", tuple(records[i:i + 5]))], TWCS_NOW)
    return engine


async def test_per_account_percentiles_match_an_independent_computation_on_the_twcs_fixture(twcs_store, report_settings):
    expected = independent_twcs(FIXTURE)
    report = await reporting.build_report(twcs_store, reporting.make_scope(report_settings, TWCS_NOW), report_settings)
    got = {f.key: f for f in report.by_account}
    assert set(got) == set(expected) == {"AcmeCare", "BetaHelp"}
    for account, exp in expected.items():
        f = got[account]
        assert (f.conversations, f.answered) == (exp["conversations"], len(exp["wall"]))
        for q, attr in ((0.5, "p50"), (0.9, "p90"), (0.95, "p95")):
            assert getattr(f.frt_wall, attr) == pytest.approx(_pctl(exp["wall"], q)), (account, "wall", attr)
            assert getattr(f.frt_business, attr) == pytest.approx(_pctl(exp["business"], q)), (account, "business", attr)
        assert f.frt_wall.mean == pytest.approx(sum(exp["wall"]) / len(exp["wall"]))


async def test_attainment_exposure_and_customers_match_the_independent_computation(twcs_store, report_settings):
    expected = independent_twcs(FIXTURE)
    report = await reporting.build_report(twcs_store, reporting.make_scope(report_settings, TWCS_NOW), report_settings)
    for f in report.by_account:
        exp = expected[f.key]
        assert (f.sla_met, f.sla_breached) == (exp["met"], exp["breached"])
        assert f.sla_attainment_pct == pytest.approx(100 * exp["met"] / (exp["met"] + exp["breached"]))
        assert f.within_1h_wall_pct == pytest.approx(100 * exp["within"] / exp["decided"])
        assert f.off_hours_arrivals == exp["off"]
        assert f.customers == len(exp["customers"])
        outside = sum(w - b for w, b in zip(exp["wall"], exp["business"], strict=True))
        assert f.off_hours_wait_share_pct == pytest.approx(100 * outside / sum(exp["wall"]))
    assert report.totals.conversations == sum(e["conversations"] for e in expected.values())


async def test_the_twcs_fixture_has_the_answers_written_in_its_design(twcs_store, report_settings):
    """Spot values worked out by hand (docs/reports.md): the fixture itself is checked, not only the code."""
    report = await reporting.build_report(twcs_store, reporting.make_scope(report_settings, TWCS_NOW), report_settings)
    acme = next(f for f in report.by_account if f.key == "AcmeCare")
    assert acme.frt_wall.p50 == 3900.0  # 300, 1200, 2400, 5400, 52800, 229200 -> (2400 + 5400) / 2
    assert acme.frt_business.p50 == 2400.0  # 0, 300, 2400, 2400, 5400, 6000
    assert acme.repeat_contacts == 1  # customer 101 came back on Wednesday
    beta = next(f for f in report.by_account if f.key == "BetaHelp")
    assert beta.conversations == 5  # includes the opener naming no brand, owned by the brand that answered


# --- a hand-made history with known answers -----------------------------------------------------------------

KNOWN_NOW = datetime.fromisoformat("2025-11-24T14:00:00+01:00").astimezone(UTC)


@pytest.fixture
async def known_store(engine, chain_pipeline, mention):
    out = Direction.OUTBOUND
    script = [
        mention("my 4G is down", when="2025-11-21T18:50:00+01:00", author="c1", external_id="a1"),
        mention("sorry!", when="2025-11-24T09:30:00+01:00", direction=out, author_id="acme", in_reply_to="a1"),
        mention("do you open on saturday?", when="2025-11-22T11:00:00+01:00", author="c2", external_id="b1"),
        mention("yes we read you", when="2025-11-22T11:20:00+01:00", direction=out, author_id="acme", in_reply_to="b1"),
        mention("wrong bill", when="2025-11-24T10:00:00+01:00", author="c3", external_id="c1"),
        mention("checking", when="2025-11-24T11:30:00+01:00", direction=out, author_id="acme", in_reply_to="c1"),
        mention("anyone?", when="2025-11-24T12:00:00+01:00", author="c4", external_id="d1"),
        mention("still down", when="2025-11-24T13:30:00+01:00", author="c1", external_id="e1"),
    ]
    await chain_pipeline.ingest([IngestBatch("sim", tuple(script))], KNOWN_NOW)
    return engine


async def _ids(engine, *externals):
    async with engine.connect() as c:
        rows = await c.execute(sa.text("SELECT external_id, conversation_id FROM mention"))
        found = dict(rows.all())
    return [found[e] for e in externals]


async def test_known_history_gives_the_hand_computed_figures(known_store, report_settings):
    report = await reporting.build_report(known_store, reporting.make_scope(report_settings, KNOWN_NOW), report_settings)
    t = report.totals
    assert (t.conversations, t.answered, t.customers, t.repeat_contacts) == (5, 3, 4, 1)
    assert (t.frt_wall.p50, t.frt_wall.p90) == (5400.0, pytest.approx(181560.0))  # 1200, 5400, 225600
    assert (t.frt_business.p50, t.frt_business.p90) == (2400.0, pytest.approx(4800.0))  # 0, 2400, 5400
    assert (t.sla_met, t.sla_breached, t.sla_attainment_pct) == (2, 2, 50.0)  # the 13:30 one is not due yet
    assert (t.within_expectation, t.expectation_decided) == (1, 4)
    assert (t.off_hours_arrivals, t.off_hours_wait_mean_s) == (1, 1200.0)  # Saturday 11:00
    assert t.off_hours_wait_share_pct == pytest.approx(100 * 224400 / 232200)
    friday_18h = 4 * 24 + 18
    assert report.heatmap[friday_18h].conversations == 1 and report.heatmap[friday_18h].open
    assert [(p.start, p.conversations) for p in report.daily] == [
        (date(2025, 11, 21), 1), (date(2025, 11, 22), 1), (date(2025, 11, 24), 3)]
    assert [(p.start, p.conversations) for p in report.weekly] == [(date(2025, 11, 17), 2), (date(2025, 11, 24), 3)]


async def test_drill_down_lists_the_conversations_behind_a_figure(known_store, report_settings):
    scope = reporting.make_scope(report_settings, KNOWN_NOW)
    breached = await reporting.drill(known_store, scope, report_settings, "breached")
    assert {r["id"] for r in breached} == set(await _ids(known_store, "c1", "d1"))
    saturday_11h = 5 * 24 + 11
    cell = await reporting.drill(known_store, scope, report_settings, "all", {"how": saturday_11h})
    assert [r["id"] for r in cell] == await _ids(known_store, "b1")
    by_account = await reporting.drill(known_store, replace(scope, where={"account": "nobody"}), report_settings)
    assert by_account == []


async def test_incident_conversations_are_marked_and_can_be_excluded(known_store, report_settings):
    (incident_conv,) = await _ids(known_store, "c1")
    async with known_store.begin() as c:
        await c.execute(sa.text("UPDATE conversation SET incident_id = 7 WHERE id = :id"), {"id": incident_conv})
    scope = reporting.make_scope(report_settings, KNOWN_NOW)
    marked = await reporting.build_report(known_store, scope, report_settings)
    excluded = await reporting.build_report(known_store, replace(scope, exclude_incidents=True), report_settings)
    assert marked.totals.in_incident == 1 and marked.totals.conversations == 5
    assert excluded.totals.conversations == 4 and excluded.totals.sla_breached == 1 and excluded.incidents_excluded


async def test_csv_rows_carry_every_clock_value_one_per_conversation(known_store, report_settings):
    rows = [r async for r in reporting.conversation_rows(known_store, reporting.make_scope(report_settings, KNOWN_NOW),
                                                         report_settings)]
    assert len(rows) == 5 and list(rows[0]) == list(reporting.CSV_COLUMNS)
    first = rows[0]
    assert (first["frt_business_s"], first["frt_wall_s"], first["sla"]) == (2400.0, 225600.0, "met")
    assert first["business_due"] == datetime.fromisoformat("2025-11-24T09:50:00+01:00")
    assert [r["sla"] for r in rows] == ["met", "met", "breached", "breached", "running"]


async def test_what_if_pairs_come_from_the_store(known_store, report_settings, settings):
    from carebox.reports_whatif import compare, configured_scenario, scenarios

    pairs = await reporting.response_pairs(known_store, reporting.make_scope(report_settings, KNOWN_NOW))
    actual = configured_scenario(settings.sla)
    as_is, saturday = compare(pairs, scenarios(actual, "sat=09:00-17:00", None), KNOWN_NOW)
    assert (as_is.met, as_is.breached, as_is.pending) == (2, 2, 1)
    # open on Saturday: Friday 18:50 falls due Saturday 09:50 and its Monday answer breaches; Saturday's is met
    assert (saturday.met, saturday.breached, saturday.pending) == (1, 3, 1)


# --- the command line ----------------------------------------------------------------------------------------


def _cli(argv: list[str]) -> int:
    from carebox.commands import report

    parser = argparse.ArgumentParser()
    report.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return args.func(args)


@pytest.fixture
def config_file(tmp_path, db_url, twcs_store):
    path = tmp_path / "carebox.toml"
    path.write_text(f'[carebox]\ndata_dir = "{tmp_path}"\n[database]\nurl = "{db_url}"\n', encoding="utf-8")
    return str(path)


async def test_cli_json_has_the_by_account_objects(config_file, capsys):
    import asyncio

    code = await asyncio.to_thread(_cli, ["report", "--config", config_file, "--format", "json", "--now", TWCS_NOW.isoformat()])
    assert code == 0
    doc = json.loads(capsys.readouterr().out)
    expected = independent_twcs(FIXTURE)
    for row in doc["by_account"]:
        exp = expected[row["account"]]
        assert row["network"] == "x" and row["conversations"] == exp["conversations"]
        assert row["answered"] == len(exp["wall"])
        assert row["frt_wall_p50_s"] == pytest.approx(_pctl(exp["wall"], 0.5))
        assert row["frt_wall_p90_s"] == pytest.approx(_pctl(exp["wall"], 0.9))
        assert row["frt_business_p50_s"] == pytest.approx(_pctl(exp["business"], 0.5))
        assert row["frt_business_p90_s"] == pytest.approx(_pctl(exp["business"], 0.9))
        assert row["sla_attainment_pct"] == pytest.approx(100 * exp["met"] / (exp["met"] + exp["breached"]))
        assert row["within_1h_wall_pct"] == pytest.approx(100 * exp["within"] / exp["decided"])


async def test_cli_csv_and_text_and_what_if(config_file, capsys):
    import asyncio

    now = ["--now", TWCS_NOW.isoformat()]
    assert await asyncio.to_thread(_cli, ["report", "--config", config_file, "--format", "csv", *now]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert len(rows) == 12 and rows[0]["frt_wall_s"] == "1200.0"
    assert await asyncio.to_thread(_cli, ["report", "--config", config_file, "--by", "category", "--what-if-target",
                                          "30m", *now]) == 0
    text = capsys.readouterr().out
    assert text.startswith("category") and "what if: target 30m" in text


# --- the web report --------------------------------------------------------------------------------------------

CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@pytest.fixture
async def web_client(aiohttp_client, settings, known_store):
    """The web app alone over the test store (no scheduler, queue or connectors), the clock pinned."""
    from carebox.store import actions
    from web import reports as web_reports
    from web.app import create_app
    from web.auth import hash_password
    from web.keys import engine_key, now_key

    app = create_app(settings, session_secret=bytes(32))
    app[engine_key] = known_store
    app[now_key] = lambda: KNOWN_NOW
    web_reports.setup(app)
    for name, role in (("boss", "manager"), ("agent", "agent")):
        await actions.add_user(known_store, name, hash_password("s3cret-pass"), role, KNOWN_NOW)
    return await aiohttp_client(app)


async def _login(client, username: str) -> None:
    token = CSRF.search(await (await client.get("/login")).text()).group(1)
    response = await client.post("/login", data={"username": username, "password": "s3cret-pass", "csrf": token},
                                 allow_redirects=False)
    assert response.status == 303


async def test_web_report_links_every_figure_to_its_conversations(web_client):
    await _login(web_client, "boss")
    page = await web_client.get("/reports?what_if_hours=sat%3D09:00-17:00")
    html = await page.text()
    assert page.status == 200 and "<svg" in html and "What if" in html
    assert "<th>Conversations</th>" in html and "&lt;th" not in html and "&lt;svg" not in html
    links = set(re.findall(r'href="(/reports/drill\?[^"]+)"', html))
    assert links
    breached = next(link for link in links if "metric=breached" in link and "account=" in link)
    drill = await web_client.get(breached.replace("&amp;", "&"))
    body = await drill.text()
    assert drill.status == 200
    assert len(set(re.findall(r'href="/conversations/(\d+)"', body))) == 2


async def test_web_exports_csv_and_json(web_client):
    await _login(web_client, "boss")
    exported = await web_client.get("/reports/export.csv")
    assert exported.status == 200 and exported.headers["Content-Type"].startswith("text/csv")
    assert len(list(csv.DictReader(io.StringIO(await exported.text())))) == 5
    doc = await (await web_client.get("/reports/export.json?by=priority")).json()
    assert doc["by"] == "priority" and doc["by_account"][0]["account"] == "acme"


async def test_agents_cannot_see_reports(web_client):
    await _login(web_client, "agent")
    for path in ("/reports", "/reports/drill", "/reports/export.csv", "/reports/export.json"):
        assert (await web_client.get(path)).status == 403


async def test_every_web_export_is_audited_with_who_and_what_scope(web_client):
    await _login(web_client, "boss")
    from web.keys import engine_key

    engine = web_client.app[engine_key]
    assert (await web_client.get("/reports/export.csv?since=2025-11-01&exclude_incidents=1")).status == 200
    assert (await web_client.get("/reports/export.json?by=network&until=2025-12-01")).status == 200
    assert (await web_client.get("/reports/export.csv?since=yesterday")).status == 400  # refused: nothing exported
    async with engine.connect() as c:
        rows = (await c.execute(sa.text(
            "SELECT a.action, a.detail, u.username FROM auditevent a JOIN \"user\" u ON u.id = a.user_id"
            " WHERE a.action LIKE 'export.%' ORDER BY a.id"))).all()
    assert [(r.action, r.username) for r in rows] == [("export.report.csv", "boss"), ("export.report.json", "boss")]
    csv_scope, json_scope = (json.loads(r.detail) for r in rows)
    assert csv_scope == {"since": "2025-11-01T00:00:00+00:00", "until": None, "exclude_incidents": True}
    assert json_scope["by"] == "network" and json_scope["until"] == "2025-12-01T00:00:00+00:00"


async def test_web_what_if_compares_with_the_calendars_edited_on_the_web(web_client):
    from carebox.store import sla_edits
    from web.keys import engine_key

    await _login(web_client, "boss")
    before = (await (await web_client.get("/reports/export.json?what_if_target=30m")).json())["what_if"][0]
    # Saturday opens on the web: Friday 18:50 answered Monday 09:30 now waited 10 h 40 min of service hours
    table = {"timezone": "Europe/Paris", "hours": {"mon-sat": ["09:00-19:00"]}, "holidays": "FR", "version": 2}
    await sla_edits.save(web_client.app[engine_key], "calendar", "service-hours", table, version=2, edited_version=1,
                         user_id=None, now=KNOWN_NOW)
    after = (await (await web_client.get("/reports/export.json?what_if_target=30m")).json())["what_if"][0]
    assert after["scenario"] == before["scenario"]
    assert (after["met"], after["breached"]) == (before["met"] - 1, before["breached"] + 1)
