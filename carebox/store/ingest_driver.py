"""SQLite's ingest SQL at the driver level. Writes: rows become parameter tuples, statements are queued, and
the whole queue runs as plain executemany on aiosqlite's worker thread in one hand-off at the end of the batch.
Look-ups: a Core SELECT compiled once, run in one hand-off, its values converted by SQLAlchemy's own result
processors.

Why (docs/benchmarks-ingest.md): SQLAlchemy Core spent most of the write time building parameter dicts and
running a bind processor per value, and every statement through the async adapter costs ~100-140 µs of CPU
(greenlet, several thread hand-offs) where one hand-off costs ~17 µs. The stored values are the same: the UTC
text of SQLAlchemy's SQLite DATETIME (checked by tests/integration/test_pipeline.py).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from carebox.models import UTCDateTime

Statement = tuple[str, list[tuple[Any, ...]]]


class _UtcTexts(dict[datetime | None, str | None]):
    """UTC datetime -> SQLAlchemy's SQLite storage text ("YYYY-MM-DD HH:MM:SS.ffffff"), computed once per
    instant (most repeat within a batch: now, a message's time on its conversation and clocks); None -> None."""

    LIMIT = 20_000

    def __init__(self) -> None:
        super().__init__({None: None})

    def __missing__(self, value: datetime) -> str:
        if value.tzinfo is None:  # a naive datetime never equals an aware key, so it always lands here
            raise ValueError("naive datetime given to a UTC column")
        if len(self) >= self.LIMIT:
            self.clear()
            self[None] = None
        if value.tzinfo is UTC:  # the usual case: "YYYY-MM-DD HH:MM:SS.ffffff+00:00" less its offset
            text = value.isoformat(" ", "microseconds")[:26]
        else:
            text = value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")
        self[value] = text
        return text


UTC_TEXT = _UtcTexts()


@lru_cache(maxsize=256)
def row_tuple(table: sa.Table, keys: tuple[str, ...]) -> Callable[[dict[str, Any]], tuple[Any, ...]]:
    """A function giving a row dict's driver parameters in `keys` order, its UTC datetimes as text.

    Built as one lambda per (table, keys), like namedtuple builds its methods: a row costs one call instead
    of an item getter plus a Python loop over its datetime columns. Keys are checked against the table's
    columns and quoted with repr, so the source holds nothing but column names."""
    parts = [f"T[r[{k!r}]]" if isinstance(table.c[k].type, UTCDateTime) else f"r[{k!r}]" for k in keys]
    return eval(f"lambda r: ({', '.join(parts)},)", {"T": UTC_TEXT})  # the source holds column names only


def tuples(table: sa.Table, keys: tuple[str, ...], rows: Sequence[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """The driver parameters of `rows` (the driver takes bools, floats and strings as they are)."""
    convert = row_tuple(table, keys)
    return [convert(row) for row in rows]


class NeedsCore(Exception):
    """A column default that only SQLAlchemy can compute (a callable): this insert goes through Core."""


def filled(table: sa.Table, rows: Sequence[dict[str, Any]]) -> tuple[tuple[str, ...], Sequence[dict[str, Any]]]:
    """The columns to insert (the first row's keys, as Core does) and the rows with scalar defaults filled in."""
    keys = tuple(rows[0])
    extra = _defaults_missing(table, keys)
    if not extra:
        return keys, rows
    return (*keys, *extra), [{**extra, **row} for row in rows]


@lru_cache(maxsize=256)
def _defaults_missing(table: sa.Table, keys: tuple[str, ...]) -> dict[str, Any]:
    """The scalar defaults of the columns `keys` leaves out (read-only: shared by every call)."""
    missing = {c.name: c.default for c in table.columns if c.name not in keys and c.name != "id" and c.default is not None}
    if any(not d.is_scalar for d in missing.values()):
        raise NeedsCore
    return {name: d.arg for name, d in missing.items()}


def insert_statement(table: sa.Table, rows: Sequence[dict[str, Any]], on_conflict: tuple[str, ...] = ()) -> Statement:
    """INSERT (ON CONFLICT (on_conflict) DO NOTHING) of `rows`, as SQL and parameter tuples."""
    keys, rows = filled(table, rows)
    names = ", ".join(f'"{k}"' for k in keys)
    tail = f" ON CONFLICT ({', '.join(on_conflict)}) DO NOTHING" if on_conflict else ""
    return f'INSERT INTO "{table.name}" ({names}) VALUES ({", ".join("?" * len(keys))}){tail}', tuples(table, keys, rows)


def update_statements(table: sa.Table, rows: Sequence[dict[str, Any]]) -> list[Statement]:
    """UPDATE ... WHERE id = ? of rows by their "id" key, one statement per set of columns (none for a row
    with nothing to set)."""
    by_columns: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in rows:
        if len(row) > 1:
            by_columns.setdefault(tuple(sorted(k for k in row if k != "id")), []).append(row)
    out = []
    for cols, group in by_columns.items():
        sets = ", ".join(f'"{c}" = ?' for c in cols)
        out.append((f'UPDATE "{table.name}" SET {sets} WHERE id = ?', tuples(table, (*cols, "id"), group)))
    return out


class _Select(NamedTuple):
    sql: str
    names: tuple[str, ...]  # the positional parameters, in order
    defaults: dict[str, Any]  # literal values bound by the statement itself
    convert: Callable[[tuple[Any, ...]], tuple[Any, ...]]  # SQLAlchemy's result processors of the columns


@lru_cache(maxsize=64)
def _select(stmt: sa.Select[Any], dialect: sa.Dialect) -> _Select:
    """A Core SELECT compiled once for the driver, with the result processing SQLAlchemy would apply."""
    compiled = stmt.compile(dialect=dialect)
    procs = {f"P{i}": c.type.dialect_impl(dialect).result_processor(dialect, None)
             for i, c in enumerate(stmt.selected_columns)}
    parts = [f"P{i}(r[{i}])" if procs[f"P{i}"] else f"r[{i}]" for i in range(len(procs))]
    convert = eval(f"lambda r: ({', '.join(parts)},)", procs)  # the source holds column positions only
    return _Select(compiled.string, tuple(compiled.positiontup or ()), dict(compiled.params), convert)


async def fetch(conn: AsyncConnection, stmt: sa.Select[Any], params: dict[str, Any]) -> list[tuple[Any, ...]]:
    """The rows of a Core SELECT (expanding IN parameters given as lists) run by the driver in one hand-off,
    each value as SQLAlchemy would return it (aware datetimes, bools)."""
    select = _select(stmt, conn.dialect)
    sql, args = select.sql, []
    for name in select.names:
        value = params[name] if name in params else select.defaults[name]
        if isinstance(value, list):
            sql = sql.replace(f"__[POSTCOMPILE_{name}]", ", ".join("?" * len(value)) or "NULL")
            args += value
        else:
            args.append(UTC_TEXT[value] if isinstance(value, datetime) else value)
    convert = select.convert
    return [convert(row) for row in await _hand_off(conn, _fetchall, sql, args)]


def _fetchall(connection: sqlite3.Connection, sql: str, args: list[Any]) -> list[tuple[Any, ...]]:
    try:
        return connection.execute(sql, args).fetchall()
    except sqlite3.Error as err:
        raise _StatementFailed(sql, err) from err


async def run_on_driver(conn: AsyncConnection, statements: Sequence[Statement]) -> None:
    """Run `statements` (executemany each, in order) on aiosqlite's worker thread in one hand-off, inside
    `conn`'s transaction. A failure raises SQLAlchemy's wrapper of the driver error, as Core would."""
    if statements:
        await _hand_off(conn, _executemany_all, statements)


async def _hand_off(conn: AsyncConnection, fn: Callable[..., Any], *args: Any) -> Any:
    """`fn(sqlite3 connection, *args)` on aiosqlite's worker thread (the only thread that may use that
    connection), inside `conn`'s transaction; a failed statement raises SQLAlchemy's wrapper of the error."""
    # the aiosqlite.Connection, read without `get_raw_connection`'s greenlet: inside a transaction it is there
    driver = conn.sync_connection.connection.driver_connection  # type: ignore[union-attr]
    try:
        return await driver._execute(fn, driver._conn, *args)  # private, but the one hand-off: see the docstring above
    except _StatementFailed as failed:
        raise sa.exc.DBAPIError.instance(failed.sql, None, failed.err, sqlite3.Error) from failed.err


class _StatementFailed(Exception):
    def __init__(self, sql: str, err: sqlite3.Error) -> None:
        super().__init__(sql)
        self.sql, self.err = sql, err


def _executemany_all(connection: sqlite3.Connection, statements: Sequence[Statement]) -> None:
    for sql, params in statements:
        try:
            connection.executemany(sql, params)
        except sqlite3.Error as err:
            raise _StatementFailed(sql, err) from err
