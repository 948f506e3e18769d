"""E-mail connector: IMAP polling or an inbound SMTP relay target (250 only once durable), replies via SMTP.

The pure message code lives in `email_message.py`, the options in `email_options.py`.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from collections import OrderedDict
from collections.abc import Awaitable, Mapping, Sequence
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Any

import aiohttp
import aioimaplib
import aiosmtplib
from aiosmtpd.smtp import SMTP, Envelope, Session

from carebox.errors import (
    AuthenticationFailed,
    BadPayload,
    ConfigError,
    ConnectorError,
    ConnectorUnavailable,
    ReplyRejected,
)
from carebox.ports import (
    InboundMention,
    IngestBatch,
    MentionSink,
    OutboundReply,
    Rejected,
    SentReply,
)
from connectors._health import Health
from connectors._http import Backoff, with_retries
from connectors.social.email_message import (  # noqa: F401  (re-exported: the connector's public parse API)
    NETWORK,
    build_reply,
    fetched_messages,
    format_cursor,
    html_to_text,
    message_ids,
    parse_cursor,
    parse_message,
    reply_subject,
    search_uids,
    select_codes,
    strip_quoted,
)
from connectors.social.email_options import EmailOptions, parse_options

log = logging.getLogger(__name__)

IDLE_RENEW_S = 25 * 60.0  # RFC 2177: re-issue IDLE at least every 29 minutes


# ---------------------------------------------------------------- connector


class _RelayHandler:
    """aiosmtpd handler: accepts mail for the brand's addresses, 250 only once the batch is durable."""

    def __init__(self, connector: EmailConnector, sink: MentionSink) -> None:
        self.connector = connector
        self.sink = sink

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        """Refuse recipients that are not the brand's, so carebox is never an open relay."""
        if address.lower() not in self.connector.options.recipients:
            return "550 5.1.1 recipient not handled here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        """Parse, make durable, then answer; a failure to store answers 451 so the relay retries."""
        return await self.connector.deliver(self.sink, envelope.original_content or b"")


class EmailConnector(Health):
    """One brand mailbox: receives relayed mail over SMTP and answers through an SMTP server."""

    network = NETWORK
    health_log = log
    private_replies = False  # an e-mail is private already: one kind of reply

    def __init__(
        self, options: EmailOptions, *, password: str = "", imap_password: str = "", backoff: Backoff | None = None
    ) -> None:
        self.options = options
        self.name = options.name
        self.account = options.account
        self.health_subject = f"{self.name}:"
        self.bound_port: int | None = None
        self.listening = asyncio.Event()
        self._password = password
        self.imap_password = imap_password
        self._backoff = backoff or Backoff()
        self._send_backoff = Backoff(self._backoff.base, self._backoff.cap)
        self._threads: OrderedDict[str, tuple[str, tuple[str, ...]]] = OrderedDict()

    def _remember(self, mention: InboundMention) -> None:
        """Keep subject and References of recent mail so replies thread without asking the store."""
        raw = mention.raw or {}
        refs = tuple(raw.get("references") or ())
        self._threads[mention.external_id] = (str(raw.get("subject", "")), refs)
        while len(self._threads) > 10_000:
            self._threads.popitem(last=False)

    def _parse(self, raw: bytes) -> InboundMention | Rejected:
        """One message as a mention, or as a dead letter with the reason it cannot be read."""
        try:
            mention = parse_message(raw, account=self.account, received_at=datetime.now(UTC))
        except BadPayload as err:
            return Rejected(self.name, raw.decode("utf-8", "replace"), err.reason)
        self._remember(mention)
        return mention

    def _batch(self, items: Sequence[InboundMention | Rejected], cursor: str | None = None) -> IngestBatch:
        mentions = tuple(i for i in items if isinstance(i, InboundMention))
        rejected = tuple(i for i in items if isinstance(i, Rejected))
        return IngestBatch(source=self.name, mentions=mentions, rejected=rejected, cursor=cursor)

    async def deliver(self, sink: MentionSink, raw: bytes) -> str:
        """Turn one relayed message into a durable batch; the SMTP answer to give the relay."""
        try:
            await sink.put_durable(self._batch([self._parse(raw)]))
        except Exception as err:  # noqa: BLE001 - any failure to store must make the relay keep the mail
            self._failed(err)
            return "451 4.3.0 temporary failure, try again later"
        self._ok()
        return "250 OK queued"

    async def run(self, sink: MentionSink, cursor: str | None) -> None:
        """Read mail until cancelled: poll the IMAP mailbox from `cursor` on, or listen for relayed SMTP."""
        if self.options.inbound == "imap":
            await self._poll_imap(sink, parse_cursor(cursor))
        else:
            await self._serve_smtp(sink)

    async def _serve_smtp(self, sink: MentionSink) -> None:
        loop = asyncio.get_running_loop()
        handler = _RelayHandler(self, sink)
        # aiosmtpd would otherwise resolve the host name (blocking DNS) on every connection
        hostname = await loop.run_in_executor(None, socket.getfqdn)

        def factory() -> SMTP:
            return SMTP(
                handler, data_size_limit=self.options.max_message_bytes, hostname=hostname, ident="carebox"
            )

        while True:
            try:
                server = await loop.create_server(factory, self.options.listen_host, self.options.listen_port)
            except OSError as err:
                self._failed(ConnectorUnavailable(self.name, f"cannot listen: {err}"))
                await asyncio.sleep(self._backoff.delay(err))
                continue
            break
        self._backoff.reset()
        self.bound_port = server.sockets[0].getsockname()[1]
        self.listening.set()
        log.info("%s: listening for mail on %s:%d", self.name, self.options.listen_host, self.bound_port)
        try:
            await server.serve_forever()
        finally:
            server.close()
            self.listening.clear()

    async def _poll_imap(self, sink: MentionSink, state: tuple[int, int] | None) -> None:
        """Reconnect with backoff after network failures; refused credentials end the run."""

        async def step() -> None:
            nonlocal state
            session = _ImapSession(self, sink, state)
            try:
                await session.run()
            finally:
                state = session.state  # where the next connection resumes

        await self._run_steps(step, self._backoff, asyncio.sleep)

    async def send_reply(self, reply: OutboundReply) -> SentReply:
        """Send the answer by SMTP with In-Reply-To/References so it threads in the customer's client."""
        known_subject, known_refs = self._threads.get(reply.in_reply_to, ("", ()))
        subject = getattr(reply, "subject", None) or known_subject or self.options.reply_subject
        domain = self.account.rsplit("@", 1)[1]
        message_id = make_msgid(domain=domain).strip("<>")
        now = datetime.now(UTC)
        msg = build_reply(
            reply,
            from_addr=self.account,
            from_name=self.options.from_name,
            subject=subject,
            references=known_refs,
            message_id=message_id,
            date=now,
        )
        # the same Message-ID on every attempt: a duplicate delivery is collapsed by mail clients
        await with_retries(lambda: self._send(msg), attempts=self.options.send_attempts, backoff=self._send_backoff)
        return SentReply(
            external_id=message_id,
            created_at=now,
            raw={k: str(v) for k, v in msg.items()},
        )

    async def _send(self, msg: EmailMessage) -> None:
        opts = self.options
        try:
            await aiosmtplib.send(
                msg,
                hostname=opts.smtp_host,
                port=opts.smtp_port,
                username=opts.smtp_username or None,
                password=self._password or None,
                use_tls=opts.smtp_security == "tls",
                start_tls=opts.smtp_security == "starttls",
                timeout=opts.smtp_timeout,
            )
        except Exception as err:
            mapped = smtp_error(self.name, err)
            if isinstance(mapped, ConnectorUnavailable):
                self._failed(mapped)
            raise mapped from err
        self._ok()


