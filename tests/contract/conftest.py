"""Fixtures of the connector contract suite: one started adapter (fake + connector factory) per test."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.contract.harness import ADAPTERS, Adapter


@pytest.fixture
async def adapter(request: pytest.FixtureRequest) -> AsyncIterator[Adapter]:
    """The adapter of the connector type the test is parametrized with (`connector_type`)."""
    async with ADAPTERS[request.param]() as started:
        yield started
