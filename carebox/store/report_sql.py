"""SQL expressions shared by the report paths: epoch and local seconds, service hours, breakdown dimensions."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from carebox import reports
from carebox.models import Conversation, User
from carebox.reports import LocalTimePlan

conv = Conversation.__table__  # type: ignore[attr-defined]
user = User.__table__  # type: ignore[attr-defined]
UNASSIGNED = "(unassigned)"


def epoch_of(col: Any, dialect: str) -> Any:
    """Whole epoch seconds of a UTC datetime column."""
    if dialect == "sqlite":
        return sa.cast(sa.func.strftime("%s", col), sa.BigInteger)
    return sa.cast(sa.func.floor(sa.extract("epoch", col)), sa.BigInteger)


def local_of(plan: LocalTimePlan, epoch: Any) -> Any:
    """Local seconds since 1970-01-01 local: epoch plus the offset in force (one CASE branch per DST change)."""
    if len(plan.offsets) == 1:
        return epoch + plan.offsets[0][1]
    whens = [(epoch < start, offset) for (start, _), (_, offset) in zip(plan.offsets[1:], plan.offsets[:-1], strict=True)]
    return epoch + sa.case(*whens, else_=plan.offsets[-1][1])


def in_ranges(value: Any, ranges: tuple[tuple[int, int], ...]) -> Any:
    return sa.or_(sa.false(), *[sa.and_(value >= a, value < b) for a, b in ranges])


def is_open(plan: LocalTimePlan, local: Any) -> Any:
    """True when the local instant falls in service hours, holidays and partial days included."""
    if plan.always_open:
        return sa.true()
    weekly = in_ranges((local + 3 * 86400) % reports.WEEK_S, plan.weekly_open)
    if not plan.special:
        return weekly
    day = local // 86400
    special = sa.or_(sa.false(), *[sa.and_(day == d, in_ranges(local, spans)) for d, spans in plan.special])
    return sa.or_(sa.and_(day.not_in([d for d, _ in plan.special]), weekly), special)


def dimension(name: str) -> Any:
    """The SQL expression of a breakdown dimension."""
    return {
        "account": conv.c.account, "network": conv.c.network,
        "agent": sa.func.coalesce(user.c.username, UNASSIGNED), "priority": conv.c.priority,
        "category": conv.c.category, "language": sa.func.coalesce(conv.c.language, "?"),
    }[name]


def flag(cond: Any) -> Any:
    return sa.case((cond, 1), else_=0)