class _ImapSession:
    """One IMAP connection: login, select, then read new UIDs in batches until the connection fails."""

    def __init__(self, connector: EmailConnector, sink: MentionSink, state: tuple[int, int] | None) -> None:
        self.connector = connector
        self.options = connector.options
        self.sink = sink
        self.state = state
        self._lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._client: aioimaplib.IMAP4 | None = None
        self._logged_in = False

    def _on_lost(self, exc: Exception | None) -> None:
        if not self._lost.done():
            self._lost.set_result(None)

    async def _call(self, what: str, coro: Awaitable[Any]) -> Any:
        """Run one IMAP command; a dropped connection or timeout becomes ConnectorUnavailable."""
        name = self.connector.name
        task = asyncio.ensure_future(coro)
        try:
            await asyncio.wait({task, self._lost}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            task.cancel()
            raise
        if not task.done():
            task.cancel()
            raise ConnectorUnavailable(name, f"IMAP connection lost during {what}")
        try:
            response = task.result()
        except (OSError, TimeoutError, aioimaplib.AioImapException) as err:
            raise ConnectorUnavailable(name, f"IMAP {what}: {type(err).__name__}: {err}") from err
        if isinstance(response, aioimaplib.Response) and response.result != "OK":
            detail = b" ".join(bytes(x) for x in response.lines[-1:]).decode("utf-8", "replace")
            # RFC 5530: [UNAVAILABLE] is a temporary refusal, any other refused LOGIN needs new credentials
            final = what == "LOGIN" and "[UNAVAILABLE]" not in detail.upper()
            cls = AuthenticationFailed if final else ConnectorUnavailable
            raise cls(name, f"IMAP {what} refused: {response.result} {detail}")
        return response

    async def run(self) -> None:
        opts = self.options
        ssl_context = ssl.create_default_context() if opts.imap_security == "tls" else None
        try:
            self._client = aioimaplib.IMAP4(
                host=opts.imap_host,
                port=opts.imap_port,
                timeout=opts.imap_timeout,
                conn_lost_cb=self._on_lost,
                ssl_context=ssl_context,
            )
            await self._call("connect", self._client.wait_hello_from_server())
            await self._call("LOGIN", self._client.login(opts.imap_username, self.connector.imap_password))
            self._logged_in = True
            selected = await self._call("SELECT", self._client.select(opts.mailbox))
            await self._start(*select_codes(selected.lines))
            self.connector._ok()
            self.connector._backoff.reset()
            while True:
                await self._read_new()
                await self._wait_for_mail()
        finally:
            await self._close()

    async def _start(self, uidvalidity: int | None, uidnext: int | None) -> None:
        """Settle where to read from; a new or changed UIDVALIDITY starts over as configured."""
        if uidvalidity is None:
            raise ConnectorUnavailable(self.connector.name, "IMAP server gave no UIDVALIDITY")
        if self.state is not None and self.state[0] == uidvalidity:
            return
        if self.state is not None:
            # UIDs were renumbered: read the mailbox again; ingest is idempotent on Message-ID
            log.warning("%s: mailbox UIDVALIDITY changed, reading it again", self.connector.name)
            last = 0
        elif self.options.start_at == "all":
            last = 0
        else:
            last = (uidnext - 1) if uidnext else max(await self._search(1), default=0)
        self.state = (uidvalidity, last)
        await self.sink.put(IngestBatch(source=self.connector.name, cursor=format_cursor(*self.state)))

    async def _search(self, first: int) -> list[int]:
        assert self._client is not None
        found = await self._call("SEARCH", self._client.uid_search("UID", f"{first}:*", charset=None))
        return [u for u in search_uids(found.lines) if u >= first]

    async def _read_new(self) -> None:
        """Fetch every UID above the cursor, one batch (with its cursor) per `batch_size` messages."""
        assert self._client is not None and self.state is not None
        uidvalidity, last = self.state
        uids = await self._search(last + 1)
        size = self.options.batch_size
        for start in range(0, len(uids), size):
            chunk = uids[start : start + size]
            message_set = ",".join(str(u) for u in chunk)
            answer = await self._call("FETCH", self._client.uid("fetch", message_set, "(UID BODY.PEEK[])"))
            items = [self.connector._parse(raw) for uid, raw in fetched_messages(answer.lines) if uid in chunk]
            self.state = (uidvalidity, chunk[-1])
            await self.sink.put(self.connector._batch(items, format_cursor(*self.state)))
            self.connector._ok()

    async def _wait_for_mail(self) -> None:
        """Sleep `poll_interval`; with IDLE, wake as soon as the server announces a change."""
        client = self._client
        assert client is not None
        if not self.options.idle or not client.has_capability("IDLE"):
            await asyncio.sleep(self.options.poll_interval)
            return
        idle = await self._call("IDLE", client.idle_start(timeout=IDLE_RENEW_S))
        try:
            await self._call("IDLE", client.wait_server_push(timeout=IDLE_RENEW_S))
        except ConnectorUnavailable:
            if self._lost.done():
                raise
            # no news before the renew time: end this IDLE and issue a new one, as RFC 2177 asks
        client.idle_done()
        await self._call("IDLE", asyncio.wait_for(idle, self.options.imap_timeout))

    async def _close(self) -> None:
        client = self._client
        if client is None or client.protocol is None:
            return
        try:
            if self._logged_in and not self._lost.done():
                await asyncio.wait_for(client.logout(), 2)
        except (OSError, TimeoutError, aioimaplib.AioImapException):
            pass
        finally:
            if client.protocol.transport is not None:
                client.protocol.transport.close()
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise asyncio.CancelledError  # wait_for may swallow a cancellation that races the answer


def smtp_error(connector: str, err: BaseException) -> ConnectorError:
    """The carebox error for an SMTP failure: 5xx refusals are final, 4xx and network errors are not."""
    if isinstance(err, aiosmtplib.SMTPAuthenticationError):
        return AuthenticationFailed(connector, f"SMTP {err.code}: {err.message}")
    if isinstance(err, aiosmtplib.SMTPRecipientsRefused):
        codes = [r.code for r in err.recipients]
        detail = "; ".join(f"{r.recipient}: {r.code} {r.message}" for r in err.recipients)
        return ReplyRejected(connector, detail) if all(c >= 500 for c in codes) else ConnectorUnavailable(
            connector, detail
        )
    if isinstance(err, aiosmtplib.SMTPResponseException):
        cls = ReplyRejected if err.code >= 500 else ConnectorUnavailable
        return cls(connector, f"SMTP {err.code}: {err.message}")
    if isinstance(err, aiosmtplib.SMTPException | OSError | TimeoutError):
        return ConnectorUnavailable(connector, f"{type(err).__name__}: {err}")
    return ConnectorUnavailable(connector, f"unexpected {type(err).__name__}: {err}")


def _secret(environ: Mapping[str, str], name: str, option: str, env: str) -> str:
    value = environ.get(env, "") if env else ""
    if env and not value:
        raise ConfigError(f"connectors.{name}.{option}", f"the environment variable {env} to be set")
    return value


def from_config(
    name: str, options: Mapping[str, Any], *, session: aiohttp.ClientSession, environ: Mapping[str, str]
) -> EmailConnector:
    """An EmailConnector from its `[[connectors]]` entry; passwords come from `environ`."""
    opts = parse_options({**options, "name": name}, f"connectors.{name}")
    return EmailConnector(
        opts,
        password=_secret(environ, name, "smtp_password_env", opts.smtp_password_env),
        imap_password=_secret(environ, name, "imap_password_env", opts.imap_password_env),
    )

