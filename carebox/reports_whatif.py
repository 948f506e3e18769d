"""What-if: first-response attainment recomputed over stored history under other service hours or targets."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from carebox.calendar import (
    DAYS,
    Calendar,
    add_business,
    business_seconds,
    parse_windows,
)
from carebox.duration import parse_duration
from carebox.errors import ConfigError
from carebox.reports import QUANTILES, Summary, pct, summarize
from carebox.sla import SlaSettings, TargetKind

Pair = tuple[datetime, datetime | None]  # (first customer message, first response or None)


@dataclass(frozen=True, slots=True)
class Scenario:
    """Service hours and a first-response target to replay history against."""

    name: str
    calendar: Calendar
    target_s: float


@dataclass(frozen=True, slots=True)
class Outcome:
    """How history fares under one scenario."""

    scenario: str
    conversations: int
    met: int
    breached: int
    pending: int
    attainment_pct: float | None
    business: Summary


def outcome(pairs: Iterable[Pair], scenario: Scenario, now: datetime) -> Outcome:
    """Met when the response came by the business due time of `scenario`; breached when it came later or
    has not come by `now` although due; pending otherwise."""
    met = breached = pending = total = 0
    waits: list[float] = []
    for first, response in pairs:
        total += 1
        due = add_business(scenario.calendar, first, scenario.target_s)
        if response is not None:
            waits.append(max(0.0, business_seconds(scenario.calendar, first, response)))
            if response <= due:
                met += 1
            else:
                breached += 1
        elif now >= due:
            breached += 1
        else:
            pending += 1
    return Outcome(scenario.name, total, met, breached, pending, pct(met, met + breached), summarize(waits))


def compare(pairs: Sequence[Pair], scenarios: Sequence[Scenario], now: datetime) -> list[Outcome]:
    """One Outcome per scenario, over the same history (the first scenario is usually "as configured")."""
    return [outcome(pairs, s, now) for s in scenarios]


def with_hours(calendar: Calendar, spec: str) -> Calendar:
    """`calendar` with some days' hours replaced: "sat=09:00-17:00; sun=closed; mon-fri=08:00-20:00"."""
    weekly = list(calendar.weekly)
    for part in filter(None, (p.strip() for p in spec.split(";"))):
        days, _, hours = part.partition("=")
        key = f"what-if hours {part!r}"
        indexes = _days(days.strip().lower(), key)
        windows = () if hours.strip().lower() in ("closed", "") else parse_windows(
            [h.strip() for h in hours.split(",")], key)
        for i in indexes:
            weekly[i] = tuple(sorted(windows))
    if not any(weekly) and not calendar.always_open:
        raise ConfigError("--what-if-hours", "at least one opening window left in the week")
    return replace(calendar, name=f"{calendar.name} (what-if)", weekly=tuple(weekly), version=calendar.version + 1)


def _days(text: str, key: str) -> list[int]:
    if "-" in text:
        a, _, b = text.partition("-")
        if a in DAYS and b in DAYS and DAYS.index(a) <= DAYS.index(b):
            return list(range(DAYS.index(a), DAYS.index(b) + 1))
    elif text in DAYS:
        return [DAYS.index(text)]
    raise ConfigError(key, 'days such as "sat", "mon-fri" followed by "=HH:MM-HH:MM" or "=closed"')


def scenarios(actual: Scenario, hours: str | None, target: str | None) -> list[Scenario]:
    """The configured scenario, then the one the what-if flags describe (hours, target or both)."""
    if not hours and not target:
        return [actual]
    cal = with_hours(actual.calendar, hours) if hours else actual.calendar
    target_s = parse_duration(target, "--what-if-target") if target else actual.target_s
    if target_s <= 0:
        raise ConfigError("--what-if-target", "a positive duration")
    label = ", ".join(filter(None, [f"hours {hours}" if hours else "", f"target {target}" if target else ""]))
    return [actual, Scenario(f"what if: {label}", cal, target_s)]


def outcome_row(o: Outcome) -> dict[str, object]:
    """An Outcome as plain JSON."""
    return {
        "scenario": o.scenario, "conversations": o.conversations, "met": o.met, "breached": o.breached,
        "pending": o.pending, "attainment_pct": o.attainment_pct,
        **{f"frt_business_p{round(q * 100)}_s": getattr(o.business, f"p{round(q * 100)}") for q in QUANTILES},
    }


def configured_scenario(sla: SlaSettings, name: str = "as configured") -> Scenario | None:
    """The first-response target and calendar of the first policy that sets one (None when none does)."""
    for policy in sla.policies:
        target = policy.target(TargetKind.FIRST_RESPONSE)
        if target is not None:
            return Scenario(f"{name} ({policy.name}: {target.seconds / 60:g} min, {target.calendar or '24/7'})",
                            sla.calendar_for(target), target.seconds)
    return None
