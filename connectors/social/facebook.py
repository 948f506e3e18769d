"""Facebook Pages via Graph API webhooks (feed comments, posts, page mentions, Messenger) and Graph replies.

Instagram shares the webhook and reply machinery here; its payload parsers live in `instagram.py`.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp
import orjson
from aiohttp import web

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
    IngestBatch,
    MentionSink,
    OutboundReply,
    Rejected,
    SentReply,
)
from connectors._health import Health
from connectors._http import with_retries
from connectors.social.facebook_parse import (  # re-exported: instagram.py and the tests use them from here
    ENRICH_ATTEMPTS,
    FACEBOOK_FIELDS,
    GRAPH_RATE_WAIT,  # noqa: F401
    SIGNATURE_HEADER,
    ChangeParser,
    Context,
    _id,  # noqa: F401
    _opt_id,  # noqa: F401
    _text_of,  # noqa: F401
    epoch_time,  # noqa: F401
    graph_error,
    handshake,
    parse_delivery,
    parse_feed_change,  # noqa: F401
    parse_messaging,  # noqa: F401
    parse_page_mention,  # noqa: F401
    verify_signature,
)

log = logging.getLogger(__name__)

# ---------------------------------------------------------------- connector

Enricher = Callable[["GraphConnector", dict[str, Any]], Awaitable[dict[str, Any]]]


async def fetch_page_mention(conn: GraphConnector, value: dict[str, Any]) -> dict[str, Any]:
    """A page `mention` value completed with the post or comment text Graph leaves out of the webhook."""
    if value.get("message") or value.get("verb", "add") != "add":
        return value
    target = value.get("comment_id") if value.get("item") == "comment" else value.get("post_id")
    if not isinstance(target, str):
        return value
    found = await conn.graph("GET", target, params={"fields": "message,created_time,permalink_url"})
    keep = ("message", "created_time", "permalink_url")
    return value | {k: found[k] for k in keep if isinstance(found, Mapping) and k in found}


class GraphConnector(Health):
    """A Facebook Page or an Instagram account: webhook routes in, Graph API replies out."""

    health_log = log
    private_replies = True  # a comment reply, or a private reply to the comment (Send API, recipient.comment_id)

    def __init__(
        self,
        network: str,
        options: GraphOptions,
        token: str,
        app_secret: str,
        verify_token: str,
        *,
        session: aiohttp.ClientSession,
        fields: Mapping[str, ChangeParser] | None = None,
        enrichers: Mapping[str, Enricher] | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.network = network
        self.options = options
        self.name = options.name
        self.account = options.account
        self._object = "instagram" if network == "instagram" else "page"
        self._token, self._app_secret, self._verify_token = token, app_secret, verify_token
        self._http = session
        self._fields = FACEBOOK_FIELDS if fields is None else fields
        self._enrichers = {"mention": fetch_page_mention} if enrichers is None else enrichers
        self._sleep = sleep
        self._clock = clock
        self._rate_limited_until = 0.0  # no lookup before this clock() value: Graph asked us to wait
        self.health_subject = f"{network} {self.name}"

    async def graph(self, method: str, path: str, *, params: Any = None, body: Any = None) -> Any:
        """One Graph API call with the page access token; decoded JSON or a carebox error."""
        url = f"{self.options.graph_url}/{self.options.api_version}/{path.lstrip('/')}"
        headers = {"Authorization": f"Bearer {self._token}"}
        try:
            async with self._http.request(
                method, url, params=params, json=body, headers=headers,
                timeout=aiohttp.ClientTimeout(total=self.options.timeout),
            ) as resp:
                raw, status, resp_headers = await resp.read(), resp.status, resp.headers
        except (TimeoutError, aiohttp.ClientError) as err:
            raise ConnectorUnavailable(self.name, f"{type(err).__name__}: {err}") from err
        if status >= 400:
            raise graph_error(self.name, status, resp_headers, raw)
        try:
            return orjson.loads(raw) if raw else {}
        except orjson.JSONDecodeError as err:
            raise ConnectorUnavailable(self.name, "Graph answer is not valid JSON") from err

    async def run(self, sink: MentionSink, cursor: str | None) -> None:
        """Deliveries arrive through routes(); there is nothing to poll, so wait until cancelled."""
        await asyncio.Event().wait()

    def routes(self, sink: MentionSink) -> list[web.RouteDef]:
        """GET (subscription handshake) and POST (deliveries) on the connector's hook path."""

        async def subscribe(request: web.Request) -> web.Response:
            challenge = handshake(request.query, self._verify_token)
            if challenge is None:
                log.warning("%s: webhook subscription with a wrong verify token refused", self.name)
                return web.Response(status=403, text="forbidden")
            log.info("%s: webhook subscription verified", self.name)
            return web.Response(text=challenge)

        async def deliver(request: web.Request) -> web.Response:
            return await self.handle_delivery(await request.read(), request.headers.get(SIGNATURE_HEADER), sink)

        return [web.get("/", subscribe), web.post("/", deliver)]

    async def handle_delivery(self, body: bytes, signature: str | None, sink: MentionSink) -> web.Response:
        """Verify, parse, make durable, then answer 200; a bad signature gets 403 and touches nothing."""
        if not verify_signature(self._app_secret, signature, body):
            log.warning("%s: delivery with a missing or wrong %s refused", self.name, SIGNATURE_HEADER)
            return web.Response(status=403, text="forbidden")
        try:
            batch = await self.batch_for(body)
        except (ConnectorUnavailable, RateLimited) as err:
            # a lookup the mentions need failed for now: refuse, and Meta delivers the payload again
            self._failed(err)
            wait = err.retry_after if isinstance(err, RateLimited) else 1.0
            return web.Response(status=503, text="try again later", headers={"Retry-After": str(math.ceil(wait))})
        if batch.mentions or batch.rejected:
            await sink.put_durable(batch)  # raising here answers 500: Meta will deliver again
        self._ok()
        return web.Response(text="EVENT_RECEIVED")

    async def batch_for(self, body: bytes) -> IngestBatch:
        """The batch for one verified delivery body; what cannot be parsed is kept as Rejected."""
        try:
            obj = orjson.loads(body)
        except orjson.JSONDecodeError as err:
            return IngestBatch(self.name, rejected=(Rejected(self.name, body.decode("utf-8", "replace"),
                                                             f"delivery is not JSON: {err}"),))
        if self.options.fetch_missing and self._enrichers:
            obj = await self._complete(obj)
        ctx = Context(self.network, self.account, self.options.own_id)
        try:
            mentions, rejected = parse_delivery(
                obj, ctx, self.name, obj=self._object, fields=self._fields, messaging=self.options.messaging
            )
        except BadPayload as err:
            return IngestBatch(self.name, rejected=(Rejected(self.name, body.decode("utf-8", "replace"), err.reason),))
        return IngestBatch(self.name, tuple(mentions), tuple(rejected))

    async def _complete(self, obj: Any) -> Any:
        entries = obj.get("entry") if isinstance(obj, dict) else None
        for entry in entries if isinstance(entries, list) else ():
            changes = entry.get("changes") if isinstance(entry, dict) else None
            for change in changes if isinstance(changes, list) else ():  # parse_delivery rejects other shapes
                field = change.get("field") if isinstance(change, dict) else None
                enrich = self._enrichers.get(field) if isinstance(field, str) else None
                if enrich is None or not isinstance(change.get("value"), dict):
                    continue
                try:
                    change["value"] = await self._enrich(enrich, change["value"])
                except (ConnectorUnavailable, RateLimited):
                    raise  # transient: the delivery is refused and comes again
                except ConnectorError as err:
                    log.warning("%s: could not fetch details of a %s: %s", self.name, change.get("field"), err)
        return obj

    async def _enrich(self, enrich: Enricher, value: dict[str, Any]) -> dict[str, Any]:
        """One lookup, tried again after a network error; none at all while Graph asks us to wait."""
        for attempt in range(1, ENRICH_ATTEMPTS + 1):
            if (left := self._rate_limited_until - self._clock()) > 0:
                raise RateLimited(self.name, left, "Graph rate limit: lookups wait")
            try:
                return await enrich(self, value)
            except RateLimited as err:
                self._rate_limited_until = self._clock() + err.retry_after
                raise
            except ConnectorUnavailable:
                if attempt == ENRICH_ATTEMPTS:
                    raise
                await self._sleep(0.2 * attempt)
        raise AssertionError("unreachable")

    async def _ig_reply_target(self, comment_id: str) -> str:
        """Instagram nests one level only: a reply to a reply goes under its top-level comment."""
        found = await with_retries(
            lambda: self.graph("GET", comment_id, params={"fields": "id,parent_id"}), attempts=3, sleep=self._sleep
        )
        parent = found.get("parent_id") if isinstance(found, Mapping) else None
        return parent if isinstance(parent, str) and parent else comment_id

    def _private_recipient(self, reply: OutboundReply) -> dict[str, str]:
        """Who a private answer goes to: the conversation's PSID / IGSID for a DM; for a public comment (or a
        visitor post) Graph's private reply, addressed by the comment's id (one per comment, within 7 days)."""
        if (reply.thread_key or "").startswith("dm:"):
            recipient = reply.customer_id or (reply.thread_key or "").removeprefix("dm:")
            if not recipient:
                raise ReplyRejected(self.name, "a private reply needs the customer's id")
            return {"id": recipient}
        if not reply.in_reply_to:
            raise ReplyRejected(self.name, "a private reply needs the comment it answers")
        if self.network == "facebook" and reply.in_reply_to == reply.thread_key:
            return {"post_id": reply.in_reply_to}  # a visitor post on the page, not a comment
        return {"comment_id": reply.in_reply_to}

    async def send_reply(self, reply: OutboundReply) -> SentReply:
        """A public comment reply (Facebook /comments, Instagram /replies), or a Send API message: in the
        customer's Messenger / Direct conversation, or a private reply to their comment or visitor post."""
        try:
            if not reply.public:
                body = {"recipient": self._private_recipient(reply), "messaging_type": "RESPONSE",
                        "message": {"text": reply.text}}
                out = await self.graph("POST", "me/messages", body=body)  # not retried: not idempotent
                external_id = out.get("message_id") if isinstance(out, Mapping) else None
            else:
                if self.network == "instagram":
                    path = f"{await self._ig_reply_target(reply.in_reply_to)}/replies"
                else:
                    path = f"{reply.in_reply_to}/comments"
                out = await self.graph("POST", path, body={"message": reply.text})
                external_id = out.get("id") if isinstance(out, Mapping) else None
        except (ConnectorUnavailable, RateLimited, AuthenticationFailed) as err:
            self._failed(err)
            raise
        if not isinstance(external_id, str):
            raise ConnectorUnavailable(self.name, "Graph answer has no id")
        self._ok()
        url = f"https://www.facebook.com/{external_id}" if reply.public and self.network == "facebook" else None
        return SentReply(external_id, datetime.now(UTC), url, dict(out))


