"""Issue 5's "Done when", on `carebox demo` itself: the simulator's first outage burst opens an incident within
minutes, its page shows the linked conversations and the chart, the bulk acknowledgement goes out, and a fake
PagerDuty configured with --pagerduty-url receives trigger then resolve with one dedup key.

The demo's own configuration is used (demo_document), run in-process; only time is compressed 12 times so that the
test takes about a minute: 5-second detector buckets, the demo's warm-up and first outage (15 s after start) scaled
alike, a 20-second outage, ticks every second, and the rate raised so that a bucket holds about as many mentions as a
demo minute. The waits follow what carebox did, not the clock: the test gives up on the incident only once the
detector has judged the whole burst (CI failed once on a fixed 90 s, on a loaded machine)."""

from __future__ import annotations

import asyncio
import gc
import html
import json
import re
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from aiohttp.test_utils import TestServer

from carebox import config, runtime
from carebox.cli import (
    DEMO_PAGERDUTY_ENV,
    DEMO_PASSWORD,
    DEMO_USERS,
    _ensure_users,
    build_parser,
    demo_document,
)
from carebox.duration import parse_duration
from carebox.errors import ConfigError
from carebox.store.incidents import DETECTOR_STATE, incident_t
from carebox.store.ingest import conversation_t, cursor_t, mention_t
from connectors.social.simulator import parse_options
from connectors.social.simulator_timeline import Timeline
from tests.conftest import at
from tests.fakes.pagerduty import FakePagerDuty
from web.keys import connectors_key, engine_key

KEY = "0123456789abcdef0123456789abcdef"
CSRF = re.compile(r'name="csrf" value="([^"]+)"')
TEXTAREA = re.compile(r'<textarea name="([^"]+)"[^>]*>(.*?)</textarea>', re.DOTALL)
SCALE = 12  # demo minutes become 5-second buckets
# The detector's defaults scaled down 12x (1-minute buckets become 5 s), so minutes of demo pass in seconds.
FAST_OUTAGE = {"bucket": "5s", "windows": ["5s", "10s", "15s"], "plateau_window": "30s", "calm": "10s"}
BUCKET_S, CALM_S, LONGEST_WINDOW_S, OUTAGE_S = 5.0, 10.0, 15.0, 20.0
# 20 mentions per 5-second bucket, as the demo's 30 a minute give its 1-minute buckets: with 120 a minute (10 per
# bucket) whether the burst opened an incident hung on where it began in its bucket (one run in seven missed it)
RATE = 240
HANG_S = 600.0  # only against a stuck process: the waits end on what carebox did


def _scaled(duration: str) -> str:
    return f"{parse_duration(duration, 'test') / SCALE:g}s"


async def _wait(check: Callable[[], Awaitable[Any]], what: str, gave_up: Callable[[], Awaitable[str | None]],
                describe: Callable[[], Awaitable[str]]) -> Any:
    """The first truthy result of `check`, asked every half second until `gave_up` says why it can no longer
    come; the failure says what the store held then (`describe`)."""
    started = time.monotonic()
    while True:
        found = await check()
        if found:
            return found
        reason = await gave_up() or (f"nothing after {HANG_S:g} s" if time.monotonic() - started > HANG_S else None)
        if reason:
            found = await check()
            if found:
                return found
            raise AssertionError(f"{what}: {reason} ({await describe()})")
        await asyncio.sleep(0.5)


