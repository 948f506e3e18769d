"""Bluesky (AT Protocol XRPC): mentions, replies and quotes from listNotifications; replies via createRecord.

The pure payload code (notifications, reply records, facets, the cursor) lives in `bluesky_parse.py`.
"""

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
    InboundMention,
    IngestBatch,
    MentionSink,
    OutboundReply,
    Rejected,
    SentReply,
)
from connectors._health import Health
from connectors._http import Backoff, error_for_status, parse_rate_reset, with_retries
from connectors._time import parse_iso
from connectors._time import parse_iso as parse_datetime  # noqa: F401 - the former name, still used by tests
from connectors.social.bluesky_parse import (  # re-exported: the tests and the fuzzers use them from here
    MENTION_FEATURE,  # noqa: F401
    NETWORK,
    POST_COLLECTION,
    REASONS,
    advance_cursor,
    build_reply_record,
    decode_cursor,
    encode_cursor,
    mention_facets,  # noqa: F401
    parse_notification,
    post_url,
    with_profiles,
    xrpc_error,
)
from connectors.social.jsonl import payload_text

log = logging.getLogger(__name__)

PROFILES_PER_CALL = 25  # app.bsky.actor.getProfiles accepts at most 25 actors


# ---------------------------------------------------------------- connector


class _TokenExpired(ConnectorError):
    """The access token has expired (XRPC error ExpiredToken): refresh and retry."""


