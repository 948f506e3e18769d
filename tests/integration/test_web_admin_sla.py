"""Managers edit calendars and policies from the web: validation in the page, a preview before saving, a new
version that is audited, in force at once for new clocks, rebases the running ones, and reaches other processes."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta

import orjson
import pytest
import sqlalchemy as sa

from carebox import config, escalation, fanout
from carebox.clocks import ClockBook
from carebox.ports import IngestBatch
from carebox.runtime import work_key
from carebox.store import clocks as clock_store
from carebox.store import queries, sla_edits
from tests.conftest import REDIS_URL, need_redis
from tests.integration.test_web import _csrf, _login, make_client
from web.keys import clocks_key, engine_key, pipeline_key, sla_edits_key

USERS = (("agent", "agent"), ("boss", "manager"))
WEEKDAYS = {"mon": "09:00-19:00", "tue": "09:00-19:00", "wed": "09:00-19:00", "thu": "09:00-19:00",
            "fri": "09:00-19:00", "sat": "", "sun": ""}


def sla_doc(tmp_path, db_url: str) -> dict:
    # 60 business hours on Mon-Fri 09:00-19:00 always span a Saturday: opening Saturdays moves every due time
    return {"carebox": {"data_dir": str(tmp_path)}, "database": {"url": db_url},
            "calendars": {"service-hours": {"timezone": "Europe/Paris", "hours": {"mon-fri": ["09:00-19:00"]}}},
            "policies": [{"name": "social", "calendar": "service-hours", "first_response": "60h", "warn": "20%"}]}


@pytest.fixture
async def client(aiohttp_client, tmp_path, db_url):
    return await make_client(aiohttp_client, config.parse(sla_doc(tmp_path, db_url), environ={}), users=USERS)


def calendar_form(token: str, action: str = "save", **changes: str) -> dict[str, str]:
    form = {"csrf": token, "version": "1", "timezone": "Europe/Paris", "holidays": "", "closed": "", "partial": "",
            "action": action, **WEEKDAYS}
    return {**form, **changes}


async def _open_conversation(app, mention, when: datetime) -> dict:
    await app[pipeline_key].ingest([IngestBatch("sim", (mention(when=when.isoformat()),))], when)
    [clock] = await clock_store.running(app[engine_key])
    return clock


async def test_agents_can_neither_open_nor_save_the_editors(client):
    await _login(client)
    token = await _csrf(client, "/")
    for path in ("/admin/calendars/service-hours", "/admin/policies/social"):
        assert (await client.get(path)).status == 403
        assert (await client.post(path, data=calendar_form(token))).status == 403
    assert await sla_edits.latest(client.server.app[engine_key]) == []


async def test_unknown_calendars_and_policies_are_404_not_500(client):
    await _login(client, username="boss")
    token = await _csrf(client, "/admin/policies")
    assert (await client.get("/admin/calendars/nope")).status == 404
    assert (await client.post("/admin/policies/nope", data={"csrf": token})).status == 404


@pytest.mark.parametrize(("changes", "message"), [
    ({"sat": "09:00-13:00, 12:00-14:00"}, "Saturday: these opening hours overlap."),
    ({"sat": "13:00-09:00"}, "Saturday: 13:00-09:00 ends before it starts"),
    ({"sat": "9h-13h"}, "Saturday: write opening hours as 09:00-12:00"),
    ({"sat": "25:00-26:00"}, "is not a time of day"),
    ({"timezone": "Europe/Lyon"}, "Unknown time zone “Europe/Lyon”"),
    ({"holidays": "ZZ"}, "Holidays: use a country code"),
    ({"closed": "2026-13-01"}, "Closed dates: “2026-13-01” is not a date"),
    ({"partial": "24/12 09:00-12:00"}, "Partial days: start each line with a date"),
    ({"fri": "22:00-10:00+1", "sat": "09:00-13:00"}, "Opening hours overlap across midnight"),
    ({**{d: "" for d in WEEKDAYS}}, "Give at least one opening window"),
])
async def test_a_bad_calendar_is_refused_on_its_field_and_nothing_is_saved(client, changes, message):
    await _login(client, username="boss")
    token = await _csrf(client, "/admin/calendars/service-hours")
    resp = await client.post("/admin/calendars/service-hours", data=calendar_form(token, **changes))
    text = await resp.text()
    assert resp.status == 400 and message in text and "Traceback" not in text
    assert "Nothing was saved" in text
    assert await sla_edits.latest(client.server.app[engine_key]) == []
    assert client.server.app[clocks_key].settings.calendars["service-hours"].version == 1


async def test_the_preview_shows_the_due_time_under_the_edited_hours_before_anything_is_saved(client):
    await _login(client, username="boss")
    token = await _csrf(client, "/admin/calendars/service-hours")
    # Friday 18:00 Paris, a 2 h target: 1 h on Friday, then Monday 10:00 -- or Saturday 10:00 with Saturdays open
    resp = await client.post("/admin/calendars/service-hours", data=calendar_form(
        token, "preview", sat="09:00-13:00", preview_at="2026-11-20T18:00", preview_target="2h"))
    text = await resp.text()
    assert resp.status == 200
    edited = re.search(r'data-due="edited">([^<]+)<', text).group(1)
    current = re.search(r'data-due="current">([^<]+)<', text).group(1)
    assert "Sat 21 Nov 2026 10:00" in edited and "Mon 23 Nov 2026 10:00" in current
    assert await sla_edits.latest(client.server.app[engine_key]) == []


async def test_saving_a_calendar_stores_an_audited_version_and_rebases_open_clocks(client, mention):
    app = client.server.app
    engine = app[engine_key]
    clock = await _open_conversation(app, mention, datetime.now(UTC) - timedelta(minutes=5))
    await _login(client, username="boss")
    token = await _csrf(client, "/admin/calendars/service-hours")
    resp = await client.post("/admin/calendars/service-hours", data=calendar_form(
        token, sat="09:00-13:00", partial="2026-12-24 09:00-12:00\n2026-12-31 closed", closed="2026-12-26"))
    assert resp.status == 200 and "Saved: version 2 is in force." in await resp.text()
    await app[sla_edits_key].settled()
    cal = app[clocks_key].settings.calendars["service-hours"]
    assert cal.version == 2 and cal.weekly[5] == ((9 * 3600, 13 * 3600),)
    assert {d.isoformat() for d in cal.closed_dates} == {"2026-12-26"} and len(cal.partial_days) == 2
    [saved] = await sla_edits.latest(engine)
    assert saved["username"] == "boss" and saved["version"] == 2
    async with engine.connect() as conn:
        audit = (await conn.execute(sa.text("select action, detail from auditevent where action = 'calendar.edit'"))).one()
    assert orjson.loads(audit.detail)["version"] == 2
    [moved] = await clock_store.running(engine)
    assert moved["calendar_version"] == 2 and moved["business_due"] == clock["business_due"] - timedelta(hours=4)
    breach = app[work_key].scheduler.aps.get_job(f"sla:{clock['id']}:breach")
    assert breach.next_run_time == moved["business_due"]  # the breach job moved with the due time
    conv = await queries.conversation(engine, clock["conversation_id"])
    assert conv["due_business"] == moved["business_due"]
    assert "rebase" in [e["kind"] for e in conv["sla_events"]]
    page = await (await client.get("/admin/policies")).text()
    assert "Edited on the web by boss" in page


async def test_a_form_opened_before_another_save_is_held_with_a_clear_message(client):
    await _login(client, username="boss")
    token = await _csrf(client, "/admin/calendars/service-hours")
    assert (await client.post("/admin/calendars/service-hours", data=calendar_form(token, sat="09:00-12:00"))).status == 200
    stale = await client.post("/admin/calendars/service-hours", data=calendar_form(token, sat="10:00-12:00"))
    assert stale.status == 409 and "Someone saved this calendar since you opened it" in await stale.text()
    assert client.server.app[clocks_key].settings.calendars["service-hours"].weekly[5] == ((9 * 3600, 12 * 3600),)


def policy_form(token: str, action: str = "save", **changes: str) -> dict[str, str]:
    form = {"csrf": token, "version": "0", "calendar": "service-hours", "first_response_target": "60h",
            "first_response_calendar": "", "first_response_warn": "20%", "next_response_target": "",
            "resolution_target": "", "pausing_pending": "1", "action": action}
    return {**form, **changes}


@pytest.mark.parametrize(("changes", "message"), [
    ({"first_response_target": "one hour"}, "First response: “one hour” is not a duration"),
    ({"first_response_target": "0m"}, "First response: the target must be longer than zero"),
    ({"first_response_warn": "120%"}, "a warning percentage is between 0 and 100"),
    ({"first_response_warn": "soon"}, "is not a duration; write 15m, 20% or none"),
    ({"match_priorities": "P1, urgent"}, "Use only: P1, P2, P3, P4"),
    ({"calendar": "office"}, "Choose one of the calendars."),
    ({"first_response_target": "400d"}, "a target of more than a year cannot be planned"),
])
async def test_a_bad_policy_is_refused_on_its_field(client, changes, message):
    await _login(client, username="boss")
    token = await _csrf(client, "/admin/policies/social")
    resp = await client.post("/admin/policies/social", data=policy_form(token, **changes))
    assert resp.status == 400 and message in await resp.text()
    assert await sla_edits.latest(client.server.app[engine_key]) == []


async def test_a_saved_policy_applies_to_new_clocks_and_keeps_running_ones(client, mention):
    app = client.server.app
    now = datetime.now(UTC)
    first = await _open_conversation(app, mention, now - timedelta(minutes=5))
    await _login(client, username="boss")
    token = await _csrf(client, "/admin/policies/social")
    preview = await client.post("/admin/policies/social", data=policy_form(
        token, "preview", first_response_target="1h", first_response_calendar="24/7", preview_at="2026-11-20T18:00"))
    text = await preview.text()
    assert "Fri 20 Nov 2026 19:00" in re.search(r'data-due="edited-first_response">([^<]+)<', text).group(1)
    resp = await client.post("/admin/policies/social", data=policy_form(
        token, first_response_target="1h", first_response_calendar="24/7", match_networks="x, mastodon"))
    assert resp.status == 200 and "Saved" in await resp.text()
    policy = app[clocks_key].settings.policy("social")
    assert policy.networks == {"x", "mastodon"} and policy.targets[0].calendar is None
    later = mention(when=now.isoformat(), author="u2")
    await app[pipeline_key].ingest([IngestBatch("sim", (later,))], now)
    clocks = {c["id"]: c for c in await clock_store.running(app[engine_key])}
    assert clocks[first["id"]]["business_due"] == first["business_due"]
    [new] = [c for c in clocks.values() if c["id"] != first["id"]]
    assert new["business_due"] == now + timedelta(hours=1)


async def test_a_save_in_one_process_reaches_another_through_the_periodic_check(engine, settings):
    book_a, book_b = ClockBook(settings.sla), ClockBook(settings.sla)
    fan = fanout.InProcessFanout()
    a = escalation.EditFollower(engine, book_a, settings.sla, lambda: datetime.now(UTC), fan, lambda: None)
    b = escalation.EditFollower(engine, book_b, settings.sla, lambda: datetime.now(UTC), fanout.InProcessFanout(),
                                lambda: None)
    await b.apply()
    follow = asyncio.create_task(b.follow(poll_s=0.05))
    try:
        table = {"timezone": "Europe/Paris", "hours": {"mon-sat": ["09:00-19:00"]}, "version": 2}
        await sla_edits.save(engine, "calendar", "service-hours", table, version=2, edited_version=1, user_id=None,
                             now=datetime.now(UTC))
        await a.saved()
        for _ in range(100):
            if book_b.settings.calendars["service-hours"].version == 2:
                break
            await asyncio.sleep(0.02)
    finally:
        follow.cancel()
    assert book_a.settings.calendars["service-hours"].version == book_b.settings.calendars["service-hours"].version == 2


@pytest.mark.services
async def test_a_save_reaches_another_process_through_redis_at_once(engine, settings):
    need_redis()
    channel = "carebox:test-sla-edits"
    fan_a, fan_b = fanout.RedisFanout(REDIS_URL, channel), fanout.RedisFanout(REDIS_URL, channel)
    await fan_a.start()
    await fan_b.start()
    book_a, book_b = ClockBook(settings.sla), ClockBook(settings.sla)
    a = escalation.EditFollower(engine, book_a, settings.sla, lambda: datetime.now(UTC), fan_a, lambda: None)
    b = escalation.EditFollower(engine, book_b, settings.sla, lambda: datetime.now(UTC), fan_b, lambda: None)
    await b.apply()
    follow = asyncio.create_task(b.follow(poll_s=600))
    try:
        await asyncio.sleep(0.05)
        table = {"timezone": "Europe/Paris", "hours": {"mon-sat": ["09:00-19:00"]}, "version": 2}
        await sla_edits.save(engine, "calendar", "service-hours", table, version=2, edited_version=1, user_id=None,
                             now=datetime.now(UTC))
        await a.saved()
        for _ in range(100):
            if book_b.settings.calendars["service-hours"].version == 2:
                break
            await asyncio.sleep(0.02)
    finally:
        follow.cancel()
        await fan_a.close()
        await fan_b.close()
    assert book_b.settings.calendars["service-hours"].version == 2


async def test_the_editor_speaks_french_to_a_french_manager(client):
    from carebox.store import actions

    await actions.update_user(client.server.app[engine_key], 2, 2, datetime.now(UTC), language="fr")
    await _login(client, username="boss")
    page = await (await client.get("/admin/calendars/service-hours")).text()
    assert "Horaires d’ouverture de la semaine" in page and "Samedi" in page
    token = await _csrf(client, "/admin/calendars/service-hours")
    resp = await client.post("/admin/calendars/service-hours", data=calendar_form(token, sat="13:00-09:00"))
    assert resp.status == 400 and "Samedi : 13:00-09:00 finit avant de commencer" in await resp.text()


@pytest.mark.parametrize("at", ["9999-12-31T23:00", "0001-01-01T00:30", "tomorrow"])
async def test_a_preview_at_the_ends_of_time_is_a_message_not_a_500(client, at):
    await _login(client, username="boss")
    token = await _csrf(client, "/admin/calendars/service-hours")
    for path, form in (("/admin/calendars/service-hours", calendar_form(token, "preview", preview_at=at)),
                       ("/admin/policies/social", policy_form(token, "preview", preview_at=at))):
        resp = await client.post(path, data=form)
        assert resp.status == 400 and "Give the message time as a date and a time." in await resp.text()
