"""Regenerate docs/screenshots/ from a seeded carebox in Debian's Chromium: `python -m tests.e2e.screenshots`."""

from __future__ import annotations

import asyncio
import socket
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from aiohttp import web

from carebox.store import actions
from tests.e2e.harness import (
    CHROMIUM,
    CHROMIUM_ARGS,
    browser_settings,
    have_chromium,
    log_in,
    seed,
)
from tests.integration.test_web import RecordingConnector

OUT = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
SIZE = {"width": 1366, "height": 860}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _shots(base: str, app: web.Application) -> list[Path]:
    from playwright.async_api import async_playwright

    from web.keys import engine_key

    taken = []
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = await (await browser.new_context(viewport=SIZE)).new_page()

        async def shot(name: str, path: str | None = None) -> None:
            if path:
                await page.goto(base + path)
            target = OUT / f"{name}.png"
            await page.screenshot(path=str(target), full_page=False)
            taken.append(target)

        await page.goto(base + "/login")
        await shot("login")
        await log_in(page, base, "lea")
        await shot("inbox-awaiting")
        await shot("inbox-unassigned", "/?view=unassigned")
        await page.goto(base + "/conversations/1")
        await page.click("details.why summary")
        await shot("conversation")
        await page.fill("#reply-text", "x" * 300)
        await page.click("form.composer button[type=submit]:not([name])")
        await shot("reply-too-long")
        await page.goto(base + "/conversations/2")
        await page.fill("#reply-text", "Hi Paul, go to Account > Billing.")
        await _another_agent_replies(app, 2)
        await page.click("form.composer button[type=submit]:not([name])")
        await shot("collision-hold")
        await shot("admin-policies", "/admin/policies?at=2026-11-20T18:50&network=x&priority=P2&category=outage")
        await shot("admin-canned", "/admin/canned")
        await page.keyboard.press("?")
        await shot("keyboard-help")
        await actions.update_user(app[engine_key], 3, 3, datetime.now(UTC), language="fr")
        await shot("inbox-fr", "/")
        await shot("conversation-fr", "/conversations/3")
        await browser.close()
    return taken


async def _another_agent_replies(app: web.Application, conversation_id: int) -> None:
    from carebox.ports import Direction, InboundMention, IngestBatch
    from carebox.store import queries
    from web.keys import engine_key, pipeline_key

    target = await queries.reply_target(app[engine_key], conversation_id)
    reply = InboundMention(network=target["conversation"]["network"], account="acme", external_id="noah-1",
                           author_id="acme", author_handle="acme", text="Hello Paul! It is under Account, then Billing.",
                           created_at=datetime.now(UTC), direction=Direction.OUTBOUND,
                           in_reply_to=target["last_inbound"]["external_id"])
    await app[pipeline_key].ingest([IngestBatch("sim", (reply,))], datetime.now(UTC), sent_by={"noah-1": 2})


async def main() -> int:
    """Serve a seeded carebox on a free local port and photograph its main pages."""
    if not have_chromium():
        print(f"{CHROMIUM} is missing: apt-get install -y chromium", file=sys.stderr)
        return 1
    from carebox.runtime import build_app
    from web.keys import connectors_key

    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        app = await build_app(browser_settings(Path(tmp), with_sla=True))
        runner = web.AppRunner(app)
        await runner.setup()
        port = _free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        try:
            app[connectors_key]["sim"] = RecordingConnector()
            await seed(app)
            for path in await _shots(f"http://127.0.0.1:{port}", app):
                print(path.relative_to(OUT.parents[1]))
        finally:
            await runner.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
