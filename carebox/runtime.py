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

from carebox import fanout as live
from carebox import scaleout
from carebox.alerting import Router
from carebox.clocks import ClockBook
from carebox.config import ConnectorSettings, Settings
from carebox.errors import AuthenticationFailed, ConfigError, ConnectorError
from carebox.escalation import EditFollower, Fired
from carebox.incidents import OutageWatcher
from carebox.leader import SCHEDULER, Leases, connector_lock, make_locks
from carebox.outage import Detector
from carebox.pipeline import Pipeline, consume
from carebox.ports import Connector, MentionSink
from carebox.queue import EmbeddedQueue, Queue, make_queue
from carebox.scheduler import Scheduler
from carebox.store import ingest as store_ingest
from carebox.store.engine import make_engine
from carebox.store.migrate import upgrade
from carebox.triage import Triager
from carebox.triage_pool import PoolSettings, TriagePool

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
    "replay": "connectors.social.replay",
}
ROLES = ("serve", "worker", "web")
# What each process role runs besides the store: the web inbox, the pipeline consumer, and the
# lease-holding work (connectors, scheduler leadership).
RUNS: dict[str, frozenset[str]] = {
    "serve": frozenset({"inbox", "consumer", "leases"}),
    "worker": frozenset({"consumer", "leases"}),
    "web": frozenset({"inbox"}),
    "embedded-web": frozenset({"inbox", "consumer"}),  # a web process of `[inbox] processes` (web_processes.py)
}
queue_key = web.AppKey("carebox.queue", Queue)
fanout_key = web.AppKey("carebox.fanout", live.Fanout)
leases_key = web.AppKey("carebox.leases", Leases)
work_key = web.AppKey("carebox.leased_work", object)
RESTART_DELAY_S = 5.0
OUTAGE_TICK_S = 30.0  # ticks inside the minute let the detector peek at it: 5x at 5/min alerts in 1.4 min, not 3.4 (docs/outage.md)


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


def make_pipeline(settings: Settings, engine: AsyncEngine, *, pooled: bool = False) -> tuple[Pipeline, ClockBook]:
    """The ingest pipeline with the configured triage and SLA policies; `pooled` adds the configured
    triage pool (its workers start with the first large batch; the caller closes it)."""
    book = ClockBook(settings.sla)
    triager = Triager(settings.triage)
    p = settings.pipeline
    pool = (TriagePool(settings.triage, PoolSettings.from_pipeline(p.triage_workers, p.triage_batch), local=triager)
            if pooled and p.triage_workers else None)
    pipeline = Pipeline(engine, triager=triager, clocks=book, quiet_gap_s=p.quiet_gap_s, triage_pool=pool)
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
        except Exception:
            log.exception("connector %s crashed; restarting in %.0fs", connector.name, delay)
        await asyncio.sleep(delay)
        delay = min(delay * 2, 300.0)


def make_stream_options(so: scaleout.ScaleoutSettings) -> Any:
    """Redis stream options from the [scaleout] table."""
    from carebox.queue.redis import StreamOptions

    return StreamOptions(stream=so.stream, group=so.group, visibility_s=so.visibility_s,
                         max_deliveries=so.max_deliveries, max_len=so.max_stream_len)


def fanout_url(settings: Settings, so: scaleout.ScaleoutSettings) -> str:
    """Where live events go: [scaleout] fanout_url, else the Redis of the queue, else in-process."""
    return so.fanout_url or (settings.queue_url if settings.queue_url.startswith(("redis", "unix")) else "memory://")


def _health_routes(app: web.Application) -> None:
    """/healthz (the process is up) and /readyz (store and queue answer) for worker processes."""
    from carebox import health
    from web.keys import engine_key

    async def healthz(_request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(request: web.Request) -> web.Response:
        ok, checks = await health.readiness(request.app[engine_key], request.app.get(queue_key))
        leases = request.app.get(leases_key)
        body = {"ready": ok, "checks": [c.as_dict() for c in checks],
                "leases": sorted(leases.running) if leases else []}
        return web.json_response(body, status=200 if ok else 503)

    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)


def _mount_hooks(app: web.Application, connectors: Mapping[str, Connector], queue: Queue) -> None:
    """Serve the push endpoints of webhook-style connectors under /hooks/<name>/ (they feed the queue)."""
    for name, connector in connectors.items():
        routes = getattr(connector, "routes", None)
        if routes is not None:
            hooks = web.Application()
            hooks.add_routes(routes(queue))
            app.add_subapp(f"/hooks/{name}/", hooks)