class Burst:
    """How far carebox got with the simulator's first burst: stored by the pipeline, then judged by the detector."""

    def __init__(self, engine: Any, first_outage_s: float) -> None:
        self.engine, self.first_outage_s = engine, first_outage_s
        self.ticks: set[Any] = set()  # detector saves seen since the burst was judged

    async def judged_for(self) -> float | None:
        """Seconds of buckets the detector closed after the last mention of the burst was stored (None: not yet)."""
        async with self.engine.connect() as c:
            first = (await c.execute(sa.select(sa.func.min(mention_t.c.created_at)))).scalar()
            if first is None:
                return None
            # the simulator starts before its first mention: the burst is over by then
            end = first + timedelta(seconds=self.first_outage_s + OUTAGE_S)
            if (await c.execute(sa.select(mention_t.c.id).where(mention_t.c.created_at > end).limit(1))).first() is None:
                return None  # the pipeline has not stored everything up to the burst's end yet
            stored = (await c.execute(sa.select(sa.func.max(mention_t.c.ingested_at))
                                      .where(mention_t.c.created_at <= end))).scalar()
            state = (await c.execute(sa.select(cursor_t.c.value, cursor_t.c.updated_at)
                                     .where(cursor_t.c.connector == DETECTOR_STATE))).first()
        if state is None:
            return None
        judged = (json.loads(state.value)["closed"] + 1) * BUCKET_S - stored.timestamp()
        if judged > 0:
            self.ticks.add(state.updated_at)
        return judged

    async def not_opened(self) -> str | None:
        """Why no incident can open any more: the detector judged the whole burst, in its longest window too."""
        judged = await self.judged_for()
        if judged is not None and judged >= LONGEST_WINDOW_S:
            return f"the detector judged the whole burst ({judged:.0f} s of buckets after it was stored)"
        return None

    async def not_resolved(self) -> str | None:
        """Why the resolve can no longer come: the burst was judged, then calm long enough, then 3 more ticks."""
        judged = await self.judged_for()
        if judged is not None and judged >= CALM_S + 2 * LONGEST_WINDOW_S and len(self.ticks) > 3:
            return f"{len(self.ticks)} detector ticks and {judged:.0f} s of buckets after the burst was stored"
        return None


async def test_demo_outage_opens_an_incident_with_its_conversations_and_chart_acks_them_and_pages_trigger_then_resolve(
    tmp_path, aiohttp_client, monkeypatch
):
    fake = FakePagerDuty()
    receiver = TestServer(fake.app)
    await receiver.start_server()
    monkeypatch.setenv(DEMO_PAGERDUTY_ENV, KEY)
    monkeypatch.setattr(runtime, "OUTAGE_TICK_S", 1.0)  # the detector's tick, scaled like its buckets
    first_outage = _scaled(build_parser().parse_args(["demo"]).first_outage)
    args = build_parser().parse_args([
        "demo", "--data-dir", str(tmp_path), "--rate", str(RATE), "--outage-every", "0", "--first-outage", first_outage,
        "--pagerduty-url", str(receiver.make_url("/v2/enqueue"))])
    doc = demo_document(args)
    assert doc["incidents"] == {"policy": "incident"}  # the demo switches its incidents to a 15-minute policy
    doc["connectors"][0].update(outage_length=f"{OUTAGE_S:g}s", tick="250ms", backlog=0, rhythm=False)
    doc["outage"] = {**doc["outage"], **FAST_OUTAGE, "warmup": _scaled(doc["outage"]["warmup"])}
    doc["alerting"] = {"group_wait": "0s", "group_interval": "1s"}
    try:
        app = await runtime.build_app(config.parse(doc, environ={}))
        client = await aiohttp_client(app)
        engine = app[engine_key]
        await _ensure_users(engine, DEMO_USERS, DEMO_PASSWORD)

        async def opened() -> dict[str, Any] | None:
            async with engine.connect() as c:
                rows = [dict(r._mapping) for r in await c.execute(sa.select(incident_t).order_by(incident_t.c.id))]
                for row in rows:
                    linked = [r[0] for r in await c.execute(
                        sa.select(conversation_t.c.id).where(conversation_t.c.incident_id == row["id"]))]
                    if linked and row["policy"] == "incident":
                        return {**row, "linked": linked}
            return None

        async def state() -> str:  # what the store held when the wait ran out (CI failed here once, 2026-11-22)
            async with engine.connect() as c:
                counts = (await c.exec_driver_sql(
                    "SELECT (SELECT count(*) FROM mention), (SELECT count(*) FROM mention WHERE category = 'outage'),"
                    " (SELECT count(*) FROM incident)")).one()
            return f"mentions {counts[0]}, outage mentions {counts[1]}, incidents {counts[2]}"

        burst = Burst(engine, parse_duration(first_outage, "test"))
        incident = await _wait(opened, "no incident with linked conversations on the incident policy", burst.not_opened,
                               state)
        login = await client.get("/login")
        await client.post("/login", data={"username": "manager", "password": DEMO_PASSWORD,
                                          "csrf": CSRF.search(await login.text()).group(1)}, allow_redirects=False)
        page = await (await client.get(f"/incidents/{incident['id']}")).text()
        assert all(f'href="/conversations/{cid}"' in page for cid in incident["linked"])
        assert "<svg" in page and 'class="bar"' in page  # the chart: complaints per bucket against the baseline
        form = {name: html.unescape(text) for name, text in TEXTAREA.findall(page)}  # the prefilled texts, as a browser
        assert form, "the page offers no acknowledgement text"
        sent = await client.post(f"/incidents/{incident['id']}/bulk-ack", data={"csrf": CSRF.search(page).group(1), **form})
        body = await sent.text()
        assert sent.status == 200 and re.search(r"Sent to [1-9]\d* conversations?\.", body), body[:2000]
        simulator = app[connectors_key]["simulator"]
        assert simulator.posted and all(p.text.strip() for p in simulator.posted)  # replies went out to customers

        async def resolved() -> list[dict[str, Any]] | None:
            async with engine.connect() as c:
                rows = [dict(r._mapping) for r in await c.execute(sa.select(incident_t))]
            keys = {e["dedup_key"] for e in fake.events}
            done = [r for r in rows if r["dedup_key"] in keys and r["state"] == "resolved"]
            ends = {k: [e["event_action"] for e in fake.events if e["dedup_key"] == k][-1] for k in keys}
            return rows if done and all(a == "resolve" for a in ends.values()) else None

        rows = await _wait(resolved, "the detector did not resolve the incident or PagerDuty did not receive the resolve",
                           burst.not_resolved, state)
    finally:
        await receiver.close()
    by_key = {r["dedup_key"]: r for r in rows}
    assert fake.events and {e["dedup_key"] for e in fake.events} <= set(by_key)  # every page is one incident's
    for key in {e["dedup_key"] for e in fake.events}:
        actions = [e["event_action"] for e in fake.events if e["dedup_key"] == key]
        assert actions[0] == "trigger" and actions[-1] == "resolve" and set(actions) == {"trigger", "resolve"}
        assert by_key[key]["state"] == "resolved"
    assert all(i.status == "resolved" for i in fake.incidents)


