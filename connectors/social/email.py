"""E-mail connector: inbound SMTP relay target (answers 250 only once durable), replies via SMTP."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import socket
import ssl
from collections import OrderedDict
from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import format_datetime, make_msgid, parsedate_to_datetime
from html.parser import HTMLParser
from typing import Any

import aiohttp
import aioimaplib
import aiosmtplib
from aiosmtpd.smtp import SMTP, Envelope, Session

from carebox.duration import parse_duration
from carebox.errors import (
    AuthenticationFailed,
    BadPayload,
    ConfigError,
    ConnectorError,
    ConnectorUnavailable,
    ReplyRejected,
)
from carebox.ports import (
    Direction,
    InboundMention,
    IngestBatch,
    MentionSink,
    OutboundReply,
    Rejected,
    SentReply,
)
from connectors._http import Backoff, with_retries

log = logging.getLogger(__name__)

NETWORK = "email"
_MSGID = re.compile(r"<([^<>\s]+)>")
_ADDRESS = re.compile(r"^[^@\s]+@[^@\s]+$")
_REPLY_PREFIX = re.compile(r"^\s*(re|aw|sv|antw)\s*:", re.IGNORECASE)
_CUT_LINE = [
    re.compile(r"^\s*-{2,}\s*(original message|message d'origine|ursprüngliche nachricht)\s*-{2,}\s*$", re.IGNORECASE),
    re.compile(r"^\s*(on|le|am)\s.{0,300}(wrote|a écrit|schrieb)\s*:?\s*$", re.IGNORECASE),
    re.compile(r"^\s*(sent from my|envoyé de mon|get outlook for)\b", re.IGNORECASE),
    re.compile(r"^_{10,}\s*$"),
]
_OUTLOOK_FROM = re.compile(r"^\s*\*?(from|de)\s?:", re.IGNORECASE)
_OUTLOOK_FIELD = re.compile(r"^\s*\*?(sent|date|envoyé|objet|subject|to|à)\s?:", re.IGNORECASE)
_BLOCK_TAGS = {"p", "div", "br", "tr", "li", "table", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "ul", "ol"}
_SKIP_TAGS = {"script", "style", "head", "title", "blockquote"}
_SKIP_CLASSES = ("gmail_quote", "moz-cite-prefix", "yahoo_quoted", "divRplyFwdMsg")
_VOID_TAGS = {"br", "hr", "img", "meta", "link", "input", "wbr", "col", "area", "base", "source"}
_SECURITY = ("none", "starttls", "tls")
_INBOUND = ("imap", "smtp")
IDLE_RENEW_S = 25 * 60.0  # RFC 2177: re-issue IDLE at least every 29 minutes
_MAX_RAW_BODY = 100_000


@dataclass(frozen=True, slots=True)
class EmailOptions:
    """The `[[connectors]]` options of one e-mail connector."""

    name: str
    account: str
    inbound: str = "imap"
    from_name: str = ""
    imap_host: str = ""
    imap_port: int = 993
    imap_security: str = "tls"
    imap_username: str = ""
    imap_password_env: str = ""
    imap_timeout: float = 30.0
    mailbox: str = "INBOX"
    poll_interval: float = 60.0
    idle: bool = True
    start_at: str = "new"
    batch_size: int = 50
    recipients: tuple[str, ...] = ()
    listen_host: str = "127.0.0.1"
    listen_port: int = 2525
    max_message_bytes: int = 10 * 1024 * 1024
    smtp_host: str = "localhost"
    smtp_port: int = 587
    smtp_security: str = "starttls"
    smtp_username: str = ""
    smtp_password_env: str = ""
    smtp_timeout: float = 30.0
    send_attempts: int = 3
    reply_subject: str = "Re: your message"


# ---------------------------------------------------------------- pure parsing


class _TextExtractor(HTMLParser):
    """Collects the visible text of an HTML body, leaving out quoted history and scripts."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip_tag: str | None = None
        self._skip_depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self._skip_tag is not None:
            self._skip_depth += tag == self._skip_tag
            return
        classes = " ".join(v or "" for k, v in attrs if k in ("class", "id"))
        if tag in _SKIP_TAGS or (tag not in _VOID_TAGS and any(c in classes for c in _SKIP_CLASSES)):
            self._skip_tag, self._skip_depth = tag, 1
            self.parts.append("\n")
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n- " if tag == "li" else "\n")

    def handle_endtag(self, tag: str) -> None:
        if self._skip_tag is not None:
            if tag == self._skip_tag:
                self._skip_depth -= 1
                if self._skip_depth == 0:
                    self._skip_tag = None
                    self.parts.append("\n")
        elif tag in _BLOCK_TAGS and tag != "li":
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if self._skip_tag is None:
            self.parts.append(re.sub(r"\s+", " ", data))


