"""Mastodon: mention notifications by the streaming API (SSE) with polling fallback; replies as statuses.

The pure payload code (statuses, notifications, SSE events, Link headers, reply text) lives in `mastodon_parse.py`.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
from yarl import URL

from carebox.duration import parse_duration
from carebox.errors import (
    BadPayload,
    ConfigError,
    ConnectorUnavailable,
    ReplyRejected,
)
from carebox.ports import (
    IngestBatch,
    MentionSink,
    OutboundReply,
    SentReply,
)
from connectors._health import Health
from connectors._http import Backoff, read_stream, request_json, with_retries
from connectors._time import parse_iso as parse_time  # noqa: F401 - the former name, still used by tests/fuzz
from connectors.social.mastodon_parse import (  # re-exported: the tests and the fuzzers use them from here
    NETWORK,
    VISIBILITIES,
    Page,  # noqa: F401
    SseDecoder,
    html_to_text,  # noqa: F401
    id_key,
    idempotency_key,
    newest,
    parse_event,
    parse_link_header,
    parse_notification,  # noqa: F401
    parse_notifications,
    parse_sent,
    parse_status,  # noqa: F401
    reply_text,
    same_acct,  # noqa: F401
)

log = logging.getLogger(__name__)

MODES = ("stream", "poll")


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
        self._link_elsewhere_logged = False

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
            if (next_url := self._next_page(url, prev)) is None:
                return  # the next poll goes on from the cursor
            url, params = next_url, None

    def _next_page(self, url: str, link: str) -> str | None:
        """The URL of a Link target, always on the instance: the access token goes with the request."""
        try:
            target = URL(url).join(URL(link))  # a relative link resolves against the page it came with
            home = URL(self.options.base_url)
            if (target.scheme, target.host, target.port) == (home.scheme, home.host, home.port):
                return str(target)
            elsewhere = str(target.origin())
        except ValueError:
            log.warning("connector %s: unreadable Link %r; the next poll goes on from the cursor", self.name, link[:200])
            return None
        if not self._link_elsewhere_logged:  # a proxy in front of the instance, or a hostile answer
            self._link_elsewhere_logged = True
            log.warning("connector %s: Link to %s read from %s instead", self.name, elsewhere, home.origin())
        return str(home.origin()) + target.raw_path_qs

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

        async def skipped(size: int) -> None:
            # the event that line belonged to is lost to the stream: forget it, and poll for its mention
            decoder.reset()
            await self._poll(sink)

        await read_stream(
            self._session, self.name, base + "/api/v1/streaming/user/notification",
            on_open=catch_up, on_line=on_line, on_skip=skipped, headers=self._auth,
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
