"""CHECKING AID, not part of the product: dump what a source tree's ingest stores, to compare two trees.

    python benchmarks/proto_ingest_equivalence.py --src /tmp/headsrc --out /tmp/head.dump [--n 20000] [--rate 600]
    diff /tmp/head.dump /tmp/mine.dump

Imports carebox from `--src` (not from this checkout), simulates `--n` mentions (seed 1, `--rate` per
minute), and calls Pipeline.ingest directly on batches of `--batch` mentions with a fixed clock (each batch
"arrives" one minute after its last mention), with in-process triage and the OutageWatcher observing. Then a
replay of an overlapping slice checks dedup. Every table of business data is dumped ordered by id; the
detector's snapshot is appended (outage counts).
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

TABLES = ("customer", "identity", "conversation", "mention", "slaclock", "slaevent", "cursor", "deadletter",
          "incident")
START = datetime(2026, 11, 16, 9, 0, tzinfo=UTC)


async def run(src: Path, n: int, rate: float, batch: int, folder: Path) -> tuple[str, str]:
    """Ingest into a fresh file with `src`'s carebox; returns (database path, detector snapshot JSON)."""
    sys.path.insert(0, str(src))
    import orjson

    from carebox import config
    from carebox.incidents import OutageWatcher
    from carebox.outage import Detector
    from carebox.ports import InboundMention, IngestBatch
    from carebox.runtime import make_pipeline
    from carebox.store.engine import make_engine
    from carebox.store.migrate import upgrade
    from connectors.social.replay import read_jsonl
    from connectors.social.simulator import write_jsonl

    assert Path(sys.modules["carebox"].__file__).resolve().is_relative_to(src.resolve()), "carebox not from --src"
    path = folder / "mentions.jsonl"
    write_jsonl(path, n, 1, START, rate, "acme")
    mentions = [r for r in read_jsonl(path) if isinstance(r, InboundMention)]
    db = folder / "eq.db"
    url = f"sqlite+aiosqlite:///{db}"
    await upgrade(url)
    settings = config.parse({})
    engine = make_engine(url)
    pipe, book = make_pipeline(settings, engine)
    watcher = OutageWatcher(engine, Detector(settings.outage))
    await watcher.start()
    pipe.observers.append(watcher.observe)
    for k in range(0, len(mentions), batch):
        chunk = mentions[k : k + batch]
        now = max(m.created_at for m in chunk) + timedelta(minutes=1)
        # two connector batches per group, the second one repeating two mentions of the first (dedup in a group)
        half = len(chunk) // 2
        groups = [IngestBatch("eq-a", tuple(chunk[:half]), cursor=str(k)),
                  IngestBatch("eq-b", tuple(chunk[half:]) + tuple(chunk[:2]), cursor=str(k + len(chunk)))]
        await pipe.ingest(groups, now)
        await agents_act(engine, book, k // batch, now)
    replay = mentions[len(mentions) // 2 : len(mentions) // 2 + batch]  # already stored: nothing added
    added = await pipe.ingest([IngestBatch("eq-replay", tuple(replay))], now + timedelta(minutes=1))
    assert added == 0, added
    await engine.dispose()
    return str(db), orjson.dumps(watcher.detector.snapshot(), option=orjson.OPT_SORT_KEYS).decode()


async def agents_act(engine: object, book: object, step: int, now: datetime) -> None:
    """Agents set a few open conversations pending (clocks pause) and resolve a few, so that the next
    mentions reopen them and resume their clocks."""
    import sqlalchemy as sa

    from carebox.ports import Status
    from carebox.store import actions

    async with engine.connect() as conn:  # type: ignore[attr-defined]
        ids = [r[0] for r in await conn.execute(sa.text(
            "SELECT id FROM conversation WHERE status = 'open' ORDER BY id DESC LIMIT 60"))]
    for i, conversation_id in enumerate(ids[step % 3 :: 6]):
        status = Status.PENDING if i % 2 else Status.RESOLVED
        await actions.set_status(engine, conversation_id, status, None, now, book)  # type: ignore[arg-type]


def dump(db: str, snapshot: str) -> str:
    """Every business table ordered by id, wall-clock ingest columns excluded."""
    conn = sqlite3.connect(db)
    out = []
    for table in TABLES:
        cols = [r[1] for r in conn.execute(f"PRAGMA table_info({table})") if r[1] not in ("ingested_at", "updated_at")]
        out.append(f"## {table} ({', '.join(cols)})")
        out += [repr(row) for row in conn.execute(f"SELECT {', '.join(cols)} FROM {table} ORDER BY rowid")]
    conn.close()
    out.append(f"## detector snapshot\n{snapshot}")
    return "\n".join(out) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--src", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--rate", type=float, default=600.0, help="simulated mentions per minute")
    parser.add_argument("--batch", type=int, default=500)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="carebox-eq-") as tmp:
        db, snapshot = asyncio.run(run(args.src, args.n, args.rate, args.batch, Path(tmp)))
        args.out.write_text(dump(db, snapshot), encoding="utf-8")
    print(f"{args.out}: {sum(1 for _ in args.out.open())} lines")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