class BlueskyConnector(Health):
    """Polls listNotifications for one Bluesky account and publishes replies as posts."""

    network = NETWORK
    health_log = log
    private_replies = False  # replies are posts; chat is not supported

    def __init__(
        self,
        options: BlueskyOptions,
        password: str,
        *,
        session: aiohttp.ClientSession,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        backoff: Backoff | None = None,
    ) -> None:
        self.options = options
        self.name = options.name
        self.account = options.account
        self._password = password
        self._http = session
        self._sleep = sleep
        self._backoff = backoff or Backoff()
        self._access: str | None = None
        self._refresh_jwt: str | None = None
        self.did: str | None = None
        self.health_subject = f"bluesky {self.name}"
        self._undated: set[str] = set()
        self._rate_wait = 0.0  # a rate limit met after the poll itself succeeded, waited out before the next

    async def _call(
        self, method: str, nsid: str, *, params: Any = None, body: Any = None, token: str | None = None
    ) -> Any:
        url = f"{self.options.service_url}/xrpc/{nsid}"
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        try:
            async with self._http.request(
                method, url, params=params, json=body, headers=headers,
                timeout=aiohttp.ClientTimeout(total=self.options.timeout),
            ) as resp:
                raw, status, resp_headers = await resp.read(), resp.status, resp.headers
        except (TimeoutError, aiohttp.ClientError) as err:
            raise ConnectorUnavailable(self.name, f"{type(err).__name__}: {err}") from err
        if status >= 400:
            if token and status in (400, 401) and xrpc_error(raw) == "ExpiredToken":
                raise _TokenExpired(self.name, "access token expired")
            if status == 429 and not resp_headers.get("Retry-After"):
                wait = parse_rate_reset(resp_headers.get("ratelimit-reset"))  # Bluesky's header has no x- prefix
                if wait is not None:
                    raise RateLimited(self.name, wait, f"HTTP 429, ratelimit-reset in {wait:.0f}s")
            raise error_for_status(self.name, status, resp_headers, raw.decode("utf-8", "replace"))
        try:
            return orjson.loads(raw) if raw else {}
        except orjson.JSONDecodeError as err:
            raise ConnectorUnavailable(self.name, "response is not valid JSON") from err

    def _set_session(self, data: Any) -> None:
        try:
            self._access, self._refresh_jwt, self.did = data["accessJwt"], data["refreshJwt"], data["did"]
        except (KeyError, TypeError) as err:
            raise ConnectorUnavailable(self.name, "session answer lacks accessJwt/refreshJwt/did") from err

    async def _login(self) -> None:
        body = {"identifier": self.options.identifier, "password": self._password}
        self._set_session(await self._call("POST", "com.atproto.server.createSession", body=body))
        log.info("bluesky %s: session created for %s", self.name, self.did)

    async def _refresh(self) -> None:
        if self._refresh_jwt:
            try:
                self._set_session(
                    await self._call("POST", "com.atproto.server.refreshSession", token=self._refresh_jwt)
                )
                log.debug("bluesky %s: session refreshed", self.name)
                return
            except (_TokenExpired, AuthenticationFailed, ReplyRejected) as err:
                log.info("bluesky %s: refresh refused (%s), logging in again", self.name, err)
        await self._login()

    async def xrpc(self, method: str, nsid: str, *, params: Any = None, body: Any = None) -> Any:
        """An authenticated XRPC call; the session is created on first use and refreshed once on ExpiredToken."""
        if self._access is None:
            await self._login()
        try:
            return await self._call(method, nsid, params=params, body=body, token=self._access)
        except _TokenExpired:
            await self._refresh()
        try:
            return await self._call(method, nsid, params=params, body=body, token=self._access)
        except _TokenExpired as err:
            raise AuthenticationFailed(self.name, "token still expired after refresh") from err

    async def fetch_new(
        self, state: tuple[datetime, frozenset[str]] | None
    ) -> tuple[list[Mapping[str, Any]], list[Mapping[str, Any]], list[Rejected]]:
        """(every notification newer than `state`, the wanted ones oldest first, rejects), paging back."""
        opts = self.options
        seen: list[Mapping[str, Any]] = []
        rejected: list[Rejected] = []
        page_cursor: str | None = None
        for page in range(opts.max_pages):
            params = [("limit", str(opts.page_limit))] + [("reasons", r) for r in opts.reasons]
            if page_cursor:
                params.append(("cursor", page_cursor))
            data = await self.xrpc("GET", "app.bsky.notification.listNotifications", params=params)
            notes = data.get("notifications") if isinstance(data, Mapping) else None
            if not isinstance(notes, list):
                raise ConnectorUnavailable(self.name, "listNotifications answer has no notifications list")
            reached = False
            for n in notes:
                try:
                    if not isinstance(n, Mapping) or not isinstance(n.get("uri"), str):
                        raise BadPayload("notification is not an object with a uri")
                    at = parse_iso(n.get("indexedAt"), "indexedAt")
                except BadPayload as err:
                    payload = payload_text(n)
                    if payload not in self._undated:  # cannot be placed before or after the cursor
                        self._undated.add(payload)
                        rejected.append(Rejected(self.name, payload, err.reason))
                    continue
                if state and at < state[0]:
                    reached = True
                    break
                if not (state and at == state[0] and n["uri"] in state[1]):
                    seen.append(n)
            page_cursor = data.get("cursor") if isinstance(data.get("cursor"), str) else None
            if reached or not page_cursor or not notes or state is None:
                break
            if page == opts.max_pages - 1:
                log.warning("bluesky %s: more than %d pages of new notifications; older ones skipped",
                            self.name, opts.max_pages)
        wanted = [n for n in reversed(seen) if n.get("reason") in opts.reasons]
        return seen, wanted, rejected

    async def _with_followers(self, mentions: list[InboundMention]) -> list[InboundMention]:
        dids = list(dict.fromkeys(m.author_id for m in mentions))
        profiles: list[Any] = []
        try:
            for i in range(0, len(dids), PROFILES_PER_CALL):
                params = [("actors", d) for d in dids[i : i + PROFILES_PER_CALL]]
                data = await self.xrpc("GET", "app.bsky.actor.getProfiles", params=params)
                found = data.get("profiles") if isinstance(data, Mapping) else None
                profiles.extend(found if isinstance(found, list) else ())
        except (ConnectorUnavailable, RateLimited, ReplyRejected) as err:
            log.warning("bluesky %s: profiles unavailable, followers left unknown: %s", self.name, err)
            if isinstance(err, RateLimited):  # the mentions go on; the next call waits as asked
                self._rate_wait = max(self._rate_wait, err.retry_after)
        return with_profiles(mentions, profiles)

    async def poll_once(
        self, state: tuple[datetime, frozenset[str]] | None
    ) -> tuple[IngestBatch | None, tuple[datetime, frozenset[str]] | None]:
        """One poll: the batch to hand over (None when nothing changed) and the new cursor state."""
        seen, wanted, rejected = await self.fetch_new(state)
        mentions: list[InboundMention] = []
        for n in wanted:
            try:
                mentions.append(
                    parse_notification(n, account=self.account, brand_did=self.did, web_url=self.options.web_url)
                )
            except BadPayload as err:
                rejected.append(Rejected(self.name, payload_text(n), err.reason))
        if mentions and self.options.fetch_profiles:
            mentions = await self._with_followers(mentions)
        new_state = advance_cursor(state, seen)
        if not mentions and not rejected and new_state == state:
            return None, state
        cursor = encode_cursor(*new_state) if new_state else None
        return IngestBatch(self.name, tuple(mentions), tuple(rejected), cursor), new_state

    async def run(self, sink: MentionSink, cursor: str | None) -> None:
        """Poll notifications from `cursor` on until cancelled; AuthenticationFailed ends the loop."""
        state = decode_cursor(cursor)

        async def step() -> None:
            nonlocal state
            batch, state = await self.poll_once(state)
            if batch is not None:
                await sink.put(batch)
            self._ok()
            self._backoff.reset()
            wait, self._rate_wait = max(self.options.poll_interval, self._rate_wait), 0.0
            await self._sleep(wait)

        await self._run_steps(step, self._backoff, self._sleep)

    async def send_reply(self, reply: OutboundReply) -> SentReply:
        """Post `reply` in the thread of the post it answers (reply.root and reply.parent strong refs)."""
        if not reply.public:
            raise ReplyRejected(self.name, "Bluesky direct messages are not supported")
        data = await with_retries(
            lambda: self.xrpc("GET", "app.bsky.feed.getPosts", params=[("uris", reply.in_reply_to)]),
            attempts=3, backoff=self._backoff, sleep=self._sleep,
        )
        posts = data.get("posts") if isinstance(data, Mapping) else None
        parent = posts[0] if isinstance(posts, list) and posts else None
        if not isinstance(parent, Mapping) or not isinstance(parent.get("cid"), str):
            raise ReplyRejected(self.name, f"post {reply.in_reply_to} not found")
        author: Mapping[str, Any] = parent["author"] if isinstance(parent.get("author"), Mapping) else {}
        now = datetime.now(UTC)
        record = build_reply_record(
            reply.text, parent, created_at=now,
            customer_handle=reply.customer_handle.lstrip("@") or author.get("handle", ""),
            customer_did=reply.customer_id if reply.customer_id.startswith("did:") else author.get("did", ""),
        )
        body = {"repo": self.did, "collection": POST_COLLECTION, "record": record}
        out = await self.xrpc("POST", "com.atproto.repo.createRecord", body=body)  # not retried: not idempotent
        if not isinstance(out, Mapping) or not isinstance(out.get("uri"), str):
            raise ConnectorUnavailable(self.name, "createRecord answer has no uri")
        self._ok()
        return SentReply(out["uri"], now, post_url(self.options.web_url, self.account, out["uri"]), dict(out))


