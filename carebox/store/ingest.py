"""The ingest hot path's SQL: batched lookups and Core writes, all inside the caller's transaction."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from functools import lru_cache
from operator import itemgetter
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from carebox.models import (
    Conversation,
    Cursor,
    Customer,
    DeadLetter,
    Identity,
    Mention,
    SlaClock,
    SlaEvent,
    UTCDateTime,
)

CHUNK = 500
conversation_t: sa.Table = Conversation.__table__  # type: ignore[attr-defined]
mention_t: sa.Table = Mention.__table__  # type: ignore[attr-defined]
customer_t: sa.Table = Customer.__table__  # type: ignore[attr-defined]
identity_t: sa.Table = Identity.__table__  # type: ignore[attr-defined]
clock_t: sa.Table = SlaClock.__table__  # type: ignore[attr-defined]
event_t: sa.Table = SlaEvent.__table__  # type: ignore[attr-defined]
cursor_t: sa.Table = Cursor.__table__  # type: ignore[attr-defined]
dead_letter_t: sa.Table = DeadLetter.__table__  # type: ignore[attr-defined]


# The look-ups, built once: an expanding IN parameter costs a fraction of an IN list of literals (no
# per-value coercion nor cache key on every call).
_IDS = sa.bindparam("ids", expanding=True)
_MENTIONS_IN = sa.select(mention_t.c.external_id, mention_t.c.conversation_id).where(
    mention_t.c.network == sa.bindparam("network"), mention_t.c.external_id.in_(_IDS))
_IDENTITIES_IN = sa.select(identity_t.c.external_user_id, identity_t.c.customer_id, identity_t.c.id, identity_t.c.handle,
                           identity_t.c.followers).where(
    identity_t.c.network == sa.bindparam("network"), identity_t.c.external_user_id.in_(_IDS))
_CONVERSATIONS_IN = sa.select(conversation_t).where(conversation_t.c.id.in_(_IDS)).order_by(conversation_t.c.id)
_OPEN_CONVERSATIONS_IN = (sa.select(conversation_t)
                          .where(conversation_t.c.customer_id.in_(_IDS), conversation_t.c.status != "resolved")
                          .order_by(conversation_t.c.last_message_at, conversation_t.c.id))
_RECENT_COUNTS_IN = (sa.select(conversation_t.c.customer_id, sa.func.count())
                     .where(conversation_t.c.customer_id.in_(_IDS),
                            conversation_t.c.first_message_at >= sa.bindparam("since", type_=UTCDateTime()))
                     .group_by(conversation_t.c.customer_id))
_RUNNING_CLOCKS_IN = sa.select(clock_t).where(clock_t.c.conversation_id.in_(_IDS), clock_t.c.fulfilled_at.is_(None))


def _chunks(items: Sequence[Any], size: int = CHUNK) -> Iterable[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _insert(conn: AsyncConnection, table: sa.Table) -> Any:
    return (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(table)


def _is_pg(conn: AsyncConnection) -> bool:
    return conn.dialect.name == "postgresql"


# The transaction advisory lock that ingest transactions take on PostgreSQL (leader.py uses other keys).
INGEST_LOCK = (7301, 0)
_LOCK_INGEST = sa.text("SELECT pg_advisory_xact_lock(:space, :key)")


async def lock_ingest(conn: AsyncConnection) -> None:
    """On PostgreSQL, make this ingest transaction exclusive among all workers' ingest transactions (until commit)."""
    # Why one lock: the dedup check, customer creation and threading must see everything the other
    # workers committed, as under SQLite's BEGIN IMMEDIATE. A lock per mention and per customer was
    # tried: a group of batches needs thousands, more than PostgreSQL's shared lock table holds ("out
    # of shared memory"). Queue reads, decoding, connectors, the scheduler and the web stay parallel;
    # conversation rows are also read FOR UPDATE so concurrent web actions are never overwritten.
    if _is_pg(conn):
        await conn.execute(_LOCK_INGEST, {"space": INGEST_LOCK[0], "key": INGEST_LOCK[1]})


