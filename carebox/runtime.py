"""The composition root: builds a running carebox (store, queue, pipeline, connectors, web) from settings."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import os
import secrets
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from carebox.alerting import Router
from carebox.clocks import ClockBook
from carebox.incidents import OutageWatcher
from carebox.outage import Detector
from carebox.config import ConnectorSettings, Settings
from carebox.errors import AuthenticationFailed, ConfigError, ConnectorError
from carebox.pipeline import Pipeline, consume
from carebox.ports import Connector, MentionSink
from carebox.queue import EmbeddedQueue
from carebox.scheduler import Scheduler
from carebox.store import ingest as store_ingest
from carebox.store.engine import make_engine
from carebox.store.migrate import upgrade
from carebox.triage import Triager

log = logging.getLogger(__name__)

# type -> module providing `from_config(name, options, *, session, environ)`; imported on first use.
CONNECTORS: dict[str, str] = {
    "simulator": "connectors.social.simulator",
    "x": "connectors.social.x",
    "mastodon": "connectors.social.mastodon",
    "bluesky": "connectors.social.bluesky",
    "facebook": "connectors.social.facebook",
    "instagram": "connectors.social.instagram",
    "email": "connectors.social.email",
    "webhook": "connectors.social.webhook",
}
RESTART_DELAY_S = 5.0
OUTAGE_TICK_S = 60.0


def utcnow() -> datetime:
    """The one wall clock of a running process."""
    return datetime.now(UTC)


def build_connector(spec: ConnectorSettings, session: aiohttp.ClientSession, environ: Mapping[str, str]) -> Connector:
    """A connector instance from its [[connectors]] table."""
    module = CONNECTORS.get(spec.type)
    if module is None:
        raise ConfigError(f"connectors.{spec.name}.type", f"one of {', '.join(sorted(CONNECTORS))}")
    factory: Callable[..., Connector] = importlib.import_module(module).from_config
    return factory(spec.name, spec.options, session=session, environ=environ)


def session_secret(data_dir: str) -> bytes:
    """The key that encrypts session cookies, created once in the data directory."""
    path = Path(data_dir) / "session.key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(secrets.token_bytes(32))
        path.chmod(0o600)
    return path.read_bytes()[:32]


def make_pipeline(settings: Settings, engine: AsyncEngine) -> tuple[Pipeline, ClockBook]:
    """The ingest pipeline with the configured triage and SLA policies."""
    book = ClockBook(settings.sla)
    pipeline = Pipeline(engine, triager=Triager(settings.triage), clocks=book, quiet_gap_s=settings.pipeline.quiet_gap_s)
    return pipeline, book


def make_watcher(settings: Settings, engine: AsyncEngine, session: aiohttp.ClientSession) -> OutageWatcher:
    """The outage detector with the configured alert routing and notifiers."""
    from connectors.notify import NOTIFIERS, send_all

    receivers = settings.alerting.receivers.values()
    notifiers = {r.name: NOTIFIERS[r.kind](r.options, session, os.environ) for r in receivers}
    router = Router(settings.alerting) if notifiers else None
    return OutageWatcher(engine, Detector(settings.outage), router, notifiers, send_all, settings.web.base_url)


async def supervise(connector: Connector, sink: MentionSink, engine: AsyncEngine) -> None:
    """Run a connector from its committed cursor, restarting it after failures (not after bad credentials)."""
    delay = RESTART_DELAY_S
    while True:
        async with engine.connect() as conn:
            cursor = await store_ingest.load_cursor(conn, connector.name)
        try:
            await connector.run(sink, cursor)
            log.info("connector %s finished", connector.name)
            return
        except asyncio.CancelledError:
            raise
        except AuthenticationFailed as err:
            log.error("connector %s stopped: credentials refused (%s)", connector.name, err)
            return
        except ConnectorError as err:
            log.warning("connector %s unavailable (%s); restarting in %.0fs", connector.name, err, delay)
        except Exception:  # noqa: BLE001 - a connector bug must not take the process down
            log.exception("connector %s crashed; restarting in %.0fs", connector.name, delay)
        await asyncio.sleep(delay)
        delay = min(delay * 2, 300.0)


async def build_app(settings: Settings, *, now: Callable[[], datetime] = utcnow) -> web.Application:
    """The whole embedded process as one aiohttp application: resources start and stop with it."""
    from web.app import create_app
    from web.keys import clocks_key, connectors_key, engine_key, now_key, pipeline_key

    app = create_app(settings, session_secret=session_secret(settings.data_dir))
    queue = EmbeddedQueue(settings.pipeline.max_pending_batches)
    session = aiohttp.ClientSession()
    connectors = {spec.name: build_connector(spec, session, os.environ) for spec in settings.connectors}
    app[connectors_key] = connectors
    app[now_key] = now
    for name, connector in connectors.items():
        routes = getattr(connector, "routes", None)
        if routes is not None:
            hooks = web.Application()
            hooks.add_routes(routes(queue))
            app.add_subapp(f"/hooks/{name}/", hooks)

    async def http_ctx(app: web.Application) -> AsyncIterator[None]:
        yield
        await session.close()

    async def store_ctx(app: web.Application) -> AsyncIterator[None]:
        await upgrade(settings.database_url)
        engine = make_engine(settings.database_url)
        app[engine_key] = engine
        pipeline, book = make_pipeline(settings, engine)
        app[pipeline_key], app[clocks_key] = pipeline, book
        yield
        await engine.dispose()

    async def consumer_ctx(app: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(consume(
            queue, app[pipeline_key], batch_size=settings.pipeline.batch_size,
            wait_s=settings.pipeline.batch_wait_s, now=now))
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def connectors_ctx(app: web.Application) -> AsyncIterator[None]:
        tasks = [asyncio.create_task(supervise(c, queue, app[engine_key]), name=f"connector:{c.name}")
                 for c in connectors.values()]
        yield
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def scheduler_ctx(app: web.Application) -> AsyncIterator[None]:
        scheduler = Scheduler(app[engine_key], app[clocks_key], now)
        app[pipeline_key].on_clocks = scheduler.arm
        watcher = make_watcher(settings, app[engine_key], session)
        await watcher.start()
        app[pipeline_key].observers.append(watcher.observe)
        await scheduler.start()
        scheduler.every(OUTAGE_TICK_S, lambda: watcher.tick(now()), "outage:tick")
        yield
        scheduler.shutdown()

    # the scheduler starts last and stops first
    app.cleanup_ctx.extend([http_ctx, store_ctx, consumer_ctx, connectors_ctx, scheduler_ctx])
    return app