# ---------------------------------------------------------------- options


@dataclass(frozen=True, slots=True)
class BlueskyOptions:
    """One `[[connectors]]` entry of type "bluesky"."""

    name: str
    account: str
    identifier: str
    password_env: str
    service_url: str = "https://bsky.social"
    web_url: str = "https://bsky.app"
    poll_interval: float = 30.0
    reasons: tuple[str, ...] = REASONS
    page_limit: int = 50
    max_pages: int = 10
    fetch_profiles: bool = True
    timeout: float = 30.0


def _str(options: Mapping[str, Any], key: str, where: str, default: str | None = None) -> str:
    value = options.get(key, default)
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{where}.{key}", "a non-empty string")
    return value.strip()


def _int(options: Mapping[str, Any], key: str, where: str, default: int, lo: int, hi: int) -> int:
    value = options.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
        raise ConfigError(f"{where}.{key}", f"an integer from {lo} to {hi}")
    return value


def parse_options(options: Mapping[str, Any], key: str) -> BlueskyOptions:
    """BlueskyOptions from a `[[connectors]]` table; `key` is "connectors.<name>"; ConfigError when bad."""
    account = _str(options, "account", key).lstrip("@")
    reasons = options.get("reasons", list(REASONS))
    if not isinstance(reasons, list) or not reasons or any(r not in REASONS for r in reasons):
        raise ConfigError(f"{key}.reasons", f"a non-empty list drawn from {list(REASONS)}")
    fetch_profiles = options.get("fetch_profiles", True)
    if not isinstance(fetch_profiles, bool):
        raise ConfigError(f"{key}.fetch_profiles", "true or false")
    for url_key in ("service_url", "web_url"):
        if url_key in options and not str(options[url_key]).startswith(("http://", "https://")):
            raise ConfigError(f"{key}.{url_key}", "an http(s) URL")
    return BlueskyOptions(
        name=_str(options, "name", key),
        account=account,
        identifier=_str(options, "identifier", key, account),
        password_env=_str(options, "app_password_env", key),
        service_url=_str(options, "service_url", key, "https://bsky.social").rstrip("/"),
        web_url=_str(options, "web_url", key, "https://bsky.app").rstrip("/"),
        poll_interval=parse_duration(options.get("poll_interval", "30s"), f"{key}.poll_interval"),
        reasons=tuple(reasons),
        page_limit=_int(options, "page_limit", key, 50, 1, 100),
        max_pages=_int(options, "max_pages", key, 10, 1, 1000),
        fetch_profiles=fetch_profiles,
        timeout=parse_duration(options.get("timeout", "30s"), f"{key}.timeout"),
    )


def from_config(
    name: str, options: Mapping[str, Any], *, session: aiohttp.ClientSession, environ: Mapping[str, str]
) -> BlueskyConnector:
    """A BlueskyConnector for one `[[connectors]]` entry; the app password is read from `environ`."""
    opts = parse_options({**options, "name": name}, f"connectors.{name}")
    password = environ.get(opts.password_env)
    if not password:
        raise ConfigError(f"connectors.{name}.app_password_env", f"environment variable {opts.password_env} set")
    return BlueskyConnector(opts, password, session=session)

