"""A seeded carebox served on a local port, and Debian's Chromium driven by Playwright (never downloaded)."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher

from carebox import config
from carebox.ports import InboundMention, IngestBatch
from carebox.store import actions

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
PASSWORD = "s3cret-pass"
CHEAP_HASH = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1).hash(PASSWORD)
USERS = (("camille", "Camille Martin", "agent"), ("noah", "Noah Bernard", "agent"), ("lea", "Léa Petit", "manager"),
         ("root", "Admin", "admin"))
MESSAGES = (
    ("x", "jeanne_d", "Jeanne", "Still no internet since this morning, 3rd time this week!!", "en"),
    ("mastodon", "paul@fosstodon.org", "Paul", "How do I change the billing address on my account?", "en"),
    ("x", "karim_b", "Karim", "ma box ne marche plus depuis hier soir, c'est inadmissible", "fr"),
    ("bluesky", "sofia.bsky.social", "Sofia", "Thanks for the quick fix yesterday, great support!", "en"),
    ("x", "m_leroy", "Marc", "Réseau 4G coupé à Lyon 3e depuis 1h, vous êtes au courant ?", "fr"),
)


SLA = {
    "calendars": {"service-hours": {"timezone": "Europe/Paris", "hours": {"mon-fri": ["09:00-19:00"]}, "holidays": "FR"}},
    "policies": [{"name": "outage-fast", "calendar": "service-hours", "first_response": "30m", "warn": "20%",
                  "match": {"categories": ["outage"]}},
                 {"name": "social", "calendar": "service-hours", "first_response": "1h", "warn": "20%"}],
    "sla": {"customer_expectation": "1h"},
}


def browser_settings(tmp_path: Path, *, with_sla: bool = False) -> config.Settings:
    """An SQLite store in `tmp_path`; counts are never cached so pages show changes at once."""
    doc = {"carebox": {"data_dir": str(tmp_path)}, "database": {"url": f"sqlite+aiosqlite:///{tmp_path / 'carebox.db'}"},
           "inbox": {"counts_cache": "0s"}}
    return config.parse({**doc, **(SLA if with_sla else {})}, environ={})


def inbound(network: str, handle: str, name: str, text: str, when: datetime, n: int) -> InboundMention:
    """A customer's mention of the demo brand."""
    return InboundMention(network=network, account="acme", external_id=f"m{n}", author_id=handle, author_handle=handle,
                          author_name=name, text=text, created_at=when)


async def seed(app: Any) -> None:
    """Users, canned responses, and a few conversations on several networks."""
    from web.keys import engine_key, pipeline_key

    engine, now = app[engine_key], datetime.now(UTC)
    for username, display, role in USERS:
        uid = await actions.add_user(engine, username, CHEAP_HASH, role, now, display)
        await actions.update_user(engine, uid, None, now, language="en")
    await actions.add_canned(engine, "Sorry, checking", "en",
                             "Hi {customer_name}, sorry about this! I'm checking your line now. {agent_first_name}", 3, now)
    await actions.add_canned(engine, "Désolé, je vérifie", "fr",
                             "Bonjour {customer_name}, désolé ! Je vérifie votre ligne. {agent_first_name}", 3, now)
    mentions = tuple(inbound(net, handle, name, text, now - timedelta(minutes=50 - 9 * i), i)
                     for i, (net, handle, name, text, _) in enumerate(MESSAGES))
    await app[pipeline_key].ingest([IngestBatch("sim", mentions)], now)


def have_chromium() -> bool:
    """Whether Debian's Chromium is installed."""
    return os.path.exists(CHROMIUM)


async def log_in(page: Any, base: str, username: str) -> None:
    """Log in through the form."""
    await page.goto(f"{base}/login")
    await page.fill("input[name=username]", username)
    await page.fill("input[name=password]", PASSWORD)
    await page.click("button[type=submit]")
    await page.wait_for_url(f"{base}/")


async def serve(aiohttp_server: Any, settings: config.Settings) -> Any:
    """carebox built from `settings`, seeded, served on a local port, replies recorded; skips without Chromium."""
    from carebox.runtime import build_app
    from tests.conftest import need_service
    from tests.integration.test_web import RecordingConnector
    from web.keys import connectors_key

    need_service("Chromium", have_chromium(), f"{CHROMIUM} (apt-get install -y chromium)")
    app = await build_app(settings)
    srv = await aiohttp_server(app)
    app[connectors_key]["sim"] = RecordingConnector()
    await seed(app)
    return srv
