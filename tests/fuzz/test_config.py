"""The config loader over hostile documents: `carebox.config.parse` raises ConfigError naming a key, never
another exception, whatever TOML-shaped mapping it is given (bent from the documented fragments)."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given, note
from hypothesis import strategies as st

from carebox import config, privacy
from carebox.errors import ConfigError
from tests.fuzz.strategies import FUZZ, grow, payloads

FRAGMENTS = Path(__file__).resolve().parents[2] / "docs" / "config-fragments"


def _merge(into: dict[str, Any], doc: dict[str, Any]) -> dict[str, Any]:
    for key, value in doc.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        elif isinstance(value, list) and isinstance(into.get(key), list):
            into[key] = into[key] + value
        else:
            into[key] = value
    return into


def _documented() -> dict[str, Any]:
    doc: dict[str, Any] = {"carebox": {"data_dir": "/tmp/carebox-fuzz", "languages": ["en", "fr"]},
                           "web": {"port": 8080}, "pipeline": {"batch_size": 500, "quiet_gap": "24h"},
                           "connectors": [{"type": "simulator", "name": "sim", "account": "acme", "rate": 30}]}
    for path in sorted(FRAGMENTS.glob("*.toml")):
        try:
            _merge(doc, tomllib.loads(path.read_text(encoding="utf-8")))
        except tomllib.TOMLDecodeError:
            continue  # a fragment being edited by someone else right now
    for i, connector in enumerate(doc["connectors"]):  # fragments each show a connector named after its type
        connector["name"] = f"{connector.get('name', connector.get('type'))}-{i}"
    return doc


DOCUMENTED = _documented()


def _no_files(name: str) -> str:
    raise ConfigError(name, "a readable file (none in fuzzing)")


def test_the_documented_fragments_parse():
    config.parse({k: v for k, v in DOCUMENTED.items() if k in config.SECTIONS}, environ={}, read_file=_no_files)


# Fixed: a zone that is a folder ("Europe") or an overlong name raised OSError instead of ConfigError.
@pytest.mark.parametrize("zone", ["Europe", "9" * 300])
def test_a_calendar_time_zone_that_is_not_a_zone_file_is_a_config_error(zone):
    with pytest.raises(ConfigError) as err:
        config.parse({"calendars": {"c": {"timezone": zone}}}, environ={})
    assert err.value.key == "calendars.c.timezone"


@FUZZ
@given(st.integers(0, 2**64))
@example(-1)
def test_config_parse_raises_only_config_error(seed):
    docs = [{**DOCUMENTED, "calendars": {"c": {"timezone": "Europe"}}}] if seed < 0 else grow(seed, DOCUMENTED)
    for doc in docs:  # the seed, not the 40 kB documents, is what a failure reports
        if not isinstance(doc, dict):
            doc = {"carebox": doc}
        try:
            config.parse(doc, environ={}, read_file=_no_files)
        except ConfigError as err:
            assert isinstance(err.key, str) and isinstance(err.expected, str) and err.expected  # key "" is a section named ""
        except Exception:
            note(f"crashed on {doc!r:.4000}")
            raise


@FUZZ
@given(payloads({"privacy": {"mention_days": 365, "raw_days": 30}}))
def test_privacy_settings_raise_only_config_error(docs):
    for doc in docs:
        try:
            privacy.parse_settings(doc if isinstance(doc, dict) else {"privacy": doc})
        except ConfigError as err:
            assert err.key.startswith("privacy")
