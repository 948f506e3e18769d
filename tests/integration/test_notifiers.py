"""Each notifier against its fake receiver on a local port; the router driving a flaky PagerDuty."""

from __future__ import annotations

import asyncio
import email
import email.policy
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest
from aiosmtpd.smtp import SMTP

from carebox.alerting import Alert, AlertingSettings, ReceiverSettings, Router
from carebox.errors import (
    AuthenticationFailed,
    ConfigError,
    ConnectorUnavailable,
    RateLimited,
    ReplyRejected,
)
from carebox.ports import Notification
from connectors.notify import NOTIFIERS, send_all
from connectors.notify.email import EmailNotifier
from connectors.notify.pagerduty import PagerDutyNotifier
from connectors.notify.slack import SlackNotifier
from connectors.notify.webhook import WebhookNotifier, sign_body, verify_signature
from tests.fakes import slack as fake_slack
from tests.fakes import webhook_receiver
from tests.fakes.pagerduty import FakePagerDuty
from tests.fakes.slack import FakeSlack
from tests.fakes.webhook_receiver import WebhookReceiver

ROUTING_KEY = "0123456789abcdef0123456789abcdef"  # 32 characters, like a real integration key
NOW = 1_795_000_000.0
INCIDENT = Notification(
    key="incident-42",
    title="acme_fr: 4G outage in Lyon",
    body="37 complaints in 5 minutes (baseline 2)",
    severity="critical",
    url="https://carebox.example/incidents/42",
    details={"account": "acme_fr", "cluster": "4g lyon", "complaints": 37},
)
RESOLVE = Notification(key="incident-42", title="acme_fr: 4G outage in Lyon", body="", action="resolve")


@pytest.fixture
async def session():
    async with aiohttp.ClientSession() as s:
        yield s


@pytest.fixture
async def pagerduty(aiohttp_server):
    fake = FakePagerDuty()
    server = await aiohttp_server(fake.app)
    fake.url = str(server.make_url("/v2/enqueue"))
    return fake


@pytest.fixture
async def slack(aiohttp_server):
    fake = FakeSlack()
    server = await aiohttp_server(fake.app)
    fake.url = str(server.make_url(fake_slack.PATH))
    return fake


# ---- signed webhook ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("secret", "header_time", "now", "ok"),
    [("s3cret", NOW, NOW, True), ("s3cret", NOW, NOW + 299, True), ("s3cret", NOW, NOW + 301, False),
     ("s3cret", NOW + 301, NOW, False), ("other", NOW, NOW, False)],
)
def test_verify_signature_accepts_only_the_right_secret_within_tolerance(secret, header_time, now, ok):
    body = b'{"key":"incident-42"}'
    header = sign_body("s3cret", body, int(header_time))
    assert verify_signature(secret, header, body, now, 300) is ok


def test_verify_signature_refuses_a_tampered_body_or_missing_header():
    header = sign_body("s3cret", b"{}", int(NOW))
    assert not verify_signature("s3cret", header, b'{"x":1}', NOW, 300)
    assert not verify_signature("s3cret", None, b"{}", NOW, 300)
    assert verify_signature("s3cret", header, b"{}", datetime.fromtimestamp(NOW, UTC), 300)


async def test_webhook_delivers_signed_json_the_receiver_verifies(aiohttp_server, session):
    receiver = WebhookReceiver("s3cret", clock=lambda: NOW + 5)
    server = await aiohttp_server(receiver.app)
    notifier = WebhookNotifier("hook", session, str(server.make_url(webhook_receiver.PATH)), "s3cret",
                               clock=lambda: NOW)
    await notifier.send(INCIDENT)
    assert receiver.refused == []
    (got,) = receiver.received
    assert (got["key"], got["action"], got["severity"], got["sent_at"]) == ("incident-42", "trigger", "critical",
                                                                           int(NOW))
    assert got["details"]["complaints"] == 37


