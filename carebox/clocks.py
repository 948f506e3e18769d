"""The SLA engine applied to stored conversations: plan clocks at ingest, measure them, show them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from typing import Any

import orjson

from carebox import sla
from carebox.calendar import ALWAYS_OPEN, Calendar, add_business, business_seconds
from carebox.pipeline_thread import ClockPlan
from carebox.ports import InboundMention
from carebox.sla_clock import planned_due

FIRST = sla.TargetKind.FIRST_RESPONSE
NEXT = sla.TargetKind.NEXT_RESPONSE


@dataclass(frozen=True, slots=True)
class ClockView:
    """What the inbox shows of a conversation's clocks at `now`."""

    business_left_s: float | None
    wall_waited_s: float | None
    state: str


def calendar_to_json(cal: Calendar) -> str:
    """A calendar version as JSON, to keep it after the configuration moves on."""
    return orjson.dumps({
        "name": cal.name, "timezone": cal.timezone, "weekly": [[list(w) for w in day] for day in cal.weekly],
        "always_open": cal.always_open, "holiday_country": cal.holiday_country,
        "holiday_subdivision": cal.holiday_subdivision, "closed_dates": sorted(d.isoformat() for d in cal.closed_dates),
        "partial_days": {d.isoformat(): [list(w) for w in ws] for d, ws in sorted(cal.partial_days.items())},
        "version": cal.version,
    }).decode()


def calendar_from_json(text: str) -> Calendar:
    """The calendar version `calendar_to_json` kept."""
    d = orjson.loads(text)
    return Calendar(
        name=d["name"], timezone=d["timezone"], weekly=tuple(tuple(tuple(w) for w in day) for day in d["weekly"]),
        always_open=d["always_open"], holiday_country=d["holiday_country"],
        holiday_subdivision=d["holiday_subdivision"],
        closed_dates=frozenset(date.fromisoformat(x) for x in d["closed_dates"]),
        partial_days={date.fromisoformat(k): tuple(tuple(w) for w in ws) for k, ws in d["partial_days"].items()},
        version=d["version"],
    )


def _facts(row: Mapping[str, Any]) -> sla.ConversationFacts:
    tags = row.get("tags") or "[]"
    return sla.ConversationFacts(
        network=row["network"], account=row["account"], priority=row.get("priority") or "",
        category=row.get("category") or "", language=row.get("language") or "",
        tags=frozenset(orjson.loads(tags) if isinstance(tags, str) else tags),
    )


