"""A manager changes a calendar in a real browser: the preview shows the new due time before saving, and an
open conversation's due time moves when the new version is saved."""

from __future__ import annotations

from typing import Any

import pytest

from carebox import config
from tests.e2e.harness import log_in, serve

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::ResourceWarning")


def settings_with_long_target(tmp_path: Any) -> config.Settings:
    # 60 business hours on Mon-Fri 09:00-19:00 always span a Saturday: opening Saturdays moves every due time
    doc = {"carebox": {"data_dir": str(tmp_path)}, "database": {"url": f"sqlite+aiosqlite:///{tmp_path / 'carebox.db'}"},
           "inbox": {"counts_cache": "0s"},
           "calendars": {"service-hours": {"timezone": "Europe/Paris", "hours": {"mon-fri": ["09:00-19:00"]}}},
           "policies": [{"name": "social", "calendar": "service-hours", "first_response": "60h"}]}
    return config.parse(doc, environ={})


@pytest.fixture
async def server(aiohttp_server, tmp_path) -> Any:
    return await serve(aiohttp_server, settings_with_long_target(tmp_path))


async def test_a_manager_opens_saturdays_previews_the_due_time_and_the_conversation_moves(server, browser):
    base = str(server.make_url("")).rstrip("/")
    page = await (await browser.new_context()).new_page()
    await log_in(page, base, "lea")
    await page.goto(f"{base}/conversations/1")
    before = await page.inner_text(".side p:has-text('Business clock')")
    await page.goto(f"{base}/admin/policies")
    await page.click("a[href='/admin/calendars/service-hours']")
    await page.fill("input[name=sat]", "09:00-13:00")
    await page.fill("input[name=preview_at]", "2026-11-20T18:00")  # Friday 18:00 Paris, a 2-hour target
    await page.fill("input[name=preview_target]", "2h")
    await page.click("button[value=preview]")
    await page.wait_for_selector("#preview")
    assert "Sat 21 Nov 2026 10:00" in await page.inner_text("[data-due=edited]")
    assert "Mon 23 Nov 2026 10:00" in await page.inner_text("[data-due=current]")
    await page.click("button[value=save]")
    await page.wait_for_selector("p.notice")
    assert "version 2" in await page.inner_text("p.notice")
    await server.app[_sla_edits_key()].settled()  # running clocks are rebased in the background
    await page.goto(f"{base}/conversations/1")
    after = await page.inner_text(".side p:has-text('Business clock')")
    assert after != before  # four more business hours a week: the due time came earlier


def _sla_edits_key() -> Any:
    from web.keys import sla_edits_key

    return sla_edits_key


async def test_an_agent_cannot_open_the_calendar_editor(server, browser):
    base = str(server.make_url("")).rstrip("/")
    page = await (await browser.new_context()).new_page()
    await log_in(page, base, "camille")
    resp = await page.goto(f"{base}/admin/calendars/service-hours")
    assert resp.status == 403
