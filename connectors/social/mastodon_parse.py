"""Mastodon payloads: statuses and notifications to mentions, SSE events, Link headers, replies; pure functions."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any

import orjson

from carebox.errors import BadPayload
from carebox.ports import Direction, InboundMention, Rejected, SentReply
from connectors._html import parsed
from connectors._time import parse_iso
from connectors.social.jsonl import payload_text

NETWORK = "mastodon"
VISIBILITIES = ("public", "unlisted", "private", "direct")


class _TextExtractor(HTMLParser):
    """Collects the text of status HTML: paragraphs become blank lines, <br> a newline."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "br":
            self.parts.append("\n")
        elif tag == "p" and self.parts:
            self.parts.append("\n\n")

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def html_to_text(html: str) -> str:
    """Plain text of a status's HTML content (mentions, links and entities resolved)."""
    parser = parsed(_TextExtractor, html)
    text = "".join(parser.parts)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def id_key(value: str | None) -> tuple[int, str]:
    """Order Mastodon ids (numeric strings of varying length) without assuming they are numbers."""
    return (len(value), value) if value else (-1, "")


def newest(*ids: str | None) -> str | None:
    """The highest of some ids, or None."""
    present = [i for i in ids if i]
    return max(present, key=id_key) if present else None


def same_acct(a: str, b: str, instance_host: str = "") -> bool:
    """Whether two acct strings name the same account (`brand` and `brand@host` are one on host)."""

    def norm(acct: str) -> str:
        acct = acct.lstrip("@").lower()
        if instance_host and acct.endswith("@" + instance_host.lower()):
            acct = acct.rsplit("@", 1)[0]
        return acct

    return norm(a) == norm(b)


