"""carebox killed with SIGKILL at random moments and restarted loses nothing, stores nothing twice, keeps
conversations and SLA clocks consistent, and still fires the SLA breaches that fell due while it was down.
A few kills here; benchmarks/reliability.py runs twenty and more."""

from __future__ import annotations

import random
import sqlite3

import pytest

from tests.reliability.crash import crash_serve

pytestmark = pytest.mark.slow


def test_serve_with_the_simulator_killed_three_times_keeps_every_acknowledged_mention_once(tmp_path):
    # 600 mentions/min: enough for clocks to fall due across every restart, light enough for a loaded CI box
    run = crash_serve(tmp_path, kills=3, rng=random.Random(20261122), rate=600.0)
    assert run.problems == []
    assert run.kills == 3, f"the process ended on its own ({run.counts_at_kill})"
    assert run.acknowledged > 0 and any(c > 0 for c in run.counts_at_kill)
    assert run.clocks_fired_after_restart > 0, "no clock fell due across the restart: the timer check proved nothing"
    assert len(run.ready_s) == run.starts == 4  # every start answered /healthz (seconds each took: run.ready_s)


async def test_the_store_check_fails_when_an_acknowledged_mention_is_lost_or_one_is_stored_beyond_the_cursor(tmp_path):
    # the harness's verdict must be able to fail: a store built by the pipeline, then damaged
    from datetime import UTC, datetime, timedelta

    from carebox import config
    from carebox.ports import InboundMention, IngestBatch
    from carebox.runtime import make_pipeline
    from carebox.store.engine import make_engine
    from carebox.store.migrate import upgrade
    from tests.reliability.crash import SEED, check_store

    db = tmp_path / "carebox.db"
    url = f"sqlite+aiosqlite:///{db}"
    await upgrade(url)
    engine = make_engine(url)
    settings = config.parse({"carebox": {"data_dir": str(tmp_path)}, "database": {"url": url}}, environ={})
    pipeline, _ = make_pipeline(settings, engine)
    t0 = datetime(2026, 11, 23, 10, tzinfo=UTC)
    mentions = tuple(InboundMention(network="sim", account="acme", external_id=f"sim-{SEED}-{k}", author_id=f"u{k}",
                                    author_handle=f"u{k}", text="no network", created_at=t0 + timedelta(seconds=k))
                     for k in range(6))
    await pipeline.ingest([IngestBatch("simulator", mentions[:5], cursor="5")], t0)
    await engine.dispose()
    assert check_store(db, connector="simulator", prefix=f"sim-{SEED}-") == []
    with sqlite3.connect(db) as conn:
        conn.execute("DELETE FROM slaevent WHERE conversation_id IN (SELECT conversation_id FROM mention WHERE external_id = ?)",
                     (f"sim-{SEED}-2",))
        conn.execute("DELETE FROM slaclock WHERE conversation_id IN (SELECT conversation_id FROM mention WHERE external_id = ?)",
                     (f"sim-{SEED}-2",))
        conn.execute("UPDATE conversation SET message_count = message_count - 1 WHERE id IN "
                     "(SELECT conversation_id FROM mention WHERE external_id = ?)", (f"sim-{SEED}-2",))
        conn.execute("DELETE FROM mention WHERE external_id = ?", (f"sim-{SEED}-2",))
    [lost] = check_store(db, connector="simulator", prefix=f"sim-{SEED}-")
    assert "1 missing [2]" in lost
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE cursor SET value = '2' WHERE connector = 'simulator'")
    [beyond] = check_store(db, connector="simulator", prefix=f"sim-{SEED}-")
    assert beyond.endswith("0 missing [], 0 duplicated, 2 stored beyond the cursor")
