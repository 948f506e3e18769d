"""Embedded mode on several cores: the inbox served by N processes sharing one port (SO_REUSEPORT).

The main process (`carebox serve`, `carebox demo`) runs everything as before: pipeline, connectors, scheduler
and one web server. With `[inbox] processes = N` it also starts N - 1 web processes (fresh interpreters, not
forks of a running event loop) that bind the same host and port; the kernel spreads new connections over them.
They read the same SQLite file (WAL: readers never wait for the writer) and write with the same BEGIN IMMEDIATE
transactions. Live updates travel through a Unix socket hub in the main process (carebox.fanout.LocalHub): a
page event is published once, where it happened, and reaches every process's pages; commits and started SLA
clocks of the web processes reach the main process's outage detector and scheduler the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import signal
import tempfile
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from aiohttp import web

from carebox.config import Settings
from carebox.errors import ConfigError
from carebox.fanout import LocalFanout, LocalHub

log = logging.getLogger(__name__)
MAX_PROCESSES = 64
CHILD_ROLE = "embedded-web"  # the inbox, and the webhooks that reach this process (its own embedded queue)
READY = "web-process.ready"  # fan-out event: a web process is listening
RESTART_DELAYS_S = (1.0, 2.0, 5.0, 10.0, 30.0)
STOP_S = 10.0  # a web process still running this long after SIGTERM is killed


def count(settings: Settings, cpus: int | None = None) -> int:
    """How many processes serve the inbox: `[inbox] processes`, a whole number or "auto" (one per CPU)."""
    table = settings.raw.get("inbox", {})
    value = table.get("processes", 1) if isinstance(table, Mapping) else 1
    if value == "auto":
        return max(1, min(cpus or os.cpu_count() or 1, MAX_PROCESSES))
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_PROCESSES:
        err = ConfigError("inbox.processes", f'a whole number from 1 to {MAX_PROCESSES}, or "auto"')
        raise err.with_file(settings.file) if settings.file else err
    return value


def check(settings: Settings, processes: int) -> None:
    """Several processes are for the embedded mode (SQLite, memory queue) on a fixed port; ConfigError otherwise."""
    if processes == 1:
        return
    err: ConfigError | None = None
    if not settings.database_url.startswith("sqlite") or not settings.queue_url.startswith("memory"):
        err = ConfigError("inbox.processes", "1 with PostgreSQL or Redis (run several `carebox web` processes "
                          "behind a proxy instead, see docs/deploy.md)")
    elif settings.web.port == 0:
        err = ConfigError("inbox.processes", "1 when web.port is 0 (the processes share one fixed port)")
    if err is not None:
        raise err.with_file(settings.file) if settings.file else err


@dataclass(frozen=True, slots=True)
class ChildSpec:
    """What a web process needs to rebuild the main process's settings (sent to a fresh interpreter)."""

    file: str | None
    raw: dict[str, Any]
    database_url: str
    queue_url: str
    hub: str
    web: Any  # carebox.config.WebSettings of the main process (host and port included)
    log_level: int


def child_settings(spec: ChildSpec) -> Settings:
    """The main process's settings, read again: same file (or document), same resolved URLs and listener; triage
    in process (a web process stores only the webhooks that reach it and the replies sent from it)."""
    from carebox import config

    settings = config.load(spec.file) if spec.file else config.parse(spec.raw, environ={})
    return replace(settings, database_url=spec.database_url, queue_url=spec.queue_url, web=spec.web,
                   pipeline=replace(settings.pipeline, triage_workers=0))


def child_main(spec: ChildSpec) -> None:
    """Entry point of a web process (multiprocessing, spawn)."""
    logging.basicConfig(level=spec.log_level, format="%(asctime)s %(levelname)s %(name)s[%(process)d]: %(message)s")
    for chatty in ("alembic", "apscheduler", "aiohttp.access"):
        logging.getLogger(chatty).setLevel(max(spec.log_level, logging.WARNING))
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve_child(spec))


async def _serve_child(spec: ChildSpec) -> None:
    from carebox.runtime import build_app

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    fan = LocalFanout(spec.hub, on_lost=stop.set)  # the main process ended: so does this one
    app = await build_app(child_settings(spec), role=CHILD_ROLE, fanout=fan)
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=STOP_S / 2)  # open live streams end
    await runner.setup()
    try:
        await web.TCPSite(runner, spec.web.host, spec.web.port, reuse_port=True).start()
        fan.publish_nowait({"kind": READY, "pid": os.getpid()})
        await stop.wait()
    finally:
        await runner.cleanup()


