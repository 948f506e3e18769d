"""A pytest plugin that collects garbage after each test, so that a resource a test leaked (an aiosqlite connection,
an aiohttp session) complains from its __del__ in that test's teardown instead of in some later test's setup.

    python -X tracemalloc=20 -m pytest -p tests.gc_each_test -W error::ResourceWarning tests/unit

(with tracemalloc on, the report also shows where the leaked object was created)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest
from _pytest.unraisableexception import collect_unraisable


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item) -> Iterator[None]:
    """After the test's fixtures closed what they opened, collect what is left unreachable and report, as an error
    of this test's teardown, what complained (pytest's own report has already run by then)."""
    yield
    gc.collect()
    collect_unraisable(item.config)
