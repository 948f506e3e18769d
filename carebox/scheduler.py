"""APScheduler 3 wiring: SLA warnings and breaches at their exact instant, and a reconciling sweep."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from sqlalchemy.ext.asyncio import AsyncEngine

from carebox import escalation, privacy
from carebox.clocks import ClockBook
from carebox.store import clocks as store
from carebox.store import privacy as privacy_store

log = logging.getLogger(__name__)
SWEEP_ID = "sla:sweep"
# SLA events each sweep reads again for late answers (a primary-key range: cheap), on PostgreSQL only: there a
# transaction may commit an id lower than one already read; SQLite has one writer at a time, its ids commit in order
REREAD_EVENTS = 20_000
PURGE_ID = "privacy:purge"


class Scheduler:
    """Timed work of one process: a date job per SLA instant, re-armed from the store at start."""

    def __init__(
        self,
        engine: AsyncEngine,
        book: ClockBook,
        now: Callable[[], datetime],
        *,
        sweep_s: float = 60.0,
        on_fired: Callable[[list[escalation.Fired]], None] | None = None,
    ) -> None:
        self.engine, self.book, self.now = engine, book, now
        self.sweep_s = sweep_s
        self.on_fired = on_fired
        self.aps = AsyncIOScheduler(timezone=UTC)
        self._running: set[asyncio.Task[Any]] = set()
        # the last SLA event id read for answers that came after their due time (None: ask the store, which keeps
        # it across restarts, so the first sweep reads what was logged since instead of every event ever logged)
        self._fulfils_seen: int | None = None
        self._reread = REREAD_EVENTS if engine.dialect.name == "postgresql" else 0

    async def _tracked(self, job: Callable[..., Awaitable[Any]], *args: Any) -> Any:
        """Run a job so that `stop` can let it finish: a job cancelled inside a database call can leave
        the connection half closed and hang the process's shutdown."""
        task = asyncio.current_task()
        if task is not None:
            self._running.add(task)
        try:
            return await job(*args)
        finally:
            if task is not None:
                self._running.discard(task)

    async def start(self) -> None:
        """Start: move clocks onto edited calendars, re-arm every running clock, run the first sweep."""
        self.aps.start()
        with contextlib.suppress(escalation.StillLocked):  # logged; the clocks keep their plan until the next start
            await escalation.when_unlocked("SLA rebase at start", lambda: escalation.rebase_on_new_calendars(
                self.engine, self.book, self.now()))
        self.arm(await store.running(self.engine))
        # awaited, not queued: what fell due while carebox was down is logged before any answer can come in
        # (the connectors and the web start after the scheduler)
        try:
            await self._tracked(self.sweep)
        except Exception:
            log.exception("SLA sweep at start failed; it runs again in %gs", self.sweep_s)
        self.aps.add_job(self._tracked, "interval", args=[self.sweep], seconds=self.sweep_s, id=SWEEP_ID,
                         replace_existing=True, coalesce=True, max_instances=1)

    def every(self, seconds: float, job: Callable[[], Any], job_id: str) -> None:
        """Run `job` (a coroutine function) every `seconds`, never two at once."""
        self.aps.add_job(self._tracked, "interval", args=[job], seconds=seconds, id=job_id, replace_existing=True,
                         coalesce=True, max_instances=1)

    async def schedule_retention(self, settings: privacy.PrivacySettings) -> datetime | None:
        """Purge personal data past its retention every `purge_every_s`, counted from the last purge;
        returns the first run (None when no retention limit is set)."""
        if not settings.retains:
            return None
        first = privacy.next_purge(settings, await privacy_store.last_purge_at(self.engine), self.now())
        self.aps.add_job(self._tracked, "interval", args=[self.purge, settings], seconds=settings.purge_every_s,
                         id=PURGE_ID, replace_existing=True, coalesce=True, max_instances=1, next_run_time=first,
                         misfire_grace_time=None)
        log.info("retention purge scheduled every %gs, first at %s", settings.purge_every_s, first.isoformat())
        return first

    async def purge(self, settings: privacy.PrivacySettings) -> privacy_store.PurgeResult | None:
        """One scheduled retention purge (audited by the store); a failure is logged and retried next period."""
        try:
            return await privacy_store.purge(self.engine, settings, self.now(), trigger="schedule")
        except Exception:
            log.exception("scheduled retention purge failed; it runs again in %gs", settings.purge_every_s)
            return None

    def cron(self, job: Callable[[], Any], job_id: str, **fields: Any) -> None:
        """Run `job` (a coroutine function) at the instants of an APScheduler CronTrigger (`fields`: hour,
        minute, day_of_week, timezone...); a run missed by less than an hour still happens."""
        self.aps.add_job(self._tracked, "cron", args=[job], id=job_id, replace_existing=True, coalesce=True,
                         max_instances=1, misfire_grace_time=3600, **fields)

    async def stop(self, timeout_s: float = 10.0) -> None:
        """Stop taking jobs, let the running ones finish (bounded), then shut down."""
        if self.aps.running:
            self.aps.pause()
        running = [t for t in self._running if not t.done()]
        if running:
            await asyncio.wait(running, timeout=timeout_s)
        self.shutdown()

    def shutdown(self) -> None:
        """Stop without waiting for running jobs (their work is idempotent and re-armed at start)."""
        if self.aps.running:
            self.aps.shutdown(wait=False)

    def arm(self, clocks: Iterable[Mapping[str, Any]]) -> int:
        """(Re)schedule the instants of these clocks; a fulfilled clock loses its jobs. Returns jobs armed."""
        now, armed = self.now(), 0
        for clock in clocks:
            if clock.get("id") is None:
                continue
            if clock.get("fulfilled_at") is not None:
                self._cancel(clock["id"])
                continue
            for timer in escalation.timers(self.book, clock, now):
                self.aps.add_job(
                    self._tracked, "date", run_date=timer.at, args=[self._fire, timer.clock_id, timer.kind],
                    id=f"sla:{timer.clock_id}:{timer.kind}", replace_existing=True, misfire_grace_time=None,
                )
                armed += 1
        return armed

    def _cancel(self, clock_id: int) -> None:
        # by id, not by scanning every job: a busy inbox has tens of thousands of armed jobs
        kinds = ["warn", "breach", *(f"escalate:{i}" for i in range(len(self.book.settings.ladder)))]
        for kind in kinds:
            try:
                self.aps.remove_job(f"sla:{clock_id}:{kind}")
            except JobLookupError:
                pass

    async def _fire(self, clock_id: int, kind: str) -> None:
        try:
            event = await escalation.when_unlocked(f"SLA {kind} of clock {clock_id}", lambda: escalation.fire(
                self.engine, self.book, clock_id, kind, self.now()))
        except escalation.StillLocked:
            return  # logged: the sweep fires it
        if event is not None and self.on_fired:
            self.on_fired([event])

    async def sweep(self) -> None:
        """Reconcile: fire anything whose instant passed without its event, and log the breach of clocks
        answered after their due time before it was logged."""
        fired = await escalation.sweep(self.engine, self.book, self.now)
        try:
            fired += await self._breach_answered_late()
        except escalation.StillLocked:
            pass  # logged: the next sweep takes it from there (these answers are read again)
        if fired:
            log.info("SLA sweep fired %d missed event(s)", len(fired))
            if self.on_fired:
                self.on_fired(fired)

    async def _breach_answered_late(self) -> list[escalation.Fired]:
        """Log the breaches hidden by answers that came in after their due time, from the SLA events logged since
        the last sweep (or by the last process, across a restart); StillLocked when the breaches could not be
        written (the next sweep reads these events again)."""
        seen = self._fulfils_seen if self._fulfils_seen is not None else await store.late_answers_read(self.engine)
        late, last = await store.answered_late(self.engine, max(0, seen - self._reread))
        fired: list[escalation.Fired] = []
        if late:
            fired = await escalation.when_unlocked(f"breaches of {len(late)} clock(s) answered late", lambda: (
                escalation.breach_answered_late(self.engine, self.book, [c["id"] for c in late])))
        self._fulfils_seen = max(seen, last)
        if last > seen:  # one try: when locked, the next sweep saves it (a restart before then reads these again)
            with contextlib.suppress(escalation.StillLocked):
                await escalation.when_unlocked("SLA sweep mark", lambda: store.save_late_answers_read(
                    self.engine, last, self.now()), waits=())
        return fired