class ClockBook:
    """Plans and measures SLA clocks for the pipeline and the inbox, from the configured policies."""

    def __init__(self, settings: sla.SlaSettings) -> None:
        self.use(settings)

    def use(self, settings: sla.SlaSettings) -> None:
        """Plan with new settings from now on (calendars or policies saved from the web)."""
        self.settings = settings
        self._policies: dict[sla.ConversationFacts, sla.Policy] = {}
        # per (target, the row's matching facts): policy name, target, calendar; few distinct keys in practice
        self._starts: dict[tuple[Any, ...], tuple[str, sla.Target | None, Calendar]] = {}
        self._expectation = timedelta(seconds=settings.expectation_target().seconds)

    def _policy_for(self, facts: sla.ConversationFacts) -> sla.Policy:
        """The matching policy, remembered per distinct set of facts (there are few)."""
        policy = self._policies.get(facts)
        if policy is None:
            if len(self._policies) > 4096:
                self._policies.clear()
            policy = self._policies[facts] = self.settings.match_policy(facts)
        return policy

    def _running_target(self, conversation: Mapping[str, Any]) -> tuple[Calendar, sla.Target | None]:
        """The calendar and target of the clock behind the row's due time: the first response until it is
        answered, then the next response. (24/7, None) when the policy sets no such target (or is gone): that
        clock is the customer expectation alone, planned on the wall clock by `start`."""
        kind = FIRST if conversation.get("first_response_at") is None else NEXT
        try:
            target = self.settings.policy(conversation.get("policy") or "").target(kind)
        except KeyError:
            return ALWAYS_OPEN, None
        return (ALWAYS_OPEN, None) if target is None else (self.settings.calendar_for(target), target)

    def start(self, target: str, conversation: Mapping[str, Any], started_at: datetime) -> ClockPlan:
        """Plan a clock (first or next response) started by a customer message at `started_at`: business
        due on the matched policy's calendar, wall due at the customer's expectation (default 1 h, 24/7).
        Without such a target in the policy, the customer's expectation is the only due time."""
        tags = conversation.get("tags") or "[]"
        key = (target, conversation["network"], conversation["account"], conversation.get("priority") or "",
               conversation.get("category") or "", conversation.get("language") or "", tags)
        found = self._starts.get(key) if isinstance(tags, str) else None
        if found is None:
            policy = self._policy_for(_facts(conversation))
            goal = policy.target(sla.TargetKind(target))
            found = (policy.name, goal, ALWAYS_OPEN if goal is None else self.settings.calendar_for(goal))
            if isinstance(tags, str):
                if len(self._starts) > 4096:
                    self._starts.clear()
                self._starts[key] = found
        policy_name, goal, cal = found
        wall_due = started_at + self._expectation
        if goal is None:
            return ClockPlan(target, policy_name, ALWAYS_OPEN.name, 1, started_at, wall_due, wall_due, None)
        business_due, warn_at = planned_due(goal, cal, started_at)
        return ClockPlan(target, policy_name, cal.name, cal.version, started_at, business_due, wall_due, warn_at)

    def elapsed(self, clock: Mapping[str, Any], end: datetime) -> tuple[float, float]:
        """(business, wall) seconds the clock ran from its start to `end`, its pauses excluded: the target
        less what is left before its (pause-shifted) business due time."""
        if end <= clock["started_at"]:
            return 0.0, 0.0
        cal = self.calendar_of(clock)
        wall = (end - clock["started_at"]).total_seconds() - float(clock.get("paused_s") or 0.0)
        if clock.get("rebased_at") is not None and not clock.get("paused_s"):  # moved to this target at rebased_at
            since = clock["rebased_at"]
            used = business_seconds(cal, since, end) if end > since else 0.0
            return float(clock.get("carried_s") or 0.0) + used, max(0.0, wall)
        state = self.evaluate(clock, clock["started_at"])
        if state is None or not clock.get("paused_s"):
            return business_seconds(cal, clock["started_at"], end), max(0.0, wall)
        target_s = state.business_used_s + state.business_left_s
        return target_s - business_seconds(cal, end, clock["business_due"]), max(0.0, wall)

    def calendar_of(self, clock: Mapping[str, Any]) -> Calendar:
        """The calendar a stored clock runs on (24/7 when its calendar is no longer configured)."""
        return self.settings.calendars.get(clock["calendar"], ALWAYS_OPEN)

    def evaluate(self, clock: Mapping[str, Any], now: datetime) -> sla.ClockState | None:
        """A stored clock evaluated at `now` with its policy's target; None when the policy is gone."""
        try:
            target = self.settings.policy(clock["policy"]).target(sla.TargetKind(clock["target"]))
        except (KeyError, ValueError):
            return None
        if target is None:
            return None
        running = sla.start_clock(target, clock["policy"], clock["started_at"], clock.get("calendar_version") or 1)
        if clock.get("rebased_at") is not None:  # moved to this target (an incident policy and back)
            running = replace(running, rebased_at=clock["rebased_at"], carried_s=float(clock.get("carried_s") or 0.0))
        if clock.get("fulfilled_at") is not None:
            running = sla.fulfil(running, clock["fulfilled_at"])
        return sla.evaluate(running, self.settings.calendars, now)

    def pauses(self, conversation: Mapping[str, Any], status: str) -> bool:
        """Whether `status` stops this conversation's clocks under its policy (default: pending)."""
        try:
            policy = self.settings.policy(conversation.get("policy") or "")
        except KeyError:
            return status == "pending"
        return status in policy.pausing_statuses

    def resumed(self, clock: Mapping[str, Any], now: datetime) -> dict[str, Any]:
        """The new due times of a clock paused at `clock["paused_at"]` and resumed at `now`: the business
        time that was left at the pause is planned again from `now`; the wall due moves by the pause."""
        paused_at = clock["paused_at"]
        cal = self.calendar_of(clock)
        pause_s = max(0.0, (now - paused_at).total_seconds())
        left = business_seconds(cal, paused_at, clock["business_due"])
        business_due = add_business(cal, now, left) if left > 0 else clock["business_due"]
        warn_at = clock.get("warn_at")
        if warn_at is not None and clock.get("warned_at") is None and warn_at > paused_at:
            warn_at = add_business(cal, now, business_seconds(cal, paused_at, warn_at))
        return {"paused_at": None, "state": "running", "paused_s": float(clock.get("paused_s") or 0.0) + pause_s,
                "business_due": business_due, "wall_due": clock["wall_due"] + timedelta(seconds=pause_s),
                "warn_at": warn_at}

    def rebased(self, clock: Mapping[str, Any], old: Calendar, now: datetime) -> dict[str, Any] | None:
        """A running clock moved from calendar version `old` to the configured version at `now`: the
        business time it had left on the old version is planned on the new one. None when nothing changes."""
        new = self.settings.calendars.get(clock["calendar"])
        if new is None or new.version == clock["calendar_version"]:
            return None
        ref = clock.get("paused_at") or now  # a paused clock is re-planned from its pause, resumed later
        left = business_seconds(old, ref, clock["business_due"])
        if left <= 0:
            return {"calendar_version": new.version}  # already due or breached: nothing left to plan
        update: dict[str, Any] = {"calendar_version": new.version, "business_due": add_business(new, ref, left)}
        warn_at = clock.get("warn_at")
        if warn_at is not None and clock.get("warned_at") is None and warn_at > ref:
            update["warn_at"] = add_business(new, ref, business_seconds(old, ref, warn_at))
        return update

    def counts_as_response(self, mention: InboundMention) -> bool:
        """Public replies count; private ones as configured; automated ones never."""
        kind = sla.ReplyKind.AUTOMATED if mention.automated else (
            sla.ReplyKind.PUBLIC if mention.public else sla.ReplyKind.PRIVATE)
        return sla.counts_as_response(self.settings.response_rule(mention.network), kind, FIRST)

    def view(self, conversation: Mapping[str, Any], now: datetime) -> ClockView:
        """Time left on the running clock's calendar (negative when overdue) and the customer's wait on the wall
        clock. A clock without a contract target (the customer expectation alone) is "late", never "breached"."""
        due = conversation.get("due_business")
        waiting_since = conversation.get("last_inbound_at")
        if conversation.get("status") == "pending":
            return ClockView(None, None, "paused")
        if due is None:
            return ClockView(None, None, "answered")
        cal, target = self._running_target(conversation)
        left = business_seconds(cal, now, due) if now < due else -business_seconds(cal, due, now)
        if now >= due and left == 0:
            left = -1.0
        waited = (now - waiting_since).total_seconds() if waiting_since else None
        lead = target.warn_lead() if target else None
        breached = left < 0 and target is not None  # without a contract target only the customer's hour is missed
        state = "breached" if breached else "warning" if lead is not None and left <= lead else "running"
        if state == "running" and conversation.get("due_wall") and now >= conversation["due_wall"]:
            state = "late"  # within the contract, but past the hour the customer expects
        return ClockView(left, waited, state)

    def moved(self, clock: Mapping[str, Any], policy_name: str, at: datetime, *,
              carried_s: float = 0.0) -> dict[str, Any] | None:
        """A running clock moved at `at` onto policy `policy_name`'s target of the same kind (a next-response
        clock falls back to the first-response target): that target counts from `at` (from the customer's
        message when it came later), with `carried_s` business seconds already used. None when the policy is
        unknown or sets no such target."""
        try:
            policy = self.settings.policy(policy_name)
        except KeyError:
            return None
        target = policy.target(sla.TargetKind(clock["target"])) or policy.target(FIRST)
        if target is None:
            return None
        cal = self.settings.calendar_for(target)
        ref = max(clock["started_at"], at)
        running = sla.Clock(target=target, policy=policy.name, started_at=clock["started_at"],
                            calendar_version=cal.version, rebased_at=ref, carried_s=carried_s)
        state = sla.evaluate(running, self.settings.calendars, ref)
        return {"policy": policy.name, "calendar": cal.name, "calendar_version": cal.version, "rebased_at": ref,
                "carried_s": carried_s, "business_due": state.business_due, "warn_at": state.warn_at}

    def returned(self, clock: Mapping[str, Any], conversation: Mapping[str, Any], at: datetime) -> dict[str, Any]:
        """A clock moved to an incident policy goes back at `at` to the conversation's own policy: the business
        time it had used on that policy before the move is carried, the rest is planned from `at`."""
        policy = self._policy_for(_facts(conversation))
        target = policy.target(sla.TargetKind(clock["target"]))
        if target is None:  # the conversation's policy sets no such target: only the customer expectation runs
            return {"policy": policy.name, "calendar": ALWAYS_OPEN.name, "calendar_version": 1, "rebased_at": None,
                    "carried_s": None, "business_due": clock["wall_due"], "warn_at": None}
        cal = self.settings.calendar_for(target)
        moved_at = clock.get("rebased_at") or clock["started_at"]
        used = business_seconds(cal, clock["started_at"], moved_at) if moved_at > clock["started_at"] else 0.0
        update = self.moved(clock, policy.name, at, carried_s=used)
        assert update is not None  # the policy exists and has this target
        return update