async def mention_conversations(conn: AsyncConnection, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], int | None]:
    """Stored mentions among `keys` ((network, external_id)), mapped to their conversation id."""
    keys = set(keys)
    await lock_ingest(conn)
    by_network: dict[str, list[str]] = {}
    for network, external_id in keys:
        by_network.setdefault(network, []).append(external_id)
    found: dict[tuple[str, str], int | None] = {}
    for network, ids in by_network.items():
        for chunk in _chunks(ids):
            rows = await conn.execute(_MENTIONS_IN, {"network": network, "ids": list(chunk)})
            for external_id, conversation_id in rows:
                found[(network, external_id)] = conversation_id
    return found


async def customers_for(conn: AsyncConnection, people: Sequence[dict[str, Any]], now: datetime) -> dict[tuple[str, str], int]:
    """Customer ids for (network, external_user_id) identities, creating customers and identities as needed."""
    wanted = {(p["network"], p["external_user_id"]): p for p in people}
    await lock_ingest(conn)
    found: dict[tuple[str, str], int] = {}
    changed: list[dict[str, Any]] = []
    by_network: dict[str, list[str]] = {}
    for network, user_id in wanted:
        by_network.setdefault(network, []).append(user_id)
    for network, ids in by_network.items():
        for chunk in _chunks(ids):
            rows = await conn.execute(_IDENTITIES_IN, {"network": network, "ids": list(chunk)})
            for user_id, customer_id, identity_id, handle, followers in rows:
                found[(network, user_id)] = customer_id
                p = wanted[(network, user_id)]
                if p["handle"] != handle or (p["followers"] is not None and p["followers"] != followers):
                    changed.append({"id": identity_id, "handle": p["handle"], "verified": p["verified"],
                                    "followers": followers if p["followers"] is None else p["followers"]})
    await update_by_id(conn, identity_t, changed)  # one executemany, not one UPDATE per identity
    missing = [p for key, p in wanted.items() if key not in found]
    new_ids = await insert_returning_ids(
        conn, customer_t, [{"display_name": p["display_name"] or p["handle"], "created_at": now} for p in missing]
    )
    for p, customer_id in zip(missing, new_ids, strict=True):
        found[(p["network"], p["external_user_id"])] = customer_id
    await insert_rows(conn, identity_t, [{**p, "customer_id": found[(p["network"], p["external_user_id"])]} for p in missing])
    return found


async def conversations_by_id(conn: AsyncConnection, ids: Iterable[int]) -> dict[int, dict[str, Any]]:
    """Conversation rows by id."""
    out: dict[int, dict[str, Any]] = {}
    for chunk in _chunks(sorted(set(ids))):
        stmt = _CONVERSATIONS_IN
        for row in await conn.execute(stmt.with_for_update() if _is_pg(conn) else stmt, {"ids": list(chunk)}):
            out[row.id] = dict(row._mapping)
    return out


async def latest_open_conversations(conn: AsyncConnection, customer_ids: Iterable[int]) -> dict[tuple[str, str, int], dict[str, Any]]:
    """The latest unresolved conversation per (network, account, customer id) for these customers."""
    out: dict[tuple[str, str, int], dict[str, Any]] = {}
    for chunk in _chunks(sorted(set(customer_ids))):
        stmt = _OPEN_CONVERSATIONS_IN
        # on PostgreSQL the rows are locked and re-read at their latest committed version, so two
        # workers never both update a conversation from the same stale copy
        rows = await conn.execute(stmt.with_for_update() if _is_pg(conn) else stmt, {"ids": list(chunk)})
        for row in rows:
            out[(row.network, row.account, row.customer_id)] = dict(row._mapping)
    return out


async def recent_conversation_counts(conn: AsyncConnection, customer_ids: Iterable[int], since: datetime) -> dict[int, int]:
    """How many conversations each customer opened since `since` (repeat contact)."""
    out: dict[int, int] = {}
    for chunk in _chunks(sorted(set(customer_ids))):
        rows = await conn.execute(_RECENT_COUNTS_IN, {"ids": list(chunk), "since": since})
        out.update({customer_id: n for customer_id, n in rows})
    return out


