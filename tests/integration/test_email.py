"""The e-mail connector against real SMTP on local ports: inbound relay target and outbound replies."""

from __future__ import annotations

import asyncio
import logging
from email import message_from_bytes, policy

import aiosmtplib
import pytest
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, Session

from carebox.errors import (
    AuthenticationFailed,
    ConfigError,
    ConnectorUnavailable,
    ReplyRejected,
)
from carebox.ports import IngestBatch, OutboundReply
from connectors._http import Backoff
from connectors.social.email import EmailConnector, from_config, parse_options
from tests.fakes.imap import FakeImapServer
from tests.fakes.sink import RecordingSink

BRAND = "support@brand.example"
CUSTOMER_MAIL = (
    "From: Jane Doe <jane@example.org>\r\n"
    "To: support@brand.example\r\n"
    "Subject: Internet down since this morning\r\n"
    "Date: Sun, 22 Nov 2026 08:01:00 +0100\r\n"
    "Message-ID: <first@mail.example.org>\r\n"
    "Content-Type: text/plain; charset=utf-8\r\n"
    "\r\n"
    "My box has been blinking red since 7am.\r\n"
)


def connector(**options) -> EmailConnector:
    base = {"name": "mail", "account": BRAND, "inbound": "smtp", "listen_port": 0, "smtp_security": "none", "smtp_timeout": "5s",
            **options}
    return EmailConnector(parse_options(base, "connectors.mail"), backoff=Backoff(base=0))


class FailingSink(RecordingSink):
    """A sink whose store is down."""

    async def put_durable(self, batch: IngestBatch) -> None:
        raise OSError("disk full")


class GatedSink(RecordingSink):
    """Holds put_durable until released, to see when the relay gets its answer."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = asyncio.Event()
        self.release = asyncio.Event()

    async def put_durable(self, batch: IngestBatch) -> None:
        self.entered.set()
        await self.release.wait()
        await super().put_durable(batch)


async def running(conn: EmailConnector, sink) -> asyncio.Task:
    task = asyncio.create_task(conn.run(sink, None))
    async with asyncio.timeout(5):
        await conn.listening.wait()
    return task


async def stop(task: asyncio.Task) -> None:
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def relay(conn: EmailConnector, message: str, rcpt: str = BRAND):
    return await aiosmtplib.send(
        message, sender="jane@example.org", recipients=[rcpt], hostname="127.0.0.1", port=conn.bound_port,
        start_tls=False, timeout=5,
    )


# ---------------------------------------------------------------- inbound


async def test_relayed_mail_becomes_a_durable_mention():
    conn, sink = connector(), RecordingSink()
    task = await running(conn, sink)
    try:
        errors, answer = await relay(conn, CUSTOMER_MAIL)
        assert errors == {} and "queued" in answer
        assert sink.durable == [True]
        (m,) = sink.mentions
        assert (m.external_id, m.author_id, m.thread_key, m.public) == (
            "first@mail.example.org", "jane@example.org", "first@mail.example.org", False,
        )
        assert m.text.startswith("Internet down since this morning\n\nMy box")
        assert conn.last_ok_at is not None
    finally:
        await stop(task)


async def test_unparseable_mail_is_dead_lettered_and_accepted():
    conn, sink = connector(), RecordingSink()
    task = await running(conn, sink)
    try:
        await relay(conn, "Subject: nobody sent this\r\n\r\nhello\r\n")
        assert sink.mentions == []
        (dead,) = sink.rejected
        assert dead.reason == "no usable From address" and "nobody sent this" in dead.payload
    finally:
        await stop(task)


async def test_other_recipients_are_refused_so_carebox_is_no_open_relay():
    conn, sink = connector(), RecordingSink()
    task = await running(conn, sink)
    try:
        with pytest.raises(aiosmtplib.SMTPRecipientsRefused):
            await relay(conn, CUSTOMER_MAIL, rcpt="someone@elsewhere.example")
        assert sink.batches == []
    finally:
        await stop(task)


async def test_store_failure_answers_451_so_the_relay_keeps_the_mail():
    conn = connector()
    task = await running(conn, FailingSink())
    try:
        with pytest.raises(aiosmtplib.SMTPDataError) as info:
            await relay(conn, CUSTOMER_MAIL)
        assert info.value.code == 451
        assert conn.last_error == "disk full"
    finally:
        await stop(task)


async def test_relay_is_answered_only_once_the_batch_is_durable():
    conn, sink = connector(), GatedSink()
    task = await running(conn, sink)
    try:
        sending = asyncio.create_task(relay(conn, CUSTOMER_MAIL))
        await sink.entered.wait()
        await asyncio.sleep(0.05)  # give a premature 250 every chance to arrive
        assert not sending.done()
        sink.release.set()
        await sending
        assert len(sink.mentions) == 1
    finally:
        await stop(task)


async def test_oversized_mail_is_refused():
    conn, sink = connector(max_message_bytes=2048), RecordingSink()
    task = await running(conn, sink)
    try:
        with pytest.raises(aiosmtplib.SMTPResponseException) as info:
            await relay(conn, CUSTOMER_MAIL + "x" * 4096 + "\r\n")
        assert info.value.code == 552
        assert sink.batches == []
    finally:
        await stop(task)


# ---------------------------------------------------------------- outbound


class OutboxHandler:
    """A local SMTP server's handler that records what it was given, or refuses with a set answer."""

    def __init__(self) -> None:
        self.received: list[Envelope] = []
        self.answer = "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.answer.startswith("250"):
            self.received.append(envelope)
        return self.answer