def html_to_text(html: str) -> str:
    """The readable text of an HTML e-mail body, without quoted history."""
    parser = _TextExtractor()
    parser.feed(html)
    parser.close()
    lines = [line.strip() for line in "".join(parser.parts).splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def strip_quoted(text: str) -> str:
    """The new text of a reply: quoted lines, reply headers, forwarded history and signature removed."""
    lines = text.replace("\r\n", "\n").split("\n")
    kept: list[str] = []
    for i, line in enumerate(lines):
        nxt = lines[i + 1] if i + 1 < len(lines) else ""
        if line.rstrip() == "--" or any(p.match(line) for p in _CUT_LINE):
            break
        if re.match(r"^\s*(on|le)\s", line, re.IGNORECASE) and re.search(r"(wrote|a écrit)\s*:\s*$", nxt, re.IGNORECASE):
            break
        if _OUTLOOK_FROM.match(line) and any(_OUTLOOK_FIELD.match(n) for n in lines[i + 1 : i + 5]):
            break
        if not line.lstrip().startswith(">"):
            kept.append(line.rstrip())
    return re.sub(r"\n{3,}", "\n\n", "\n".join(kept)).strip()


def reply_subject(subject: str) -> str:
    """The subject of an answer: "Re: " once, never "Re: Re: "."""
    subject = " ".join(subject.split())
    return subject if _REPLY_PREFIX.match(subject) else f"Re: {subject}".rstrip()


def message_ids(value: str | None) -> list[str]:
    """The msg-ids in a Message-ID / In-Reply-To / References header, without angle brackets."""
    if not value:
        return []
    found = _MSGID.findall(value)
    if not found and value.strip() and " " not in value.strip():
        return [value.strip().strip("<>")]
    return found


def _header(msg: EmailMessage, name: str) -> str:
    """A header as text; malformed headers give their raw text rather than raising."""
    try:
        value = msg.get(name)
    except (ValueError, IndexError, TypeError, AttributeError, LookupError):
        return ""
    return "" if value is None else str(value)


def _sender(msg: EmailMessage) -> tuple[str, str]:
    """(address, display name) of the From header; BadPayload when there is no usable address."""
    try:
        addresses = msg["From"].addresses if msg["From"] is not None else ()
    except (ValueError, IndexError, TypeError, AttributeError, LookupError):
        addresses = ()
    for address in addresses:
        if _ADDRESS.match(address.addr_spec or ""):
            return address.addr_spec, address.display_name or ""
    raise BadPayload("no usable From address")


def _body(msg: EmailMessage) -> tuple[str, str]:
    """(text, content type) of the text/plain part, or of the HTML part converted to text."""
    try:
        part = msg.get_body(preferencelist=("plain", "html"))
    except (ValueError, IndexError, TypeError, AttributeError, LookupError):
        part = None
    if part is None:
        return "", ""
    try:
        content = part.get_content()
    except (ValueError, LookupError, TypeError, AttributeError):
        payload = part.get_payload(decode=True)
        content = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else ""
    if not isinstance(content, str):
        return "", ""
    ctype = part.get_content_type()
    return (html_to_text(content) if ctype == "text/html" else content), ctype


def _date(msg: EmailMessage, fallback: datetime) -> datetime:
    try:
        when = parsedate_to_datetime(_header(msg, "Date"))
    except (TypeError, ValueError, IndexError):
        return fallback.astimezone(UTC)
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).astimezone(UTC)


def _is_automated(msg: EmailMessage) -> bool:
    auto = _header(msg, "Auto-Submitted").strip().lower()
    precedence = _header(msg, "Precedence").strip().lower()
    return (auto not in ("", "no")) or precedence in ("bulk", "junk", "list", "auto_reply") or bool(
        _header(msg, "X-Autoreply") or _header(msg, "X-Autorespond")
    )


