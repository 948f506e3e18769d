"""The rate signal decides at a committed complaint: the watcher ticks at once, so the incident opens at that
complaint's instant without waiting for the scheduled tick."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, timedelta

import sqlalchemy as sa

from carebox import config
from carebox.incidents import OutageWatcher
from carebox.outage import Detector
from carebox.ports import IngestBatch
from carebox.runtime import make_pipeline
from carebox.store.incidents import incident_t
from tests.conftest import at

T0 = at("2026-11-17T10:00:00+01:00")


def _detector_with_history(key: str) -> Detector:
    """A detector that has seen a day and a half of calm complaints about `key` (about one every two minutes)."""
    detector, rng = Detector(), random.Random(4)
    start = T0 - timedelta(hours=36)
    for minute in range(36 * 60):
        if rng.random() < 0.5:
            detector.observe(account="acme", cluster_key=key, author=f"h{minute}", text=f"slow {minute}",
                             at=start + timedelta(minutes=minute, seconds=rng.uniform(0, 59)), category="complaint")
        detector.tick(start + timedelta(minutes=minute + 1))
    return detector


async def test_a_burst_the_rate_signal_decides_opens_its_incident_at_the_deciding_complaint(engine, mention):
    settings = config.parse({}, environ={})
    pipeline, _ = make_pipeline(settings, engine)
    texts = ["my 4G is down", "no 4G at all", "4G network down again??", "is 4G down? nothing loads",
             "still no 4G", "4G dead here too", "4G down in Lyon", "lost 4G an hour ago", "4G outage?", "no 4G signal",
             "4G not working", "4G gone", "4G broken again", "4G down for everyone?"]
    watcher = OutageWatcher(engine, _detector_with_history("4g"))
    await watcher.start()
    pipeline.observers.append(watcher.observe)
    follower = asyncio.create_task(watcher.follow(lambda: T0 + timedelta(seconds=40)))
    try:
        burst = tuple(mention(text, author=f"c{i}", when=(T0 + timedelta(seconds=3 * i)).isoformat())
                      for i, text in enumerate(texts))
        await pipeline.ingest([IngestBatch("sim", burst)], T0 + timedelta(seconds=40))
        assert watcher.urgent.is_set()  # the batch fired the signal: the watcher ticks without waiting
        for _ in range(200):
            async with engine.connect() as c:
                rows = [dict(r._mapping) for r in await c.execute(sa.select(incident_t))]
            if rows:
                break
            await asyncio.sleep(0.01)
    finally:
        follower.cancel()
    [incident] = [row for row in rows if row["cluster_key"] == "4g"]  # (the tick may also open the brand-wide one)
    assert (incident["state"], incident["source"]) == ("open", "detector")
    assert "rate signal" in incident["reason"]
    detected = incident["detected_at"] if incident["detected_at"].tzinfo else incident["detected_at"].replace(tzinfo=UTC)
    assert T0 < detected < T0 + timedelta(seconds=3 * len(texts))  # at a complaint of the burst, before the tick