@pytest.fixture
async def outbox():
    handler = OutboxHandler()

    def authenticator(server, session, envelope, mechanism, auth_data):
        return AuthResult(success=auth_data.login == b"brand" and auth_data.password == b"right", handled=False)

    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(handler, authenticator=authenticator, auth_require_tls=False), "127.0.0.1", 0
    )
    yield handler, server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()


REPLY = OutboundReply(
    network="email",
    account=BRAND,
    in_reply_to="first@mail.example.org",
    text="Sorry Jane, an engineer is on the way.",
    public=False,
    customer_handle="jane@example.org",
    customer_id="jane@example.org",
    thread_key="first@mail.example.org",
)


async def test_reply_is_sent_threaded_under_the_customer_mail(outbox):
    handler, port = outbox
    conn, sink = connector(smtp_port=port, from_name="Brand Support"), RecordingSink()
    task = await running(conn, sink)
    try:
        await relay(conn, CUSTOMER_MAIL)  # teaches the connector the subject of the thread
    finally:
        await stop(task)
    sent = await conn.send_reply(REPLY)
    (envelope,) = handler.received
    assert envelope.rcpt_tos == ["jane@example.org"] and envelope.mail_from == BRAND
    msg = message_from_bytes(envelope.original_content, policy=policy.default)
    assert msg["Subject"] == "Re: Internet down since this morning"
    assert msg["In-Reply-To"] == "<first@mail.example.org>"
    assert msg["References"] == "<first@mail.example.org>"
    assert msg["From"] == "Brand Support <support@brand.example>"
    assert msg["Message-ID"] == f"<{sent.external_id}>" and sent.external_id.endswith("@brand.example")
    assert msg.get_content().strip() == REPLY.text


async def test_reply_in_an_unknown_thread_uses_the_configured_subject_and_thread_root(outbox):
    handler, port = outbox
    reply = OutboundReply(**{**{f: getattr(REPLY, f) for f in REPLY.__slots__}, "in_reply_to": "later@x.org"})
    await connector(smtp_port=port, reply_subject="Your request").send_reply(reply)
    msg = message_from_bytes(handler.received[0].original_content, policy=policy.default)
    assert msg["Subject"] == "Re: Your request"
    assert msg["References"] == "<first@mail.example.org> <later@x.org>"


async def test_reply_authenticates_with_the_password_from_the_environment(outbox):
    handler, port = outbox
    options = {"account": BRAND, "inbound": "smtp", "smtp_port": port, "smtp_security": "none", "smtp_username": "brand",
               "smtp_password_env": "SMTP_PW", "smtp_timeout": "5s"}
    conn = from_config("mail", options, session=None, environ={"SMTP_PW": "right"})
    await conn.send_reply(REPLY)
    assert len(handler.received) == 1
    bad = from_config("mail", options, session=None, environ={"SMTP_PW": "wrong"})
    with pytest.raises(AuthenticationFailed):
        await bad.send_reply(REPLY)


def test_missing_smtp_password_is_a_config_error():
    options = {"account": BRAND, "inbound": "smtp", "smtp_username": "brand", "smtp_password_env": "SMTP_PW"}
    with pytest.raises(ConfigError) as info:
        from_config("mail", options, session=None, environ={})
    assert info.value.key == "connectors.mail.smtp_password_env"


