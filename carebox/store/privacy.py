"""Personal data in the store: export and erase one customer, purge by retention; every run audited in the
transaction that does it, and tried again while another writer holds SQLite's lock."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, TypeVar, overload

import orjson
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from carebox import privacy
from carebox.errors import CareboxError, NotFound
from carebox.store.actions import _audit, record_audit
from carebox.store.engine import write_transaction
from carebox.store.locked import StayedLocked, while_locked
from carebox.store.queries import (
    audit,
    clock,
    conv,
    customer,
    identity,
    mention,
    note,
    sla_event,
    user,
)

log = logging.getLogger(__name__)
EXPORT_FORMAT = "carebox.customer-export/1"
T = TypeVar("T")


class StoreLocked(CareboxError):
    """A personal-data write gave up: another writer held SQLite's lock through every try; nothing was written."""


@dataclass(frozen=True, slots=True)
class EraseResult:
    """How many rows an erase touched."""

    customer_id: int
    mentions: int
    conversations: int
    identities: int
    notes: int


@dataclass(frozen=True, slots=True)
class PurgeResult:
    """How many rows a retention purge touched."""

    mentions: int
    raw_payloads: int
    conversations: int
    identities: int


def _rows(result: Any) -> list[dict[str, Any]]:
    return [_jsonable(r._mapping) for r in result]


def _jsonable(row: Mapping[str, Any]) -> dict[str, Any]:
    out = {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in row.items()}
    if isinstance(out.get("raw"), str):
        try:
            out["raw"] = orjson.loads(out["raw"])
        except orjson.JSONDecodeError:
            pass
    return out


async def _when_unlocked(what: str, write: Callable[[], Awaitable[T]]) -> T:
    """Run `write` (one transaction, so a failed try wrote nothing) again while another writer holds SQLite's
    lock: one warning when it first waits, one line when it gets through; StoreLocked when it never does."""
    try:
        return await while_locked(what, write, privacy.LOCKED_RETRY_S)
    except StayedLocked as err:
        raise StoreLocked(f"{what}: not done, the database stayed locked by another writer through {err.tries} "
                          f"tries in {err.seconds:.0f}s; nothing was written, try again once the other writer is "
                          "done") from err.__cause__


async def _require_customer(c: AsyncConnection, customer_id: int) -> dict[str, Any]:
    row = (await c.execute(sa.select(customer).where(customer.c.id == customer_id))).first()
    if row is None:
        raise NotFound(f"customer {customer_id}")
    return dict(row._mapping)


def _conversation_ids(customer_id: int) -> Any:
    return sa.select(conv.c.id).where(conv.c.customer_id == customer_id).scalar_subquery()


def _customer_mentions(customer_id: int) -> Any:
    return sa.or_(mention.c.customer_id == customer_id, mention.c.conversation_id.in_(_conversation_ids(customer_id)))


async def export_customer(engine: AsyncEngine, customer_id: int, now: datetime, by_user_id: int | None = None) -> dict[str, Any]:
    """Everything stored about one customer, as a JSON-ready document; returned only once its audit row is
    written (StoreLocked when the store stays locked: nothing is handed out unaudited)."""
    convs = _conversation_ids(customer_id)
    async with engine.connect() as c:
        doc: dict[str, Any] = {
            "format": EXPORT_FORMAT,
            "exported_at": now.isoformat(),
            "customer": _jsonable(await _require_customer(c, customer_id)),
            "identities": _rows(await c.execute(sa.select(identity).where(identity.c.customer_id == customer_id)
                                                .order_by(identity.c.id))),
            "conversations": _rows(await c.execute(sa.select(conv).where(conv.c.customer_id == customer_id)
                                                   .order_by(conv.c.id))),
            "mentions": _rows(await c.execute(sa.select(mention).where(_customer_mentions(customer_id))
                                              .order_by(mention.c.created_at, mention.c.id))),
            "notes": _rows(await c.execute(
                sa.select(note.c.id, note.c.conversation_id, note.c.text, note.c.created_at, user.c.username.label("author"))
                .join(user, user.c.id == note.c.user_id).where(note.c.conversation_id.in_(convs)).order_by(note.c.id))),
            "sla_clocks": _rows(await c.execute(sa.select(clock).where(clock.c.conversation_id.in_(convs))
                                                .order_by(clock.c.id))),
            "sla_events": _rows(await c.execute(sa.select(sla_event).where(sla_event.c.conversation_id.in_(convs))
                                                .order_by(sla_event.c.id))),
        }
    await _when_unlocked(f"export of customer {customer_id}", lambda: record_audit(
        engine, now, by_user_id, "privacy.export", None, customer_id=customer_id, mentions=len(doc["mentions"]),
        conversations=len(doc["conversations"])))
    log.info("exported customer %d (%d mentions)", customer_id, len(doc["mentions"]))
    return doc