def _attachment_names(msg: EmailMessage) -> list[str]:
    try:
        return [p.get_filename() or "" for p in msg.iter_attachments()] if msg.is_multipart() else []
    except (ValueError, IndexError, TypeError, AttributeError, LookupError):
        return []


def parse_message(raw: bytes, *, account: str, received_at: datetime) -> InboundMention:
    """An InboundMention from one RFC 822 message; `received_at` stands in for a missing Date."""
    if not raw or not raw.strip():
        raise BadPayload("empty message")
    try:
        msg = BytesParser(policy=policy.default).parsebytes(raw)
    except Exception as err:  # the stdlib parser is lenient; anything it raises is a bad payload
        raise BadPayload(f"unparseable message: {type(err).__name__}") from err
    address, display = _sender(msg)
    ids = message_ids(_header(msg, "Message-ID"))
    external_id = ids[0] if ids else f"sha256-{hashlib.sha256(raw).hexdigest()[:32]}@carebox.invalid"
    parents = message_ids(_header(msg, "In-Reply-To"))
    references = message_ids(_header(msg, "References"))
    in_reply_to = parents[0] if parents else (references[-1] if references else None)
    subject = " ".join(_header(msg, "Subject").split())
    full_body, ctype = _body(msg)
    body = strip_quoted(full_body)
    starts_thread = in_reply_to is None
    if starts_thread and subject:
        text = f"{subject}\n\n{body}".strip()
    else:
        text = body or subject or "(no text)"
    lang = _header(msg, "Content-Language").split(",")[0].strip() or None
    raw_view = {
        "message_id": external_id,
        **{key.lower(): _header(msg, key) for key in ("From", "To", "Cc", "Date")},
        "subject": subject,
        "in_reply_to": parents,
        "references": references,
        "content_type": ctype,
        "body": full_body[:_MAX_RAW_BODY],
        "attachments": _attachment_names(msg),
    }
    return InboundMention(
        network=NETWORK,
        account=account,
        external_id=external_id,
        author_id=address.lower(),
        author_handle=address,
        author_name=display,
        text=text,
        created_at=_date(msg, received_at),
        direction=Direction.OUTBOUND if address.lower() == account.lower() else Direction.INBOUND,
        in_reply_to=in_reply_to,
        thread_key=references[0] if references else (in_reply_to or external_id),
        public=False,
        automated=_is_automated(msg),
        lang_hint=lang,
        raw=raw_view,
    )


def build_reply(
    reply: OutboundReply,
    *,
    from_addr: str,
    from_name: str,
    subject: str,
    references: Sequence[str],
    message_id: str,
    date: datetime,
) -> EmailMessage:
    """The answer as an e-mail that mail clients thread under the customer's message."""
    to = reply.customer_handle if "@" in reply.customer_handle else reply.customer_id
    if not _ADDRESS.match(to or ""):
        raise ReplyRejected(NETWORK, "no recipient e-mail address on the reply")
    chain = [r for r in references if r != reply.in_reply_to]
    if not chain and reply.thread_key and reply.thread_key != reply.in_reply_to:
        chain = [reply.thread_key]
    msg = EmailMessage()
    msg["From"] = f"{from_name} <{from_addr}>" if from_name else from_addr
    msg["To"] = to
    msg["Subject"] = reply_subject(subject)
    msg["Date"] = format_datetime(date.astimezone(UTC))
    msg["Message-ID"] = f"<{message_id}>"
    msg["In-Reply-To"] = f"<{reply.in_reply_to}>"
    msg["References"] = " ".join(f"<{r}>" for r in [*chain, reply.in_reply_to])
    msg["Auto-Submitted"] = "no"
    msg.set_content(reply.text)
    return msg


# ---------------------------------------------------------------- IMAP responses and cursor


def format_cursor(uidvalidity: int, last_uid: int) -> str:
    """The connector cursor: the mailbox's UIDVALIDITY and the highest UID already read."""
    return f"{uidvalidity}:{last_uid}"