# ---------------------------------------------------------------- options


@dataclass(frozen=True, slots=True)
class GraphOptions:
    """One `[[connectors]]` entry of type "facebook" or "instagram"."""

    name: str
    account: str
    own_id: str
    token_env: str
    app_secret_env: str
    verify_token_env: str
    graph_url: str = "https://graph.facebook.com"
    api_version: str = "v21.0"
    messaging: bool = False
    fetch_missing: bool = True
    timeout: float = 10.0


def parse_options(options: Mapping[str, Any], key: str, *, id_key: str = "page_id") -> GraphOptions:
    """GraphOptions from a `[[connectors]]` table; `id_key` is page_id (Facebook) or ig_user_id (Instagram)."""

    def text(k: str, default: str | None = None) -> str:
        value = options.get(k, default)
        if isinstance(value, int) and not isinstance(value, bool) and k == id_key:
            value = str(value)
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(f"{key}.{k}", "a non-empty string")
        return value.strip()

    def flag(k: str, default: bool) -> bool:
        value = options.get(k, default)
        if not isinstance(value, bool):
            raise ConfigError(f"{key}.{k}", "true or false")
        return value

    version = text("api_version", "v21.0")
    if not re.fullmatch(r"v\d+\.\d+", version):
        raise ConfigError(f"{key}.api_version", 'a Graph API version such as "v21.0"')
    graph_url = text("graph_url", "https://graph.facebook.com").rstrip("/")
    if not graph_url.startswith(("http://", "https://")):
        raise ConfigError(f"{key}.graph_url", "an http(s) URL")
    own_id = text(id_key)
    if not own_id.isdigit():
        raise ConfigError(f"{key}.{id_key}", "the numeric Graph id")
    return GraphOptions(
        name=text("name"),
        account=text("account"),
        own_id=own_id,
        token_env=text("token_env"),
        app_secret_env=text("app_secret_env"),
        verify_token_env=text("verify_token_env"),
        graph_url=graph_url,
        api_version=version,
        messaging=flag("messaging", False),
        fetch_missing=flag("fetch_missing", True),
        timeout=parse_duration(options.get("timeout", "10s"), f"{key}.timeout"),
    )


def resolve_secrets(opts: GraphOptions, environ: Mapping[str, str], key: str) -> tuple[str, str, str]:
    """(page access token, app secret, verify token) read from `environ`; ConfigError naming the option."""
    out = []
    for option, var in (("token_env", opts.token_env), ("app_secret_env", opts.app_secret_env),
                        ("verify_token_env", opts.verify_token_env)):
        value = environ.get(var)
        if not value:
            raise ConfigError(f"{key}.{option}", f"environment variable {var} set")
        out.append(value)
    return out[0], out[1], out[2]


def from_config(
    name: str, options: Mapping[str, Any], *, session: aiohttp.ClientSession, environ: Mapping[str, str]
) -> GraphConnector:
    """A Facebook Page connector for one `[[connectors]]` entry (type "instagram" is handed to instagram.py)."""
    if options.get("type") == "instagram":  # deferred import: instagram builds on this module
        from connectors.social import instagram

        return instagram.from_config(name, options, session=session, environ=environ)
    key = f"connectors.{name}"
    opts = parse_options({**options, "name": name}, key)
    token, secret, verify = resolve_secrets(opts, environ, key)
    return GraphConnector("facebook", opts, token, secret, verify, session=session)

