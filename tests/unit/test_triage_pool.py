"""The triage pool gives the in-process Triager's answers, in order, from worker processes."""

from __future__ import annotations

import os
import pickle

import pytest

from carebox.errors import ConfigError
from carebox.triage import TriageInput, Triager, TriageSettings
from carebox.triage_pool import PoolSettings, TriagePool, parse_pool_settings, split

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
    ("table", "expected"),
    [
        ({}, PoolSettings()),
        ({"pipeline": {"triage_workers": 2}}, PoolSettings(workers=2)),
        ({"pipeline": {"triage_workers": "auto"}}, PoolSettings(workers=os.cpu_count() or 1)),
        ({"pipeline": {"triage_chunk": 64, "triage_in_process_below": 0}}, PoolSettings(chunk_size=64, in_process_below=0)),
        ({"pipeline": {"triage_start_method": "spawn"}}, PoolSettings(start_method="spawn")),
    ],
)
def test_pool_settings_are_read_from_the_pipeline_table_with_defaults(table, expected):
    assert parse_pool_settings(table) == expected


@pytest.mark.parametrize(
    ("table", "key"),
    [
        ({"pipeline": {"triage_workers": -1}}, "pipeline.triage_workers"),
        ({"pipeline": {"triage_workers": "many"}}, "pipeline.triage_workers"),
        ({"pipeline": {"triage_workers": True}}, "pipeline.triage_workers"),
        ({"pipeline": {"triage_chunk": 0}}, "pipeline.triage_chunk"),
        ({"pipeline": {"triage_in_process_below": 1.5}}, "pipeline.triage_in_process_below"),
        ({"pipeline": {"triage_start_method": "thread"}}, "pipeline.triage_start_method"),
    ],
)
def test_bad_pool_settings_name_the_key(table, key):
    with pytest.raises(ConfigError) as err:
        parse_pool_settings(table)
    assert err.value.key == key


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
