"""`carebox report`: response times on both clocks, per account or another breakdown, as JSON, CSV or text."""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import logging
import sys
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import IO, Any

from carebox import config, reports, reports_config
from carebox.errors import ConfigError
from carebox.reports_charts import render_digest, text_table
from carebox.reports_digest import DigestPlan, digest_email
from carebox.reports_whatif import compare, configured_scenario, outcome_row, scenarios
from carebox.store import reporting

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add `carebox report`."""
    p = subparsers.add_parser(
        "report", help="response-time report on the business and customer clocks",
        description="Response times on both clocks (count, mean, p50, p90, p95), SLA and customer-expectation "
                    "attainment, off-hours exposure, per account or another breakdown. "
                    "json: the whole report (key by_account: one object per account); csv: one row per "
                    "conversation with every clock value; text: a table.")
    p.add_argument("--config", metavar="FILE", help="configuration file (default: $CAREBOX_CONFIG, else defaults)")
    p.add_argument("--since", metavar="ISO", help="first messages at or after this instant (ISO 8601, with offset)")
    p.add_argument("--until", metavar="ISO", help="first messages before this instant (ISO 8601, with offset)")
    p.add_argument("--format", choices=("json", "csv", "text"), default="text")
    p.add_argument("--by", choices=reports.DIMENSIONS, default="account", help="breakdown (default: account)")
    inc = p.add_mutually_exclusive_group()
    inc.add_argument("--exclude-incidents", dest="exclude_incidents", action="store_true", default=None,
                     help="leave out conversations linked to an incident")
    inc.add_argument("--include-incidents", dest="exclude_incidents", action="store_false",
                     help="keep them (overrides reports.exclude_incidents)")
    p.add_argument("--what-if-hours", metavar="SPEC", help='other service hours, e.g. "sat=09:00-17:00"')
    p.add_argument("--what-if-target", metavar="DURATION", help='another first-response target, e.g. "30m"')
    p.add_argument("--digest", action="store_true", help="print the e-mail digest (subject, text) instead")
    p.add_argument("--now", metavar="ISO", help=argparse.SUPPRESS)  # reproducible runs (tests)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Handler of `carebox report`."""
    settings = config.load(args.config)
    rs = reports_config.parse_settings(settings.raw, settings.sla)
    now = reports_config.parse_instant(args.now, "--now") or datetime.now(UTC)
    scope = reporting.make_scope(rs, now, since=reports_config.parse_instant(args.since, "--since"),
                                 until=reports_config.parse_instant(args.until, "--until"), exclude_incidents=args.exclude_incidents)
    scenarios_for(settings, args.what_if_hours, args.what_if_target)  # bad flags fail before the store opens

    async def work(engine: Any) -> None:
        from carebox.escalation import settings_with_edits

        # what-if compares with the calendars and policies as edited on the web
        edited = replace(settings, sla=await settings_with_edits(engine, settings.sla))
        await produce(engine, args, rs, scope, scenarios_for(edited, args.what_if_hours, args.what_if_target), sys.stdout)

    asyncio.run(_with_engine(settings.database_url, work))
    return 0


def scenarios_for(settings: config.Settings, hours: str | None, target: str | None) -> list[Any]:
    """What-if scenarios from the flags, [] when none is asked for."""
    if not hours and not target:
        return []
    actual = configured_scenario(settings.sla)
    if actual is None:
        raise ConfigError("policies", "a policy with a first_response target (what-if needs one to compare with)")
    return scenarios(actual, hours, target)


async def _with_engine(url: str, work: Callable[[Any], Any]) -> Any:
    from carebox.store.engine import make_engine
    from carebox.store.migrate import upgrade

    await upgrade(url)
    engine = make_engine(url)
    try:
        return await work(engine)
    finally:
        await engine.dispose()