@pytest.mark.parametrize(
    ("secret", "sender_clock", "reason"),
    [("wrong", NOW, "does not match"), ("s3cret", NOW - 600, "outside tolerance")],
)
async def test_webhook_receiver_refuses_bad_or_replayed_signatures(aiohttp_server, session, secret, sender_clock,
                                                                   reason):
    receiver = WebhookReceiver("s3cret", clock=lambda: NOW)
    server = await aiohttp_server(receiver.app)
    notifier = WebhookNotifier("hook", session, str(server.make_url(webhook_receiver.PATH)), secret,
                               clock=lambda: sender_clock)
    with pytest.raises(AuthenticationFailed):
        await notifier.send(INCIDENT)
    assert reason in receiver.refused[0]
    assert receiver.received == []


async def test_webhook_server_error_is_unavailable(aiohttp_server, session):
    receiver = WebhookReceiver("s3cret")
    receiver.fail_status = 502
    server = await aiohttp_server(receiver.app)
    notifier = WebhookNotifier("hook", session, str(server.make_url(webhook_receiver.PATH)), "s3cret")
    with pytest.raises(ConnectorUnavailable):
        await notifier.send(INCIDENT)


# ---- Slack ---------------------------------------------------------------------------------------


async def test_slack_gets_header_fields_and_a_button_to_the_incident(slack, session):
    await SlackNotifier("slack", session, slack.url).send(INCIDENT)
    (message,) = slack.posted
    assert message["text"] == "CRITICAL: acme_fr: 4G outage in Lyon — https://carebox.example/incidents/42"
    types = [b["type"] for b in message["blocks"]]
    assert types == ["header", "section", "section", "actions", "context"]
    assert "4G outage in Lyon" in message["blocks"][0]["text"]["text"]
    assert message["blocks"][3]["elements"][0]["url"] == "https://carebox.example/incidents/42"
    fields = " ".join(f["text"] for f in message["blocks"][2]["fields"])
    assert "*Complaints*\n37" in fields


async def test_slack_resolve_reads_resolved_and_long_titles_are_clipped(slack, session):
    await SlackNotifier("slack", session, slack.url).send(
        Notification(key="k", title="x" * 500, body="", action="resolve"))
    header = slack.posted[0]["blocks"][0]["text"]["text"]
    assert header.startswith(":white_check_mark: RESOLVED: xxx") and len(header) == 150


@pytest.mark.parametrize(
    ("switch", "error"),
    [("throttle", RateLimited), ("fail_status", ConnectorUnavailable), ("down", ConnectorUnavailable)],
)
async def test_slack_failures_map_to_carebox_errors(slack, session, switch, error):
    setattr(slack, switch, 500 if switch == "fail_status" else True)
    with pytest.raises(error) as info:
        await SlackNotifier("slack", session, slack.url).send(INCIDENT)
    if error is RateLimited:
        assert info.value.retry_after == 30


# ---- PagerDuty -----------------------------------------------------------------------------------


async def test_pagerduty_trigger_retrigger_resolve_keep_one_incident_per_dedup_key(pagerduty, session):
    notifier = PagerDutyNotifier("pd", session, ROUTING_KEY, url=pagerduty.url)
    await notifier.send(INCIDENT)
    await notifier.send(Notification(**{**_fields(INCIDENT), "title": "escalated"}))
    await notifier.send(RESOLVE)
    (incident,) = pagerduty.incidents
    assert (incident.dedup_key, incident.triggers, incident.status, incident.summary) == (
        "incident-42", 2, "resolved", "escalated")
    trigger = pagerduty.events[0]
    assert trigger["payload"]["severity"] == "critical"
    assert trigger["payload"]["custom_details"]["complaints"] == 37
    assert trigger["links"] == [{"href": "https://carebox.example/incidents/42", "text": "Open incident in carebox"}]
    assert pagerduty.events[2] == {"routing_key": ROUTING_KEY, "event_action": "resolve", "dedup_key": "incident-42"}


