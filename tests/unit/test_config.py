"""Configuration: defaults, environment overrides, and errors that name the file, the key and the expectation."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from carebox import config
from carebox.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


def test_defaults_are_the_embedded_sqlite_store_and_queue():
    settings = config.parse({}, environ={})
    assert settings.database_url.startswith("sqlite+aiosqlite:///") and settings.queue_url == "memory://"
    assert settings.web.host == "127.0.0.1" and settings.web.port == 8080


def test_environment_overrides_database_and_queue_urls():
    settings = config.parse({}, environ={"CAREBOX_DATABASE_URL": "postgresql+asyncpg://db/care",
                                         "CAREBOX_QUEUE_URL": "redis://127.0.0.1:6379/0"})
    assert settings.database_url == "postgresql+asyncpg://db/care" and settings.queue_url.startswith("redis://")


@pytest.mark.parametrize(
    ("doc", "key"),
    [
        ({"web": {"port": "eighty"}}, "web.port"),
        ({"web": {"port": 70000}}, "web.port"),
        ({"pipeline": {"quiet_gap": "soon"}}, "pipeline.quiet_gap"),
        ({"queue": {"url": "kafka://x"}}, "queue.url"),
        ({"connectors": [{"type": "simulator"}]}, "connectors[0].account"),
        ({"connectors": [{"type": "x", "account": "a"}, {"type": "x", "account": "b"}]}, "connectors[1].name"),
        ({"webb": {}}, "webb"),
        ({"carebox": {"languages": "en"}}, "carebox.languages"),
    ],
)
def test_bad_values_name_the_key_and_what_was_expected(doc, key):
    with pytest.raises(ConfigError) as info:
        config.parse(doc, file="care.toml", environ={})
    assert info.value.key == key and str(info.value).startswith(f"care.toml: {key}: expected ")


def test_a_bad_file_exits_with_status_2_and_no_traceback(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[web]\nport = "x"\n')
    run = subprocess.run([sys.executable, "-m", "carebox", "stats", "--config", str(bad)], capture_output=True, text=True)
    assert run.returncode == 2
    assert f"{bad}: web.port: expected an integer" in run.stderr and "Traceback" not in run.stderr


def test_a_toml_syntax_error_names_the_file(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[web\n")
    with pytest.raises(ConfigError) as info:
        config.load(str(bad), environ={})
    assert str(bad) in str(info.value)


def test_the_example_configuration_loads():
    settings = config.load(str(ROOT / "config.example.toml"), environ={})
    assert [c.type for c in settings.connectors] == ["simulator"]
    assert settings.sla.policies[0].name == "social"
