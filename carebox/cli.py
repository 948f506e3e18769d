"""The `carebox` command: demo, serve, worker, web, migrate, simulate, replay, stats, user, and the domain tools."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import importlib
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from carebox import config
from carebox.errors import CareboxError, ConfigError

log = logging.getLogger("carebox")
DEMO_USERS = (("admin", "admin"), ("manager", "manager"), ("agent", "agent"))
DEMO_PASSWORD = "demo"
QUIET_LOGGERS = ("alembic", "apscheduler", "aiohttp.access")
# Modules adding their own sub-commands with `register(subparsers)`.
COMMAND_MODULES = ("carebox.commands.sla", "carebox.commands.classify", "carebox.commands.detect",
                   "carebox.commands.report", "carebox.commands.privacy")


def _settings(args: argparse.Namespace) -> config.Settings:
    return config.load(getattr(args, "config", None))


def _add_config(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", metavar="FILE", help="configuration file (default: $CAREBOX_CONFIG, else built-in defaults)")


def _run_app(settings: config.Settings, banner: Callable[[], None] | None = None, role: str = "serve") -> None:
    from carebox import web_processes

    # embedded `serve`/`demo` may serve the inbox from several processes ([inbox] processes)
    processes = web_processes.count(settings) if role == "serve" else 1
    web_processes.run(settings, processes, role=role, banner=banner)


async def _with_engine(settings: config.Settings, work: Callable[[Any], Any], migrate: bool = True) -> Any:
    from carebox.store.engine import make_engine
    from carebox.store.migrate import upgrade

    if migrate:
        await upgrade(settings.database_url)
    engine = make_engine(settings.database_url)
    try:
        return await work(engine)
    finally:
        await engine.dispose()


async def _ensure_users(engine: Any, users: Sequence[tuple[str, str]], password: str) -> None:
    from carebox.store import actions, queries
    from web.auth import hash_password

    for username, role in users:
        if await queries.user_by_name(engine, username) is None:
            await actions.add_user(engine, username, hash_password(password), role, datetime.now(UTC))


DEMO_PAGERDUTY_ENV = "CAREBOX_DEMO_PAGERDUTY_KEY"  # the routing key sent to --pagerduty-url (32 characters)
DEMO_PAGERDUTY_KEY = "carebox0demo0routing0key00000000"
# The demo's SLA: the default service-hours contract, and an incident policy its outages switch to by themselves.
DEMO_POLICIES = [{"name": "social", "calendar": "service-hours", "first_response": "1h"},
                 {"name": "incident", "calendar": "24/7", "first_response": "15m", "next_response": "30m",
                  "match": {"tags": ["incident"]}}]


def demo_document(args: argparse.Namespace) -> dict[str, Any]:
    """The configuration of `carebox demo` as a TOML-like document (before config.parse)."""
    data_dir = str(Path(args.data_dir).resolve())
    connector = {"type": "simulator", "name": "simulator", "account": "acme", "rate": args.rate,
                 "seed": args.seed, "outage_every": args.outage_every}
    if str(args.first_outage).strip().lower() not in ("0", "never", "off"):
        connector["first_outage"] = args.first_outage
    doc: dict[str, Any] = {
        "carebox": {"data_dir": data_dir},
        "database": {"url": f"sqlite+aiosqlite:///{Path(data_dir) / 'carebox.db'}"},
        "web": {"host": "127.0.0.1", "port": args.port, "base_url": f"http://127.0.0.1:{args.port}"},
        "connectors": [connector],
        "policies": DEMO_POLICIES,
        "incidents": {"policy": "incident"},
        # a fresh demo has no history: three calm minutes (not the default hour) before an outage may alert; with one,
        # the detector learnt its baseline from the minute the demo started in, part empty, and often alerted on noise
        "outage": {"warmup": "3m"},
    }
    if args.pagerduty_url:
        doc["notifiers"] = [{"name": "demo-pagerduty", "type": "pagerduty", "routing_key_env": DEMO_PAGERDUTY_ENV,
                             "url": args.pagerduty_url, "source": "carebox-demo"}]
    return doc


def cmd_demo(args: argparse.Namespace) -> int:
    """Run the embedded demo: SQLite in a data directory, the simulator feeding the inbox (an outage a few
    minutes after start, then every --outage-every), an incident SLA policy, demo users."""
    if args.pagerduty_url:
        os.environ.setdefault(DEMO_PAGERDUTY_ENV, DEMO_PAGERDUTY_KEY)
    settings = config.parse(demo_document(args), environ={})
    data_dir = settings.data_dir
    asyncio.run(_with_engine(settings, lambda e: _ensure_users(e, DEMO_USERS, DEMO_PASSWORD)))

    def banner() -> None:
        print(f"carebox demo: inbox at http://127.0.0.1:{args.port}/  (data in {data_dir})", flush=True)
        print("demo logins (demo mode only):", ", ".join(f"{u} / {DEMO_PASSWORD}" for u, _ in DEMO_USERS), flush=True)
        print(f"simulator: brand @acme, {args.rate:g} mentions per minute on average; first outage burst in "
              f"{args.first_outage}, then about every {args.outage_every}; Ctrl-C to stop", flush=True)
        if args.pagerduty_url:
            print(f"incidents are paged to PagerDuty (Events API v2) at {args.pagerduty_url}", flush=True)

    _run_app(settings, banner)
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    """Run everything from the configuration file: store, queue, pipeline, connectors and the web inbox."""
    settings = _settings(args)
    if args.port is not None:
        settings = replace(settings, web=replace(settings.web, port=args.port))

    def banner() -> None:
        print(f"carebox serving on http://{settings.web.host}:{settings.web.port}/ with "
              f"{len(settings.connectors)} connector(s)", flush=True)

    _run_app(settings, banner)
    return 0


def _with_listen(settings: config.Settings, args: argparse.Namespace) -> config.Settings:
    web = settings.web
    if getattr(args, "host", None) is not None:
        web = replace(web, host=args.host)
    if getattr(args, "port", None) is not None:
        web = replace(web, port=args.port)
    return replace(settings, web=web)


def cmd_worker(args: argparse.Namespace) -> int:
    """Run a scale-out worker: the connectors it wins a lease for, the pipeline consumer, and scheduler candidacy."""
    settings = _with_listen(_settings(args), args)

    def banner() -> None:
        print(f"carebox worker (pid {os.getpid()}): {len(settings.connectors)} connector(s) to share, queue "
              f"{settings.queue_url.split('@')[-1]}; health on http://{settings.web.host}:{settings.web.port}/readyz",
              flush=True)

    _run_app(settings, banner, role="worker")
    return 0


def cmd_web(args: argparse.Namespace) -> int:
    """Run a web process: the inbox and API only (no connectors, no consumer, no scheduler)."""
    settings = _with_listen(_settings(args), args)

    def banner() -> None:
        print(f"carebox web (pid {os.getpid()}) on http://{settings.web.host}:{settings.web.port}/", flush=True)

    _run_app(settings, banner, role="web")
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    """Bring the database schema up to date."""
    from carebox.store.migrate import upgrade_sync

    settings = _settings(args)
    from carebox.store.engine import ensure_sqlite_dir

    ensure_sqlite_dir(settings.database_url)
    upgrade_sync(settings.database_url, args.revision)
    print(f"database at revision {args.revision}")
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    """Write N simulated mentions as JSONL (the replay format)."""
    from connectors.social.simulator import write_jsonl

    start = datetime.fromisoformat(args.start) if args.start else datetime.now(UTC).replace(microsecond=0)
    if start.tzinfo is None:
        raise ConfigError("--start", "an ISO 8601 time with a zone, e.g. 2026-11-20T09:00:00+01:00")
    n = write_jsonl(args.out, args.n, args.seed, start, args.rate, args.account)
    print(f"wrote {n} mentions to {args.out}", file=sys.stderr)
    return 0


async def _replay(settings: config.Settings, path: str, fmt: str | None, batch_size: int) -> dict[str, int]:
    """Replay through the live pipeline; a TWCS file threads by reply chain only (its conversations are chains)."""
    from tqdm import tqdm

    from carebox.ports import IngestBatch
    from carebox.runtime import make_pipeline
    from carebox.store import ingest as store_ingest
    from carebox.store import queries
    from connectors.social.replay import ReplayConnector, count_records

    name = f"replay:{Path(path).resolve()}"
    connector = ReplayConnector(path, fmt=fmt, name=name, batch_size=batch_size)
    if connector.format == "twcs":
        settings = replace(settings, pipeline=replace(settings.pipeline, quiet_gap_s=0.0))

    async def work(engine: Any) -> dict[str, int]:
        pipeline, _ = make_pipeline(settings, engine)
        before = await queries.stats(engine)
        async with engine.connect() as conn:
            cursor = await store_ingest.load_cursor(conn, name)

        class Sink:
            async def put(self, batch: IngestBatch) -> None:
                await pipeline.ingest([batch], datetime.now(UTC))

            put_durable = put

        with tqdm(total=count_records(path, connector.format), unit="record", file=sys.stderr,
                  disable=not sys.stderr.isatty()) as bar:
            bar.update(int(cursor or 0))
            await connector.run(Sink(), cursor, progress=bar.update)
        after = await queries.stats(engine)
        return {"added_mentions": after["mentions"] - before["mentions"],
                "added_dead_letters": after["dead_letters"] - before["dead_letters"], **after}

    return await _with_engine(settings, work)


def cmd_replay(args: argparse.Namespace) -> int:
    """Ingest a JSONL or TWCS file through the live pipeline, keeping the original timestamps."""
    settings = _settings(args)
    fmt = None if args.format == "auto" else args.format
    result = asyncio.run(_replay(settings, args.file, fmt, args.batch_size))
    print(json.dumps(result))
    return 0


def cmd_stats(args: argparse.Namespace) -> int:
    """Counts of mentions, conversations, open conversations, customers and dead letters."""
    from carebox.store import queries

    result = asyncio.run(_with_engine(_settings(args), queries.stats))
    if args.format == "json":
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key.replace('_', ' '):>20}: {value}")
    return 0


async def _cursors(engine: Any) -> dict[str, dict[str, str]]:
    import sqlalchemy as sa

    from carebox.store.ingest import cursor_t

    async with engine.connect() as conn:
        rows = await conn.execute(sa.select(cursor_t.c.connector, cursor_t.c.value, cursor_t.c.updated_at))
        return {name: {"cursor": value, "updated_at": at.isoformat()} for name, value, at in rows}


def cmd_connectors(args: argparse.Namespace) -> int:
    """The connector types carebox has, and the configured instances with where each one has read to."""
    from carebox.runtime import CONNECTORS

    settings = _settings(args)
    cursors = asyncio.run(_with_engine(settings, _cursors))
    instances = [{"name": c.name, "type": c.type, "account": c.account,
                  "cursor": cursors.get(c.name, {}).get("cursor"),
                  "last_progress": cursors.get(c.name, {}).get("updated_at")} for c in settings.connectors]
    if args.format == "json":
        print(json.dumps({"types": sorted(CONNECTORS), "instances": instances}))
        return 0
    print("types:", ", ".join(sorted(CONNECTORS)))
    for i in instances or [{"name": "(none configured)", "type": "", "account": "", "cursor": None,
                            "last_progress": None}]:
        progress = f"read to {i['cursor']} at {i['last_progress']}" if i["cursor"] else "nothing read yet"
        print(f"{i['name']:>20}  {i['type']:<10} @{i['account']:<16} {progress if i['type'] else ''}")
    return 0


def cmd_user_add(args: argparse.Namespace) -> int:
    """Create a user (or reset their password and role)."""
    from carebox.store import actions
    from web.auth import hash_password

    password = args.password or getpass.getpass(f"password for {args.username}: ")
    if len(password) < 8 and not args.allow_short:
        raise ConfigError("--password", "at least 8 characters")
    asyncio.run(_with_engine(_settings(args), lambda e: actions.add_user(
        e, args.username, hash_password(password), args.role, datetime.now(UTC))))
    print(f"user {args.username} ({args.role}) ready")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every sub-command."""
    parser = argparse.ArgumentParser(prog="carebox", description="Social-media customer-care inbox and SLA monitor.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("demo", help="run the embedded demo (SQLite, simulator, demo users)", description=cmd_demo.__doc__)
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--data-dir", default="carebox-data", help="where the demo keeps its SQLite file (default: ./carebox-data)")
    p.add_argument("--rate", type=float, default=30.0, help="simulated mentions per minute (default 30)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--outage-every", default="2h", help='mean time between simulated outage bursts (default "2h", at least "30m", "0" never)')
    p.add_argument("--first-outage", default="3m",
                   help='when the first outage burst starts after the demo starts (default "3m", "0" at random)')
    p.add_argument("--pagerduty-url", default=None, metavar="URL",
                   help=f"page a PagerDuty Events API v2 endpoint (e.g. a test receiver) with the demo's incidents; "
                        f"routing key from ${DEMO_PAGERDUTY_ENV}")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("serve", help="run everything from a configuration file", description=cmd_serve.__doc__)
    _add_config(p)
    p.add_argument("--port", type=int, default=None, help="override [web] port")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("worker", help="run a scale-out worker (connectors, pipeline, scheduler candidacy)",
                       description=cmd_worker.__doc__)
    _add_config(p)
    p.add_argument("--host", default=None, help="override [web] host for the health and webhook endpoints")
    p.add_argument("--port", type=int, default=None, help="override [web] port for the health and webhook endpoints")
    p.set_defaults(func=cmd_worker)

    p = sub.add_parser("web", help="run a web process (inbox and API only)", description=cmd_web.__doc__)
    _add_config(p)
    p.add_argument("--host", default=None, help="override [web] host")
    p.add_argument("--port", type=int, default=None, help="override [web] port")
    p.set_defaults(func=cmd_web)

    p = sub.add_parser("migrate", help="bring the database schema up to date", description=cmd_migrate.__doc__)
    _add_config(p)
    p.add_argument("--revision", default="heads")
    p.set_defaults(func=cmd_migrate)

    p = sub.add_parser("simulate", help="write simulated mentions as JSONL", description=cmd_simulate.__doc__)
    p.add_argument("--n", type=int, required=True, help="number of mentions")
    p.add_argument("--out", required=True, metavar="FILE.jsonl")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--rate", type=float, default=30.0, help="mentions per minute on the timeline (default 30)")
    p.add_argument("--account", default="acme")
    p.add_argument("--start", default=None, help="ISO 8601 start of the timeline (default: now)")
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser("replay", help="ingest a JSONL or TWCS file through the pipeline", description=cmd_replay.__doc__)
    p.add_argument("file")
    p.add_argument("--format", choices=("auto", "jsonl", "twcs"), default="auto")
    p.add_argument("--batch-size", type=int, default=500)
    _add_config(p)
    p.set_defaults(func=cmd_replay)

    p = sub.add_parser("stats", help="counts of what is stored", description=cmd_stats.__doc__)
    p.add_argument("--format", choices=("text", "json"), default="text")
    _add_config(p)
    p.set_defaults(func=cmd_stats)

    p = sub.add_parser("connectors", help="connector types and configured instances", description=cmd_connectors.__doc__)
    p.add_argument("--format", choices=("text", "json"), default="text")
    _add_config(p)
    p.set_defaults(func=cmd_connectors)

    p = sub.add_parser("user", help="manage users", description="Manage users.")
    user_sub = p.add_subparsers(dest="user_command", required=True, metavar="ACTION")
    q = user_sub.add_parser("add", help="create a user or reset a password", description=cmd_user_add.__doc__)
    q.add_argument("username")
    q.add_argument("--role", choices=("agent", "manager", "admin"), default="agent")
    q.add_argument("--password", help="the password (prompted when absent)")
    q.add_argument("--allow-short", action="store_true", help=argparse.SUPPRESS)
    _add_config(q)
    q.set_defaults(func=cmd_user_add)

    for module in COMMAND_MODULES:
        importlib.import_module(module).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `carebox` console script."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not args.verbose:  # one line per request or per timed job is noise on a console; -v shows it
        for chatty in QUIET_LOGGERS:
            logging.getLogger(chatty).setLevel(logging.WARNING)
    try:
        return int(args.func(args) or 0)
    except ConfigError as err:
        print(f"carebox: configuration error: {err}", file=sys.stderr)
        return 2
    except CareboxError as err:
        print(f"carebox: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
