"""The ingest hot path's SQL: batched look-ups and writes, all inside the caller's transaction (on SQLite through
the driver, `ingest_driver`; on PostgreSQL through Core)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from functools import lru_cache
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
from carebox.store import ingest_driver as driver

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


_CONVERSATION_KEYS = tuple(c.name for c in _CONVERSATIONS_IN.selected_columns)
_CLOCK_KEYS = tuple(c.name for c in _RUNNING_CLOCKS_IN.selected_columns)


async def _rows(conn: AsyncConnection, stmt: sa.Select[Any], params: dict[str, Any], *,
                for_update: bool = False) -> Sequence[Sequence[Any]]:
    """A look-up's rows as tuples: through Core on PostgreSQL (`for_update` locks them), through the driver in
    one hand-off on SQLite (whose write transaction already excludes other writers)."""
    if _is_pg(conn):
        return list(await conn.execute(stmt.with_for_update() if for_update else stmt, params))
    return await driver.fetch(conn, stmt, params)


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
            for external_id, conversation_id in await _rows(conn, _MENTIONS_IN, {"network": network, "ids": list(chunk)}):
                found[(network, external_id)] = conversation_id
    return found


async def customers_for(writes: Writes, people: Sequence[dict[str, Any]], now: datetime) -> dict[tuple[str, str], int]:
    """Customer ids for (network, external_user_id) identities, creating customers and identities as needed."""
    conn = writes.conn
    wanted = {(p["network"], p["external_user_id"]): p for p in people}
    await lock_ingest(conn)
    found: dict[tuple[str, str], int] = {}
    changed: list[dict[str, Any]] = []
    by_network: dict[str, list[str]] = {}
    for network, user_id in wanted:
        by_network.setdefault(network, []).append(user_id)
    for network, ids in by_network.items():
        for chunk in _chunks(ids):
            rows = await _rows(conn, _IDENTITIES_IN, {"network": network, "ids": list(chunk)})
            for user_id, customer_id, identity_id, handle, followers in rows:
                found[(network, user_id)] = customer_id
                p = wanted[(network, user_id)]
                if p["handle"] != handle or (p["followers"] is not None and p["followers"] != followers):
                    changed.append({"id": identity_id, "handle": p["handle"], "verified": p["verified"],
                                    "followers": followers if p["followers"] is None else p["followers"]})
    await writes.update_by_id(identity_t, changed)  # one executemany, not one UPDATE per identity
    missing = [p for key, p in wanted.items() if key not in found]
    new_ids = await writes.insert_returning_ids(
        customer_t, [{"display_name": p["display_name"] or p["handle"], "created_at": now} for p in missing]
    )
    for p, customer_id in zip(missing, new_ids, strict=True):
        found[(p["network"], p["external_user_id"])] = customer_id
    await writes.insert_rows(identity_t, [{**p, "customer_id": found[(p["network"], p["external_user_id"])]} for p in missing])
    return found


async def conversations_by_id(conn: AsyncConnection, ids: Iterable[int]) -> dict[int, dict[str, Any]]:
    """Conversation rows by id."""
    out: dict[int, dict[str, Any]] = {}
    for chunk in _chunks(sorted(set(ids))):
        for row in await _rows(conn, _CONVERSATIONS_IN, {"ids": list(chunk)}, for_update=True):
            out[row[0]] = dict(zip(_CONVERSATION_KEYS, row, strict=True))
    return out


async def latest_open_conversations(conn: AsyncConnection, customer_ids: Iterable[int]) -> dict[tuple[str, str, int], dict[str, Any]]:
    """The latest unresolved conversation per (network, account, customer id) for these customers."""
    out: dict[tuple[str, str, int], dict[str, Any]] = {}
    for chunk in _chunks(sorted(set(customer_ids))):
        # on PostgreSQL the rows are locked and re-read at their latest committed version, so two
        # workers never both update a conversation from the same stale copy
        for row in await _rows(conn, _OPEN_CONVERSATIONS_IN, {"ids": list(chunk)}, for_update=True):
            conv = dict(zip(_CONVERSATION_KEYS, row, strict=True))
            out[(conv["network"], conv["account"], conv["customer_id"])] = conv
    return out


async def recent_conversation_counts(conn: AsyncConnection, customer_ids: Iterable[int], since: datetime) -> dict[int, int]:
    """How many conversations each customer opened since `since` (repeat contact)."""
    out: dict[int, int] = {}
    for chunk in _chunks(sorted(set(customer_ids))):
        out.update(await _rows(conn, _RECENT_COUNTS_IN, {"ids": list(chunk), "since": since}))
    return out


async def running_clocks(conn: AsyncConnection, conversation_ids: Iterable[int]) -> dict[int, list[dict[str, Any]]]:
    """Unfinished SLA clocks per conversation."""
    out: dict[int, list[dict[str, Any]]] = {}
    for chunk in _chunks(sorted(set(conversation_ids))):
        for row in await _rows(conn, _RUNNING_CLOCKS_IN, {"ids": list(chunk)}):
            clock = dict(zip(_CLOCK_KEYS, row, strict=True))
            out.setdefault(clock["conversation_id"], []).append(clock)
    return out


@lru_cache(maxsize=8)
def _maxima(tables: tuple[sa.Table, ...]) -> sa.Select[Any]:
    return sa.select(*(sa.select(sa.func.max(t.c.id)).scalar_subquery() for t in tables))


class Writes:
    """The writes of one ingest transaction, in the order they are asked for.

    On SQLite they are queued as driver parameter tuples and run by `flush` in one hand-off to aiosqlite's
    thread (`ingest_driver`); the ids of new rows come from the maxima read by `open`, which is safe because
    the transaction holds the write lock from BEGIN IMMEDIATE. On PostgreSQL each write runs at once through
    Core (RETURNING gives the ids)."""

    def __init__(self, conn: AsyncConnection, next_ids: dict[str, int] | None = None) -> None:
        self.conn = conn
        self.queue: list[driver.Statement] | None = None if _is_pg(conn) else []
        self.next_ids = next_ids or {}

    @classmethod
    async def open(cls, conn: AsyncConnection, tables: Sequence[sa.Table] = ()) -> Writes:
        """Writes on `conn`; on SQLite, the next ids of `tables` (those given to `insert_returning_ids`) in one read."""
        if _is_pg(conn) or not tables:
            return cls(conn)
        [maxima] = await driver.fetch(conn, _maxima(tuple(tables)), {})
        return cls(conn, {t.name: (m or 0) + 1 for t, m in zip(tables, maxima, strict=True)})

    async def insert_returning_ids(self, table: sa.Table, rows: Sequence[dict[str, Any]]) -> list[int]:
        """Insert rows; sets each row's "id" and returns the ids in the order of `rows`."""
        if not rows:
            return []
        if self.queue is None:
            stmt = table.insert().returning(table.c.id, sort_by_parameter_order=True)
            ids = list((await self.conn.execute(stmt, list(rows))).scalars())
        else:
            first = self.next_ids[table.name]
            ids = list(range(first, first + len(rows)))
            self.next_ids[table.name] = first + len(rows)
        for row, i in zip(rows, ids, strict=True):
            row["id"] = i
        if self.queue is not None:
            await self._insert(table, rows)
        return ids

    async def update_by_id(self, table: sa.Table, rows: Sequence[dict[str, Any]]) -> None:
        """Update rows by their `id` key, one executemany per set of columns."""
        if self.queue is not None:
            self.queue += driver.update_statements(table, rows)
            return
        by_columns: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for row in rows:
            by_columns.setdefault(tuple(sorted(k for k in row if k != "id")), []).append(row)
        for cols, group in by_columns.items():
            if not cols:  # nothing changed
                continue
            stmt = table.update().where(table.c.id == sa.bindparam("b_id")).values(
                {c: sa.bindparam("b_" + c) for c in cols}
            )
            await self.conn.execute(stmt, [{("b_" + k): v for k, v in row.items()} for row in group])

    async def insert_mentions(self, rows: Sequence[dict[str, Any]]) -> None:
        """Insert mentions, ignoring any already stored (unique network + external_id)."""
        if not rows:
            return
        if self.queue is None:
            stmt = _insert(self.conn, mention_t).on_conflict_do_nothing(index_elements=["network", "external_id"])
            await self.conn.execute(stmt, list(rows))
        else:
            await self._insert(mention_t, rows, on_conflict=("network", "external_id"))

    async def insert_rows(self, table: sa.Table, rows: Sequence[dict[str, Any]]) -> None:
        """Plain executemany insert."""
        if not rows:
            return
        if self.queue is None:
            await self.conn.execute(table.insert(), list(rows))
        else:
            await self._insert(table, rows)

    async def save_cursors(self, cursors: dict[str, str], now: datetime) -> None:
        """Upsert each connector's cursor."""
        if self.queue is None:
            await save_cursors(self.conn, cursors, now)
        elif cursors:
            self.queue.append((_CURSOR_UPSERT, [(c, value, driver.UTC_TEXT[now]) for c, value in cursors.items()]))

    async def flush(self) -> None:
        """Run what is queued (SQLite)."""
        if self.queue:
            statements, self.queue = self.queue, []
            await driver.run_on_driver(self.conn, statements)

    async def _insert(self, table: sa.Table, rows: Sequence[dict[str, Any]], on_conflict: tuple[str, ...] = ()) -> None:
        assert self.queue is not None
        try:
            self.queue.append(driver.insert_statement(table, rows, on_conflict))
        except driver.NeedsCore:  # in order: what is queued first, then this insert through Core
            await self.flush()
            stmt = _insert(self.conn, table)
            await self.conn.execute(stmt.on_conflict_do_nothing(index_elements=list(on_conflict)) if on_conflict else stmt,
                                    list(rows))


_CURSOR_UPSERT = ('INSERT INTO "cursor" (connector, value, updated_at) VALUES (?, ?, ?) '
                  "ON CONFLICT (connector) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at")


async def save_cursors(conn: AsyncConnection, cursors: dict[str, str], now: datetime) -> None:
    """Upsert each connector's cursor."""
    if cursors and not _is_pg(conn):  # one driver executemany: Core would build and compile an upsert per batch
        await conn.exec_driver_sql(_CURSOR_UPSERT, [(c, value, driver.UTC_TEXT[now]) for c, value in cursors.items()])
        return
    for connector, value in cursors.items():
        stmt = _insert(conn, cursor_t).values(connector=connector, value=value, updated_at=now)
        await conn.execute(
            stmt.on_conflict_do_update(index_elements=["connector"], set_={"value": value, "updated_at": now})
        )


async def load_cursor(conn: AsyncConnection, connector: str) -> str | None:
    """The committed cursor of a connector, or None."""
    return (await conn.execute(sa.select(cursor_t.c.value).where(cursor_t.c.connector == connector))).scalar()
