"""Personal-data writes under a held SQLite write lock: the retention purge and its audit row are one transaction,
so a purge is audited once with exactly what it did; a locked store delays it (one warning, no traceback) or
leaves it to the next run; the GDPR erase and export commands say so clearly and do nothing half-way."""

from __future__ import annotations

import asyncio
import logging
import sqlite3

import orjson
import pytest
import sqlalchemy as sa

from carebox import cli, config, privacy
from carebox.clocks import ClockBook
from carebox.ports import InboundMention, IngestBatch
from carebox.runtime import make_pipeline
from carebox.scheduler import Scheduler
from carebox.store import engine as engine_module
from carebox.store import privacy as store
from carebox.store import queries
from carebox.store.engine import make_engine
from carebox.store.migrate import upgrade
from tests.conftest import at
from tests.reliability.held_lock import HeldLock

pytestmark = pytest.mark.sqlite_only
NOW = at("2026-11-22T03:00:00+00:00")
MONTH = privacy.PrivacySettings(mention_days=30, raw_days=7, purge_every_s=6 * 3600.0)


def _short_busy_timeout(dbapi_conn, _record):  # runs after the engine's own pragmas
    dbapi_conn.cursor().execute("PRAGMA busy_timeout=50")


@pytest.fixture
async def locked_store(tmp_path):
    """A migrated SQLite store with old and recent mentions, whose connections give up on a lock after 50 ms
    (a loaded machine's 10 s)."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'carebox.db'}"
    await upgrade(url)
    engine = make_engine(url)
    sa.event.listen(engine.sync_engine, "connect", _short_busy_timeout)
    settings = config.parse({"carebox": {"data_dir": str(tmp_path)}, "database": {"url": url}}, environ={})
    pipeline, _ = make_pipeline(settings, engine)
    await pipeline.ingest([IngestBatch("x", _mentions())], NOW)
    yield tmp_path / "carebox.db", engine, settings
    await engine.dispose()


def _mentions():
    def make(external_id, author, text, when):
        return InboundMention(network="x", account="acme", external_id=external_id, author_id=author,
                              author_handle=author, text=text, created_at=at(when), raw={"u": author})
    return (make("1", "bob", "bill is wrong 0612345678", "2026-09-01T09:00:00+00:00"),
            make("2", "carol", "parcel lost", "2026-09-03T09:00:00+00:00"),
            make("3", "alice", "my fibre is down", "2026-11-21T09:00:00+00:00"))


async def _audit(engine, action: str) -> list[dict]:
    async with engine.connect() as c:
        rows = await c.execute(sa.select(queries.audit.c.detail).where(queries.audit.c.action == action)
                               .order_by(queries.audit.c.id))
        return [orjson.loads(d) for d in rows.scalars()]


async def _texts(engine) -> list[str]:
    async with engine.connect() as c:
        return sorted((await c.execute(sa.select(queries.mention.c.text))).scalars())


async def _until(check, timeout=10.0):
    for _ in range(int(timeout / 0.02)):
        if check():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("timed out")


def _no_traceback(caplog):
    assert all(r.exc_info is None for r in caplog.records)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_a_scheduled_purge_that_finds_the_store_locked_waits_and_is_audited_once_with_what_it_purged(
        locked_store, caplog):
    path, engine, settings = locked_store
    scheduler = Scheduler(engine, ClockBook(settings.sla), lambda: NOW)
    caplog.set_level(logging.INFO, logger="carebox")
    lock = HeldLock(path)
    job = asyncio.create_task(scheduler.purge(MONTH))  # what the APScheduler job runs
    await _until(lambda: "database is locked" in caplog.text)
    assert not job.done() and await _audit(engine, "privacy.purge") == []
    assert await _texts(engine) == ["bill is wrong 0612345678", "my fibre is down", "parcel lost"]
    lock.release()
    result = await asyncio.wait_for(job, 10)
    assert (result.mentions, result.raw_payloads, result.identities) == (2, 2, 2)
    [detail] = await _audit(engine, "privacy.purge")
    assert (detail["mentions"], detail["raw_payloads"], detail["conversations"], detail["identities"]) == (2, 2, 2, 2)
    assert detail["trigger"] == "schedule"
    assert await _texts(engine) == ["", "", "my fibre is down"]
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING][-1].endswith(
        "done after 2 tries (the database was locked)")
    _no_traceback(caplog)
    again = await scheduler.purge(MONTH)  # the rows were purged once: nothing left for the next run
    assert (again.mentions, again.raw_payloads, again.identities) == (0, 0, 0)


async def test_a_scheduled_purge_whose_store_stays_locked_purges_nothing_and_leaves_it_to_the_next_run(
        locked_store, caplog, monkeypatch):
    path, engine, settings = locked_store
    monkeypatch.setattr(privacy, "LOCKED_RETRY_S", (0.01, 0.01))
    scheduler = Scheduler(engine, ClockBook(settings.sla), lambda: NOW)
    caplog.set_level(logging.INFO, logger="carebox")
    lock = HeldLock(path)
    try:
        assert await scheduler.purge(MONTH) is None
    finally:
        lock.release()
    assert "nothing purged, the database stayed locked by another writer; the next run" in caplog.text
    _no_traceback(caplog)
    assert await _audit(engine, "privacy.purge") == [] and await store.last_purge_at(engine) is None
    assert privacy.next_purge(MONTH, None, NOW) == NOW  # so a restart purges at once too
    result = await scheduler.purge(MONTH)
    assert result.mentions == 2
    assert [d["mentions"] for d in await _audit(engine, "privacy.purge")] == [2]


async def test_a_purge_whose_audit_row_cannot_be_written_purges_nothing(locked_store):
    path, engine, _ = locked_store
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TRIGGER refuse_audit BEFORE INSERT ON auditevent BEGIN SELECT RAISE(ABORT, 'refused'); END")
    with pytest.raises(sa.exc.IntegrityError):
        await store.purge(engine, MONTH, NOW)
    assert await _texts(engine) == ["bill is wrong 0612345678", "my fibre is down", "parcel lost"]
    with sqlite3.connect(path) as conn:
        conn.execute("DROP TRIGGER refuse_audit")
    assert (await store.purge(engine, MONTH, NOW)).mentions == 2
    assert [d["mentions"] for d in await _audit(engine, "privacy.purge")] == [2]


async def test_an_erase_that_finds_the_store_locked_waits_and_is_audited_once(locked_store, caplog):
    path, engine, _ = locked_store
    caplog.set_level(logging.INFO, logger="carebox")
    lock = HeldLock(path)
    job = asyncio.create_task(store.erase_customer(engine, 1, NOW))
    await _until(lambda: "erase of customer 1: the database is locked" in caplog.text)
    assert await _audit(engine, "privacy.erase") == []
    lock.release()
    result = await asyncio.wait_for(job, 10)
    [detail] = await _audit(engine, "privacy.erase")
    assert detail["customer_id"] == 1 and detail["mentions"] == result.mentions == 1
    assert "bill is wrong 0612345678" not in await _texts(engine)
    _no_traceback(caplog)


@pytest.fixture
def cli_store(tmp_path, monkeypatch):
    """The seeded store for the `carebox` command, whose connections give up on a lock after 50 ms."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'carebox.db'}"
    monkeypatch.setenv(config.ENV_DATABASE_URL, url)
    monkeypatch.delenv(config.ENV_CONFIG, raising=False)
    original = engine_module._sqlite_pragmas

    def pragmas(dbapi_conn, record):
        original(dbapi_conn, record)
        _short_busy_timeout(dbapi_conn, record)

    monkeypatch.setattr(engine_module, "_sqlite_pragmas", pragmas)
    monkeypatch.setattr(privacy, "LOCKED_RETRY_S", (0.01,))

    async def seed():
        await upgrade(url)
        engine = make_engine(url)
        settings = config.parse({"database": {"url": url}}, environ={})
        await make_pipeline(settings, engine)[0].ingest([IngestBatch("x", _mentions())], NOW)
        await engine.dispose()

    asyncio.run(seed())
    return tmp_path


