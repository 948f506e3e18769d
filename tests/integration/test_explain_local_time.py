""""Why this deadline" reads entirely in the reader's language and zone, the exact instant kept in <time datetime>."""

from __future__ import annotations

import ast
import html
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import orjson
import pytest

from carebox import config, sla, sla_explain
from carebox.ports import IngestBatch
from carebox.store import actions
from tests.integration.test_web import _login, make_client
from web import explain, i18n
from web.keys import engine_key, pipeline_key

WHY = re.compile(r'<details class="why">(.*?)</details>', re.DOTALL)
TIME = re.compile(r'<time datetime="([^"]+)">([^<]*)</time>')
ISO = re.compile(r"\d{4}-\d\d-\d\d")  # no ISO date nor timestamp in the visible text
FR_MONTHS = ["janv.", "févr.", "mars", "avr.", "mai", "juin", "juil.", "août", "sept.", "oct.", "nov.", "déc."]


# Words of the English panel that a French reader must not meet (names from the configuration aside).
ENGLISH = re.compile(
    r"\b(policy|policies|matched|matches|every|because|first_response|next_response|target|clock|business|wall|due|"
    r"counted|skipped|customer|waited|paused|holiday|Christmas|Boxing|among|is in|network|category|language|tags|"
    r"outage|complaint|Mondays|Saturdays|Sundays|Mon|Thu|Fri|Sat|Sun|Dec|Nov|and|more|of|the|on)\b"
    r"|\b\d+(\.\d+)?[dhms]\b|\d[hm] \d"
)
SLA = {
    "calendars": {"service-hours": {"timezone": "Europe/Paris", "hours": {"mon-fri": ["09:00-19:00"]}, "holidays": "FR",
                                    "closed": ["2026-12-28"], "partial": {"2026-12-29": []}, "version": 2}},
    "policies": [
        {"name": "vip", "calendar": "24/7", "first_response": "15m", "match": {"tags": ["vip"]}},
        {"name": "social-x", "calendar": "service-hours", "first_response": "1h", "next_response": "4h",
         "resolution": {"target": "2d", "calendar": "24/7"},
         "match": {"networks": ["mastodon", "x"], "accounts": ["acme"], "priorities": ["P1", "P2", "P3", "P4"],
                   "categories": ["outage", "complaint", "question", "praise", "spam", "other"],
                   "languages": ["en", "fr"], "tags": ["fibre", "mobile"]}},
        {"name": "social", "calendar": "service-hours", "first_response": "1h"},
    ],
}


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


def _paris(*args: int) -> datetime:
    return datetime(*args, tzinfo=ZoneInfo("Europe/Paris"))


def _christmas_conversation() -> dict:
    """A conversation of 24 December 18:30: a rebased first response, a paused resolution, a forgotten policy."""
    started = _paris(2026, 12, 24, 18, 30)
    clock = {"policy": "social-x", "started_at": started, "calendar_version": 1, "paused_at": None, "fulfilled_at": None,
             "rebased_at": None, "carried_s": 0.0}
    return {
        "id": 7, "network": "x", "account": "acme", "priority": "P2", "category": "outage", "language": "fr",
        "tags": orjson.dumps(["fibre"]).decode(), "sla_events": [], "incident_id": None,
        "clocks": [
            {**clock, "id": 1, "target": "first_response", "rebased_at": _paris(2026, 12, 24, 18, 45), "carried_s": 600.0},
            {**clock, "id": 2, "target": "resolution", "paused_at": _paris(2026, 12, 26, 10, 0)},
            {**clock, "id": 3, "target": "next_response", "policy": "gone", "business_due": _paris(2026, 12, 30, 10, 0)},
        ],
    }


def _why_lines(language: str) -> list[str]:
    token = i18n.CURRENT.set(i18n.Locale(language, "Europe/Paris"))
    try:
        settings = sla.parse_settings(SLA)
        return [_visible(str(line)) for line in explain.why_lines(settings, _christmas_conversation(), _paris(2026, 12, 27))]
    finally:
        i18n.CURRENT.reset(token)


def test_why_this_deadline_has_no_english_word_for_a_french_reader():
    lines = _why_lines("fr")
    text = " | ".join(lines)
    assert not ENGLISH.search(text), (ENGLISH.search(text), lines)
    assert lines[0] == (
        "politique « social-x » retenue car le réseau « x » figure dans sa liste (« mastodon », « x »), le compte "
        "« acme » figure dans sa liste (« acme »), la priorité « P2 » figure dans sa liste (« P1 », « P2 », « P3 », "
        "« P4 »), la catégorie « panne » figure dans sa liste (« autre », « éloge », « panne », « question », "
        "« réclamation », « spam »), la langue « fr » figure dans sa liste (« en », « fr ») et les étiquettes "
        "« fibre » figurent dans sa liste (« fibre », « mobile ») ; les politiques précédentes (« vip ») ne "
        "s'appliquaient pas"
    )
    for said in ("objectif de première réponse : 1 h de temps ouvré", "(10 min) est conservé", "jour férié, Noël (FR)",
                 "le  25 déc. 2026  ne compte pas", "date de fermeture", "journée partielle sans horaires",
                 "objectif de résolution : 2 j en temps réel", "en pause depuis le", "Délai de réponse suivante : la politique « gone »",
                 "pas d'horaires d'ouverture le samedi"):
        assert said in text, said
    assert re.search(r"le client aura attendu \d+(,\d)? h \(\d+ j( \d+ h)?\)", text), text


def test_why_this_deadline_in_english_keeps_the_words_of_the_cli():
    text = " | ".join(_why_lines("en"))
    reasons = sla.match_reasons(sla.parse_settings(SLA).policy("social-x"), explain.facts(_christmas_conversation()))
    assert f"policy 'social-x' matched because {'; '.join(reasons)}; earlier policies ['vip'] did not match" in text
    for said in ("target first_response: 1h 00m of business time on calendar 'service-hours' version 2 (Europe/Paris)",
                 "10m used on earlier versions are kept", "public holiday Christmas Day (FR)",
                 "target resolution: 2d 0h on the wall clock (24/7)", "Clock next_response: policy gone",
                 "no opening hours on Saturdays"):
        assert said in text, said


def test_every_line_of_why_this_deadline_has_a_french_translation():
    tree = ast.parse(Path(sla_explain.__file__).read_text(encoding="utf-8"))
    templates = {node.value for node in ast.walk(tree) if isinstance(node, ast.Constant) and isinstance(node.value, str)
                 and "%(" in node.value and not node.value.startswith("%(")}
    templates.add(sla_explain.NO_CONDITIONS)
    missing = sorted(t for t in templates if t not in i18n.CATALOGS["fr"])
    assert len(templates) > 25 and not missing, missing


async def test_a_french_manager_reads_the_conversation_page_panel_in_french(aiohttp_client, tmp_path, db_url, mention):
    doc = {"carebox": {"data_dir": str(tmp_path)}, "database": {"url": db_url}, **SLA}
    client = await make_client(aiohttp_client, config.parse(doc, environ={}), users=(("agent", "agent"),))
    block, _ = await _why(client, mention, "fr", "Europe/Paris")
    text = _visible(block)
    assert not ENGLISH.search(text), (ENGLISH.search(text), text)
    assert "politique « vip »" not in text and "« social » retenue" in text  # tagless: vip and social-x do not apply
    assert "les politiques précédentes (« vip », « social-x ») ne s'appliquaient pas" in text
    assert "objectif de première réponse : 1 h de temps ouvré" in text and "le client aura attendu" in text
