"""The incident page's chart: complaints per minute as bars, the detector's expected count as a line."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import pairwise

CHART_BEFORE = timedelta(minutes=60)
CHART_SPAN = timedelta(hours=12)  # past this the chart stops: one bar a minute stays readable
CHART_W, CHART_H, CHART_LEFT, CHART_BOTTOM, CHART_TOP = 720, 180, 36, 22, 8


@dataclass(frozen=True, slots=True)
class Bar:
    """One minute of complaints on the chart."""

    x: float
    y: float
    w: float
    h: float
    count: int
    at: datetime


@dataclass(frozen=True, slots=True)
class Chart:
    """The geometry of the complaints-per-minute chart, in SVG user units."""

    bars: tuple[Bar, ...]
    markers: tuple[tuple[float, str], ...]
    peak: int
    since: datetime
    until: datetime
    total: int
    clipped: bool
    baseline: tuple[str, ...] = ()  # SVG polyline point lists, one per unbroken stretch of expected counts
    expected_peak: float = 0.0


def chart(times: list[datetime], since: datetime, until: datetime, marks: dict[str, datetime | None],
          expected: Sequence[Sequence[float]] = ()) -> Chart:
    """Complaints per minute from `since` to `until` as bars, with vertical markers at `marks` (label -> time),
    and the detector's expected complaints per minute (`expected`: [bucket start epoch, counted, expected])."""
    clipped = until - since > CHART_SPAN + CHART_BEFORE
    until = min(until, since + CHART_SPAN + CHART_BEFORE)
    minutes = max(1, math.ceil((until - since).total_seconds() / 60))
    counts = [0] * minutes
    for t in times:
        i = int((t - since).total_seconds() // 60)
        if 0 <= i < minutes:
            counts[i] += 1
    rates = _per_minute(expected, since, until)
    top = max(max(counts), math.ceil(max((r for _, r in rates), default=0.0))) or 1
    width, height = CHART_W - CHART_LEFT - 4, CHART_H - CHART_BOTTOM - CHART_TOP
    step = width / minutes
    bars = tuple(Bar(x=round(CHART_LEFT + i * step, 2), y=round(CHART_TOP + height * (1 - n / top), 2),
                     w=round(max(step - 0.5, 0.5), 2), h=round(height * n / top, 2), count=n,
                     at=since + timedelta(minutes=i)) for i, n in enumerate(counts) if n)
    span = (until - since).total_seconds()
    markers = tuple((round(CHART_LEFT + width * (at - since).total_seconds() / span, 2), label)
                    for label, at in marks.items() if at is not None and since <= at <= until)
    lines: list[list[str]] = []
    previous: datetime | None = None
    for at, rate in rates:
        if previous is None or at - previous > timedelta(minutes=2):
            lines.append([])
        x = CHART_LEFT + width * ((at - since).total_seconds() + 30) / span  # the middle of its minute
        lines[-1].append(f"{x:.2f},{CHART_TOP + height * (1 - rate / top):.2f}")
        previous = at
    return Chart(bars=bars, markers=markers, peak=top if rates else max(counts), since=since, until=until,
                 total=sum(counts), clipped=clipped, baseline=tuple(" ".join(p) for p in lines),
                 expected_peak=round(max((r for _, r in rates), default=0.0), 2))


def _per_minute(points: Sequence[Sequence[float]], since: datetime, until: datetime) -> list[tuple[datetime, float]]:
    """The expected counts as (minute start, complaints per minute) within the chart, whatever the bucket size."""
    starts = sorted({float(p[0]) for p in points})
    size = min((b - a for a, b in pairwise(starts) if b > a), default=60.0)
    out = []
    for start, _counted, want in sorted((float(p[0]), p[1], float(p[2])) for p in points if len(p) >= 3):
        at = datetime.fromtimestamp(start, UTC)
        if since <= at < until:
            out.append((at, want * 60.0 / size))
    return out