async def test_pagerduty_trigger_after_resolve_opens_a_new_incident(pagerduty, session):
    notifier = PagerDutyNotifier("pd", session, ROUTING_KEY, url=pagerduty.url)
    for n in (INCIDENT, RESOLVE, INCIDENT):
        await notifier.send(n)
    assert [i.status for i in pagerduty.incidents] == ["resolved", "triggered"]


async def test_pagerduty_summary_is_clipped_to_1024_and_unknown_severity_becomes_warning(pagerduty, session):
    notifier = PagerDutyNotifier("pd", session, ROUTING_KEY, url=pagerduty.url)
    await notifier.send(Notification(key="k", title="y" * 5000, body="", severity="high"))
    payload = pagerduty.events[0]["payload"]
    assert len(payload["summary"]) == 1024 and payload["severity"] == "warning"


async def test_pagerduty_invalid_event_is_rejected_not_retried(pagerduty, session):
    with pytest.raises(ReplyRejected, match="routing_key"):
        await PagerDutyNotifier("pd", session, "short", url=pagerduty.url).send(INCIDENT)
    assert pagerduty.incidents == []


@pytest.mark.parametrize(
    ("switch", "error"),
    [("throttle", RateLimited), ("fail_status", ConnectorUnavailable), ("down", ConnectorUnavailable)],
)
async def test_pagerduty_failures_map_to_carebox_errors(pagerduty, session, switch, error):
    setattr(pagerduty, switch, 500 if switch == "fail_status" else True)
    with pytest.raises(error) as info:
        await PagerDutyNotifier("pd", session, ROUTING_KEY, url=pagerduty.url).send(INCIDENT)
    if error is RateLimited:
        assert info.value.retry_after == 7


async def test_pagerduty_down_ten_minutes_then_up_gets_one_incident_with_the_same_dedup_key(pagerduty, session):
    receivers = {"pd": ReceiverSettings("pd", "pagerduty", {"name": "pd"})}
    router = Router(AlertingSettings(receivers, ("pd",)))
    notifiers = {"pd": PagerDutyNotifier("pd", session, ROUTING_KEY, url=pagerduty.url)}
    start = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
    alert = Alert("incident-42", "acme_fr", "4G outage in Lyon", "critical", cluster="4g")
    router.submit(alert, start)
    pagerduty.down = True
    for second in range(0, 40 * 60, 10):
        now = start + timedelta(seconds=second)
        pagerduty.down = second < 600
        if second == 20 * 60:
            router.submit(Alert("incident-42", "acme_fr", "4G outage in Lyon", "critical", "resolved", "4g"), now)
        for delivery, error in await send_all(notifiers, router.due(now)):
            router.delivered(delivery, error is None, now, error)
    (incident,) = pagerduty.incidents
    assert (incident.dedup_key, incident.triggers, incident.status) == ("incident-42", 1, "resolved")
    assert [e["event_action"] for e in pagerduty.events] == ["trigger", "resolve"]
    outcomes = [a.outcome for a in router.attempts_for("incident-42")]
    assert outcomes.count("failed") >= 4 and outcomes[-2:] == ["ok", "ok"]


def _fields(n: Notification) -> dict:
    return {f: getattr(n, f) for f in Notification.__dataclass_fields__}


# ---- e-mail --------------------------------------------------------------------------------------


class Mailbox:
    """An aiosmtpd handler that keeps messages and refuses one address."""

    def __init__(self) -> None:
        self.messages: list[tuple[list[str], bytes]] = []

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.startswith("nobody@"):
            return "550 5.1.1 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.messages.append((list(envelope.rcpt_tos), envelope.content))
        return "250 Message accepted"


@pytest.fixture
async def smtp():
    mailbox = Mailbox()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SMTP(mailbox, hostname="localhost"), "127.0.0.1", 0)
    mailbox.port = server.sockets[0].getsockname()[1]
    yield mailbox
    server.close()
    await server.wait_closed()


