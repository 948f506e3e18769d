import argparse
import json
from pathlib import Path

import pytest

from carebox.commands import sla as sla_command

FRAGMENT = Path(__file__).resolve().parents[2] / "docs" / "config-fragments" / "sla.toml"
EXTRA = """
[calendars.split-ny]
timezone = "America/New_York"
hours = { mon-fri = ["09:00-12:00", "14:00-18:00"] }
holidays = "US-NY"

[[policies]]
name = "ny"
calendar = "split-ny"
first_response = "1h"
"""


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="carebox")
    sla_command.register(parser.add_subparsers(required=True))
    args = parser.parse_args(argv)
    return args.func(args)


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "carebox.toml"
    path.write_text(FRAGMENT.read_text() + EXTRA)
    return path


@pytest.mark.parametrize(
    ("policy", "at", "business_due", "wall_due"),
    [
        ("social", "2026-11-20T18:50:00+01:00", "2026-11-23T09:50:00+01:00", "2026-11-20T19:50:00+01:00"),
        ("social", "2026-12-24T18:30:00+01:00", "2026-12-28T09:30:00+01:00", "2026-12-24T19:30:00+01:00"),
        ("social", "2026-03-27T18:30:00+01:00", "2026-03-30T09:30:00+02:00", "2026-03-27T19:30:00+01:00"),
        ("social", "2026-10-23T18:30:00+02:00", "2026-10-26T09:30:00+01:00", "2026-10-23T19:30:00+02:00"),
        ("ny", "2026-03-06T17:30:00-05:00", "2026-03-09T09:30:00-04:00", "2026-03-06T18:30:00-05:00"),
        ("ny", "2026-10-30T17:30:00-04:00", "2026-11-02T09:30:00-05:00", "2026-10-30T18:30:00-04:00"),
        ("ny", "2026-11-23T11:30:00-05:00", "2026-11-23T14:30:00-05:00", "2026-11-23T12:30:00-05:00"),
    ],
)
def test_sla_due_prints_both_due_times_with_their_offsets(config, capsys, policy, at, business_due, wall_due):
    assert run(["sla", "due", "--config", str(config), "--policy", policy, "--at", at]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["business_due"], out["wall_due"]) == (business_due, wall_due)
    assert out["explanation"][-1].startswith("at the business due time the customer has waited")


def test_sla_due_answers_the_friday_example_with_63_hours_of_waiting(config, capsys):
    assert run(["sla", "due", "--config", str(config), "--policy", "social", "--at", "2026-11-20T18:50:00+01:00"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["customer_expectation_due"] == "2026-11-20T19:50:00+01:00"
    assert out["customer_waited_at_business_due_s"] == 63 * 3600
    assert "at the business due time the customer has waited 63h (2d 15h)" in out["explanation"]


def test_sla_due_counts_a_pause(config, capsys):
    argv = ["sla", "due", "--config", str(config), "--policy", "social", "--at", "2026-11-23T10:00:00+01:00",
            "--paused-for", "2h"]
    assert run(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["business_due"], out["wall_due"]) == ("2026-11-23T13:00:00+01:00", "2026-11-23T13:00:00+01:00")


@pytest.mark.parametrize(
    ("extra_args", "message"),
    [
        (["--policy", "nope", "--at", "2026-11-20T18:50:00+01:00"], "--policy: expected one of"),
        (["--policy", "social", "--at", "friday"], "--at: expected an ISO 8601 instant"),
        (["--policy", "social", "--at", "2026-11-20T18:50:00"], "with its UTC offset"),
        (["--policy", "social", "--at", "2026-11-20T18:50:00+01:00", "--paused-for", "a while"], "--paused-for"),
        (["--policy", "social", "--at", "2026-11-20T18:50:00+01:00", "--target", "resolution"], "--target"),
    ],
)
def test_sla_due_reports_bad_arguments_on_stderr_with_status_2(config, capsys, extra_args, message):
    assert run(["sla", "due", "--config", str(config), *extra_args]) == 2
    captured = capsys.readouterr()
    assert message in captured.err and captured.out == ""


def test_a_bad_config_names_the_file_and_key(tmp_path, capsys):
    path = tmp_path / "bad.toml"
    path.write_text('[calendars.office]\ntimezone = "Europe/Pariss"\nhours = { mon = "09:00-17:00" }\n')
    assert run(["sla", "due", "--config", str(path), "--policy", "social", "--at", "2026-11-20T18:50:00+01:00"]) == 2
    assert f"{path}: calendars.office.timezone: expected an IANA time zone" in capsys.readouterr().err


def test_a_missing_config_file_is_an_error_not_a_traceback(tmp_path, capsys):
    path = tmp_path / "missing.toml"
    assert run(["sla", "due", "--config", str(path), "--policy", "social", "--at", "2026-11-20T18:50:00+01:00"]) == 2
    assert str(path) in capsys.readouterr().err


def test_a_24_7_policy_answers_in_the_offset_of_the_message(tmp_path, capsys):
    path = tmp_path / "night.toml"
    path.write_text('[[policies]]\nname = "night"\ncalendar = "24/7"\nfirst_response = "30m"\n')
    assert run(["sla", "due", "--config", str(path), "--policy", "night", "--at", "2026-11-20T23:00:00+01:00"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["business_due"], out["wall_due"], out["calendar"]) == (
        "2026-11-20T23:30:00+01:00", "2026-11-20T23:30:00+01:00", None
    )