@pytest.mark.parametrize(
    ("answer", "error"),
    [("550 5.7.1 message refused", ReplyRejected), ("451 4.3.0 try later", ConnectorUnavailable)],
)
async def test_smtp_refusals_map_to_carebox_errors(outbox, answer, error):
    handler, port = outbox
    handler.answer = answer
    conn = connector(smtp_port=port, send_attempts=2)
    with pytest.raises(error):
        await conn.send_reply(REPLY)
    assert (conn.last_error is not None) is (error is ConnectorUnavailable)


async def test_temporary_refusal_is_retried_and_then_delivered(outbox):
    handler, port = outbox
    handler.answer = "451 4.3.0 try later"
    conn = connector(smtp_port=port, send_attempts=3)

    async def recover():
        while conn.last_error is None:
            await asyncio.sleep(0)
        handler.answer = "250 OK"

    recovering = asyncio.create_task(recover())
    await conn.send_reply(REPLY)
    await recovering
    assert len(handler.received) == 1 and conn.last_error is None


async def test_unreachable_smtp_server_is_unavailable():
    conn = connector(smtp_port=1, send_attempts=1)
    with pytest.raises(ConnectorUnavailable):
        await conn.send_reply(REPLY)


# ---------------------------------------------------------------- inbound by IMAP polling


def customer_mail(n: int) -> bytes:
    return CUSTOMER_MAIL.replace("<first@", f"<m{n}@").replace("since 7am", f"since {n}am").encode()


def imap_connector(port: int, **options) -> EmailConnector:
    base = {
        "name": "mail", "account": BRAND, "inbound": "imap", "imap_host": "127.0.0.1", "imap_port": port,
        "imap_security": "none", "imap_password_env": "IMAP_PW", "poll_interval": "20ms", "imap_timeout": "5s",
        **options,
    }
    return EmailConnector(parse_options(base, "connectors.mail"), imap_password="app-password", backoff=Backoff(base=0))


@pytest.fixture
async def imap():
    async with FakeImapServer() as server:
        yield server


async def polled_until(conn, sink, cursor, predicate) -> asyncio.Task:
    task = asyncio.create_task(conn.run(sink, cursor))
    try:
        await sink.wait_for(predicate)
    except BaseException:
        await stop(task)
        raise
    return task


async def test_imap_start_at_all_reads_the_mailbox_with_cursor_and_dead_letters(imap):
    imap.mailbox.add(customer_mail(1))
    imap.mailbox.add(b"Subject: no sender\r\n\r\nhello\r\n")
    conn, sink = imap_connector(imap.port, start_at="all"), RecordingSink()
    task = await polled_until(conn, sink, None, lambda s: s.cursor == "1700000000:2")
    await stop(task)
    assert [b.cursor for b in sink.batches] == ["1700000000:0", "1700000000:2"]
    assert [m.external_id for m in sink.mentions] == ["m1@mail.example.org"]
    assert sink.rejected[0].reason == "no usable From address"
    assert sink.durable == [False, False]  # the cursor is committed with the batch: put, not put_durable
    assert conn.last_ok_at is not None and conn.last_error is None
    assert any("BODY.PEEK[]" in c for c in imap.mailbox.commands)  # reading never marks mail as seen


async def test_imap_start_at_new_skips_old_mail_and_reads_mail_arriving_later(imap):
    imap.mailbox.add(customer_mail(1))
    conn, sink = imap_connector(imap.port), RecordingSink()
    task = await polled_until(conn, sink, None, lambda s: s.cursor == "1700000000:1")
    imap.mailbox.add(customer_mail(2))
    try:
        await sink.wait_for(lambda s: len(s.mentions) == 1)
    finally:
        await stop(task)
    assert [m.external_id for m in sink.mentions] == ["m2@mail.example.org"]
    assert sink.cursor == "1700000000:2"


async def test_imap_idle_reads_new_mail_as_soon_as_the_server_announces_it(imap):
    imap.mailbox.idle = True
    conn, sink = imap_connector(imap.port, poll_interval="1h"), RecordingSink()  # only IDLE can wake it
    task = await polled_until(conn, sink, None, lambda s: s.cursor == "1700000000:0")
    try:
        while not imap.mailbox.watchers:  # the connector is idling
            await asyncio.sleep(0.01)
        imap.mailbox.add(customer_mail(1))
        await sink.wait_for(lambda s: len(s.mentions) == 1)
        while not imap.mailbox.watchers:  # and idles again afterwards
            await asyncio.sleep(0.01)
    finally:
        await stop(task)
    assert "DONE" in imap.mailbox.commands
    assert sink.cursor == "1700000000:1"


