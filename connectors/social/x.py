"""X (API v2): mentions timeline polling or filtered stream, DM events, replies and DMs out.

The pure payload code (tweets, DM events, pages, stream lines, cursors) lives in `x_parse.py`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp

from carebox.duration import parse_duration
from carebox.errors import (
    AuthenticationFailed,
    BadPayload,
    ConfigError,
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
from connectors._http import Backoff, parse_rate_reset, read_stream, request_json
from connectors._time import parse_iso as parse_time  # noqa: F401 - the former name, still used by tests/fuzz
from connectors.social.x_parse import (  # re-exported: the tests and the fuzzers use them from here
    DM_FIELDS,
    MAX_ID_DIGITS,  # noqa: F401
    NETWORK,
    TWEET_FIELDS,
    TWITTER_EPOCH_MS,  # noqa: F401
    USER_FIELDS,
    Page,
    XCursor,
    catch_up_start,
    format_cursor,
    format_start_time,
    id_key,
    is_decimal,
    newest,
    parse_cursor,
    parse_dm_event,  # noqa: F401
    parse_page,
    parse_sent,
    parse_stream_line,
    parse_tweet,  # noqa: F401
    refuses_since_id,
    snowflake_time,  # noqa: F401
    users_by_id,  # noqa: F401
)

log = logging.getLogger(__name__)

MODES = ("poll", "stream")


# --- options ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class XOptions:
    """Settings of one X connector instance."""

    account: str
    user_id: str
    token_env: str
    user_token_env: str | None = None
    base_url: str = "https://api.x.com"
    mode: str = "poll"
    poll_interval: float = 60.0
    dms: bool = False
    max_results: int = 100
    stream_rule: str | None = None
    stream_idle_timeout: float = 30.0
    backoff_base: float = 1.0
    backoff_cap: float = 300.0
    timeout: float = 30.0
    cursor_catch_up: float = 86400.0


def parse_options(options: Mapping[str, Any], key: str) -> XOptions:
    """Validate a `[[connectors]]` table of type "x"; ConfigError naming the bad key."""

    def text(name: str, required: bool = False, default: str | None = None) -> str | None:
        value = options.get(name, default)
        if value is None and not required:
            return None
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(f"{key}.{name}", "a non-empty string")
        return value.strip()

    account = (text("account", required=True) or "").lstrip("@")
    user_id = text("user_id", required=True) or ""
    if not is_decimal(user_id):
        raise ConfigError(f"{key}.user_id", "the numeric X user id of the brand account, as a string")
    mode = text("mode", default="poll")
    if mode not in MODES:
        raise ConfigError(f"{key}.mode", 'one of "poll", "stream"')
    dms = options.get("dms", False)
    if not isinstance(dms, bool):
        raise ConfigError(f"{key}.dms", "true or false")
    max_results = options.get("max_results", 100)
    if not isinstance(max_results, int) or isinstance(max_results, bool) or not 5 <= max_results <= 100:
        raise ConfigError(f"{key}.max_results", "an integer from 5 to 100")
    cursor_catch_up = parse_duration(options.get("cursor_catch_up", "24h"), f"{key}.cursor_catch_up")
    if not 0 < cursor_catch_up <= 7 * 86400:
        raise ConfigError(f"{key}.cursor_catch_up", 'a duration from "1s" to "7d"')
    return XOptions(
        account=account,
        user_id=user_id,
        token_env=text("token_env", required=True) or "",
        user_token_env=text("user_token_env"),
        base_url=(text("base_url", default="https://api.x.com") or "").rstrip("/"),
        mode=mode or "poll",
        poll_interval=parse_duration(options.get("poll_interval", "60s"), f"{key}.poll_interval"),
        dms=dms,
        max_results=max_results,
        stream_rule=text("stream_rule", default=f"@{account}"),
        stream_idle_timeout=parse_duration(options.get("stream_idle_timeout", "30s"), f"{key}.stream_idle_timeout"),
        backoff_base=parse_duration(options.get("backoff_base", "1s"), f"{key}.backoff_base"),
        backoff_cap=parse_duration(options.get("backoff_cap", "5m"), f"{key}.backoff_cap"),
        timeout=parse_duration(options.get("timeout", "30s"), f"{key}.timeout"),
        cursor_catch_up=cursor_catch_up,
    )


def _secret(environ: Mapping[str, str], env_name: str, key: str) -> str:
    value = environ.get(env_name, "")
    if not value:
        raise ConfigError(key, f"the environment variable {env_name} to hold the token")
    return value


def from_config(
    name: str, options: Mapping[str, Any], *, session: aiohttp.ClientSession, environ: Mapping[str, str]
) -> XConnector:
    """Build an X connector from its `[[connectors]]` entry, resolving tokens from `environ`."""
    opts = parse_options(options, f"connectors.{name}")
    app_token = _secret(environ, opts.token_env, f"connectors.{name}.token_env")
    user_token = app_token
    if opts.user_token_env:
        user_token = _secret(environ, opts.user_token_env, f"connectors.{name}.user_token_env")
    return XConnector(name, opts, session=session, app_token=app_token, user_token=user_token)


# --- the connector ------------------------------------------------------------------------------


class XConnector(Health):
    """Reads mentions (and DMs) of one X account and publishes replies for it."""

    network = NETWORK
    health_log = log
    private_replies = True  # a reply tweet, or a direct message to the customer

    def __init__(
        self,
        name: str,
        options: XOptions,
        *,
        session: aiohttp.ClientSession,
        app_token: str,
        user_token: str,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.name = name
        self.account = options.account
        self.options = options
        self.health_subject = f"connector {name} is"
        self._session = session
        self._app_auth = {"Authorization": f"Bearer {app_token}"}
        self._user_auth = {"Authorization": f"Bearer {user_token}"}
        self._sleep = sleep
        self._now = now
        self._catch_up: tuple[datetime, str] | None = None  # (start_time, refused since_id) once X refused it
        self._resume_at = 0.0
        self._state = XCursor()  # survives reconnects within one run()

    async def run(self, sink: MentionSink, cursor: str | None) -> None:
        """Poll (or stream) mentions from `cursor` on into `sink` until cancelled."""
        self._state = parse_cursor(cursor)
        backoff = Backoff(self.options.backoff_base, self.options.backoff_cap)
        if self.options.mode == "stream":
            await self._run_steps(lambda: self._stream(sink, backoff), backoff, self._sleep)
        else:
            await self._run_steps(lambda: self._poll(sink), backoff, self._sleep, every=self.options.poll_interval)

    async def _get(self, path: str, params: Mapping[str, str], auth: Mapping[str, str]) -> Any:
        """GET one page, waiting first if the last answer said the rate window is spent."""
        loop = asyncio.get_running_loop()
        if (wait := self._resume_at - loop.time()) > 0:
            await self._sleep(wait)
        body, headers = await request_json(
            self._session, self.name, "GET", self.options.base_url + path,
            params=params, headers=auth, timeout=self.options.timeout,
        )
        self._ok()
        if headers.get("x-rate-limit-remaining") == "0":
            reset = parse_rate_reset(headers.get("x-rate-limit-reset"))
            self._resume_at = loop.time() + (reset if reset is not None else 60.0)
        return body

    async def _read_pages(
        self, path: str, params: dict[str, str], since: str | None, dms: bool, whole: bool = False
    ) -> Page:
        """Follow next_token until the pages reach `since` (or one page when there is no cursor)."""
        mentions: list[InboundMention] = []
        rejected: list[Rejected] = []
        newest_id = since
        token = None
        auth = self._user_auth if dms else self._app_auth
        while True:
            page_params = {**params, "pagination_token": token} if token else params
            try:
                page = parse_page(
                    await self._get(path, page_params, auth), source=self.name, account=self.account,
                    brand_user_id=self.options.user_id, dms=dms, after=since,
                )
            except BadPayload as err:
                raise ConnectorUnavailable(self.name, f"unexpected answer: {err.reason}") from err
            mentions.extend(page.mentions)
            rejected.extend(page.rejected)
            newest_id = newest(newest_id, page.newest_id)
            token = page.next_token
            if not token or (since is None and not whole) or id_key(page.oldest_id) <= id_key(since):
                break
        return Page(tuple(mentions), tuple(rejected), newest_id, None, None)

    async def _read_mentions(self, since: str | None) -> Page:
        """The mentions after `since`; once X refuses that cursor, those of a bounded catch-up window instead."""
        params = {
            "max_results": str(self.options.max_results),
            "tweet.fields": TWEET_FIELDS, "expansions": "author_id", "user.fields": USER_FIELDS,
        }
        path = f"/2/users/{self.options.user_id}/mentions"
        if since is not None:
            try:
                return await self._read_pages(path, {**params, "since_id": since}, since, dms=False)
            except ReplyRejected as err:
                if not refuses_since_id(err.detail):
                    raise
                # a cursor too old (or unknown) for X fails the same way at every restart: drop it, once
                start = catch_up_start(since, self._now(), timedelta(seconds=self.options.cursor_catch_up))
                self._catch_up = (start, since)
                log.warning("connector %s: X refused the cursor since_id=%s (%s); resuming from %s",
                            self.name, since, err.detail[:120], format_start_time(start))
        if self._catch_up is None:
            return await self._read_pages(path, params, None, dms=False)
        start, refused = self._catch_up
        params["start_time"] = format_start_time(start)
        got = await self._read_pages(path, params, None, dms=False, whole=True)
        # what the refused cursor covered is stored already, and must not become the cursor again
        if id_key(got.newest_id) <= id_key(refused):
            return Page((), (), None, None, None)  # nothing after it yet: keep the window
        self._catch_up = None  # a fresh cursor again: since_id from now on
        fresh = tuple(m for m in got.mentions if id_key(m.external_id) > id_key(refused))
        return Page(fresh, got.rejected, got.newest_id, None, None)

    async def _poll(self, sink: MentionSink) -> None:
        """Read every new mention (and DM) once, and hand them over as one batch with the new cursor."""
        state = self._state
        got = await self._read_mentions(state.mentions)
        mentions, rejected = list(got.mentions), list(got.rejected)
        new_state = XCursor(got.newest_id, state.dms)
        if self.options.dms:
            dm_params = {
                "max_results": str(self.options.max_results), "event_types": "MessageCreate",
                "dm_event.fields": DM_FIELDS, "expansions": "sender_id", "user.fields": USER_FIELDS,
            }
            dms = await self._read_pages("/2/dm_events", dm_params, state.dms, dms=True)
            mentions.extend(dms.mentions)
            rejected.extend(dms.rejected)
            new_state = XCursor(new_state.mentions, dms.newest_id or "0")
        if mentions or rejected or new_state != state:
            mentions.sort(key=lambda m: id_key(m.external_id))
            await sink.put(IngestBatch(self.name, tuple(mentions), tuple(rejected), format_cursor(new_state)))
        self._state = new_state

    async def _ensure_rule(self) -> None:
        """Add the stream rule that matches the brand's mentions unless it is already there."""
        rule = self.options.stream_rule
        url = self.options.base_url + "/2/tweets/search/stream/rules"
        body = await self._get("/2/tweets/search/stream/rules", {}, self._app_auth)
        rules = body.get("data") if isinstance(body, Mapping) else None
        if isinstance(rules, list) and any(isinstance(r, Mapping) and r.get("value") == rule for r in rules):
            return
        await request_json(
            self._session, self.name, "POST", url, headers=self._app_auth, timeout=self.options.timeout,
            json={"add": [{"value": rule, "tag": f"carebox:{self.name}"}]},
        )
        log.info("connector %s added stream rule %r", self.name, rule)

    async def _stream(self, sink: MentionSink, backoff: Backoff) -> None:
        """Connect the filtered stream, catch up by polling, then hand over each streamed mention."""
        await self._ensure_rule()

        async def catch_up() -> None:
            # connected first, polled second: nothing posted in between is missed
            await self._poll(sink)
            backoff.reset()

        async def skipped(size: int) -> None:
            # the line may have held a mention: poll for it before the next line moves the cursor past it
            await self._poll(sink)

        await read_stream(
            self._session, self.name, self.options.base_url + "/2/tweets/search/stream",
            on_open=catch_up, on_line=lambda line: self._stream_line(sink, line), on_skip=skipped,
            connect_timeout=self.options.timeout, idle_timeout=self.options.stream_idle_timeout,
            params={"tweet.fields": TWEET_FIELDS, "expansions": "author_id", "user.fields": USER_FIELDS},
            headers=self._app_auth,
        )

    async def _stream_line(self, sink: MentionSink, line: bytes) -> None:
        if not line.endswith(b"\n"):  # cut mid-message, the stream's end: the next connection's catch-up poll has it
            log.info("connector %s: stream cut mid-line, dropping a %d-byte fragment", self.name, len(line))
            return
        page = parse_stream_line(line, source=self.name, account=self.account, brand_user_id=self.options.user_id)
        if page is None:
            return
        state = self._state
        fresh = tuple(m for m in page.mentions if id_key(m.external_id) > id_key(state.mentions))
        new_state = XCursor(newest(state.mentions, page.newest_id), state.dms)
        if fresh or page.rejected:
            await sink.put(IngestBatch(self.name, fresh, page.rejected, format_cursor(new_state)))
        self._state = new_state

    async def send_reply(self, reply: OutboundReply) -> SentReply:
        """Publish a public reply tweet, or a DM when the reply is private. Not retried: X has no idempotency key."""
        if reply.public:
            path = "/2/tweets"
            payload: dict[str, Any] = {"text": reply.text, "reply": {"in_reply_to_tweet_id": reply.in_reply_to}}
        elif reply.customer_id:
            path = f"/2/dm_conversations/with/{reply.customer_id}/messages"
            payload = {"text": reply.text}
        elif reply.thread_key:
            path = f"/2/dm_conversations/{reply.thread_key}/messages"
            payload = {"text": reply.text}
        else:
            raise ReplyRejected(self.name, "a private reply needs the customer id or the DM conversation id")
        try:
            body, _ = await request_json(
                self._session, self.name, "POST", self.options.base_url + path,
                json=payload, headers=self._user_auth, timeout=self.options.timeout,
            )
        except AuthenticationFailed as err:
            # X answers 403 for refused content (duplicates, replies not allowed): not a credentials problem
            if "duplicate" in err.detail.lower() or "not allowed" in err.detail.lower():
                raise ReplyRejected(self.name, err.detail) from err
            raise
        try:
            return parse_sent(body, self.account)
        except BadPayload as err:
            raise ConnectorUnavailable(self.name, f"unexpected reply answer: {err.reason}") from err