async def test_email_sends_plain_text_with_html_alternative(smtp):
    notifier = EmailNotifier("mail", "127.0.0.1", smtp.port, "carebox@acme.example", ["ops@acme.example"],
                             security="none")
    await notifier.send(INCIDENT)
    ((rcpts, raw),) = smtp.messages
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert rcpts == ["ops@acme.example"]
    assert message["Subject"] == "[CRITICAL] acme_fr: 4G outage in Lyon"
    assert message.get_content_type() == "multipart/alternative"
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    assert "37 complaints in 5 minutes" in text and "https://carebox.example/incidents/42" in text
    assert "<a href='https://carebox.example/incidents/42'>" in html


async def test_email_escapes_html_in_titles(smtp):
    notifier = EmailNotifier("mail", "127.0.0.1", smtp.port, "carebox@acme.example", ["ops@acme.example"],
                             security="none")
    await notifier.send(Notification(key="k", title="<script>x</script>", body="a & b"))
    html = email.message_from_bytes(smtp.messages[0][1], policy=email.policy.default).get_body(("html",))
    assert "<script>" not in html.get_content() and "a &amp; b" in html.get_content()


async def test_email_refused_recipient_is_rejected(smtp):
    notifier = EmailNotifier("mail", "127.0.0.1", smtp.port, "carebox@acme.example", ["nobody@acme.example"],
                             security="none")
    with pytest.raises(ReplyRejected):
        await notifier.send(INCIDENT)


async def test_email_server_unreachable_is_unavailable(unused_tcp_port):
    notifier = EmailNotifier("mail", "127.0.0.1", unused_tcp_port, "carebox@acme.example", ["ops@acme.example"],
                             security="none", timeout=2)
    with pytest.raises(ConnectorUnavailable):
        await notifier.send(INCIDENT)


# ---- registry and config -------------------------------------------------------------------------


async def test_registry_builds_each_notifier_from_config_with_secrets_from_env(session):
    env = {"PD_KEY": ROUTING_KEY, "SLACK_URL": "https://hooks.slack.com/services/T/B/X", "HOOK_SECRET": "s"}
    tables = [
        {"name": "pd", "type": "pagerduty", "routing_key_env": "PD_KEY"},
        {"name": "slack", "type": "slack", "webhook_url_env": "SLACK_URL"},
        {"name": "hook", "type": "webhook", "url": "https://ops.example/hook", "secret_env": "HOOK_SECRET"},
        {"name": "mail", "type": "email", "host": "smtp.example", "sender": "a@b.example",
         "recipients": ["c@d.example"]},
    ]
    built = [NOTIFIERS[t["type"]](t, session, env) for t in tables]
    assert [n.name for n in built] == ["pd", "slack", "hook", "mail"]


@pytest.mark.parametrize(
    ("table", "env", "key"),
    [
        ({"name": "pd", "type": "pagerduty", "routing_key_env": "PD_KEY"}, {}, "notifiers.pd.routing_key_env"),
        ({"name": "pd", "type": "pagerduty", "routing_key_env": "PD_KEY"}, {"PD_KEY": "x"},
         "notifiers.pd.routing_key_env"),
        ({"name": "s", "type": "slack", "webhook_url_env": "U"}, {"U": "ftp://x"}, "notifiers.s.webhook_url_env"),
        ({"name": "m", "type": "email", "host": "h", "sender": "a@b", "recipients": []}, {},
         "notifiers.m.recipients"),
        ({"name": "h", "type": "webhook", "url": "https://x", "secret_env": "S", "timeout": "soon"}, {"S": "s"},
         "notifiers.h.timeout"),
    ],
)
async def test_from_config_names_the_bad_key(session, table, env, key):
    with pytest.raises(ConfigError) as info:
        NOTIFIERS[table["type"]](table, session, env)
    assert info.value.key == key
