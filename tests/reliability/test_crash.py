"""carebox killed with SIGKILL at random moments and restarted loses nothing, stores nothing twice, keeps
conversations and SLA clocks consistent, and still fires the SLA breaches that fell due while it was down.
A few kills here; benchmarks/reliability.py runs twenty and more."""

from __future__ import annotations

import random

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
