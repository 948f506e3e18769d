"""E-mail as data: parsing messages (quotes stripped, HTML to text), building replies, IMAP responses and cursors."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import format_datetime, parsedate_to_datetime
from html.parser import HTMLParser

from carebox.errors import BadPayload, ReplyRejected
from carebox.ports import Direction, InboundMention, OutboundReply
from connectors._html import parsed

NETWORK = "email"
_MSGID = re.compile(r"<([^<>\s]+)>")
_ADDRESS = re.compile(r"^[^@\s]+@[^@\s]+$")
_REPLY_PREFIX = re.compile(r"^\s*(re|aw|sv|antw)\s*:", re.IGNORECASE)
_OUTLOOK_FROM = re.compile(r"^\s*\*?(from|de)\s?:", re.IGNORECASE)
_OUTLOOK_FIELD = re.compile(r"^\s*\*?(sent|date|envoyé|objet|subject|to|à)\s?:", re.IGNORECASE)
_BLOCK_TAGS = {"p", "div", "br", "tr", "li", "table", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "ul", "ol"}
_SKIP_TAGS = {"script", "style", "head", "title", "blockquote"}
_SKIP_CLASSES = ("gmail_quote", "moz-cite-prefix", "yahoo_quoted", "divRplyFwdMsg")
_VOID_TAGS = {"br", "hr", "img", "meta", "link", "input", "wbr", "col", "area", "base", "source"}
_MAX_RAW_BODY = 100_000
_CUT_LINE = [
    re.compile(r"^\s*-{2,}\s*(original message|message d'origine|ursprüngliche nachricht)\s*-{2,}\s*$", re.IGNORECASE),
    re.compile(r"^\s*(on|le|am)\s.{0,300}(wrote|a écrit|schrieb)\s*:?\s*$", re.IGNORECASE),
    re.compile(r"^\s*(sent from my|envoyé de mon|get outlook for)\b", re.IGNORECASE),
    re.compile(r"^_{10,}\s*$"),
]

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
    parser = parsed(_TextExtractor, html)
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
        return (when if when.tzinfo else when.replace(tzinfo=UTC)).astimezone(UTC)
    except (TypeError, ValueError, IndexError, OverflowError):  # unreadable, or out of range in UTC
        return fallback.astimezone(UTC)


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
    match = re.fullmatch(r"(\d{1,20}):(\d{1,20})", cursor or "", re.ASCII)
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


