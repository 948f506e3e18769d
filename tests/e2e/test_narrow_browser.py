"""A narrow window (800 px): the pages scroll down, never sideways; wide tables scroll inside themselves."""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.harness import browser_settings, log_in, serve

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::ResourceWarning")


@pytest.fixture
async def server(aiohttp_server, tmp_path) -> Any:
    return await serve(aiohttp_server, browser_settings(tmp_path))


async def _overflow(page: Any) -> int:
    return int(await page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth"))


async def test_no_page_scrolls_sideways_in_an_800_px_window(server, browser):
    base = str(server.make_url("")).rstrip("/")
    page = await (await browser.new_context(viewport={"width": 800, "height": 800})).new_page()
    await log_in(page, base, "lea")  # a manager: the inbox, a conversation and the report
    for path in ("/", "/conversations/1", "/reports", "/reports/drill?metric=all"):
        await page.goto(base + path)
        assert await _overflow(page) == 0, path
