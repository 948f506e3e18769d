"""Meta-tests: every connector type in the registry is covered by the contract suite (or excluded with a reason)."""

from __future__ import annotations

import importlib
from collections.abc import Mapping

import pytest

from carebox.runtime import CONNECTORS
from tests.contract.harness import ADAPTERS, EXCLUDED, SKIPS
from tests.contract.test_contract import TYPES, XFAILS

CASES = {"fetch", "pagination", "resume", "reply", "auth", "auth_revoked", "rate_limit", "server_error", "reconnect"}


def uncovered(registry: Mapping[str, str]) -> list[str]:
    """Registered types that have neither an adapter (and so no fake) nor an excluding reason."""
    return sorted(t for t in registry if t not in ADAPTERS and t not in EXCLUDED)


def test_every_registered_connector_type_has_an_adapter_or_a_reason_to_be_excluded():
    assert uncovered(CONNECTORS) == []


def test_a_registered_type_without_an_adapter_is_reported():
    registry = {**CONNECTORS, "myspace": "connectors.social.myspace"}
    assert uncovered(registry) == ["myspace"]


def test_the_contract_suite_runs_on_every_registered_network_type():
    assert set(TYPES) == set(CONNECTORS) - set(EXCLUDED)


@pytest.mark.parametrize("kind", sorted(ADAPTERS))
def test_each_adapter_is_for_a_registered_type_with_a_factory(kind):
    assert kind in CONNECTORS, f"adapter for {kind!r}, which the registry no longer has"
    assert ADAPTERS[kind].type == kind
    assert callable(importlib.import_module(CONNECTORS[kind]).from_config)


def test_exclusions_and_skips_name_known_types_and_cases_and_say_why():
    assert set(EXCLUDED) <= set(CONNECTORS) and all(EXCLUDED.values())
    assert set(SKIPS) <= set(ADAPTERS)
    for kind, cases in SKIPS.items():
        assert set(cases) <= CASES and all(cases.values()), kind
    assert all(case in CASES and reason.startswith("BUG: ") for (_, case), reason in XFAILS.items())
