"""The command line on a real store: stats, connectors, replay twice without duplicates."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _carebox(*args: str, db: Path) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "CAREBOX_DATABASE_URL": f"sqlite+aiosqlite:///{db}", "HOME": str(db.parent)}
    return subprocess.run([sys.executable, "-m", "carebox", *args], capture_output=True, text=True, env=env,
                          cwd=db.parent, timeout=120)


def test_connectors_lists_the_types_and_the_configured_instances_with_their_progress(tmp_path):
    run = _carebox("connectors", "--format", "json", "--config", str(ROOT / "config.example.toml"), db=tmp_path / "c.db")
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    assert {"x", "mastodon", "bluesky", "facebook", "instagram", "email", "webhook", "simulator"} <= set(out["types"])
    assert out["instances"] == [{"name": "simulator", "type": "simulator", "account": "acme", "cursor": None,
                                 "last_progress": None}]


def test_a_twcs_replay_run_twice_stores_everything_once(tmp_path):
    fixture = ROOT / "tests" / "fixtures" / "twcs_small.csv"
    first = _carebox("replay", str(fixture), "--format", "twcs", db=tmp_path / "c.db")
    second = _carebox("replay", str(fixture), "--format", "twcs", db=tmp_path / "c.db")
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    a, b = json.loads(first.stdout), json.loads(second.stdout)
    assert a["added_mentions"] > 0 and b["added_mentions"] == 0 and b["mentions"] == a["mentions"]
    stats = json.loads(_carebox("stats", "--format", "json", db=tmp_path / "c.db").stdout)
    assert set(stats) == {"mentions", "conversations", "open_conversations", "customers", "dead_letters"}
    assert stats["mentions"] == a["mentions"]