async def _erase_once(engine: AsyncEngine, customer_id: int, now: datetime, by_user_id: int | None) -> EraseResult:
    convs = _conversation_ids(customer_id)
    async with write_transaction(engine) as c:
        await _require_customer(c, customer_id)
        mentions = (await c.execute(mention.update().where(_customer_mentions(customer_id))
                                    .values(**privacy.ERASED_MENTION))).rowcount
        notes = (await c.execute(note.update().where(note.c.conversation_id.in_(convs))
                                 .values(text=privacy.ERASED_NOTE_TEXT))).rowcount
        conversations = (await c.execute(conv.update().where(conv.c.customer_id == customer_id)
                                         .values(**privacy.ERASED_CONVERSATION))).rowcount
        identities = (await c.execute(identity.delete().where(identity.c.customer_id == customer_id))).rowcount
        await c.execute(customer.update().where(customer.c.id == customer_id).values(**privacy.ERASED_CUSTOMER))
        await _audit(c, now, by_user_id, "privacy.erase", None, customer_id=customer_id, mentions=mentions,
                     conversations=conversations, identities=identities, notes=notes)
    return EraseResult(customer_id, mentions, conversations, identities, notes)


async def erase_customer(engine: AsyncEngine, customer_id: int, now: datetime, by_user_id: int | None = None) -> EraseResult:
    """Erase one customer's personal data, keeping anonymised rows so counts and SLA figures stay true; the
    erase and its audit row are one transaction (StoreLocked when the store stays locked: nothing erased)."""
    result = await _when_unlocked(f"erase of customer {customer_id}",
                                  lambda: _erase_once(engine, customer_id, now, by_user_id))
    log.info("erased customer %d: %d mentions, %d identities", customer_id, result.mentions, result.identities)
    return result


def _not_erased() -> Any:
    return sa.or_(mention.c.text != "", mention.c.author_handle != "", mention.c.author_id != "",
                  mention.c.raw.is_not(None))


async def _purge_once(engine: AsyncEngine, settings: privacy.PrivacySettings, now: datetime,
                      by_user_id: int | None, trigger: str) -> PurgeResult:
    cut = privacy.cutoffs(settings, now)
    mentions = raws = conversations = identities = 0
    async with write_transaction(engine) as c:
        if cut.raw_before is not None:
            raws = (await c.execute(mention.update().where(mention.c.created_at < cut.raw_before,
                                                           mention.c.raw.is_not(None)).values(raw=None))).rowcount
        if cut.mentions_before is not None:
            before = cut.mentions_before
            mentions = (await c.execute(mention.update().where(mention.c.created_at < before, _not_erased())
                                        .values(**privacy.ERASED_MENTION))).rowcount
            conversations = (await c.execute(conv.update().where(conv.c.last_message_at < before, conv.c.snippet != "")
                                             .values(**privacy.ERASED_CONVERSATION))).rowcount
            recent = sa.select(conv.c.customer_id).where(conv.c.last_message_at >= before)
            quiet = sa.select(customer.c.id).where(customer.c.id.not_in(recent))
            identities = (await c.execute(identity.delete().where(identity.c.customer_id.in_(quiet)))).rowcount
            await c.execute(customer.update().where(customer.c.id.in_(quiet), customer.c.display_name != "")
                            .values(**privacy.ERASED_CUSTOMER))
        # in the purge's transaction: a purge is audited once with what it did, or neither happened
        await _audit(c, now, by_user_id, "privacy.purge", None, mention_days=settings.mention_days,
                     raw_days=settings.raw_days, mentions=mentions, raw_payloads=raws,
                     conversations=conversations, identities=identities, trigger=trigger)
    return PurgeResult(mentions, raws, conversations, identities)


@overload
async def purge(engine: AsyncEngine, settings: privacy.PrivacySettings, now: datetime,
                by_user_id: int | None = None, *, trigger: Literal["command"] = "command") -> PurgeResult: ...


@overload
async def purge(engine: AsyncEngine, settings: privacy.PrivacySettings, now: datetime,
                by_user_id: int | None = None, *, trigger: Literal["schedule"]) -> PurgeResult | None: ...


async def purge(engine: AsyncEngine, settings: privacy.PrivacySettings, now: datetime,
                by_user_id: int | None = None, *, trigger: str = "command") -> PurgeResult | None:
    """Anonymise mentions older than the retention, drop older raw payloads, forget customers gone quiet, in one
    transaction with its audit row (`trigger`, "command" or "schedule", kept in it). When the store stays locked
    a command raises StoreLocked; a scheduled run logs it and returns None, leaving the purge to its next run."""
    try:
        result = await _when_unlocked(f"retention purge ({trigger})",
                                      lambda: _purge_once(engine, settings, now, by_user_id, trigger))
    except StoreLocked:
        if trigger != "schedule":
            raise
        log.warning("retention purge (schedule): nothing purged, the database stayed locked by another writer; "
                    "the next run (in %gs, or at the next start) purges it all", settings.purge_every_s)
        return None
    log.info("retention purge (%s): %d mentions anonymised, %d raw payloads dropped", trigger, result.mentions,
             result.raw_payloads)
    return result


async def last_purge_at(engine: AsyncEngine) -> datetime | None:
    """When the last retention purge ran (from the audit log), None when never."""
    async with engine.connect() as c:
        return (await c.execute(sa.select(audit.c.at).where(audit.c.action == "privacy.purge")
                                .order_by(audit.c.at.desc()).limit(1))).scalar()
