"""`[inbox] processes`: how many processes serve the inbox, and when several are refused."""

from __future__ import annotations

import pytest

from carebox import config, web_processes
from carebox.errors import ConfigError


def _settings(**doc: object) -> config.Settings:
    return config.parse(doc, environ={})


@pytest.mark.parametrize(("value", "cpus", "expected"), [
    (None, 8, 1), (1, 8, 1), (3, 8, 3), ("auto", 8, 8), ("auto", 1, 1), ("auto", 200, web_processes.MAX_PROCESSES),
])
def test_the_inbox_runs_in_one_process_unless_told(value, cpus, expected):
    doc = {} if value is None else {"inbox": {"processes": value}}
    assert web_processes.count(_settings(**doc), cpus=cpus) == expected


@pytest.mark.parametrize("value", [0, -1, 65, "4", "many", True, 2.5])
def test_a_bad_process_count_names_the_key_and_what_is_expected(value):
    with pytest.raises(ConfigError, match=r"inbox\.processes.*whole number from 1 to 64, or \"auto\""):
        web_processes.count(_settings(inbox={"processes": value}))


@pytest.mark.parametrize(("doc", "why"), [
    ({"database": {"url": "postgresql+asyncpg://u@h/db"}}, "PostgreSQL or Redis"),
    ({"queue": {"url": "redis://127.0.0.1:6379/0"}}, "PostgreSQL or Redis"),
    ({"web": {"port": 0}}, "web.port is 0"),
])
def test_several_processes_are_for_the_embedded_mode_on_a_fixed_port(doc, why):
    settings = _settings(**doc)
    web_processes.check(settings, 1)  # one process: always fine
    with pytest.raises(ConfigError, match=why):
        web_processes.check(settings, 2)


def test_a_web_process_rebuilds_the_main_settings_with_triage_in_process():
    main = _settings(carebox={"data_dir": "/srv/cb"}, web={"port": 9999}, pipeline={"triage_workers": 3},
                     inbox={"processes": 2})
    spec = web_processes.ChildSpec(None, dict(main.raw), "sqlite+aiosqlite:////srv/cb/x.db", "memory://", "/tmp/hub",
                                   main.web, 20)
    child = web_processes.child_settings(spec)
    assert child.web == main.web and child.data_dir == "/srv/cb" and child.database_url.endswith("/srv/cb/x.db")
    assert child.pipeline.triage_workers == 0
