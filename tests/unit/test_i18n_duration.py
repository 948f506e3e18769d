"""One duration for every page: English exactly as carebox.duration writes it, French as French writes it, and the
"why this deadline" lines use the same words as the SLA panel."""

from __future__ import annotations

import pytest

from carebox import sla_explain
from carebox.duration import format_duration
from web import explain, i18n

CASES = [(None, "", ""), (0, "0s", "0 s"), (45, "45s", "45 s"), (600, "10m", "10 min"), (3600, "1h 00m", "1 h"),
         (3900, "1h 05m", "1 h 5 min"), (86400, "1d 0h", "1 j"), (63 * 3600, "2d 15h", "2 j 15 h"),
         (-120, "-2m", "-2 min"), (-93784, "-1d 2h", "-1 j 2 h")]


def _in(language: str, seconds: float | None) -> str:
    token = i18n.CURRENT.set(i18n.Locale(language))
    try:
        return i18n.duration(seconds)
    finally:
        i18n.CURRENT.reset(token)


@pytest.mark.parametrize(("seconds", "english", "french"), CASES)
def test_a_duration_reads_as_each_language_writes_it(seconds, english, french):
    assert _in("en", seconds) == english and _in("fr", seconds) == french
    if seconds is not None:
        assert english == format_duration(seconds)  # English is byte for byte what it always was


@pytest.mark.parametrize(("seconds", "english", "french"), [c for c in CASES if c[0] is not None])
def test_why_this_deadline_writes_durations_as_the_sla_panel_does(seconds, english, french):
    token = i18n.CURRENT.set(i18n.Locale("fr"))
    try:
        assert explain._shown(sla_explain.Duration(seconds)) == french
    finally:
        i18n.CURRENT.reset(token)
