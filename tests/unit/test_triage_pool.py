"""The triage pool gives the in-process Triager's answers, in order, from worker processes."""

from __future__ import annotations

import os
import pickle
from dataclasses import replace

import pytest

from carebox import config
from carebox.errors import ConfigError
from carebox.triage import TriageInput, Triager, TriageSettings
from carebox.triage_pool import PoolSettings, TriagePool, split

TEXTS = [
    "my 4g network is down since this morning, not working at all",
    "merci pour votre aide, super service !",
    "how do I change my plan?",
    "plus de réseau à Lyon depuis 2h, c'est inadmissible",
    "win a free iphone click here http://a http://b http://c",
    "love the new app",
    "still waiting for my refund, third time I write",
    "",
]
ITEMS = [
    TriageInput(text, followers=k * 5000, verified=k % 3 == 0, public=k % 2 == 0, reposts=k * 7,
                recent_contacts=k % 4, lang_hint="fr" if k == 3 else None)
    for k, text in enumerate(TEXTS * 40)
]


FAST = "fork"  # the product defaults to forkserver; fork keeps these tests quick (the parent has imported all)


@pytest.fixture(scope="module")
def expected():
    return Triager().triage_many(ITEMS)


@pytest.fixture(scope="module")
def pool():
    p = TriagePool(TriageSettings(), PoolSettings(workers=2, chunk_size=50, in_process_below=20, start_method=FAST))
    yield p
    p.close()


@pytest.mark.parametrize(
    ("table", "workers", "batch"),
    [
        ({}, max((os.cpu_count() or 1) - 1, 0), 64),
        ({"pipeline": {"triage_workers": "auto"}}, max((os.cpu_count() or 1) - 1, 0), 64),
        ({"pipeline": {"triage_workers": 0}}, 0, 64),
        ({"pipeline": {"triage_workers": 3, "triage_batch": 128}}, 3, 128),
    ],
)
def test_pool_options_are_read_from_the_pipeline_table_with_defaults(table, workers, batch):
    settings = config.parse(table).pipeline
    assert (settings.triage_workers, settings.triage_batch) == (workers, batch)
    assert PoolSettings.from_pipeline(workers, batch) == PoolSettings(workers, batch, batch)


@pytest.mark.parametrize(
    ("table", "key"),
    [
        ({"pipeline": {"triage_workers": -1}}, "pipeline.triage_workers"),
        ({"pipeline": {"triage_workers": "many"}}, "pipeline.triage_workers"),
        ({"pipeline": {"triage_workers": True}}, "pipeline.triage_workers"),
        ({"pipeline": {"triage_workers": 1000}}, "pipeline.triage_workers"),
        ({"pipeline": {"triage_batch": 0}}, "pipeline.triage_batch"),
        ({"pipeline": {"triage_batch": 1.5}}, "pipeline.triage_batch"),
    ],
)
def test_bad_pool_options_name_the_key(table, key):
    with pytest.raises(ConfigError) as err:
        config.parse(table)
    assert err.value.key == key


@pytest.mark.parametrize(
    "settings",
    [TriageSettings(), TriageSettings(repeat_contacts=2, repeat_points=0, many_contacts=4, many_contacts_points=3, p1=5)],
)
def test_repeat_contact_points_added_after_triage_equal_a_full_triage(settings):
    triager = Triager(settings)
    for item in ITEMS:
        first = triager.triage_many([replace(item, recent_contacts=0)])[0]
        for contacts in range(6):
            full = triager.triage_many([replace(item, recent_contacts=contacts)])[0]
            assert triager.with_contacts(first, contacts) == full, (item.text, contacts)


@pytest.mark.parametrize(
    ("n", "parts", "chunk", "sizes"),
    [
        (0, 2, 10, []),
        (1, 2, 10, [1]),
        (10, 2, 10, [5, 5]),
        (25, 2, 10, [9, 8, 8]),
        (7, 4, 100, [2, 2, 2, 1]),
    ],
)
def test_split_gives_every_worker_a_chunk_and_keeps_chunks_near_the_size(n, parts, chunk, sizes):
    items = ITEMS[:n]
    chunks = split(items, parts, chunk)
    assert [len(c) for c in chunks] == sizes
    assert [i for c in chunks for i in c] == items


def test_inputs_and_results_survive_pickling(expected):
    result = expected[:8]
    assert pickle.loads(pickle.dumps(ITEMS[:8])) == ITEMS[:8]
    assert pickle.loads(pickle.dumps(result)) == result


async def test_pooled_triage_equals_in_process_triage_in_input_order(pool, expected):
    assert await pool.triage_many(ITEMS) == expected
    assert pool.pooled >= len(ITEMS)


async def test_small_batches_are_triaged_in_process(pool, expected):
    before_pooled, before_local = pool.pooled, pool.in_process
    result = await pool.triage_many(ITEMS[:5])
    assert result == expected[:5]
    assert (pool.pooled, pool.in_process) == (before_pooled, before_local + 5)


async def test_every_worker_is_a_separate_process(pool):
    pids = await pool.start()
    assert len(pids) >= 1 and os.getpid() not in pids


async def test_zero_workers_means_in_process_and_no_pool(expected):
    p = TriagePool(pool=PoolSettings(workers=0, in_process_below=0))
    assert await p.start() == []
    assert await p.triage_many(ITEMS[:30]) == expected[:30]
    assert p.in_process == 30
    p.close()


async def test_a_closed_pool_refuses_work():
    p = TriagePool(pool=PoolSettings(workers=1, in_process_below=0, start_method=FAST))
    async with p:
        assert len(await p.triage_many(ITEMS[:3])) == 3
    with pytest.raises(RuntimeError, match="closed"):
        await p.triage_many(ITEMS[:3])


async def test_a_killed_worker_falls_back_to_in_process_and_the_pool_restarts(expected):
    p = TriagePool(pool=PoolSettings(workers=1, in_process_below=0, start_method=FAST))
    try:
        (pid,) = await p.start()
        os.kill(pid, 9)
        assert await p.triage_many(ITEMS[:10]) == expected[:10]  # answered in process
        assert await p.triage_many(ITEMS[:10]) == expected[:10]  # a fresh pool
        assert p.pooled == 10
    finally:
        p.close()


async def test_the_default_forkserver_workers_give_the_same_answers(expected):
    async with TriagePool(pool=PoolSettings(workers=1, in_process_below=0)) as p:
        assert await p.triage_many(ITEMS[:16]) == expected[:16]