async def test_imap_resumes_after_its_cursor_without_duplicates(imap):
    for n in (1, 2, 3):
        imap.mailbox.add(customer_mail(n))
    conn, sink = imap_connector(imap.port), RecordingSink()
    task = await polled_until(conn, sink, "1700000000:1", lambda s: s.cursor == "1700000000:3")
    try:
        # the server answers "UID 4:*" with the highest UID (RFC 3501): several polls must add nothing
        polls = len(imap.mailbox.commands)
        while len(imap.mailbox.commands) < polls + 3:
            await asyncio.sleep(0.01)
    finally:
        await stop(task)
    assert [m.external_id for m in sink.mentions] == ["m2@mail.example.org", "m3@mail.example.org"]


async def test_imap_reads_in_batches_each_with_its_cursor(imap):
    for n in range(1, 6):
        imap.mailbox.add(customer_mail(n))
    conn, sink = imap_connector(imap.port, start_at="all", batch_size=2), RecordingSink()
    task = await polled_until(conn, sink, None, lambda s: s.cursor == "1700000000:5")
    await stop(task)
    assert [(len(b.mentions), b.cursor) for b in sink.batches] == [
        (0, "1700000000:0"), (2, "1700000000:2"), (2, "1700000000:4"), (1, "1700000000:5"),
    ]


async def test_imap_changed_uidvalidity_reads_the_mailbox_again(imap):
    imap.mailbox.add(customer_mail(1))
    imap.mailbox.rebuild(uidvalidity=1800000000)
    conn, sink = imap_connector(imap.port), RecordingSink()
    task = await polled_until(conn, sink, "1700000000:9", lambda s: s.cursor == "1800000000:1")
    await stop(task)
    assert [m.external_id for m in sink.mentions] == ["m1@mail.example.org"]


async def test_imap_dropped_connection_reconnects_and_loses_nothing(imap, caplog):
    caplog.set_level(logging.INFO, logger="connectors.social.email")
    imap.mailbox.add(customer_mail(1))
    imap.mailbox.drop_on_fetch = 1
    conn, sink = imap_connector(imap.port, start_at="all"), RecordingSink()
    task = await polled_until(conn, sink, None, lambda s: len(s.mentions) == 1)
    await stop(task)
    assert imap.mailbox.logins == 2
    assert conn.last_error is None
    assert [r.message for r in caplog.records if "unavailable" in r.message or "back" in r.message] == [
        "mail: unavailable: mail: IMAP connection lost during FETCH", "mail: back",
    ]


async def test_imap_refused_login_stops_with_authentication_failed(imap):
    imap.mailbox.refuse_login = True
    conn = imap_connector(imap.port)
    with pytest.raises(AuthenticationFailed, match="AUTHENTICATIONFAILED"):
        async with asyncio.timeout(5):
            await conn.run(RecordingSink(), None)
    assert "LOGIN refused" in conn.last_error


async def test_imap_unreachable_server_is_retried_and_reported(imap):
    conn = imap_connector(1)
    task = asyncio.create_task(conn.run(RecordingSink(), None))
    while conn.last_error is None:
        await asyncio.sleep(0.01)
    await stop(task)
    assert "connect" in conn.last_error


def test_imap_password_comes_from_the_environment():
    options = {"account": BRAND, "inbound": "imap", "imap_host": "h", "imap_password_env": "IMAP_PW"}
    assert from_config("mail", options, session=None, environ={"IMAP_PW": "pw"}).imap_password == "pw"
    with pytest.raises(ConfigError) as info:
        from_config("mail", options, session=None, environ={})
    assert info.value.key == "connectors.mail.imap_password_env"


async def test_imap_slow_server_times_out_as_unavailable(imap):
    imap.mailbox.delay = 0.5
    conn = imap_connector(imap.port, imap_timeout="50ms")
    task = asyncio.create_task(conn.run(RecordingSink(), None))
    while conn.last_error is None:
        await asyncio.sleep(0.01)
    await stop(task)
    assert "TimeoutError" in conn.last_error


async def test_imap_temporarily_unavailable_login_is_retried(imap):
    imap.mailbox.login_unavailable = 2
    imap.mailbox.add(customer_mail(1))
    conn, sink = imap_connector(imap.port, start_at="all"), RecordingSink()
    task = await polled_until(conn, sink, None, lambda s: len(s.mentions) == 1)
    await stop(task)
    assert imap.mailbox.logins == 1 and conn.last_error is None
