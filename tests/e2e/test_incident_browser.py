"""An incident in a real browser: an agent switches its conversations to the incident SLA policy, previews and
sends the acknowledgement per network and language; a manager splits a conversation off to a new incident, then
switches the policy off and on again, and the page lists both windows with who switched them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from carebox import config
from carebox.store import incidents as store
from carebox.store.ingest import conversation_t
from tests.e2e.harness import log_in, serve
from web.keys import connectors_key

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::ResourceWarning")
POLICIES = [{"name": "social", "calendar": "24/7", "first_response": "1h"},
            {"name": "incident", "calendar": "24/7", "first_response": "15m", "match": {"tags": ["incident"]}}]


@pytest.fixture
async def served(aiohttp_server, tmp_path) -> Any:
    from web.keys import engine_key

    doc = {"carebox": {"data_dir": str(tmp_path)}, "database": {"url": f"sqlite+aiosqlite:///{tmp_path / 'carebox.db'}"},
           "policies": POLICIES, "incidents": {"policy": "incident"}}
    srv = await serve(aiohttp_server, config.parse(doc, environ={}))
    engine, now = srv.app[engine_key], datetime.now(UTC)
    incident_id, _ = await store.open_by_hand(engine, "acme", "4g", "4G down in Lyon", now - timedelta(hours=2))
    async with engine.connect() as c:
        ids = [r[0] for r in await c.execute(sa.select(conversation_t.c.id).order_by(conversation_t.c.id))]
    await store.link_conversations(engine, incident_id, ids)
    return srv, incident_id, ids


async def test_agent_switches_policy_and_acknowledges_then_manager_splits(served, browser):
    srv, incident_id, ids = served
    base = str(srv.make_url("")).rstrip("/")
    page = await (await browser.new_context()).new_page()
    await log_in(page, base, "camille")
    await page.goto(f"{base}/incidents/{incident_id}")
    assert await page.locator("figure.chart svg").count() == 1
    await page.click("button:has-text('Switch to the incident policy')")
    await page.wait_for_selector("text=are on the incident policy incident")
    assert "Switched on by Camille Martin." in await page.inner_text("p.policy-current")
    groups = page.locator("fieldset.ack-group")
    assert await groups.count() >= 2  # X and other networks, English and French
    await page.fill("textarea[name=text_x_en]", "We know about 4G in Lyon.")
    await page.click("button[name=preview]")
    await page.wait_for_selector("text=Preview:")
    assert await page.input_value("textarea[name=text_x_en]") == "We know about 4G in Lyon."
    await page.click("button:has-text('Send to all')")
    await page.wait_for_selector("text=Acknowledgement sent")
    posted = srv.app[connectors_key]["sim"].posted
    assert len(posted) == len(ids) and "We know about 4G in Lyon." in [p.text for p in posted]
    manager = await (await browser.new_context()).new_page()
    await log_in(manager, base, "lea")
    await manager.goto(f"{base}/incidents/{incident_id}")
    await manager.check(f"input[name=conversation][value='{ids[-1]}']")
    await manager.fill("#split-form input[name=title]", "4G Paris")
    await manager.click("button:has-text('Move the ticked conversations')")
    await manager.wait_for_selector("text=Split from")
    assert "4G Paris" in await manager.title() or await manager.locator("h1:has-text('4G Paris')").count() == 1
    await manager.goto(f"{base}/incidents/{incident_id}")
    await manager.click("button:has-text('Back to their own policy')")
    await manager.click("button:has-text('Switch to the incident policy again')")
    await manager.wait_for_selector("text=Earlier windows of the incident policy")
    assert "Switched on by Léa Petit." in await manager.inner_text("p.policy-current")
    assert "Switched on by Camille Martin, off by Léa Petit." in await manager.inner_text("ul.policy-windows")