def parse_cursor(cursor: str | None) -> tuple[int, int] | None:
    """(uidvalidity, last_uid) from a cursor, or None when there is none or it is unreadable."""
    match = re.fullmatch(r"(\d+):(\d+)", cursor or "")
    return (int(match.group(1)), int(match.group(2))) if match else None


def select_codes(lines: Sequence[bytes]) -> tuple[int | None, int | None]:
    """(UIDVALIDITY, UIDNEXT) from the untagged answers to SELECT."""
    found: dict[bytes, int] = {}
    for line in lines:
        for key, value in re.findall(rb"\[(UIDVALIDITY|UIDNEXT) (\d+)\]", bytes(line)):
            found[key] = int(value)
    return found.get(b"UIDVALIDITY"), found.get(b"UIDNEXT")


def search_uids(lines: Sequence[bytes]) -> list[int]:
    """The UIDs listed in the untagged answer to UID SEARCH."""
    uids: list[int] = []
    for line in lines[:-1]:  # the last line is the tagged completion text
        match = re.fullmatch(rb"(?:SEARCH)?\s*([\d ]*)", bytes(line).strip())
        if match:
            uids.extend(int(u) for u in match.group(1).split())
    return sorted(set(uids))


def fetched_messages(lines: Sequence[bytes]) -> list[tuple[int, bytes]]:
    """(UID, RFC 822 bytes) for each message in the answer to UID FETCH (UID BODY.PEEK[])."""
    out: list[tuple[int, bytes]] = []
    for i, line in enumerate(lines):
        head = bytes(line)
        if not isinstance(line, bytes) or not re.match(rb"^\d+ FETCH \(.*\{\d+\}$", head):
            continue
        literal = lines[i + 1] if i + 1 < len(lines) else b""
        tail = bytes(lines[i + 2]) if i + 2 < len(lines) else b""
        uid = re.search(rb"\bUID (\d+)", head) or re.search(rb"\bUID (\d+)", tail)
        if uid and isinstance(literal, bytearray | bytes):
            out.append((int(uid.group(1)), bytes(literal)))
    return out


# ---------------------------------------------------------------- options


def _opt_str(options: Mapping[str, Any], key: str, prefix: str, default: str | None = None) -> str:
    value = options.get(key, default)
    if not isinstance(value, str) or (default is None and not value.strip()):
        raise ConfigError(f"{prefix}.{key}", "a non-empty string" if default is None else "a string")
    return value


def _opt_bool(options: Mapping[str, Any], key: str, prefix: str, default: bool) -> bool:
    value = options.get(key, default)
    if not isinstance(value, bool):
        raise ConfigError(f"{prefix}.{key}", "true or false")
    return value


def _opt_int(options: Mapping[str, Any], key: str, prefix: str, default: int, low: int, high: int) -> int:
    value = options.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(f"{prefix}.{key}", f"an integer from {low} to {high}")
    return value


def _imap_options(options: Mapping[str, Any], prefix: str, account: str) -> dict[str, Any]:
    """The inbound choice and, for IMAP, the mailbox options."""
    inbound = options.get("inbound")
    if inbound not in _INBOUND:
        raise ConfigError(f"{prefix}.inbound", '"imap" (poll a mailbox) or "smtp" (receive relayed mail)')
    if inbound == "smtp":
        return {"inbound": inbound}
    security = _opt_str(options, "imap_security", prefix, "tls")
    if security not in ("none", "tls"):
        raise ConfigError(f"{prefix}.imap_security", 'one of "none", "tls"')
    start_at = _opt_str(options, "start_at", prefix, "new")
    if start_at not in ("new", "all"):
        raise ConfigError(f"{prefix}.start_at", '"new" (mail arriving from now on) or "all" (the whole mailbox)')
    poll = parse_duration(options.get("poll_interval", "1m"), f"{prefix}.poll_interval")
    if poll <= 0:
        raise ConfigError(f"{prefix}.poll_interval", "a positive duration such as \"1m\"")
    return {
        "inbound": inbound,
        "imap_host": _opt_str(options, "imap_host", prefix),
        "imap_port": _opt_int(options, "imap_port", prefix, 993 if security == "tls" else 143, 1, 65535),
        "imap_security": security,
        "imap_username": _opt_str(options, "imap_username", prefix, account) or account,
        "imap_password_env": _opt_str(options, "imap_password_env", prefix),
        "imap_timeout": parse_duration(options.get("imap_timeout", 30), f"{prefix}.imap_timeout"),
        "mailbox": _opt_str(options, "mailbox", prefix, "INBOX") or "INBOX",
        "poll_interval": poll,
        "idle": _opt_bool(options, "idle", prefix, True),
        "start_at": start_at,
        "batch_size": _opt_int(options, "batch_size", prefix, 50, 1, 1000),
    }


