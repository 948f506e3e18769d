"""X (API v2): mentions timeline polling or filtered stream, DM events, replies and DMs out."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp
import orjson

from carebox.duration import parse_duration
from carebox.errors import (
    AuthenticationFailed,
    BadPayload,
    ConfigError,
    ConnectorError,
    ConnectorUnavailable,
    RateLimited,
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
from connectors._http import Backoff, error_for_status, parse_rate_reset, request_json
from connectors.social.jsonl import payload_text

log = logging.getLogger(__name__)

NETWORK = "x"
TWEET_FIELDS = "created_at,author_id,conversation_id,in_reply_to_user_id,referenced_tweets,public_metrics,lang"
USER_FIELDS = "username,name,public_metrics,verified"
DM_FIELDS = "id,text,event_type,created_at,dm_conversation_id,sender_id,participant_ids,referenced_tweets"
TWITTER_EPOCH_MS = 1288834974657
MODES = ("poll", "stream")
MAX_ID_DIGITS = 40  # snowflakes are 64-bit (20 digits); longer "ids" are garbage, and int() of huge text is slow


# --- pure parsing -------------------------------------------------------------------------------


def is_decimal(value: Any) -> bool:
    """True for a non-empty string of ASCII digits (str.isdigit alone also accepts '²')."""
    return isinstance(value, str) and value.isascii() and value.isdigit()


def id_key(value: Any) -> int:
    """X ids are decimal snowflakes; compare them as integers (-1 for none or garbage)."""
    return int(value) if is_decimal(value) and len(value) <= MAX_ID_DIGITS else -1


def newest(*ids: str | None) -> str | None:
    """The highest of some ids, or None."""
    best = max(ids, key=id_key, default=None)
    return best if id_key(best) >= 0 else None


def snowflake_time(value: str) -> datetime:
    """When a tweet or DM event id was minted (X ids embed their creation time in milliseconds); BadPayload if none."""
    key = id_key(value)
    if key < 0:
        raise BadPayload(f"id is not a snowflake: {str(value)[:40]!r}")
    try:
        return datetime.fromtimestamp(((key >> 22) + TWITTER_EPOCH_MS) / 1000, UTC)
    except (OverflowError, OSError, ValueError) as err:
        raise BadPayload(f"id is not a snowflake: {str(value)[:40]!r}") from err


def parse_time(value: Any) -> datetime:
    """An aware UTC datetime from X's `2024-01-15T10:30:00.000Z`; BadPayload otherwise."""
    if not isinstance(value, str):
        raise BadPayload("created_at missing or not text")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as err:
        raise BadPayload(f"created_at is not ISO 8601: {value[:40]!r}") from err
    if parsed.tzinfo is None:
        raise BadPayload(f"created_at has no time zone: {value[:40]!r}")
    try:
        return parsed.astimezone(UTC)
    except (OverflowError, ValueError) as err:
        raise BadPayload(f"created_at is out of range in UTC: {value[:40]!r}") from err