async def running_clocks(conn: AsyncConnection, conversation_ids: Iterable[int]) -> dict[int, list[dict[str, Any]]]:
    """Unfinished SLA clocks per conversation."""
    out: dict[int, list[dict[str, Any]]] = {}
    for chunk in _chunks(sorted(set(conversation_ids))):
        rows = await conn.execute(_RUNNING_CLOCKS_IN, {"ids": list(chunk)})
        for row in rows:
            out.setdefault(row.conversation_id, []).append(dict(row._mapping))
    return out


async def insert_returning_ids(conn: AsyncConnection, table: sa.Table, rows: Sequence[dict[str, Any]]) -> list[int]:
    """Insert rows in batched statements; sets each row's "id" and returns the ids in the order of `rows`."""
    if not rows:
        return []
    if conn.dialect.name != "sqlite":
        stmt = table.insert().returning(table.c.id, sort_by_parameter_order=True)
        ids = list((await conn.execute(stmt, list(rows))).scalars())
        for row, i in zip(rows, ids, strict=True):
            row["id"] = i
        return ids
    # SQLite cannot correlate an executemany's RETURNING rows; inside a write transaction (which
    # holds the write lock from BEGIN IMMEDIATE) the next ids are ours to allocate.
    first = ((await conn.exec_driver_sql(f'SELECT max(id) FROM "{table.name}"')).scalar() or 0) + 1
    ids = list(range(first, first + len(rows)))
    for row, i in zip(rows, ids, strict=True):
        row["id"] = i
    await _driver_insert(conn, table, rows)
    return ids


async def update_by_id(conn: AsyncConnection, table: sa.Table, rows: Sequence[dict[str, Any]]) -> None:
    """Update rows by their `id` key, one executemany per set of columns."""
    by_columns: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in rows:
        by_columns.setdefault(tuple(sorted(k for k in row if k != "id")), []).append(row)
    for cols, group in by_columns.items():
        if _is_pg(conn) or not cols:
            stmt = table.update().where(table.c.id == sa.bindparam("b_id")).values(
                {c: sa.bindparam("b_" + c) for c in cols}
            )
            await conn.execute(stmt, [{("b_" + k): v for k, v in row.items()} for row in group])
            continue
        convert = _converters(table, (*cols, "id"))
        sets = ", ".join(f'"{c}" = ?' for c in cols)
        await conn.exec_driver_sql(f'UPDATE "{table.name}" SET {sets} WHERE id = ?', _tuples(convert, group))


async def insert_mentions(conn: AsyncConnection, rows: Sequence[dict[str, Any]]) -> None:
    """Insert mentions, ignoring any already stored (unique network + external_id)."""
    if not rows:
        return
    if _is_pg(conn):
        stmt = _insert(conn, mention_t).on_conflict_do_nothing(index_elements=["network", "external_id"])
        await conn.execute(stmt, list(rows))
    else:
        await _driver_insert(conn, mention_t, rows, on_conflict=("network", "external_id"))


async def insert_rows(conn: AsyncConnection, table: sa.Table, rows: Sequence[dict[str, Any]]) -> None:
    """Plain executemany insert."""
    if not rows:
        return
    if _is_pg(conn):
        await conn.execute(table.insert(), list(rows))
    else:
        await _driver_insert(conn, table, rows)


# SQLite hot path: executemany of parameter tuples through the driver. SQLAlchemy Core spent most of the
# ingest's write time building per-row parameter dicts and running a bind processor per value
# (docs/benchmarks-ingest.md); the stored values are the same (the UTC text format of SQLAlchemy's
# SQLite DATETIME, checked by tests/integration/test_pipeline.py).


_UTC_TEXT: dict[datetime, str] = {}  # most instants repeat within a batch (now, a message's time on its conversation)


def _utc_text(value: datetime | None) -> str | None:
    """A UTC datetime in SQLAlchemy's SQLite storage format ("YYYY-MM-DD HH:MM:SS.ffffff")."""
    if value is None:
        return None
    text = _UTC_TEXT.get(value)  # a naive datetime never equals an aware key: it is refused below
    if text is None:
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        text = value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")
        if len(_UTC_TEXT) >= 20_000:
            _UTC_TEXT.clear()
        _UTC_TEXT[value] = text
    return text