def parse_options(options: Mapping[str, Any], key: str) -> EmailOptions:
    """EmailOptions from a `[[connectors]]` entry; ConfigError naming `key`.<option> otherwise."""
    name = _opt_str(options, "name", key)
    prefix = f"connectors.{name}"
    account = _opt_str(options, "account", prefix)
    if not _ADDRESS.match(account):
        raise ConfigError(f"{prefix}.account", "the brand's e-mail address, e.g. support@brand.example")
    recipients = options.get("recipients", [account])
    if not isinstance(recipients, list) or not recipients or not all(
        isinstance(r, str) and _ADDRESS.match(r) for r in recipients
    ):
        raise ConfigError(f"{prefix}.recipients", "a non-empty list of e-mail addresses")
    security = _opt_str(options, "smtp_security", prefix, "starttls")
    if security not in _SECURITY:
        raise ConfigError(f"{prefix}.smtp_security", 'one of "none", "starttls", "tls"')
    username = _opt_str(options, "smtp_username", prefix, "")
    password_env = _opt_str(options, "smtp_password_env", prefix, "")
    if username and not password_env:
        raise ConfigError(f"{prefix}.smtp_password_env", "the environment variable holding the SMTP password")
    return EmailOptions(
        name=name,
        account=account,
        **_imap_options(options, prefix, account),
        from_name=_opt_str(options, "from_name", prefix, ""),
        recipients=tuple(r.lower() for r in recipients),
        listen_host=_opt_str(options, "listen_host", prefix, "127.0.0.1"),
        listen_port=_opt_int(options, "listen_port", prefix, 2525, 0, 65535),
        max_message_bytes=_opt_int(options, "max_message_bytes", prefix, 10 * 1024 * 1024, 1024, 1 << 30),
        smtp_host=_opt_str(options, "smtp_host", prefix, "localhost"),
        smtp_port=_opt_int(options, "smtp_port", prefix, 465 if security == "tls" else 587, 1, 65535),
        smtp_security=security,
        smtp_username=username,
        smtp_password_env=password_env,
        smtp_timeout=parse_duration(options.get("smtp_timeout", 30), f"{prefix}.smtp_timeout"),
        send_attempts=_opt_int(options, "send_attempts", prefix, 3, 1, 10),
        reply_subject=_opt_str(options, "reply_subject", prefix, "Re: your message"),
    )


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


class EmailConnector:
    """One brand mailbox: receives relayed mail over SMTP and answers through an SMTP server."""

    network = NETWORK

    def __init__(
        self, options: EmailOptions, *, password: str = "", imap_password: str = "", backoff: Backoff | None = None
    ) -> None:
        self.options = options
        self.name = options.name
        self.account = options.account
        self.last_error: str | None = None
        self.last_ok_at: datetime | None = None
        self.bound_port: int | None = None
        self.listening = asyncio.Event()
        self._password = password
        self.imap_password = imap_password
        self._backoff = backoff or Backoff()
        self._send_backoff = Backoff(self._backoff.base, self._backoff.cap)
        self._threads: OrderedDict[str, tuple[str, tuple[str, ...]]] = OrderedDict()

    def _ok(self) -> None:
        if self.last_error is not None:
            log.info("%s: back", self.name)
        self.last_error = None
        self.last_ok_at = datetime.now(UTC)

    def _failed(self, err: Exception) -> None:
        if self.last_error is None:
            log.warning("%s: unavailable: %s", self.name, err)
        self.last_error = str(err) or type(err).__name__

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
        while True:
            session = _ImapSession(self, sink, state)
            try:
                await session.run()
            except AuthenticationFailed as err:
                self._failed(err)
                raise
            except ConnectorUnavailable as err:
                state = session.state
                self._failed(err)
                await asyncio.sleep(self._backoff.delay(err))

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
