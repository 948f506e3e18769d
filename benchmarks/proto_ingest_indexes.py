"""PROFILING AID, not part of the product: what each index on the ingest tables costs the writer.

    python benchmarks/proto_ingest_indexes.py --src /tmp/headsrc [--n 10000] [--repeat 5] [--executemany] [--plans statements.txt]

Ingests `n` simulated mentions with the pipeline of `--src` into a fresh migrated SQLite file, then for each
table the ingest writes, copies its rows into a scratch table (same CREATE TABLE) carrying all its indexes,
and again without each index in turn: the CPU per row an index adds is the median difference. The copy is
one INSERT … SELECT, or with `--executemany` the ingest's shape: executemany in committed batches of `--batch`
rows (SQLite's own cost of binding each value included). UNIQUE and
PRIMARY KEY autoindexes are part of the table and cannot be left out; they are listed as such.
With `--plans`, a file of SQL statements one a line (e.g. recorded from the tests), it also prints which
statements' EXPLAIN QUERY PLAN uses each index of those tables (parameters bound as NULL).
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

TABLES = ("mention", "conversation", "slaclock", "slaevent", "customer", "identity")


async def populate(src: Path, n: int, batch: int, folder: Path) -> Path:
    """A migrated SQLite file holding `n` simulated mentions ingested by the pipeline of `src`."""
    sys.path.insert(0, str(src))
    from benchmarks import ingest
    from carebox import config
    from carebox.ports import IngestBatch
    from carebox.runtime import make_pipeline
    from carebox.store.engine import make_engine

    assert (
        Path(sys.modules["carebox"].__file__).resolve().is_relative_to(src.resolve())
    ), "carebox not from --src"
    url = await ingest.fresh_db(folder, "indexes")
    mentions = ingest.simulate(folder, n)
    engine = make_engine(url)
    pipe, _ = make_pipeline(config.parse({}), engine)
    for k in range(0, n, batch):
        await pipe.ingest(
            [IngestBatch("bench", tuple(mentions[k : k + batch]), cursor=str(k))],
            datetime.now(UTC),
        )
    await engine.dispose()
    return folder / "indexes.db"


def copy_cpu(
    db: sqlite3.Connection, table: str, index_sql: list[str], batch: int | None
) -> float:
    """CPU seconds of copying `table`'s rows into a scratch twin that carries `index_sql`: by one
    INSERT … SELECT, or with `batch` by executemany in committed batches of that many rows, as ingest writes."""
    create = db.execute(
        "SELECT sql FROM sqlite_master WHERE type='table' AND name=?", (table,)
    ).fetchone()[0]
    db.execute("DROP TABLE IF EXISTS scratch.twin")
    db.execute(create.replace(f"CREATE TABLE {table}", "CREATE TABLE scratch.twin", 1))
    for sql in index_sql:
        db.execute(
            sql.replace(f" ON {table} ", " ON twin ", 1).replace(
                "CREATE INDEX ", "CREATE INDEX scratch.", 1
            )
        )
    if batch is None:
        start = time.process_time()
        db.execute(f"INSERT INTO scratch.twin SELECT * FROM main.{table}")
        db.commit()
        return time.process_time() - start
    rows = db.execute(f"SELECT * FROM main.{table}").fetchall()
    insert = f"INSERT INTO scratch.twin VALUES ({','.join('?' * len(rows[0]))})"
    start = time.process_time()
    for k in range(0, len(rows), batch):
        db.executemany(insert, rows[k : k + batch])
        db.commit()
    return time.process_time() - start


def index_costs(
    db: sqlite3.Connection, table: str, repeat: int, batch: int | None
) -> list[tuple[str, float]]:
    """(index name, median µs of CPU per row it adds), then ("all named indexes", ...) and ("table + autoindexes", ...)."""
    rows = db.execute(f"SELECT count(*) FROM {table}").fetchone()[0] or 1
    named = db.execute(
        "SELECT name, sql FROM sqlite_master WHERE type='index' AND tbl_name=? AND sql IS NOT NULL",
        (table,),
    ).fetchall()
    every = [sql for _, sql in named]
    variants = {"": every, "(none)": []} | {
        name: [s for s in every if s != sql] for name, sql in named
    }
    cpu = {
        key: statistics.median(copy_cpu(db, table, sqls, batch) for _ in range(repeat))
        for key, sqls in variants.items()
    }
    result = [(name, (cpu[""] - cpu[name]) * 1e6 / rows) for name, _ in named]
    return result + [
        ("all named indexes", (cpu[""] - cpu["(none)"]) * 1e6 / rows),
        ("table + autoindexes alone", cpu["(none)"] * 1e6 / rows),
    ]


def plan_details(db: sqlite3.Connection, statement: str) -> list[str]:
    """The detail lines of `statement`'s query plan, its `?` parameters bound as NULL."""
    for count in range(200):
        try:
            return [
                row[3]
                for row in db.execute(
                    f"EXPLAIN QUERY PLAN {statement}", (None,) * count
                )
            ]
        except sqlite3.ProgrammingError:
            continue
        except sqlite3.OperationalError as err:
            return [f"error: {err}"]
    return ["error: too many parameters"]


def index_users(db: sqlite3.Connection, statements: list[str]) -> dict[str, list[str]]:
    """Each index of TABLES -> the statements whose plan uses it."""
    names = [
        name
        for (name,) in db.execute(
            f"SELECT name FROM sqlite_master WHERE type='index' AND tbl_name IN ({','.join('?' * len(TABLES))})",
            TABLES,
        )
    ]
    users: dict[str, list[str]] = {name: [] for name in names}
    for statement in statements:
        if (
            not statement.lstrip()
            .upper()
            .startswith(("SELECT", "UPDATE", "DELETE", "WITH"))
        ):
            continue
        details = " ".join(plan_details(db, statement))
        for name in names:
            if f"INDEX {name} " in details + " ":
                users[name].append(statement)
    return users


def print_users(db: sqlite3.Connection, path: Path) -> None:
    """Prints, for each index, how many recorded statements use it and the start of two of them."""
    statements = [
        line.strip()
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]
    print("\n| index | statements using it | e.g. |\n|---|---:|---|")
    for name, using in index_users(db, statements).items():
        print(f"| {name} | {len(using)} | {' / '.join(s[:140] for s in using[:2])} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--src", type=Path, required=True)
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument(
        "--executemany", action="store_true", help="copy by executemany in batches"
    )
    parser.add_argument(
        "--plans",
        type=Path,
        default=None,
        help="SQL statements, one a line, to EXPLAIN",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="carebox-idx-") as tmp:
        path = asyncio.run(populate(args.src, args.n, args.batch, Path(tmp)))
        db = sqlite3.connect(path)
        db.execute(f"ATTACH DATABASE '{Path(tmp) / 'scratch.db'}' AS scratch")
        print(
            "| table | rows | index | columns | µs CPU per row written |\n|---|---:|---|---|---:|"
        )
        for table in TABLES:
            rows = db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            sqls = dict(
                db.execute(
                    "SELECT name, sql FROM sqlite_master WHERE type='index' AND tbl_name=?",
                    (table,),
                )
            )
            by_rows = args.batch if args.executemany else None
            for name, us in index_costs(db, table, args.repeat, by_rows):
                columns = (sqls.get(name) or "").partition(f" ON {table} ")[2]
                print(f"| {table} | {rows:,} | {name} | {columns} | {us:.2f} |")
        if args.plans:
            print_users(db, args.plans)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