@pytest.mark.parametrize(("argv", "what"), [
    (["privacy", "erase", "--customer", "1"], "erase of customer 1"),
    (["privacy", "export", "--customer", "1", "--out", "{tmp}/export.json"], "export of customer 1"),
    (["privacy", "purge", "--days", "30"], "retention purge (command)"),
])
def test_a_privacy_command_on_a_store_that_stays_locked_says_so_without_a_traceback_and_does_nothing(
        cli_store, capsys, caplog, argv, what):
    lock = HeldLock(cli_store / "carebox.db")
    try:
        status = cli.main([a.replace("{tmp}", str(cli_store)) for a in argv])
    finally:
        lock.release()
    err = capsys.readouterr().err
    assert status == 1
    assert err.startswith(f"carebox: {what}: not done, the database stayed locked by another writer through 2 tries")
    assert "Traceback" not in err + caplog.text and all(r.exc_info is None for r in caplog.records)
    assert not (cli_store / "export.json").exists()  # an export is handed out only once audited

    async def check():
        engine = make_engine(f"sqlite+aiosqlite:///{cli_store / 'carebox.db'}")
        try:
            assert await _texts(engine) == ["bill is wrong 0612345678", "my fibre is down", "parcel lost"]
            async with engine.connect() as c:
                assert (await c.execute(sa.select(sa.func.count()).select_from(queries.audit))).scalar_one() == 0
        finally:
            await engine.dispose()

    asyncio.run(check())