async def produce(engine: Any, args: argparse.Namespace, rs: reports_config.ReportSettings, scope: reporting.Scope,
                  wanted: list[Any], out: IO[str]) -> None:
    """Write the report to `out` in the chosen format."""
    if args.format == "csv":
        writer = csv.DictWriter(out, fieldnames=reporting.CSV_COLUMNS, lineterminator="\n")
        writer.writeheader()
        async for row in reporting.conversation_rows(engine, scope, rs):
            writer.writerow({k: _csv_value(v) for k, v in row.items()})
        return
    report = await reporting.build_report(engine, scope, rs, by=args.by)
    whatif = compare(await reporting.response_pairs(engine, scope), wanted, scope.now) if wanted else []
    if args.digest:
        subject, text, _ = render_digest(report)
        out.write(f"Subject: {subject}\n\n{text}\n")
    elif args.format == "json":
        doc = reports.to_json(report)
        if whatif:
            doc["what_if"] = [outcome_row(o) for o in whatif]
        out.write(json.dumps(doc, indent=2, ensure_ascii=False, default=str) + "\n")
    else:
        out.write(text_table(report.groups, report.totals, args.by) + "\n")
        for o in whatif:
            out.write(f"{o.scenario}: SLA attainment {_fmt_pct(o.attainment_pct)} "
                      f"({o.met} met, {o.breached} breached, {o.pending} pending)\n")


def _fmt_pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}%"


def _csv_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    return "" if value is None else value


# --- the scheduled digest (run by the scheduler leader; wired in carebox.runtime) ---------------------------

_SMTP_SECURITY: dict[str, dict[str, Any]] = {
    "auto": {"start_tls": None}, "starttls": {"start_tls": True}, "tls": {"use_tls": True}, "none": {"start_tls": False},
}


class DigestJob:
    """Builds the digest over the period that just ended and e-mails it through the e-mail notifier's SMTP."""

    def __init__(self, settings: config.Settings, rs: reports_config.ReportSettings, engine: Any,
                 now: Callable[[], datetime]) -> None:
        self.settings, self.rs, self.engine, self.now = settings, rs, engine, now
        self.plan = DigestPlan(rs.digest_period, rs.digest_at, rs.calendar.timezone)

    async def run(self) -> None:
        """One run, for the period ending at the last local midnight (daily) or Monday (weekly)."""
        await self.send(self.now())

    async def send(self, run_at: datetime) -> None:
        """Build, render and send the digest a run at `run_at` owes its recipients."""
        import os

        import aiosmtplib

        since, until = self.plan.window(run_at)
        report = await reporting.build_report(self.engine, reporting.make_scope(self.rs, run_at, since=since, until=until),
                                              self.rs)
        subject, text, html = render_digest(report)
        options = self.settings.alerting.receivers[self.rs.digest_notifier].options
        message = digest_email(subject, text, html, str(options["sender"]), self.rs.digest_recipients)
        password_env = options.get("password_env")
        await aiosmtplib.send(message, hostname=str(options["host"]), port=int(options.get("port", 587)),
                              username=options.get("username"), password=os.environ.get(password_env) if password_env else None,
                              timeout=float(options.get("timeout", 10.0)),
                              **_SMTP_SECURITY.get(str(options.get("security", "auto")), {}))
        log.info("report digest %s..%s sent to %d recipient(s)", since.isoformat(), until.isoformat(),
                 len(self.rs.digest_recipients))


def facts_job(settings: config.Settings, engine: Any, now: Callable[[], datetime]) -> tuple[float, Callable[[], Any]] | None:
    """(interval, job) refreshing the report facts on the scheduler leader; None on PostgreSQL (reports read
    conversations there) or when `reports.facts_refresh` is "off"."""
    from carebox.store import report_facts

    rs = reports_config.parse_settings(settings.raw, settings.sla)
    if not rs.facts_refresh_s or not report_facts.supported(engine):
        return None
    rules = reporting.fact_rules(reporting.make_scope(rs, now()), rs)

    async def run() -> None:
        done = await report_facts.refresh(engine, rules, now())
        if done.conversations:
            log.debug("report facts: %d conversation(s) refreshed", done.conversations)

    return rs.facts_refresh_s, run


def digest_job(settings: config.Settings, engine: Any, now: Callable[[], datetime]) -> DigestJob | None:
    """The digest job when one is configured (a period, recipients and an e-mail notifier), else None."""
    rs = reports_config.parse_settings(settings.raw, settings.sla)
    if rs.digest_period == "off" or not rs.digest_recipients or not rs.digest_notifier:
        return None
    return DigestJob(settings, rs, engine, now)
