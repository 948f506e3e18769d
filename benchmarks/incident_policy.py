"""Incident SLA policy: the cost of switching an incident's conversations onto it and back, and of the
watcher's per-minute check when nothing has to move.

    python -m benchmarks.incident_policy [--n 2000] [--background 10000] [--repeat 3]

SQLite in a temporary directory. `--n` open conversations are linked to one incident, beside
`--background` open conversations that are not. Timed in wall-clock seconds (the store's work is I/O and
SQL); medians over `--repeat` on/off cycles. The same run also times ingesting the linked conversations'
mentions through the pipeline, as a yardstick: the ratio says what a switch costs next to ingest.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

from carebox import config
from carebox.ports import InboundMention, IngestBatch
from carebox.runtime import make_pipeline
from carebox.store import incident_policy as policy_store
from carebox.store import incidents as store
from carebox.store.engine import make_engine
from carebox.store.ingest import conversation_t
from carebox.store.migrate import upgrade

POLICIES = [{"name": "social", "calendar": "service-hours", "first_response": "1h"},
            {"name": "incident", "calendar": "24/7", "first_response": "15m", "match": {"tags": ["incident"]}}]
BATCH = 500


def _mentions(first: int, count: int, at: datetime) -> list[InboundMention]:
    return [InboundMention(network="x", account="acme", external_id=f"m{i}", author_id=f"c{i}", author_handle=f"c{i}",
                           text="my 4G is down since this morning", created_at=at) for i in range(first, first + count)]


async def _ingest(pipeline, mentions: list[InboundMention], now: datetime) -> float:
    began = time.perf_counter()
    for start in range(0, len(mentions), BATCH):
        await pipeline.ingest([IngestBatch("bench", tuple(mentions[start:start + BATCH]))], now)
    return time.perf_counter() - began


async def run(n: int, background: int, repeat: int) -> dict[str, float]:
    """The medians, in seconds, of switching on, switching off and a tick with nothing to move."""
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"
        await upgrade(url)
        engine = make_engine(url)
        settings = config.parse({"policies": POLICIES, "incidents": {"policy": "incident"},
                                 "database": {"url": url}}, environ={})
        pipeline, book = make_pipeline(settings, engine)
        now = datetime(2026, 11, 17, 9, 30, tzinfo=UTC)  # a Tuesday, inside service hours
        await _ingest(pipeline, _mentions(0, background, now - timedelta(minutes=20)), now)
        ingest_s = await _ingest(pipeline, _mentions(background, n, now - timedelta(minutes=10)), now)
        incident_id, linked = await store.open_by_hand(engine, "acme", "bench", "bench", now)  # links nothing itself
        assert linked == 0
        async with engine.connect() as conn:
            ids = [r[0] for r in await conn.execute(sa.select(conversation_t.c.id).order_by(conversation_t.c.id.desc())
                                                    .limit(n))]
        await store.link_conversations(engine, incident_id, ids)
        on, off, idle = [], [], []
        for i in range(repeat):
            at = now + timedelta(minutes=1 + 2 * i)
            began = time.perf_counter()
            await policy_store.switch_on(engine, incident_id, "incident", at)
            moved = await policy_store.reconcile(engine, book, "incident", at, ids)
            on.append(time.perf_counter() - began)
            assert len(moved) == n, (len(moved), n)
            began = time.perf_counter()
            assert await policy_store.reconcile(engine, book, "incident", at) == []
            idle.append(time.perf_counter() - began)
            began = time.perf_counter()
            await policy_store.switch_off(engine, incident_id, at + timedelta(minutes=1))
            back = await policy_store.reconcile(engine, book, "incident", at + timedelta(minutes=1), ids)
            off.append(time.perf_counter() - began)
            assert len(back) == n
        await engine.dispose()
    return {"ingest_s": ingest_s, "on_s": statistics.median(on), "off_s": statistics.median(off),
            "idle_tick_s": statistics.median(idle)}


def main() -> None:
    """Parse the arguments, run, print a table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=2000, help="conversations linked to the incident")
    parser.add_argument("--background", type=int, default=10000, help="other open conversations")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    r = asyncio.run(run(args.n, args.background, args.repeat))
    print(f"{args.n} linked conversations, {args.background} others, medians of {args.repeat}")
    print(f"  ingest of the linked conversations' mentions (same run): {r['ingest_s']:.3f} s")
    for key, label in (("on_s", "switch on (clocks moved)"), ("off_s", "switch back (clocks returned)"),
                       ("idle_tick_s", "watcher tick, nothing to move")):
        print(f"  {label}: {r[key]:.3f} s ({r[key] / args.n * 1e6:.0f} µs per conversation, "
              f"{r[key] / r['ingest_s']:.2f}x ingest)")


if __name__ == "__main__":
    main()