def _base_app(settings: Settings, role: str) -> web.Application:
    if "inbox" in RUNS[role]:
        from web.app import create_app

        return create_app(settings, session_secret=session_secret(settings.data_dir))
    app = web.Application()
    _health_routes(app)
    return app


async def build_app(settings: Settings, *, now: Callable[[], datetime] = utcnow, role: str = "serve",
                    fanout: live.Fanout | None = None) -> web.Application:
    """One carebox process as an aiohttp application: `serve` runs everything (the embedded default),
    `worker` the connectors, pipeline consumer and scheduler, `web` the inbox and API only."""
    from web.keys import (
        clocks_key,
        connectors_key,
        engine_key,
        now_key,
        pipeline_key,
        sla_edits_key,
        sla_listeners_key,
    )

    if role not in RUNS:
        raise ConfigError("role", f"one of {', '.join(ROLES)}")
    runs = RUNS[role]
    so = scaleout.parse(settings.raw)
    app = _base_app(settings, role)
    queue = make_queue(settings.queue_url, max_batches=settings.pipeline.max_pending_batches,
                       options=make_stream_options(so) if settings.queue_url.startswith(("redis", "unix")) else None)
    app[queue_key] = queue
    fan = fanout or live.make_fanout(fanout_url(settings, so), so.fanout_channel)
    app[fanout_key] = fan
    shared = isinstance(fan, live.RedisFanout)
    local = isinstance(fan, (live.LocalHub, live.LocalFanout))  # embedded, several web processes
    if (local or shared) and "inbox" in runs:
        from web.live import DERIVED, share

        # page events reach the pages of every process (over Redis, new mentions and SLA events are not shared:
        # each web process derives them from the workers' events, see _relay)
        broadcaster = share(app, fan, DERIVED if shared else frozenset())
    session = aiohttp.ClientSession()
    try:
        connectors = {spec.name: build_connector(spec, session, os.environ) for spec in settings.connectors}
    except BaseException:  # a bad [[connectors]] entry: no "Unclosed client session" after its config error
        await session.close()
        raise
    app[connectors_key] = connectors
    app[now_key] = now
    sla_listeners: list[Callable[[list[dict[str, Any]]], None]] = []
    app[sla_listeners_key] = sla_listeners
    # a web process with the embedded queue has no consumer: its hooks would never be answered
    if "consumer" in runs or not isinstance(queue, EmbeddedQueue):
        _mount_hooks(app, connectors, queue)

    async def http_ctx(app: web.Application) -> AsyncIterator[None]:
        yield
        await session.close()

    async def store_ctx(app: web.Application) -> AsyncIterator[None]:
        await upgrade(settings.database_url)
        engine = make_engine(settings.database_url, **_pool_options(settings.database_url))
        app[engine_key] = engine
        pipeline, book = make_pipeline(settings, engine, pooled="consumer" in runs)
        app[pipeline_key], app[clocks_key] = pipeline, book
        yield
        if pipeline.triage_pool is not None:  # the consumer has stopped (its context unwinds first)
            await pipeline.triage_pool.aclose()
        await engine.dispose()

    async def fanout_ctx(app: web.Application) -> AsyncIterator[None]:
        if shared or local:
            await fan.start()
        def publish_commits(rows: list[dict[str, Any]]) -> None:
            fan.publish_nowait(live.committed_event(rows))

        def not_relayed() -> set[Any]:
            # others' commits are neither published again (they would echo between processes for ever) nor fed
            # a second time to this process's outage detector when it leads (_feed already hears them)
            return {publish_commits, getattr(app.get(work_key), "_observer", None)}

        relay = asyncio.create_task(_relay(fan, app[pipeline_key], sla_listeners, not_relayed)) if shared and "inbox" in runs else None
        live_relay = asyncio.create_task(broadcaster.relay(), name="live:relay") if (local or shared) and "inbox" in runs else None
        if (local or shared) and "leases" not in runs:  # a web process: its commits and clocks reach the leader
            app[pipeline_key].observers.append(publish_commits)
            app[pipeline_key].on_clocks = lambda clocks: fan.publish_nowait(
                {"kind": "clocks", "ids": sorted({c["id"] for c in clocks if c.get("id") is not None})})
        if shared and "consumer" in runs:
            app[pipeline_key].observers.append(publish_commits)
        yield
        for task in (relay, live_relay):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await fan.close()
        close = getattr(queue, "close", None)
        if close is not None:
            await close()

    async def sla_edits_ctx(app: web.Application) -> AsyncIterator[None]:
        # calendars and policies saved from the web override the file: in force before the scheduler starts
        def leader_arm() -> Callable[[list[dict[str, Any]]], int] | None:
            scheduler = getattr(app.get(work_key), "scheduler", None)
            return scheduler.arm if scheduler is not None else None

        follower = EditFollower(app[engine_key], app[clocks_key], settings.sla, now, fan, leader_arm)
        await follower.apply()
        app[sla_edits_key] = follower
        task = asyncio.create_task(follower.follow(), name="sla:edits")
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        if follower.rebasing is not None:  # bounded: an interrupted rebase is redone when the next leader starts
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(follower.rebasing, 10)

    async def consumer_ctx(app: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(consume(
            queue, app[pipeline_key], batch_size=settings.pipeline.batch_size,
            wait_s=settings.pipeline.batch_wait_s, now=now))
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def leases_ctx(app: web.Application) -> AsyncIterator[None]:
        work = LeasedWork(settings, app[engine_key], app[pipeline_key], app[clocks_key], queue, fan, session,
                          connectors, now, shared=shared or local, sla_listeners=sla_listeners)
        locks = make_locks(settings.database_url, so.lease_s)
        # the scheduler before the connectors: its start sweep logs what fell due while carebox was down
        # before a late answer can come in (and it stops after them)
        leases = Leases(locks, [SCHEDULER, *(connector_lock(n) for n in connectors)], work.start, work.stop,
                        lease_s=so.lease_s, greed=len(connectors) + 1 if not shared else 1)
        app[leases_key], app[work_key] = leases, work
        await leases.round()  # embedded: everything starts now, as before
        task = asyncio.create_task(leases.run(), name="leases")
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await locks.close()

    contexts = [http_ctx, store_ctx, fanout_ctx, sla_edits_ctx]
    if "consumer" in runs:
        contexts.append(consumer_ctx)
    if "leases" in runs:
        contexts.append(leases_ctx)  # the scheduler starts last and stops first
    app.cleanup_ctx.extend(contexts)
    return app


def _pool_options(url: str) -> dict[str, Any]:
    """Engine options: PostgreSQL connections are checked before use (a restarted server is survived)."""
    return {"pool_pre_ping": True, "pool_size": 10, "max_overflow": 10} if url.startswith("postgresql") else {}


async def _relay(fan: live.Fanout, pipeline: Pipeline, sla_listeners: list[Callable[[list[dict[str, Any]]], None]],
                 not_relayed: Callable[[], set[Any]] = set) -> None:
    """Web processes: replay other processes' commits and SLA events to the local observers (live pages)."""
    async with fan.subscribe() as events:
        async for event in events:
            if event.get("origin") == fan.origin:
                continue
            if event.get("kind") == "sla":
                _tell(sla_listeners, event.get("events", []))
                continue
            if event.get("kind") != "committed":
                continue
            rows, skip = live.rows_of(event), not_relayed()
            for observer in [o for o in pipeline.observers if o not in skip]:
                try:
                    observer(rows)
                except Exception:
                    log.exception("live observer failed")


def _tell(listeners: list[Callable[[list[dict[str, Any]]], None]], events: list[dict[str, Any]]) -> None:
    for listener in list(listeners):
        try:
            listener(events)
        except Exception:
            log.exception("SLA listener failed")


class LeasedWork:
    """What a process runs while it holds a lease: a connector instance, or the scheduler (leader)."""

    def __init__(self, settings: Settings, engine: AsyncEngine, pipeline: Pipeline, book: ClockBook, queue: Queue,
                 fan: live.Fanout, session: aiohttp.ClientSession, connectors: Mapping[str, Connector],
                 now: Callable[[], datetime], *, shared: bool,
                 sla_listeners: list[Callable[[list[dict[str, Any]]], None]] | None = None) -> None:
        self.settings, self.engine, self.pipeline, self.book = settings, engine, pipeline, book
        self.queue, self.fan, self.session, self.connectors, self.now = queue, fan, session, connectors, now
        self.shared = shared
        self.sla_listeners = sla_listeners if sla_listeners is not None else []
        self.tasks: dict[str, asyncio.Task[Any]] = {}
        self.scheduler: Scheduler | None = None
        self._observer: Callable[[list[dict[str, Any]]], None] | None = None
        if shared:
            # until this process leads, the clocks it starts are armed by the leader
            pipeline.on_clocks = self._announce_clocks

    def _announce_clocks(self, clocks: list[dict[str, Any]]) -> None:
        ids = sorted({c["id"] for c in clocks if c.get("id") is not None})
        if ids:
            self.fan.publish_nowait({"kind": "clocks", "ids": ids})

    async def start(self, name: str) -> None:
        """Begin the work of a lease just won."""
        if name == SCHEDULER:
            await self._lead()
            return
        connector = self.connectors[name.split(":", 1)[1]]
        self.tasks[name] = asyncio.create_task(supervise(connector, self.queue, self.engine), name=name)

    async def stop(self, name: str) -> None:
        """Stop the work of a lease lost or given back."""
        if name == SCHEDULER:
            await self._abdicate()
        task = self.tasks.pop(name, None)
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def _lead(self) -> None:
        scheduler = Scheduler(self.engine, self.book, self.now, on_fired=self._fired)
        watcher = make_watcher(self.settings, self.engine, self.session)
        watcher.use_policy(self.book, self.settings.incidents.policy, scheduler.arm,
                           auto=self.settings.incidents.switches_on_open("detector"))
        await watcher.start()
        if self.shared:
            # every worker's commits reach the leader's detector, and its new clocks the scheduler
            self.tasks["watcher:feed"] = asyncio.create_task(_feed(self.fan, watcher.observe, scheduler))
        self.pipeline.observers.append(watcher.observe)
        self.pipeline.on_clocks = scheduler.arm
        await scheduler.start()
        scheduler.every(OUTAGE_TICK_S, lambda: watcher.tick(self.now()), "outage:tick")
        self.tasks["watcher:urgent"] = asyncio.create_task(watcher.follow(self.now), name="outage:urgent")
        from carebox.commands.report import digest_job

        digest = digest_job(self.settings, self.engine, self.now)
        if digest is not None:  # the e-mail digest of reports, only the leader sends it
            scheduler.cron(digest.run, "reports:digest", **digest.plan.cron())
        from carebox.commands.report import facts_job

        facts = facts_job(self.settings, self.engine, self.now)
        if facts is not None:  # report facts kept fresh by the leader (SQLite), so that reports only read them
            scheduler.every(facts[0], facts[1], "reports:facts")
        await scheduler.schedule_retention(self.settings.privacy)  # the leader alone purges
        self.scheduler, self._observer = scheduler, watcher.observe
        log.info("this process leads the scheduler")

    def _fired(self, fired: list[Fired]) -> None:
        """SLA events as they fire: to this process's live pages, and to the other web processes."""
        events = [{"conversation_id": f.conversation_id, "clock_id": f.clock_id, "kind": f.kind.split(":")[0],
                   "notify": list(f.notify), "at": f.at.isoformat()} for f in fired]
        _tell(self.sla_listeners, events)
        if self.shared:
            self.fan.publish_nowait({"kind": "sla", "events": events})

    async def _abdicate(self) -> None:
        if self.scheduler is None:
            return
        scheduler, self.scheduler = self.scheduler, None
        await scheduler.stop()
        self.pipeline.on_clocks = self._announce_clocks if self.shared else None
        if self._observer is not None:
            with contextlib.suppress(ValueError):
                self.pipeline.observers.remove(self._observer)
        for name in ("watcher:feed", "watcher:urgent"):  # the detector's feed and its urgent ticks
            task = self.tasks.pop(name, None)
            if task is not None:
                task.cancel()
        log.warning("this process no longer leads the scheduler")


async def _feed(fan: live.Fanout, observe: Callable[[list[dict[str, Any]]], None], scheduler: Scheduler) -> None:
    """The leader hears the other workers: their complaints feed the outage detector, their new clocks
    get their exact-instant jobs (a lost message is caught by the sweep)."""
    from carebox.store import clocks as store_clocks

    async with fan.subscribe() as events:
        async for event in events:
            if event.get("origin") == fan.origin:
                continue
            try:
                if event.get("kind") == "committed":
                    observe([r for r in live.rows_of(event) if r.get("text")])
                elif event.get("kind") == "clocks":
                    scheduler.arm(await store_clocks.by_ids(scheduler.engine, list(event.get("ids", []))))
            except Exception:
                log.exception("leader feed failed on a %s event", event.get("kind"))
