"""The e-mail digest: scheduled by the leader's scheduler, built over the period that just ended, delivered
through the e-mail notifier's SMTP settings to a local SMTP server."""

from __future__ import annotations

import asyncio
import email
import email.policy
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from aiosmtpd.smtp import SMTP

from carebox import config
from carebox.commands.report import digest_job
from carebox.errors import ConfigError
from carebox.ports import Direction, IngestBatch

MONDAY_8H = datetime.fromisoformat("2025-11-24T08:00:00+01:00").astimezone(UTC)


class Mailbox:
    """An aiosmtpd handler that keeps every message it accepts."""

    def __init__(self) -> None:
        self.messages: list[tuple[list[str], bytes]] = []
        self.port = 0

    async def handle_DATA(self, server, session, envelope):
        self.messages.append((list(envelope.rcpt_tos), envelope.content))
        return "250 Message accepted"


@pytest.fixture
async def smtp():
    mailbox = Mailbox()
    server = await asyncio.get_running_loop().create_server(lambda: SMTP(mailbox, hostname="localhost"), "127.0.0.1", 0)
    mailbox.port = server.sockets[0].getsockname()[1]
    yield mailbox
    server.close()
    await server.wait_closed()


def _doc(tmp_path, db_url, port, **digest):
    notifier = {"name": "ops-mail", "type": "email", "host": "127.0.0.1", "port": port, "security": "none",
                "sender": "carebox@acme.example", "recipients": ["ops@acme.example"]}
    return {"carebox": {"data_dir": str(tmp_path)}, "database": {"url": db_url}, "notifiers": [notifier],
            "reports": {"digest": {"period": "weekly", "at": "08:00", "recipients": ["boss@acme.example"], **digest}}}


@pytest.fixture
async def history(settings, engine, mention):
    from carebox.runtime import make_pipeline

    pipeline = make_pipeline(replace(settings, pipeline=replace(settings.pipeline, quiet_gap_s=0.0)), engine)[0]
    out = Direction.OUTBOUND
    script = [  # two conversations in the week of 17 November, one in the week the digest is sent
        mention("my 4G is down", when="2025-11-18T10:00:00+01:00", author="c1", external_id="a1"),
        mention("sorry", when="2025-11-18T10:20:00+01:00", direction=out, author_id="acme", in_reply_to="a1"),
        mention("wrong bill", when="2025-11-21T15:00:00+01:00", author="c2", external_id="b1"),
        mention("new one", when="2025-11-24T07:30:00+01:00", author="c3", external_id="c1"),
    ]
    await pipeline.ingest([IngestBatch("sim", tuple(script))], MONDAY_8H)
    return engine


async def test_a_manager_receives_the_weekly_digest_on_monday_at_eight_local_time(tmp_path, db_url, smtp, history):
    from carebox.clocks import ClockBook
    from carebox.scheduler import Scheduler

    settings = config.parse(_doc(tmp_path, db_url, smtp.port), environ={})
    job = digest_job(settings, history, lambda: MONDAY_8H)
    assert job is not None
    scheduler = Scheduler(history, ClockBook(settings.sla), lambda: MONDAY_8H)
    scheduler.cron(job.run, "reports:digest", **job.plan.cron())
    (registered,) = [j for j in scheduler.aps.get_jobs() if j.id == "reports:digest"]
    friday = datetime.fromisoformat("2025-11-21T12:00:00+01:00")
    assert registered.trigger.get_next_fire_time(None, friday) == MONDAY_8H
    assert job.plan.next_run(friday) == MONDAY_8H

    await registered.args[0]()  # the scheduled callable, driven at its instant (the clock is pinned)

    ((rcpts, raw),) = smtp.messages
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert rcpts == ["boss@acme.example"] and message["From"] == "carebox@acme.example"
    assert message["Subject"].startswith("carebox digest") and "2 conversations" in message["Subject"]
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    assert "acme" in text and "<svg" in html and "Median first response per day" in html


async def test_daily_digest_covers_the_previous_local_day(tmp_path, db_url, smtp, history):
    settings = config.parse(_doc(tmp_path, db_url, smtp.port, period="daily", at="07:00"), environ={})
    job = digest_job(settings, history, lambda: MONDAY_8H)
    since, until = job.plan.window(datetime.fromisoformat("2025-11-22T07:00:00+01:00"))
    assert (since, until) == (datetime.fromisoformat("2025-11-21T00:00:00+01:00"),
                              datetime.fromisoformat("2025-11-22T00:00:00+01:00"))
    await job.send(datetime.fromisoformat("2025-11-22T07:00:00+01:00"))
    ((_, raw),) = smtp.messages
    assert "1 conversations" in email.message_from_bytes(raw, policy=email.policy.default)["Subject"]


def test_digest_is_off_by_default_and_needs_an_email_notifier(tmp_path, db_url):
    base = {"carebox": {"data_dir": str(tmp_path)}, "database": {"url": db_url}}
    assert digest_job(config.parse(base, environ={}), None, lambda: MONDAY_8H) is None
    with pytest.raises(ConfigError) as err:
        config.parse({**base, "reports": {"digest": {"recipients": ["boss@acme.example"]}}}, environ={})
    assert err.value.key == "reports.digest.notifier"
    with pytest.raises(ConfigError) as err:
        config.parse(_doc(tmp_path, db_url, 25, notifier="nope"), environ={})
    assert err.value.key == "reports.digest.notifier"
