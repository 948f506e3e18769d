"""The scheduled e-mail digest: when it runs, which period it covers, and the message it sends (pure)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from email.message import EmailMessage
from email.utils import make_msgid
from zoneinfo import ZoneInfo


@dataclass(frozen=True, slots=True)
class DigestPlan:
    """When the digest runs: daily or weekly (Mondays) at a local time of a time zone."""

    period: str  # "daily" | "weekly"
    at: str  # "HH:MM", local
    timezone: str

    def cron(self) -> dict[str, object]:
        """The fields of an APScheduler CronTrigger firing at the digest's instants."""
        hour, minute = (int(p) for p in self.at.split(":"))
        fields: dict[str, object] = {"hour": hour, "minute": minute, "timezone": ZoneInfo(self.timezone)}
        if self.period == "weekly":
            fields["day_of_week"] = "mon"
        return fields

    def next_run(self, after: datetime) -> datetime:
        """The first instant strictly after `after` at which the digest runs (UTC)."""
        tz = ZoneInfo(self.timezone)
        hour, minute = (int(p) for p in self.at.split(":"))
        day = after.astimezone(tz).date()
        while True:
            candidate = datetime.combine(day, time(hour, minute), tz)
            if candidate > after and (self.period == "daily" or day.weekday() == 0):
                return candidate.astimezone(UTC)
            day += timedelta(days=1)

    def window(self, run_at: datetime) -> tuple[datetime, datetime]:
        """The period a run at `run_at` reports on: the previous local day, or the previous Monday..Monday."""
        tz = ZoneInfo(self.timezone)
        today = run_at.astimezone(tz).date()
        if self.period == "weekly":
            end = today - timedelta(days=today.weekday())
            start = end - timedelta(days=7)
        else:
            end, start = today, today - timedelta(days=1)
        return (datetime.combine(start, time(0), tz).astimezone(UTC), datetime.combine(end, time(0), tz).astimezone(UTC))


def digest_email(subject: str, text: str, html: str, sender: str, recipients: Sequence[str]) -> EmailMessage:
    """The multipart/alternative digest: the text table, and HTML with its inline SVG chart."""
    message = EmailMessage()
    message["Subject"] = subject.replace("\n", " ")[:200]
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    message["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or None)
    message["X-Carebox-Digest"] = "reports"
    message.set_content(text + "\n")
    message.add_alternative(html, subtype="html")
    return message