class WebProcesses:
    """The main process's web processes: started with the app, restarted when one dies, stopped with the app."""

    def __init__(self, spec: ChildSpec, count: int, hub: LocalHub, on_ready: Callable[[], None] | None = None) -> None:
        self.spec, self.count, self.hub, self.on_ready = spec, count, hub, on_ready
        self.context = multiprocessing.get_context("spawn")
        self.children: list[Any] = []
        self.restarts = 0

    def _spawn(self, n: int) -> Any:
        child = self.context.Process(target=child_main, args=(self.spec,), name=f"carebox-web-{n}", daemon=True)
        child.start()
        return child

    async def run(self) -> None:
        """Start the processes, call `on_ready` once all of them listen, and restart any that dies."""
        async with self.hub.subscribe() as events:
            self.children = [self._spawn(n + 1) for n in range(self.count)]
            ready: set[int] = set()
            told = False
            pending: asyncio.Future[dict[str, Any]] | None = None
            try:
                while True:
                    pending = pending or asyncio.ensure_future(anext(events))  # not cancelled on timeout: that
                    done, _ = await asyncio.wait({pending}, timeout=0.5)       # would end `events`
                    if done:
                        event, pending = pending.result(), None
                        if event.get("kind") == READY:
                            ready.add(int(event.get("pid", 0)))
                            if told:
                                log.info("web process pid %s serves the inbox again", event.get("pid"))
                    if not told and {c.pid for c in self.children} <= ready:
                        told = True
                        log.info("%d more web processes serve the inbox (pids %s)", self.count,
                                 ", ".join(str(c.pid) for c in self.children))
                        if self.on_ready is not None:
                            self.on_ready()
                    for n, child in enumerate(self.children):
                        if child.exitcode is not None:
                            await self._restart(n, child)
            finally:
                if pending is not None:
                    pending.cancel()

    async def _restart(self, n: int, child: Any) -> None:
        delay = RESTART_DELAYS_S[min(self.restarts, len(RESTART_DELAYS_S) - 1)]
        log.warning("web process %d (pid %s) exited with %s; starting it again in %.0f s", n + 1, child.pid,
                    child.exitcode, delay)
        self.restarts += 1
        await asyncio.sleep(delay)
        self.children[n] = self._spawn(n + 1)

    async def stop(self, timeout_s: float = STOP_S) -> None:
        """Ask every web process to finish its requests and exit; kill those still running after `timeout_s`."""
        alive = [c for c in self.children if c.exitcode is None]
        for child in alive:
            child.terminate()
        deadline = asyncio.get_running_loop().time() + timeout_s
        while any(c.exitcode is None for c in alive) and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.05)
        for child in alive:
            if child.exitcode is None:
                log.warning("web process pid %s did not stop; killing it", child.pid)
                child.kill()
            child.join(1)


def run(settings: Settings, processes: int = 1, *, role: str = "serve", banner: Callable[[], None] | None = None,
        on_ready: Callable[[], None] | None = None) -> None:
    """Serve until SIGINT or SIGTERM: one process as always, or the main process and `processes - 1` web
    processes on the same port. `banner` is printed once serving; `on_ready` is called once every process listens."""
    from carebox.runtime import build_app

    check(settings, processes)
    with tempfile.TemporaryDirectory(prefix="carebox-") as tmp:
        hub = LocalHub(os.path.join(tmp, "live.sock")) if processes > 1 else None

        async def factory() -> web.Application:
            app = await build_app(settings, role=role, fanout=hub)
            if hub is not None:
                spec = ChildSpec(settings.file, dict(settings.raw), settings.database_url, settings.queue_url, hub.path,
                                 settings.web, logging.getLogger().getEffectiveLevel())
                app.cleanup_ctx.append(_children_ctx(WebProcesses(spec, processes - 1, hub, on_ready)))
            elif on_ready is not None:
                app.on_startup.append(lambda _app: _call(on_ready))
            if banner is not None:
                app.on_startup.append(lambda _app: _call(banner))
            return app

        web.run_app(factory(), host=settings.web.host, port=settings.web.port, print=None,
                    reuse_port=True if hub is not None else None)


async def _call(fn: Callable[[], None]) -> None:
    fn()


def _children_ctx(children: WebProcesses) -> Callable[[web.Application], AsyncIterator[None]]:
    async def ctx(_app: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(children.run(), name="web-processes")
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await children.stop()
    return ctx