def _mapping(obj: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = obj.get(key)
    if not isinstance(value, Mapping):
        raise BadPayload(f"missing object {key!r}")
    return value


def _id(obj: Mapping[str, Any], key: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or not value:
        raise BadPayload(f"missing field {key!r}")
    return value


def parse_status(status: Mapping[str, Any], *, account: str, instance_host: str = "") -> dict[str, Any]:
    """The InboundMention fields of one Status entity (everything but `raw`)."""
    author = _mapping(status, "account")
    content = status.get("content")
    if not isinstance(content, str):
        raise BadPayload("missing field 'content'")
    text = html_to_text(content)
    spoiler = status.get("spoiler_text")
    if isinstance(spoiler, str) and spoiler.strip():
        text = f"{spoiler.strip()}\n\n{text}"
    visibility = status.get("visibility", "public")
    acct = _id(author, "acct")
    followers = author.get("followers_count")
    reblogs = status.get("reblogs_count")
    lang = status.get("language")
    return {
        "network": NETWORK,
        "account": account,
        "external_id": _id(status, "id"),
        "author_id": _id(author, "id"),
        "author_handle": acct,
        "author_name": str(author.get("display_name") or author.get("username") or ""),
        "text": text,
        "created_at": parse_iso(status.get("created_at")),
        "direction": Direction.OUTBOUND if same_acct(acct, account, instance_host) else Direction.INBOUND,
        "in_reply_to": status.get("in_reply_to_id") if isinstance(status.get("in_reply_to_id"), str) else None,
        "public": visibility != "direct",
        "followers": followers if isinstance(followers, int) and not isinstance(followers, bool) else None,
        "reposts": reblogs if isinstance(reblogs, int) and not isinstance(reblogs, bool) and reblogs > 0 else 0,
        "is_repost": status.get("reblog") is not None,
        "automated": author.get("bot") is True,
        "lang_hint": lang if isinstance(lang, str) and lang else None,
        "url": str(status.get("url") or status.get("uri") or "") or None,
    }


def parse_notification(obj: Any, *, account: str, instance_host: str = "") -> InboundMention | None:
    """An InboundMention from a Notification entity; None for any type other than `mention`."""
    if not isinstance(obj, Mapping):
        raise BadPayload("a notification must be a JSON object")
    _id(obj, "id")
    if obj.get("type") != "mention":
        return None
    fields = parse_status(_mapping(obj, "status"), account=account, instance_host=instance_host)
    return InboundMention(**fields, raw=dict(obj))


@dataclass(frozen=True, slots=True)
class Page:
    """Mentions and rejects read from notifications, and the newest notification id among them."""

    mentions: tuple[InboundMention, ...]
    rejected: tuple[Rejected, ...]
    newest_id: str | None


def parse_notifications(body: Any, *, source: str, account: str, instance_host: str = "") -> Page:
    """Parse a `GET /api/v1/notifications` answer; bad items rejected, a non-list raises BadPayload."""
    if not isinstance(body, list):
        raise BadPayload("notifications answer is not a JSON list")
    mentions, rejected, ids = [], [], []
    for item in body:
        if isinstance(item, Mapping) and isinstance(item.get("id"), str):
            ids.append(item["id"])
        try:
            mention = parse_notification(item, account=account, instance_host=instance_host)
        except BadPayload as err:
            rejected.append(Rejected(source, payload_text(item), err.reason))
        else:
            if mention is not None:
                mentions.append(mention)
    mentions.sort(key=lambda m: id_key(m.external_id))
    return Page(tuple(mentions), tuple(rejected), newest(*ids))


def parse_link_header(value: str | None) -> dict[str, str]:
    """The URLs of an RFC 8288 Link header by rel: `<url>; rel="next", <url>; rel="prev"`."""
    links: dict[str, str] = {}
    for match in re.finditer(r'<([^>]*)>\s*;\s*rel="?([^",;]+)"?', value or ""):
        links[match.group(2)] = match.group(1)
    return links


class SseDecoder:
    """Incremental Server-Sent Events decoder: feed lines, get (event, data) when one is complete."""

    def __init__(self) -> None:
        self._event = "message"
        self._data: list[str] = []

    def reset(self) -> None:
        """Forget the event being read (its remaining data lines make a `message` event, which is ignored)."""
        self._event, self._data = "message", []

    def feed(self, raw: bytes) -> tuple[str, str] | None:
        """Take one line (with or without its newline); return a finished event or None."""
        line = raw.decode("utf-8", "replace").rstrip("\r\n")
        if not line:
            if not self._data:
                self._event = "message"
                return None
            done = (self._event, "\n".join(self._data))
            self._event, self._data = "message", []
            return done
        if line.startswith(":"):
            return None  # heartbeat / comment
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "event":
            self._event = value
        elif field == "data":
            self._data.append(value)
        return None


def parse_event(event: str, data: str, *, source: str, account: str, instance_host: str = "") -> Page | None:
    """Parse one streaming event: None unless it is a notification; a mention or a reject otherwise."""
    if event != "notification":
        return None
    try:
        obj = orjson.loads(data)
        page = parse_notifications([obj], source=source, account=account, instance_host=instance_host)
    except (orjson.JSONDecodeError, BadPayload) as err:
        return Page((), (Rejected(source, data, f"bad notification event: {err}"),), None)
    return page


def parse_sent(body: Any) -> SentReply:
    """A SentReply from the Status answered to `POST /api/v1/statuses`."""
    if not isinstance(body, Mapping):
        raise BadPayload("status answer is not a JSON object")
    url = body.get("url")
    return SentReply(
        external_id=_id(body, "id"),
        created_at=parse_iso(body.get("created_at")),
        url=url if isinstance(url, str) else None,
        raw=dict(body),
    )


def reply_text(text: str, acct: str) -> str:
    """The reply text, starting with the customer's @acct unless it already mentions them."""
    handle = "@" + acct.lstrip("@")
    if not acct or re.search(re.escape(handle) + r"(?![\w@.-])", text, re.IGNORECASE):
        return text
    return f"{handle} {text}"


def idempotency_key(account: str, in_reply_to: str, text: str) -> str:
    """A stable key per reply so that a retried POST creates one status only."""
    return hashlib.sha256(f"{account}\n{in_reply_to}\n{text}".encode()).hexdigest()[:40]