def users_by_id(body: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """The `includes.users` expansion of a response, by user id."""
    includes = body.get("includes")
    users = includes.get("users") if isinstance(includes, Mapping) else None
    if not isinstance(users, list):
        return {}
    return {str(u["id"]): u for u in users if isinstance(u, Mapping) and "id" in u}


def _str_field(obj: Mapping[str, Any], key: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or not value:
        raise BadPayload(f"missing field {key!r}")
    return value


def _count(obj: Any, key: str) -> int:
    value = obj.get(key) if isinstance(obj, Mapping) else None
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def _author(user: Mapping[str, Any] | None, author_id: str) -> dict[str, Any]:
    if not user:
        return {"author_handle": author_id, "author_name": "", "followers": None, "verified": False}
    metrics = user.get("public_metrics")
    followers = metrics.get("followers_count") if isinstance(metrics, Mapping) else None
    return {
        "author_handle": str(user.get("username") or author_id),
        "author_name": str(user.get("name") or ""),
        "followers": followers if isinstance(followers, int) and not isinstance(followers, bool) else None,
        "verified": user.get("verified") is True,
    }


def parse_tweet(
    tweet: Any, users: Mapping[str, Mapping[str, Any]], *, account: str, brand_user_id: str
) -> InboundMention:
    """An InboundMention from one v2 tweet object and the `includes.users` expansion."""
    if not isinstance(tweet, Mapping):
        raise BadPayload("a tweet must be a JSON object")
    tweet_id = _str_field(tweet, "id")
    author_id = _str_field(tweet, "author_id")
    text = tweet.get("text")
    if not isinstance(text, str):
        raise BadPayload("missing field 'text'")
    refs = tweet.get("referenced_tweets")
    refs = [r for r in refs if isinstance(r, Mapping)] if isinstance(refs, list) else []
    parent = next((str(r.get("id")) for r in refs if r.get("type") == "replied_to" and r.get("id")), None)
    metrics = tweet.get("public_metrics")
    user = users.get(author_id)
    author = _author(user, author_id)
    lang = tweet.get("lang")
    raw: dict[str, Any] = {"data": dict(tweet)}
    if user:
        raw["includes"] = {"users": [dict(user)]}
    return InboundMention(
        network=NETWORK,
        account=account,
        external_id=tweet_id,
        author_id=author_id,
        text=text,
        created_at=parse_time(tweet.get("created_at")),
        direction=Direction.OUTBOUND if author_id == brand_user_id else Direction.INBOUND,
        in_reply_to=parent,
        thread_key=str(tweet["conversation_id"]) if tweet.get("conversation_id") else None,
        public=True,
        reposts=_count(metrics, "retweet_count") + _count(metrics, "quote_count"),
        is_repost=any(r.get("type") == "retweeted" for r in refs),
        lang_hint=lang if isinstance(lang, str) and lang not in ("und", "") else None,
        url=f"https://x.com/{author['author_handle']}/status/{tweet_id}",
        raw=raw,
        **author,
    )


def parse_dm_event(
    event: Any, users: Mapping[str, Mapping[str, Any]], *, account: str, brand_user_id: str
) -> InboundMention | None:
    """An InboundMention from one DM event; None for events that are not messages (joins, leaves)."""
    if not isinstance(event, Mapping):
        raise BadPayload("a DM event must be a JSON object")
    event_id = _str_field(event, "id")
    if event.get("event_type", "MessageCreate") != "MessageCreate":
        return None
    sender = _str_field(event, "sender_id")
    text = event.get("text")
    if not isinstance(text, str):
        raise BadPayload("missing field 'text'")
    user = users.get(sender)
    raw: dict[str, Any] = {"data": dict(event)}
    if user:
        raw["includes"] = {"users": [dict(user)]}
    return InboundMention(
        network=NETWORK,
        account=account,
        external_id=event_id,
        author_id=sender,
        text=text,
        created_at=parse_time(event.get("created_at")),
        direction=Direction.OUTBOUND if sender == brand_user_id else Direction.INBOUND,
        thread_key=str(event["dm_conversation_id"]) if event.get("dm_conversation_id") else None,
        public=False,
        raw=raw,
        **_author(user, sender),
    )


@dataclass(frozen=True, slots=True)
class Page:
    """One parsed page of a v2 list endpoint."""

    mentions: tuple[InboundMention, ...]
    rejected: tuple[Rejected, ...]
    newest_id: str | None
    oldest_id: str | None
    next_token: str | None


def parse_page(
    body: Any, *, source: str, account: str, brand_user_id: str, dms: bool = False, after: str | None = None
) -> Page:
    """Parse a mentions-timeline or dm_events page, skipping ids up to `after`; bad items are rejected."""
    if not isinstance(body, Mapping):
        raise BadPayload("response is not a JSON object")
    items = body.get("data", [])
    found = body.get("meta")
    meta: Mapping[str, Any] = found if isinstance(found, Mapping) else {}
    if not isinstance(items, list):
        raise BadPayload("'data' is not a list")
    users = users_by_id(body)
    parse = parse_dm_event if dms else parse_tweet
    mentions, rejected, ids, seen = [], [], [], []
    for item in items:
        item_id = str(item.get("id")) if isinstance(item, Mapping) and item.get("id") else None
        seen.append(item_id)
        if item_id is not None and 0 <= id_key(item_id) <= id_key(after):
            continue  # already handed over (dm_events has no since_id)
        ids.append(item_id)
        try:
            mention = parse(item, users, account=account, brand_user_id=brand_user_id)
        except BadPayload as err:
            rejected.append(Rejected(source, payload_text(item), err.reason))
        else:
            if mention is not None:
                mentions.append(mention)
    token = meta.get("next_token")
    valid = [i for i in ids if id_key(i) >= 0]
    return Page(
        mentions=tuple(mentions),
        rejected=tuple(rejected),
        newest_id=newest(meta.get("newest_id"), *valid),
        oldest_id=min(seen, key=id_key) if any(id_key(i) >= 0 for i in seen) else None,
        next_token=token if isinstance(token, str) and token else None,
    )


def parse_stream_line(line: bytes, *, source: str, account: str, brand_user_id: str) -> Page | None:
    """Parse one filtered-stream line: None for a keep-alive; a Page with one mention or one reject."""
    if not line.strip():
        return None
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError:
        return Page((), (Rejected(source, line.decode("utf-8", "replace"), "not JSON"),), None, None, None)
    if isinstance(obj, Mapping) and "data" in obj and not isinstance(obj["data"], list):
        obj = {**obj, "data": [obj["data"]]}
    if isinstance(obj, Mapping) and "data" not in obj and "errors" in obj:
        raise ConnectorUnavailable(source, f"stream error: {str(obj['errors'])[:200]}")
    try:
        return parse_page(obj, source=source, account=account, brand_user_id=brand_user_id)
    except BadPayload as err:
        return Page((), (Rejected(source, line.decode("utf-8", "replace"), err.reason),), None, None, None)


@dataclass(frozen=True, slots=True)
class XCursor:
    """How far we have read: the newest mention id and the newest DM event id."""

    mentions: str | None = None
    dms: str | None = None


def parse_cursor(text: str | None) -> XCursor:
    """Read a cursor written by format_cursor (a bare id means mentions only)."""
    if not text:
        return XCursor()
    if is_decimal(text):
        return XCursor(mentions=text)
    parts = dict(p.split(":", 1) for p in text.split(",") if ":" in p)
    return XCursor(mentions=newest(parts.get("m")), dms=newest(parts.get("dm")))


def format_cursor(cursor: XCursor) -> str | None:
    """The opaque cursor text stored by the pipeline."""
    if cursor.dms is None:
        return cursor.mentions
    return f"m:{cursor.mentions or ''},dm:{cursor.dms}"


def parse_sent(body: Any, account: str) -> SentReply:
    """A SentReply from `POST /2/tweets` or a DM send answer."""
    data = body.get("data") if isinstance(body, Mapping) else None
    if not isinstance(data, Mapping):
        raise BadPayload("reply answer has no 'data' object")
    new_id = data.get("id") or data.get("dm_event_id")
    if id_key(new_id) < 0:
        raise BadPayload("reply answer has no id")
    url = f"https://x.com/{account}/status/{new_id}" if "id" in data else None
    return SentReply(external_id=new_id, created_at=snowflake_time(new_id), url=url, raw=dict(body))


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


class XConnector:
    """Reads mentions (and DMs) of one X account and publishes replies for it."""

    network = NETWORK
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
    ) -> None:
        self.name = name
        self.account = options.account
        self.options = options
        self.last_error: str | None = None
        self.last_ok_at: datetime | None = None
        self._session = session
        self._app_auth = {"Authorization": f"Bearer {app_token}"}
        self._user_auth = {"Authorization": f"Bearer {user_token}"}
        self._sleep = sleep
        self._resume_at = 0.0
        self._state = XCursor()  # survives reconnects within one run()

    # health: log "unavailable" once and "back" once
    def _ok(self) -> None:
        if self.last_error is not None:
            log.info("connector %s is back", self.name)
        self.last_error = None
        self.last_ok_at = datetime.now(UTC)

    def _failed(self, err: ConnectorError) -> None:
        if self.last_error is None:
            log.warning("connector %s is unavailable: %s", self.name, err)
        self.last_error = str(err)

    async def run(self, sink: MentionSink, cursor: str | None) -> None:
        """Poll (or stream) mentions from `cursor` on into `sink` until cancelled."""
        self._state = parse_cursor(cursor)
        backoff = Backoff(self.options.backoff_base, self.options.backoff_cap)
        while True:
            try:
                if self.options.mode == "stream":
                    await self._stream(sink, backoff)
                else:
                    await self._poll(sink)
                    backoff.reset()
                    await self._sleep(self.options.poll_interval)
            except AuthenticationFailed as err:
                self._failed(err)
                log.error("connector %s needs new credentials: %s", self.name, err)
                raise
            except (ConnectorUnavailable, RateLimited) as err:
                self._failed(err)
                await self._sleep(backoff.delay(err))

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

    async def _read_pages(self, path: str, params: dict[str, str], since: str | None, dms: bool) -> Page:
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
            if not token or since is None or id_key(page.oldest_id) <= id_key(since):
                break
        return Page(tuple(mentions), tuple(rejected), newest_id, None, None)

    async def _poll(self, sink: MentionSink) -> None:
        """Read every new mention (and DM) once, and hand them over as one batch with the new cursor."""
        state = self._state
        params = {
            "max_results": str(self.options.max_results),
            "tweet.fields": TWEET_FIELDS, "expansions": "author_id", "user.fields": USER_FIELDS,
        }
        if state.mentions:
            params["since_id"] = state.mentions
        path = f"/2/users/{self.options.user_id}/mentions"
        got = await self._read_pages(path, params, state.mentions, dms=False)
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
        params = {"tweet.fields": TWEET_FIELDS, "expansions": "author_id", "user.fields": USER_FIELDS}
        timeout = aiohttp.ClientTimeout(total=None, connect=self.options.timeout,
                                        sock_read=self.options.stream_idle_timeout)
        try:
            async with self._session.get(
                self.options.base_url + "/2/tweets/search/stream", params=params,
                headers=self._app_auth, timeout=timeout,
            ) as resp:
                if resp.status >= 400:
                    raise error_for_status(self.name, resp.status, resp.headers, (await resp.text())[:200])
                # connected first, polled second: nothing posted in between is missed
                await self._poll(sink)
                backoff.reset()
                async for line in resp.content:
                    if not line.endswith(b"\n"):  # cut mid-message: the catch-up poll of the next connection has it
                        log.info("connector %s: stream cut mid-line, dropping a %d-byte fragment", self.name, len(line))
                        break
                    await self._stream_line(sink, line)
        except (TimeoutError, aiohttp.ClientError) as err:
            raise ConnectorUnavailable(self.name, f"stream: {type(err).__name__}: {err}") from err
        raise ConnectorUnavailable(self.name, "stream closed by the server")

    async def _stream_line(self, sink: MentionSink, line: bytes) -> None:
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
