"""Hostile HTML and script in mention texts, handles, display names and dead letters are inert in Chromium."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from carebox.ports import InboundMention, IngestBatch, Rejected
from tests.conftest import need_service
from tests.e2e.harness import CHROMIUM, have_chromium
from tests.security import PASSWORD, add_users, build, security_settings
from web.keys import pipeline_key

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::ResourceWarning")

# Each payload would, if parsed as HTML, add an element with an id starting "xss" or set window.__xss / open a dialog.
TEXT = ("<script>window.__xss=1;alert('text')</script><img src=x id=xss-text onerror=\"window.__xss=1;alert('t')\">"
        "<a href=\"javascript:alert('a')\" id=xss-link>click</a>")
HANDLE = "\"><svg id=xss-handle onload=alert('h')>'-alert(1)-'"
NAME = "</title></script><img src=x id=xss-name onerror=alert('n')><b id=xss-bold>Eve</b>"
DEAD = "<iframe id=xss-dead srcdoc=\"<script>parent.alert('d')</script>\"></iframe>{\"<script>\":1}"
PAGES = ("/", "/?view=unassigned", "/conversations/1", "/conversations/2", "/admin/dead-letters",
         "/admin/dead-letters/1", "/reports", "/reports/drill?metric=all")


@pytest.fixture
async def base(aiohttp_server, tmp_path) -> str:
    need_service("Chromium", have_chromium(), f"{CHROMIUM} (apt-get install -y chromium)")
    app = await build(security_settings(tmp_path))
    server = await aiohttp_server(app)
    await add_users(app)
    now = datetime.now(UTC)
    mentions = tuple(InboundMention(network="x", account="acme", external_id=f"m{i}", author_id=f"eve{i}",
                                    author_handle=HANDLE + str(i), author_name=NAME, text=f"{TEXT} #{i}",
                                    created_at=now - timedelta(minutes=40 - i)) for i in range(2))
    await app[pipeline_key].ingest([IngestBatch("sim", mentions, (Rejected("sim", DEAD, DEAD),))], now)
    return str(server.make_url("")).rstrip("/")


async def _logged_in_page(browser: Any, base: str, username: str) -> tuple[Any, list[str]]:
    page = await (await browser.new_context()).new_page()
    alarms: list[str] = []
    page.on("dialog", lambda d: (alarms.append(f"dialog {d.message}"), d.dismiss()))
    page.on("console", lambda m: alarms.append(f"console {m.text}") if "Content Security Policy" in m.text else None)
    await page.goto(f"{base}/login")
    await page.fill("input[name=username]", username)
    await page.fill("input[name=password]", PASSWORD)
    await page.click("button[type=submit]")
    await page.wait_for_url(f"{base}/")
    return page, alarms


async def test_hostile_mentions_and_dead_letters_are_shown_as_text_on_every_page(base, browser):
    page, alarms = await _logged_in_page(browser, base, "admin")
    shown = 0
    for path in PAGES:
        resp = await page.goto(base + path)
        assert resp.status == 200, path
        assert "frame-ancestors 'none'" in resp.headers["content-security-policy"], path
        await page.wait_for_load_state("load")
        injected = await page.locator("[id^=xss]").count()
        assert injected == 0, f"{path}: {injected} injected element(s)"
        assert await page.evaluate("window.__xss") is None, path
        body = await page.inner_text("body")
        shown += any(marker in body for marker in ("<script>", "<img src=x", "<svg id=xss-handle", "<iframe"))
    assert alarms == []
    assert shown >= 4, "the payloads must be on the pages, as text"


async def test_an_agent_sees_the_same_payloads_inert(base, browser):
    page, alarms = await _logged_in_page(browser, base, "agent")
    for path in ("/", "/conversations/1"):
        await page.goto(base + path)
        await page.wait_for_load_state("load")
        assert await page.locator("[id^=xss]").count() == 0, path
        assert "<script>window.__xss=1" in await page.inner_text("body"), path
    assert alarms == []


async def test_the_checks_see_a_payload_rendered_as_html_and_the_csp_blocks_its_script(aiohttp_server, browser):
    from aiohttp import web

    from web.app import security_headers

    async def unsafe(_request: web.Request) -> web.Response:
        return web.Response(text=f"<html><body><p>{TEXT}</p></body></html>", content_type="text/html")

    app = web.Application(middlewares=[security_headers])
    app.router.add_get("/unsafe", unsafe)
    server = await aiohttp_server(app)
    page = await (await browser.new_context()).new_page()
    alarms: list[str] = []
    page.on("dialog", lambda d: (alarms.append("dialog"), d.dismiss()))
    page.on("console", lambda m: alarms.append("csp") if "Content Security Policy" in m.text else None)
    await page.goto(str(server.make_url("/unsafe")))
    await page.wait_for_load_state("load")
    assert await page.locator("[id^=xss]").count() == 2  # injected: the check would fail a real page
    assert await page.evaluate("window.__xss") is None and "dialog" not in alarms  # but the CSP stopped the script
    assert "csp" in alarms
