"""`carebox privacy`: export or erase one customer's data (GDPR requests) and purge by retention."""

from __future__ import annotations

import argparse
import asyncio
import sys
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

import orjson

from carebox import config, privacy


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the `privacy` command with its export, erase and purge actions."""
    parser = subparsers.add_parser("privacy", help="export, erase or purge personal data",
                                   description="Personal data: GDPR export and erasure, retention purge (all audited).")
    sub = parser.add_subparsers(dest="privacy_command", required=True, metavar="ACTION")
    p = sub.add_parser("export", help="write everything stored about one customer as JSON",
                       description=run_export.__doc__)
    p.add_argument("--customer", type=int, required=True, metavar="ID", help="customer id")
    p.add_argument("--out", default="-", metavar="FILE.json", help="where to write (default: standard output)")
    _add_config(p)
    p.set_defaults(func=run_export, handler=run_export)
    p = sub.add_parser("erase", help="erase one customer's personal data", description=run_erase.__doc__)
    p.add_argument("--customer", type=int, required=True, metavar="ID", help="customer id")
    _add_config(p)
    p.set_defaults(func=run_erase, handler=run_erase)
    p = sub.add_parser("purge", help="apply the retention policy now", description=run_purge.__doc__)
    p.add_argument("--days", type=int, default=None, metavar="N",
                   help="anonymise mentions older than N days (default: [privacy] mention_days; 0 keeps them)")
    p.add_argument("--raw-days", type=int, default=None, metavar="M",
                   help="drop raw payloads older than M days (default: [privacy] raw_days; 0 keeps them)")
    _add_config(p)
    p.set_defaults(func=run_purge, handler=run_purge)


def _add_config(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", metavar="FILE", help="configuration file (default: $CAREBOX_CONFIG, else built-in defaults)")


def _with_engine(args: argparse.Namespace, work: Any) -> Any:
    from carebox.store.engine import make_engine
    from carebox.store.migrate import upgrade

    async def run() -> Any:
        settings = config.load(args.config)
        await upgrade(settings.database_url)
        engine = make_engine(settings.database_url)
        try:
            return await work(engine)
        finally:
            await engine.dispose()

    return asyncio.run(run())


def _print(data: dict[str, Any]) -> None:
    sys.stdout.write(orjson.dumps(data).decode() + "\n")


def run_export(args: argparse.Namespace) -> int:
    """Write every stored row about one customer (identities, conversations, mentions, notes, SLA) as JSON."""
    from carebox.store import privacy as store

    doc = _with_engine(args, lambda e: store.export_customer(e, args.customer, datetime.now(UTC)))
    data = orjson.dumps(doc, option=orjson.OPT_INDENT_2)
    if args.out == "-":
        sys.stdout.write(data.decode() + "\n")
    else:
        with open(args.out, "wb") as fh:
            fh.write(data)
    return 0


def run_erase(args: argparse.Namespace) -> int:
    """Erase one customer's texts, handles, identities and raw payloads; counts and SLA figures remain."""
    from carebox.store import privacy as store

    result = _with_engine(args, lambda e: store.erase_customer(e, args.customer, datetime.now(UTC)))
    _print(asdict(result))
    return 0


def run_purge(args: argparse.Namespace) -> int:
    """Anonymise mentions and drop raw payloads older than the retention limits."""
    from carebox.store import privacy as store

    configured = privacy.parse_settings(config.load(args.config).raw)
    settings = privacy.effective(configured, args.days, args.raw_days)
    result = _with_engine(args, lambda e: store.purge(e, settings, datetime.now(UTC)))
    _print({"mention_days": settings.mention_days, "raw_days": settings.raw_days, **asdict(result)})
    return 0
