""""Why this deadline" shows times in the reader's zone and language, the exact instant kept in <time datetime>."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from carebox import config
from carebox.ports import IngestBatch
from carebox.store import actions
from tests.integration.test_web import _login, make_client
from web.keys import engine_key, pipeline_key

WHY = re.compile(r'<details class="why">(.*?)</details>', re.DOTALL)
TIME = re.compile(r'<time datetime="([^"]+)">([^<]*)</time>')
ISO = re.compile(r"\d{4}-\d\d-\d\d")  # no ISO date nor timestamp in the visible text
FR_MONTHS = ["janv.", "févr.", "mars", "avr.", "mai", "juin", "juil.", "août", "sept.", "oct.", "nov.", "déc."]


@pytest.fixture
def settings(tmp_path, db_url):
    return config.parse({"carebox": {"data_dir": str(tmp_path)}, "database": {"url": db_url}}, environ={})


@pytest.fixture
async def client(aiohttp_client, settings):
    return await make_client(aiohttp_client, settings, users=(("agent", "agent"),))


async def _why(client, mention, language: str, timezone: str) -> tuple[str, datetime]:
    """The "why this deadline" block of a fresh conversation, seen by an agent in `timezone` and `language`."""
    app = client.server.app
    posted = (datetime.now(UTC) - timedelta(minutes=5)).replace(microsecond=0)  # due later: no job fires meanwhile
    batch = (mention("my fibre is down", author="c1", lang_hint="en", when=posted.isoformat()),)
    await app[pipeline_key].ingest([IngestBatch("sim", batch)], datetime.now(UTC))
    await actions.update_user(app[engine_key], 1, 1, datetime.now(UTC), language=language, timezone=timezone)
    assert (await _login(client)).status == 303
    body = await (await client.get("/conversations/1")).text()
    block = WHY.search(body)
    assert block is not None, "the conversation page has no 'why this deadline' block"
    return block.group(1), posted


def _visible(block: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", " ", block))


async def test_why_this_deadline_shows_local_french_times_for_a_user_in_paris(client, mention):
    block, posted = await _why(client, mention, "fr", "Europe/Paris")
    local = posted.astimezone(ZoneInfo("Europe/Paris"))
    times = TIME.findall(block)
    started = [text for iso, text in times if datetime.fromisoformat(iso) == posted]
    assert started, f"the clock's start {posted} is not among the <time> values {times}"
    assert started[0] == f"{['lun.', 'mar.', 'mer.', 'jeu.', 'ven.', 'sam.', 'dim.'][local.weekday()]} " \
                         f"{local.day} {FR_MONTHS[local.month - 1]} {local.year} {local:%H:%M}"
    assert "délai démarré le" in _visible(block)
    assert not ISO.search(_visible(block)), _visible(block)


async def test_why_this_deadline_follows_the_user_time_zone_not_the_calendar(client, mention):
    block, posted = await _why(client, mention, "en", "America/New_York")
    local = posted.astimezone(ZoneInfo("America/New_York"))
    started = [text for iso, text in TIME.findall(block) if datetime.fromisoformat(iso) == posted]
    assert started and started[0].endswith(f"{local.year} {local:%H:%M}")
    assert "clock started" in _visible(block)
    assert not ISO.search(_visible(block))
    assert all(datetime.fromisoformat(iso).tzinfo is not None or len(iso) == 10 for iso, _ in TIME.findall(block))
