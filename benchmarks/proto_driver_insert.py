"""PROTOTYPE, not wired into the product: the ingest's inserts through the driver instead of SQLAlchemy Core.

    python -m benchmarks.proto_driver_insert [--n 20000] [--batch 500] [--repeat 5]

The rows the pipeline writes for `--n` simulated mentions (mention, conversation, slaclock, slaevent, read
back as Python values from a store the real pipeline filled) are inserted again into fresh migrated SQLite
files, in the same write transactions (BEGIN IMMEDIATE per batch), interleaved repeats; medians of the CPU
time of this process (all threads) per row:
  core:   what carebox.store.ingest does (insert_mentions' insert ... on conflict do nothing, insert_rows'
          table.insert()): executemany of dicts, SQLAlchemy builds every row's parameters and runs the
          UTCDateTime and Boolean bind processors per value;
  driver: conn.exec_driver_sql("INSERT [OR IGNORE] INTO t (...) VALUES (?, ...)", tuples), datetimes formatted
          once into SQLAlchemy's SQLite text format, so the stored bytes are identical (checked per table).
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import sqlalchemy as sa

from benchmarks import _common as common
from benchmarks import ingest
from carebox.store import ingest as sql
from carebox.store.engine import make_engine, write_transaction

TABLES = {"conversation": sql.conversation_t, "slaclock": sql.clock_t, "slaevent": sql.event_t,
          "mention": sql.mention_t}  # in foreign-key order


def _sqlite_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    return value


def as_tuples(columns: list[str], rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """Rows as driver parameter tuples, datetimes in SQLAlchemy's SQLite storage format."""
    return [tuple(_sqlite_value(row.get(c)) for c in columns) for row in rows]


async def insert_core(url: str, tables: dict[str, list[dict[str, Any]]], batch: int) -> dict[str, float]:
    """CPU seconds per table to insert the rows with the product's Core statements."""
    engine = make_engine(url)
    out = {}
    for name, rows in tables.items():
        start = time.process_time()
        for k in range(0, len(rows), batch):
            async with write_transaction(engine) as conn:
                if name == "mention":
                    await sql.insert_mentions(conn, rows[k : k + batch])
                else:
                    await sql.insert_rows(conn, TABLES[name], rows[k : k + batch])
        out[name] = time.process_time() - start
    await engine.dispose()
    return out


async def insert_driver(url: str, tables: dict[str, list[dict[str, Any]]], batch: int) -> dict[str, float]:
    """CPU seconds per table to insert the same rows as driver tuples (conversion included)."""
    engine = make_engine(url)
    out = {}
    for name, rows in tables.items():
        columns = list(rows[0])
        verb = "INSERT OR IGNORE" if name == "mention" else "INSERT"
        stmt = f"{verb} INTO {name} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
        start = time.process_time()
        for k in range(0, len(rows), batch):
            async with write_transaction(engine) as conn:
                await conn.exec_driver_sql(stmt, as_tuples(columns, rows[k : k + batch]))
        out[name] = time.process_time() - start
    await engine.dispose()
    return out


def _dump(path: str, table: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(path) as conn:
        return conn.execute(f"SELECT * FROM {table} ORDER BY id").fetchall()


async def pipeline_rows(folder: Path, n: int) -> tuple[str, dict[str, list[dict[str, Any]]]]:
    """The rows the real pipeline stored for `n` simulated mentions, as Python values (ids kept, FKs off)."""
    from carebox import config

    url = await ingest.fresh_db(folder, "source")
    await ingest.run_pipeline(url, ingest.simulate(folder, n), rate=None, pool=None, settings=config.parse({}))
    engine = make_engine(url)
    async with engine.connect() as conn:
        tables = {name: [dict(r._mapping) for r in await conn.execute(sa.select(t).order_by(t.c.id))]
                  for name, t in TABLES.items()}
    await engine.dispose()
    return url.split(":///", 1)[1], tables


async def measure(n: int, batch: int, repeat: int, folder: Path) -> dict[str, Any]:
    """Interleaved repeats of both ways on fresh files; checks they store the same bytes."""
    source, tables = await pipeline_rows(folder, n)
    cpu: dict[str, list[dict[str, float]]] = {"core": [], "driver": []}
    paths: dict[str, str] = {}
    for k in range(repeat):
        for name, fn in (("core", insert_core), ("driver", insert_driver)):
            url = await ingest.fresh_db(folder, f"{name}{k}")
            path = url.split(":///", 1)[1]
            with sqlite3.connect(path) as conn:  # the customers the rows point at, copied untimed
                conn.execute("ATTACH DATABASE ? AS src", (source,))
                conn.execute("INSERT INTO customer SELECT * FROM src.customer")
                conn.execute("INSERT INTO identity SELECT * FROM src.identity")
                conn.commit()
                conn.execute("DETACH DATABASE src")
            cpu[name].append(await fn(url, tables, batch))
            paths[name] = path
    per_table = {t: {"rows": len(rows), "identical": _dump(paths["core"], t) == _dump(paths["driver"], t),
                     **{f"{w}_us_per_row": common.median(r[t] for r in cpu[w]) / len(rows) * 1e6 for w in cpu}}
                 for t, rows in tables.items()}
    return {"mentions": n, "batch": batch, "repeat": repeat, "tables": per_table}


def main(argv: list[str] | None = None) -> int:
    """Print the comparison."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="carebox-proto-") as tmp:
        r = asyncio.run(measure(args.n, args.batch, args.repeat, Path(tmp)))
    print(f"rows the pipeline wrote for {r['mentions']:,} mentions, batches of {r['batch']}, median of "
          f"{r['repeat']} interleaved runs, CPU µs per row (this process, all threads)")
    rows = [[t, v["rows"], v["core_us_per_row"], v["driver_us_per_row"], f"{v['driver_us_per_row'] / v['core_us_per_row']:.2f}",
             v["identical"]] for t, v in r["tables"].items()]
    core = sum(v["rows"] * v["core_us_per_row"] for v in r["tables"].values()) / r["mentions"]
    driver = sum(v["rows"] * v["driver_us_per_row"] for v in r["tables"].values()) / r["mentions"]
    rows.append(["all four, per mention", r["mentions"], core, driver, f"{driver / core:.2f}", ""])
    print(common.table(["table", "rows", "core µs/row", "driver µs/row", "driver/core", "identical bytes"], rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
