"""Mastodon: mention notifications by the streaming API (SSE) with polling fallback; replies as statuses."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any

import aiohttp
import orjson

from carebox.duration import parse_duration
from carebox.errors import (
    BadPayload,
    ConfigError,
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
from connectors._health import Health
from connectors._http import Backoff, read_stream, request_json, with_retries
from connectors._time import parse_iso
from connectors.social.jsonl import payload_text

log = logging.getLogger(__name__)

NETWORK = "mastodon"
MODES = ("stream", "poll")
VISIBILITIES = ("public", "unlisted", "private", "direct")
parse_time = parse_iso  # the former name, still used by tests/fuzz


# --- pure parsing -------------------------------------------------------------------------------


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
    parser = _TextExtractor()
    parser.feed(html)
    parser.close()
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


# --- options ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MastodonOptions:
    """Settings of one Mastodon connector instance."""

    account: str
    base_url: str
    token_env: str
    streaming_url: str | None = None
    mode: str = "stream"
    poll_interval: float = 30.0
    limit: int = 40
    stream_idle_timeout: float = 60.0
    backoff_base: float = 1.0
    backoff_cap: float = 300.0
    timeout: float = 30.0

    @property
    def instance_host(self) -> str:
        """The instance's host name, e.g. `mastodon.social`."""
        return re.sub(r"^[a-z]+://", "", self.base_url).split("/")[0].split(":")[0]


def parse_options(options: Mapping[str, Any], key: str) -> MastodonOptions:
    """Validate a `[[connectors]]` table of type "mastodon"; ConfigError naming the bad key."""

    def text(name: str, required: bool = False, default: str | None = None) -> str | None:
        value = options.get(name, default)
        if value is None and not required:
            return None
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(f"{key}.{name}", "a non-empty string")
        return value.strip()

    base_url = (text("base_url", required=True) or "").rstrip("/")
    if not re.match(r"^https?://[^/]+", base_url):
        raise ConfigError(f"{key}.base_url", "the instance URL, such as https://mastodon.social")
    streaming_url = text("streaming_url")
    if streaming_url and not re.match(r"^https?://[^/]+", streaming_url):
        raise ConfigError(f"{key}.streaming_url", "an https:// URL (the SSE streaming API, not wss://)")
    mode = text("mode", default="stream")
    if mode not in MODES:
        raise ConfigError(f"{key}.mode", 'one of "stream", "poll"')
    limit = options.get("limit", 40)
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= 80:
        raise ConfigError(f"{key}.limit", "an integer from 1 to 80")
    return MastodonOptions(
        account=(text("account", required=True) or "").lstrip("@"),
        base_url=base_url,
        token_env=text("token_env", required=True) or "",
        streaming_url=streaming_url.rstrip("/") if streaming_url else None,
        mode=mode or "stream",
        poll_interval=parse_duration(options.get("poll_interval", "30s"), f"{key}.poll_interval"),
        limit=limit,
        stream_idle_timeout=parse_duration(options.get("stream_idle_timeout", "60s"), f"{key}.stream_idle_timeout"),
        backoff_base=parse_duration(options.get("backoff_base", "1s"), f"{key}.backoff_base"),
        backoff_cap=parse_duration(options.get("backoff_cap", "5m"), f"{key}.backoff_cap"),
        timeout=parse_duration(options.get("timeout", "30s"), f"{key}.timeout"),
    )


def from_config(
    name: str, options: Mapping[str, Any], *, session: aiohttp.ClientSession, environ: Mapping[str, str]
) -> MastodonConnector:
    """Build a Mastodon connector from its `[[connectors]]` entry, resolving the token from `environ`."""
    opts = parse_options(options, f"connectors.{name}")
    token = environ.get(opts.token_env, "")
    if not token:
        raise ConfigError(f"connectors.{name}.token_env", f"the environment variable {opts.token_env} to hold the access token")
    return MastodonConnector(name, opts, session=session, token=token)


# --- the connector ------------------------------------------------------------------------------