def test_first_outage_starts_a_burst_that_long_after_start_and_later_ones_keep_their_period():
    start = at("2026-11-22T12:00:00+00:00")
    bursts = Timeline(1, start, 30, outage_every=7200, first_outage=180).outages(at("2026-11-23T12:00:00+00:00"))
    assert bursts[0].start == at("2026-11-22T12:03:00+00:00")
    assert all(b.start > bursts[0].end for b in bursts[1:]) and 6 <= len(bursts) <= 18  # 16 slots of 5400 s, 75% hold one
    [only] = Timeline(1, start, 30, outage_every=0, first_outage=60, outage_length=40).outages(
        at("2026-11-23T12:00:00+00:00"))
    assert (only.start, (only.end - only.start).total_seconds()) == (at("2026-11-22T12:01:00+00:00"), 40.0)
    assert Timeline(1, start, 30, outage_every=0).outages(at("2026-11-23T12:00:00+00:00")) == []


@pytest.mark.parametrize(("options", "key"), [({"first_outage": "2d"}, "first_outage"),
                                              ({"outage_length": "5s"}, "outage_length"),
                                              ({"outage_every": "2m"}, "outage_every")])
def test_simulator_refuses_outage_timings_out_of_range_naming_the_key(options, key):
    with pytest.raises(ConfigError, match=f"connectors.sim.{key}"):
        parse_options(options, "connectors.sim")


async def test_a_bad_connector_entry_is_a_config_error_that_leaves_no_http_session_open(tmp_path, monkeypatch):
    unraisable: list[Any] = []  # an unclosed aiohttp session complains from its __del__, here
    monkeypatch.setattr(sys, "unraisablehook", unraisable.append)
    args = build_parser().parse_args(["demo", "--data-dir", str(tmp_path), "--outage-every", "2m"])
    with pytest.raises(ConfigError, match="outage_every"):
        await runtime.build_app(config.parse(demo_document(args), environ={}))
    gc.collect()
    assert not [u for u in unraisable if "Unclosed client session" in str(u.exc_value)]
