"""`carebox sla due`: when a message posted at a given instant falls due, and why."""

from __future__ import annotations

import argparse
import json
import sys
import tomllib
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from carebox.duration import parse_duration
from carebox.errors import ConfigError
from carebox.sla import (
    SlaSettings,
    TargetKind,
    evaluate,
    parse_settings,
    pause,
    resume,
    start_clock,
)
from carebox.sla_explain import explain_due


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the `sla` command group and its `due` command."""
    group = subparsers.add_parser("sla", help="SLA clocks", description="Inspect SLA policies and deadlines.")
    commands = group.add_subparsers(dest="sla_command", required=True)
    due = commands.add_parser(
        "due",
        help="when a message falls due under a policy, on both clocks, and why",
        description="Print JSON with business_due, wall_due (ISO 8601 with offset) and the explanation.",
    )
    due.add_argument("--config", required=True, type=Path, metavar="FILE", help="carebox TOML config file")
    due.add_argument("--policy", required=True, metavar="NAME", help="policy name, e.g. social")
    due.add_argument("--at", required=True, metavar="ISO8601", help="when the customer wrote, with offset")
    due.add_argument("--target", default=TargetKind.FIRST_RESPONSE.value,
                     choices=[k.value for k in TargetKind if k != TargetKind.CUSTOMER_EXPECTATION],
                     help="which target of the policy (default: first_response)")
    due.add_argument("--paused-for", metavar="DURATION", help='a pause starting at --at, e.g. "2h"')
    due.set_defaults(func=run_due, handler=run_due)


def _load_doc(path: Path) -> dict[str, Any]:
    """The TOML document at `path` (to be routed through carebox.config.load)."""
    with path.open("rb") as handle:
        return tomllib.load(handle)


def run_due(args: argparse.Namespace) -> int:
    """Handler of `carebox sla due`: JSON on stdout, or a message on stderr and exit status 2."""
    try:
        try:
            settings = parse_settings(_load_doc(args.config))
        except ConfigError as err:
            raise err.with_file(str(args.config)) from err
        except (OSError, tomllib.TOMLDecodeError) as err:
            raise ConfigError("config", f"a readable TOML file ({err})", str(args.config)) from err
        report = due_report(settings, args.policy, args.at, args.paused_for, TargetKind(args.target))
    except ConfigError as err:
        print(f"carebox sla due: {err}", file=sys.stderr)
        return 2
    print(json.dumps(report, indent=2, ensure_ascii=False))
    return 0


def due_report(
    settings: SlaSettings, policy_name: str, at_text: str, paused_for: str | None, kind: TargetKind
) -> dict[str, Any]:
    """The JSON-ready answer for one policy, instant and optional pause."""
    try:
        policy = settings.policy(policy_name)
    except KeyError as err:
        raise ConfigError("--policy", f"one of {[p.name for p in settings.policies]}") from err
    try:
        at = datetime.fromisoformat(at_text)
    except ValueError as err:
        raise ConfigError("--at", "an ISO 8601 instant such as 2026-11-20T18:50:00+01:00") from err
    if at.tzinfo is None:
        raise ConfigError("--at", "an ISO 8601 instant with its UTC offset, such as 2026-11-20T18:50:00+01:00")
    target = policy.target(kind)
    if target is None:
        raise ConfigError("--target", f"a target that policy {policy.name!r} sets")
    cal = settings.calendar_for(target)
    clock = start_clock(target, policy.name, at, cal.version)
    customer = start_clock(settings.expectation_target(), policy.name, at)
    if paused_for:
        until = at + timedelta(seconds=parse_duration(paused_for, "--paused-for"))
        clock, customer = (resume(pause(c, at), until) for c in (clock, customer))
    state = evaluate(clock, settings.calendars, at)
    expectation = evaluate(customer, settings.calendars, at)
    tz = at.tzinfo if cal.always_open else ZoneInfo(cal.timezone)
    return {
        "policy": policy.name,
        "target": kind.value,
        "calendar": None if cal.always_open else cal.name,
        "calendar_version": cal.version,
        "at": at.isoformat(),
        "business_due": state.business_due.astimezone(tz).isoformat(),
        "wall_due": state.wall_due.astimezone(tz).isoformat(),
        "warn_at": state.warn_at.astimezone(tz).isoformat() if state.warn_at else None,
        "customer_expectation_due": expectation.wall_due.astimezone(tz).isoformat(),
        "customer_waited_at_business_due_s": evaluate(clock, settings.calendars, state.business_due).wall_waited_s,
        "explanation": explain_due(settings, clock),
    }
