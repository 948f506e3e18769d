"""Outage incidents: the detector watches committed complaints, incidents group their conversations,
and the alert router tells ops (PagerDuty, Slack, webhook, e-mail) in the manner of Alertmanager."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncEngine

from carebox import alerting, outage
from carebox.ports import Notifier
from carebox.store import incident_policy as policy_store
from carebox.store import incidents as store
from carebox.store.actions import record_audit

log = logging.getLogger(__name__)
WATCHED = ("outage", "complaint")
SEVERITY = {"minor": "warning", "major": "error", "critical": "critical"}
LINK_LOOKBACK = timedelta(minutes=30)
TOLD_LOOKBACK = 100  # incidents (unresolved first, then the latest) whose deliveries a restart looks at
SERIES_BEFORE, SERIES_AFTER = timedelta(minutes=60), timedelta(hours=12)  # what the incident chart can show
Send = Callable[[Mapping[str, Notifier], Sequence[alerting.Delivery]], Awaitable[list[tuple[Any, BaseException | None]]]]


def dedup_key(account: str, key: str | None, started_at: datetime) -> str:
    """A stable key for one incident: the same for its trigger, escalations and resolve."""
    return f"carebox/{account}/{key or '*'}/{started_at:%Y%m%dT%H%M}"


def title(event: outage.EpisodeEvent) -> str:
    """A one-line summary people read on a pager."""
    what = f"complaints about {event.key}" if event.key else "complaints"
    minutes = round(event.window / 60, 1)  # a window that ends in the minute in progress is fractional
    return f"@{event.account}: {what} rising ({event.count} in {minutes:g} min, ~{event.baseline:.1f} expected)"


class OutageWatcher:
    """Feeds the detector from committed mentions, turns its episodes into incidents and alerts."""

    def __init__(self, engine: AsyncEngine, detector: outage.Detector, router: alerting.Router | None = None,
                 notifiers: Mapping[str, Notifier] | None = None, send: Send | None = None,
                 base_url: str = "") -> None:
        self.engine, self.detector, self.router = engine, detector, router
        self.notifiers = notifiers or {}
        self.send = send
        self.base_url = base_url
        self.open: dict[tuple[str, str | None], dict[str, Any]] = {}
        self._pending_links: dict[int, set[int]] = {}
        self._unpaged: list[dict[str, Any]] = []
        self._told: list[tuple[dict[str, Any], dict[str, str]]] = []  # (incident, {receiver: last action told})
        self.book: policy_store.PolicyClocks | None = None
        self.policy: str | None = None
        self.rearm: Callable[[list[dict[str, Any]]], Any] | None = None
        self.auto = False
        self.urgent = asyncio.Event()  # set when the detector decided at a complaint: `follow` ticks at once
        self._ticking = asyncio.Lock()  # the scheduled tick and an urgent one never interleave

    def use_policy(self, book: policy_store.PolicyClocks, policy: str | None,
                   rearm: Callable[[list[dict[str, Any]]], Any] | None = None, *, auto: bool = False) -> None:
        """Keep linked conversations on their incident's SLA policy (named `policy` in the config) every tick,
        and tell the scheduler (`rearm`) about the clocks that moved; with `auto`, the incidents the detector
        opens switch to that policy at once ([incidents] auto_policy)."""
        self.book, self.policy, self.rearm, self.auto = book, policy, rearm, auto

    async def start(self) -> None:
        """Restore the detector's state and the open incidents after a restart."""
        state = await store.load_detector_state(self.engine)
        if state:
            self.detector.restore(orjson.loads(state))
        self.open = _slots(await store.open_incidents(self.engine))
        # the router's pending deliveries died with the last process: page again what nobody received yet
        told = await store.paged(self.engine, [row["id"] for row in self.open.values()])
        self._unpaged = [row for row in self.open.values() if row["id"] not in told]
        # what the last process delivered: not paged again, but acknowledged and resolved, even when the incident
        # was resolved (by hand, merged, by the detector) before its resolve went out; the router learns it next tick
        self._told = [(row, receivers) for row, receivers in await _told(self.engine) if receivers]

    def observe(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Called with each committed batch of mention rows: complaints go to the detector."""
        for row in rows:
            if row.get("direction") != "in" or row.get("category") not in WATCHED:
                continue
            if self.detector.observe(account=row["account"], cluster_key=row.get("cluster_key"), author=row["author_id"],
                                     text=row["text"], at=row["created_at"], category=row["category"],
                                     is_repost=bool(row.get("is_repost"))):
                self.urgent.set()
            incident = self.open.get((row["account"], row.get("cluster_key"))) or self.open.get((row["account"], None))
            if incident is not None and row.get("conversation_id"):
                self._pending_links.setdefault(incident["id"], set()).add(row["conversation_id"])

    async def follow(self, now: Callable[[], datetime]) -> None:
        """Tick as soon as the detector decides at a committed complaint, not at the next scheduled tick (until
        cancelled; the leader runs it next to the scheduled tick)."""
        while True:
            await self.urgent.wait()
            self.urgent.clear()
            try:
                await self.tick(now())
            except Exception:
                log.exception("outage tick after a rate signal failed; the scheduled tick opens the episode")

    async def tick(self, now: datetime) -> list[outage.EpisodeEvent]:
        """Close buckets up to `now`, act on the detector's episodes, deliver due alerts, save state."""
        async with self._ticking:
            return await self._tick(now)

    async def _tick(self, now: datetime) -> list[outage.EpisodeEvent]:
        # incidents opened, merged or resolved by hand since the last tick: the store is the truth
        before = {row["id"]: row for row in self.open.values()}
        self.open = _slots(await store.open_incidents(self.engine))
        await self._follow_hand(before, now)
        for incident_id, ids in self._pending_links.items():
            await store.link_conversations(self.engine, incident_id, ids)
        self._pending_links.clear()
        still = {row["id"]: row for row in self.open.values()}
        for incident in self._unpaged:
            if incident["id"] in still:
                self._submit(still[incident["id"]], None, now)
        self._unpaged = []
        events = self.detector.tick(now)
        for event in events:
            await self._apply(event, now)
        await self._record_series()
        await self.reconcile(now)
        await self.deliver(now)
        await store.save_detector_state(self.engine, orjson.dumps(self.detector.snapshot()).decode(), now)
        return events

    async def _apply(self, event: outage.EpisodeEvent, now: datetime) -> None:
        slot = (event.account, event.key)
        severity = SEVERITY.get(event.severity, "warning")
        if event.kind == "opened" or (event.kind == "escalated" and slot not in self.open):
            values = {"account": event.account, "cluster_key": event.key, "title": title(event), "state": "open",
                      "severity": severity, "source": "detector", "started_at": event.started_at,
                      "detected_at": event.at, "dedup_key": dedup_key(event.account, event.key, event.started_at),
                      "peak_count": event.count, "baseline": event.baseline, "reason": event.reason, "series": "[]"}
            # complaints about the same service shortly before the spike belong to it; brand-wide, only those after
            evidence = min(event.started_at, event.at - timedelta(seconds=event.window))
            since = evidence - (LINK_LOOKBACK if event.key else timedelta(0))
            by_hand = self.open.get(slot)
            if by_hand is not None and by_hand["source"] == "manual":
                # someone opened it by hand before the detector saw it: one incident (their title), one page
                values.update(dedup_key=by_hand["dedup_key"], title=by_hand["title"], state=by_hand["state"])
            incident_id, linked = await store.open_incident(self.engine, values, since)
            if await store.is_resolved(self.engine, incident_id):  # resolved by hand while the episode went on
                log.info("incident %d was resolved by hand: the detector's episode goes on without it", incident_id)
                return
            if by_hand is not None and by_hand["id"] == incident_id:
                await store.update_incident(self.engine, incident_id, severity=severity, peak_count=event.count,
                                            baseline=event.baseline, reason=event.reason)
            self.open[slot] = {**values, "id": incident_id}
            log.warning("incident %d opened: %s (%d conversations linked)", incident_id, values["title"], linked)
            if self.auto and self.policy is not None and await policy_store.switch_on_automatically(
                    self.engine, incident_id, self.policy, now, "the detector opened the incident ([incidents] auto_policy)"):
                self.open[slot]["policy"] = self.policy
                log.info("incident %d: SLA policy %s switched on automatically", incident_id, self.policy)
        elif event.kind == "escalated":
            incident = self.open[slot]
            incident.update(severity=severity, peak_count=max(incident["peak_count"], event.count))
            await store.update_incident(self.engine, incident["id"], severity=severity, peak_count=incident["peak_count"])
        elif event.kind == "resolved" and slot in self.open:
            incident = self.open.pop(slot)
            incident["state"] = "resolved"
            await store.update_incident(self.engine, incident["id"], state="resolved", resolved_at=event.at)
            if await policy_store.switch_off(self.engine, incident["id"], event.at):
                await record_audit(self.engine, now, None, "incident.policy_off", incident_id=incident["id"],
                                   policy=incident.get("policy") or self.policy, by="system", reason="the detector resolved the incident")
            log.info("incident %d resolved", incident["id"])
        else:
            return
        self._submit(self.open.get(slot) or incident, event, now)

    async def _follow_hand(self, before: Mapping[int, Mapping[str, Any]], now: datetime) -> None:
        """Tell the receivers what people did since the last tick: an incident that left the open list resolved
        (by hand or merged away) gets its resolve, one acknowledged by hand its acknowledgement."""
        if self.router is None:
            return
        for row, told in self._told:
            for state, last in (("open", "trigger"), ("acknowledged", "acknowledge")):
                receivers = {receiver for receiver, action in told.items() if action == last}
                self.router.restore(self._alert({**row, "state": state}, None), now, receivers)
            self._submit(row, None, now)  # its resolve or acknowledgement; or its page, to receivers that never took it
        self._told = []
        current = {row["id"]: row for row in self.open.values()}
        for incident_id, old in before.items():
            new = current.get(incident_id)
            if new is None and await store.is_resolved(self.engine, incident_id):
                self._submit({**old, "state": "resolved"}, None, now)
            elif (new is not None and new["state"] == "acknowledged" and old["state"] != "acknowledged"
                  and self.router.is_firing(new["dedup_key"])):  # an acknowledgement never opens a page
                self._submit(new, None, now)

    def _submit(self, incident: Mapping[str, Any], event: outage.EpisodeEvent | None, now: datetime) -> None:
        if self.router is not None:
            self.router.submit(self._alert(incident, event), now)

    def _alert(self, incident: Mapping[str, Any], event: outage.EpisodeEvent | None) -> alerting.Alert:
        return alerting.Alert(
            key=incident["dedup_key"], account=incident["account"], title=incident["title"],
            severity=incident["severity"], status="resolved" if incident["state"] == "resolved" else "firing",
            cluster=incident["cluster_key"], body=event.reason if event else incident.get("reason", ""),
            url=f"{self.base_url}/incidents/{incident['id']}" if self.base_url else None,
            escalation=1 if event is not None and event.kind == "escalated" else 0,
            details={"count": event.count if event else incident.get("peak_count", 0),
                     "baseline": round(event.baseline if event else incident.get("baseline", 0.0), 2),
                     "incident_id": incident["id"]},
            acknowledged=incident["state"] == "acknowledged",
        )

    async def deliver(self, now: datetime) -> None:
        """Send what the router says is due, and log every attempt with its incident."""
        if self.router is None or self.send is None:
            return
        deliveries = self.router.due(now)
        if not deliveries:
            return
        by_key = {i["dedup_key"]: i["id"] for i in self.open.values()}
        rows = []
        for delivery, error in await self.send(self.notifiers, deliveries):
            self.router.delivered(delivery, error is None, now, None if error is None else str(error))
            incident_id = by_key.get(delivery.notification.key, delivery.notification.details.get("incident_id"))
            rows.append({"incident_id": incident_id, "at": now, "receiver": delivery.receiver,
                         "action": delivery.notification.action, "dedup_key": delivery.notification.key,
                         "attempt": delivery.attempt, "outcome": "ok" if error is None else "failed",
                         "error": "" if error is None else str(error)[:500]})
        await store.log_deliveries(self.engine, rows)

    async def reconcile(self, now: datetime) -> list[dict[str, Any]]:
        """Move the clocks of conversations linked since the last tick onto their incident's policy, and those
        of resolved incidents back onto their own; re-arm what moved."""
        if self.book is None:
            return []
        moved = await policy_store.reconcile(self.engine, self.book, self.policy, now)
        if moved:
            log.info("incident SLA policy: %d clock(s) moved", len(moved))
            if self.rearm is not None:
                self.rearm(moved)
        return moved

    async def _record_series(self) -> None:
        """Keep, for each open incident's chart, the detector's counted and expected complaints per bucket."""
        updates = {}
        for incident in self.open.values():
            points = {p[0]: p for p in orjson.loads(incident.get("series") or "[]")}
            fresh = self.detector.recent(incident["account"], incident["cluster_key"])
            lo = (incident["started_at"] - SERIES_BEFORE).timestamp()
            hi = (incident["started_at"] + SERIES_AFTER).timestamp()
            added = {p[0]: p for p in fresh if lo <= p[0] <= hi and p[0] not in points}
            if added:
                points.update(added)
                updates[incident["id"]] = orjson.dumps(sorted(points.values())).decode()
                incident["series"] = updates[incident["id"]]
        await store.save_series(self.engine, updates)


async def _told(engine: AsyncEngine) -> list[tuple[dict[str, Any], dict[str, str]]]:
    """The recent incidents still firing on some receiver (its last delivery there that went through was a trigger
    or an acknowledge), with those receivers: open ones, and resolved ones whose resolve did not go out."""
    return [(row, {receiver: action for receiver, action in last.items() if action != "resolve"})
            for row, last in await store.last_delivered(engine, TOLD_LOOKBACK) if row["source"] != "split"]


def _slots(rows: Sequence[dict[str, Any]]) -> dict[tuple[str, str | None], dict[str, Any]]:
    """Open incidents by (account, cluster key); an incident split off by hand is not the detector's."""
    return {(row["account"], row["cluster_key"]): row for row in rows if row["source"] != "split"}
