"""The inbox in a real browser: keyboard work, canned replies, live updates, the collision hold, French."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from carebox.ports import IngestBatch
from carebox.store import actions
from tests.e2e.harness import browser_settings, inbound, log_in, serve

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::ResourceWarning")


@pytest.fixture
async def server(aiohttp_server, tmp_path) -> Any:
    return await serve(aiohttp_server, browser_settings(tmp_path))


def _base(server: Any) -> str:
    return str(server.make_url("")).rstrip("/")


async def test_agent_takes_a_conversation_with_the_keyboard_and_answers_with_a_canned_response(server, browser):
    base = _base(server)
    page = await (await browser.new_context()).new_page()
    await log_in(page, base, "camille")
    await page.goto(f"{base}/?view=unassigned")
    first = await page.get_attribute("tr.row.selected", "data-id")
    async with page.expect_navigation():
        await page.keyboard.press("a")  # assign the selected conversation to me
    assert await page.locator(f'tr[data-id="{first}"]').count() == 0
    await page.goto(f"{base}/?view=mine")
    await page.keyboard.press("Enter")
    await page.wait_for_url(f"{base}/conversations/{first}")
    await page.select_option("select[data-canned]", index=1)
    text = await page.input_value("#reply-text")
    assert "Camille" in text and "{customer_name}" not in text
    await page.click("form.composer button[type=submit]:not([name])")
    await page.wait_for_url(f"{base}/?done=replied&done_id={first}")
    assert await page.inner_text(".notice") == f"Reply sent on conversation {first}. Open it"
    assert await page.locator(f'tr[data-id="{first}"]').count() == 0  # answered: it left the awaiting view
    [sent] = server.app[_connectors()]["sim"].posted
    assert sent.text == text


def _connectors() -> Any:
    from web.keys import connectors_key

    return connectors_key


async def test_a_new_mention_appears_live_in_another_agents_inbox(server, browser):
    base = _base(server)
    page = await (await browser.new_context()).new_page()
    await log_in(page, base, "noah")
    await page.wait_for_timeout(300)  # let the event stream connect
    from web.keys import pipeline_key

    fresh = inbound("x", "late_user", "Late", "is the outage over?", datetime.now(UTC), 99)
    await server.app[pipeline_key].ingest([IngestBatch("sim", (fresh,))], datetime.now(UTC))
    await page.wait_for_selector("#live-banner:not([hidden])", timeout=5000)


async def test_the_reply_is_held_when_another_agent_answered_first(server, browser):
    base = _base(server)
    a = await (await browser.new_context()).new_page()
    b = await (await browser.new_context()).new_page()
    await log_in(a, base, "camille")
    await log_in(b, base, "noah")
    await a.goto(f"{base}/conversations/1")
    await b.goto(f"{base}/conversations/1")
    await a.wait_for_selector("#presence span", timeout=5000)  # camille sees noah viewing
    await b.fill("#reply-text", "We are on it!")
    await b.click("form.composer button[type=submit]:not([name])")
    await b.wait_for_url(f"{base}/?done=replied&done_id=1")
    await a.fill("#reply-text", "Looking into it")
    await a.click("form.composer button[type=submit]:not([name])")
    await a.wait_for_selector(".hold", timeout=5000)
    assert "We are on it!" in await a.inner_text(".hold")
    await a.click("[data-send-anyway]")
    await a.wait_for_url(f"{base}/?done=replied&done_id=1")


async def test_the_interface_renders_in_french(server, browser):
    from web.keys import engine_key

    await actions.update_user(server.app[engine_key], 1, 1, datetime.now(UTC), language="fr")
    base = _base(server)
    page = await (await browser.new_context(locale="en-US")).new_page()
    await log_in(page, base, "camille")
    assert "Boîte de réception" in await page.inner_text("header")
    assert await page.get_attribute("html", "lang") == "fr"
    await page.keyboard.press("?")
    assert "Raccourcis clavier" in await page.inner_text("#help")