@lru_cache(maxsize=256)
def _converters(table: sa.Table, keys: tuple[str, ...]) -> tuple[Callable[[dict[str, Any]], Any], tuple[int, ...]]:
    """A getter of the row's values in `keys` order, and the positions of the datetimes to format."""
    getter = itemgetter(*keys) if len(keys) > 1 else (lambda row: (row[keys[0]],))
    return getter, tuple(i for i, k in enumerate(keys) if isinstance(table.c[k].type, UTCDateTime))


def _tuples(convert: tuple[Callable[[dict[str, Any]], Any], tuple[int, ...]], rows: Sequence[dict[str, Any]]) -> list[Any]:
    """Driver parameters of `rows` (the driver takes bools, floats and strings as they are)."""
    getter, datetimes = convert
    if not datetimes:
        return [getter(row) for row in rows]
    out = []
    cached = _UTC_TEXT.get
    for row in rows:
        values = list(getter(row))
        for i in datetimes:
            value = values[i]
            if value is not None:
                values[i] = cached(value) or _utc_text(value)
        out.append(tuple(values))
    return out


def _filled(table: sa.Table, rows: Sequence[dict[str, Any]]) -> tuple[tuple[str, ...], Sequence[dict[str, Any]]]:
    """The columns to insert (the first row's keys, as Core does) and the rows with scalar defaults filled in."""
    keys = tuple(rows[0])
    missing = {c.name: c.default for c in table.columns if c.name not in keys and c.name != "id" and c.default is not None}
    if not missing:
        return keys, rows
    if any(not d.is_scalar for d in missing.values()):
        raise _NeedsCore
    extra = {name: d.arg for name, d in missing.items()}
    return (*keys, *extra), [{**extra, **row} for row in rows]


class _NeedsCore(Exception):
    """A column default that only SQLAlchemy can compute (a callable): this insert goes through Core."""


async def _driver_insert(conn: AsyncConnection, table: sa.Table, rows: Sequence[dict[str, Any]],
                         on_conflict: tuple[str, ...] = ()) -> None:
    """INSERT (ON CONFLICT (on_conflict) DO NOTHING) of `rows` as one driver executemany."""
    try:
        keys, rows = _filled(table, rows)
    except _NeedsCore:
        stmt = _insert(conn, table)
        await conn.execute(stmt.on_conflict_do_nothing(index_elements=list(on_conflict)) if on_conflict else stmt, list(rows))
        return
    names = ", ".join(f'"{k}"' for k in keys)
    tail = f" ON CONFLICT ({', '.join(on_conflict)}) DO NOTHING" if on_conflict else ""
    stmt = f'INSERT INTO "{table.name}" ({names}) VALUES ({", ".join("?" * len(keys))}){tail}'
    await conn.exec_driver_sql(stmt, _tuples(_converters(table, keys), rows))


async def save_cursors(conn: AsyncConnection, cursors: dict[str, str], now: datetime) -> None:
    """Upsert each connector's cursor."""
    if cursors and not _is_pg(conn):  # one driver executemany: Core would build and compile an upsert per batch
        await conn.exec_driver_sql(
            'INSERT INTO "cursor" (connector, value, updated_at) VALUES (?, ?, ?) '
            "ON CONFLICT (connector) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
            [(connector, value, _utc_text(now)) for connector, value in cursors.items()])
        return
    for connector, value in cursors.items():
        stmt = _insert(conn, cursor_t).values(connector=connector, value=value, updated_at=now)
        await conn.execute(
            stmt.on_conflict_do_update(index_elements=["connector"], set_={"value": value, "updated_at": now})
        )


async def load_cursor(conn: AsyncConnection, connector: str) -> str | None:
    """The committed cursor of a connector, or None."""
    return (await conn.execute(sa.select(cursor_t.c.value).where(cursor_t.c.connector == connector))).scalar()