class MastodonConnector(Health):
    """Reads mention notifications of one Mastodon account and publishes replies for it."""

    network = NETWORK
    health_log = log
    private_replies = True  # the reply's visibility: the original's, or a `direct` mention

    def __init__(
        self,
        name: str,
        options: MastodonOptions,
        *,
        session: aiohttp.ClientSession,
        token: str,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.name = name
        self.account = options.account
        self.options = options
        self.health_subject = f"connector {name} is"
        self._session = session
        self._auth = {"Authorization": f"Bearer {token}"}
        self._sleep = sleep
        self._cursor: str | None = None  # survives reconnects within one run()

    async def run(self, sink: MentionSink, cursor: str | None) -> None:
        """Stream (or poll) mentions from `cursor` on into `sink` until cancelled."""
        self._cursor = cursor
        backoff = Backoff(self.options.backoff_base, self.options.backoff_cap)
        if self.options.mode == "stream":
            await self._run_steps(lambda: self._stream(sink, backoff), backoff, self._sleep)
        else:
            await self._run_steps(lambda: self._poll(sink), backoff, self._sleep, every=self.options.poll_interval)

    async def _poll(self, sink: MentionSink) -> None:
        """Read the mentions after the cursor page by page, oldest page first; one batch per page."""
        url = self.options.base_url + "/api/v1/notifications"
        params: dict[str, Any] | None = {"types[]": "mention", "limit": str(self.options.limit)}
        if self._cursor and params is not None:
            params["min_id"] = self._cursor
        while True:
            body, headers = await request_json(
                self._session, self.name, "GET", url, params=params, headers=self._auth,
                timeout=self.options.timeout,
            )
            self._ok()
            try:
                page = parse_notifications(
                    body, source=self.name, account=self.account, instance_host=self.options.instance_host
                )
            except BadPayload as err:
                raise ConnectorUnavailable(self.name, f"unexpected answer: {err.reason}") from err
            if page.newest_id is None or id_key(page.newest_id) <= id_key(self._cursor):
                return  # nothing newer (an instance that ignores min_id must not loop us)
            cursor = newest(self._cursor, page.newest_id)
            await sink.put(IngestBatch(self.name, page.mentions, page.rejected, cursor))
            self._cursor = cursor
            prev = parse_link_header(headers.get("Link")).get("prev")
            if not prev:
                return
            # min_id pages walk forward in time: the "prev" link holds the next newer page
            url, params = prev, None

    async def _stream(self, sink: MentionSink, backoff: Backoff) -> None:
        """Open the user notification stream, catch up by polling, then hand over each mention."""
        base = self.options.streaming_url or self.options.base_url
        decoder = SseDecoder()

        async def catch_up() -> None:
            # connected first, polled second: nothing posted in between is missed
            await self._poll(sink)
            self._ok()
            backoff.reset()

        async def on_line(line: bytes) -> None:
            if (event := decoder.feed(line)) is not None:
                await self._stream_event(sink, *event)

        await read_stream(
            self._session, self.name, base + "/api/v1/streaming/user/notification",
            on_open=catch_up, on_line=on_line, headers=self._auth,
            connect_timeout=self.options.timeout, idle_timeout=self.options.stream_idle_timeout,
        )

    async def _stream_event(self, sink: MentionSink, event: str, data: str) -> None:
        page = parse_event(event, data, source=self.name, account=self.account,
                           instance_host=self.options.instance_host)
        if page is None:
            return
        if page.newest_id is not None and id_key(page.newest_id) <= id_key(self._cursor):
            return  # already read by the catch-up poll
        cursor = newest(self._cursor, page.newest_id)
        if page.mentions or page.rejected:
            await sink.put(IngestBatch(self.name, page.mentions, page.rejected, cursor))
        self._cursor = cursor

    async def send_reply(self, reply: OutboundReply) -> SentReply:
        """Post a reply in the original's thread with the original's visibility (a DM gets a DM)."""
        base = self.options.base_url
        original, _ = await with_retries(lambda: request_json(
            self._session, self.name, "GET", f"{base}/api/v1/statuses/{reply.in_reply_to}",
            headers=self._auth, timeout=self.options.timeout,
        ), attempts=3, sleep=self._sleep)
        if not isinstance(original, Mapping):
            raise ConnectorUnavailable(self.name, "original status answer is not a JSON object")
        visibility = original.get("visibility") if original.get("visibility") in VISIBILITIES else "public"
        if not reply.public:
            visibility = "direct"
        found = original.get("account")
        author: Mapping[str, Any] = found if isinstance(found, Mapping) else {}
        acct = reply.customer_handle or str(author.get("acct") or "")
        text = reply_text(reply.text, acct)
        payload = {"status": text, "in_reply_to_id": reply.in_reply_to, "visibility": visibility}
        headers = {**self._auth, "Idempotency-Key": idempotency_key(self.account, reply.in_reply_to, text)}
        body, _ = await with_retries(lambda: request_json(
            self._session, self.name, "POST", f"{base}/api/v1/statuses",
            json=payload, headers=headers, timeout=self.options.timeout,
        ), attempts=3, sleep=self._sleep)
        try:
            return parse_sent(body)
        except BadPayload as err:
            raise ReplyRejected(self.name, f"unexpected status answer: {err.reason}") from err
