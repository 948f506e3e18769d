"""Signed generic webhook: any other source POSTs carebox-shaped mentions to /hooks/<name>."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable, Mapping
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
from connectors._http import Backoff, request_json, with_retries
from connectors._signing import SIGNATURE_HEADER, sign, verify
from connectors.social.jsonl import parse_mention, payload_text

log = logging.getLogger(__name__)

NETWORK = "webhook"
IDEMPOTENCY_HEADER = "Idempotency-Key"


@dataclass(frozen=True, slots=True)
class WebhookOptions:
    """The `[[connectors]]` options of one signed webhook connector."""

    name: str
    account: str
    secret_env: str
    network: str = NETWORK
    tolerance_s: float = 300.0
    max_body_bytes: int = 1024 * 1024
    callback_url: str = ""
    callback_secret_env: str = ""
    callback_timeout_s: float = 10.0
    send_attempts: int = 3


def parse_delivery(
    body: bytes, *, source: str, network: str, account: str
) -> tuple[tuple[InboundMention, ...], tuple[Rejected, ...]]:
    """Mentions and dead letters from one delivery (an object or a list); BadPayload if it is not JSON."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as err:
        raise BadPayload(f"body is not JSON: {err}") from err
    items = doc if isinstance(doc, list) else [doc]
    mentions: list[InboundMention] = []
    rejected: list[Rejected] = []
    for index, item in enumerate(items):
        try:
            mentions.append(parse_mention(item, network=network, account=account))
        except BadPayload as err:
            payload = payload_text(item)
            rejected.append(Rejected(source, payload, f"item {index}: {err.reason}"))
    return tuple(mentions), tuple(rejected)


def reply_payload(reply: OutboundReply, reply_id: str, created_at: datetime) -> dict[str, Any]:
    """The JSON body POSTed to the callback URL for one reply."""
    return {
        "type": "reply",
        "id": reply_id,
        "network": reply.network,
        "account": reply.account,
        "in_reply_to": reply.in_reply_to,
        "thread_key": reply.thread_key,
        "text": reply.text,
        "public": reply.public,
        "customer_id": reply.customer_id,
        "customer_handle": reply.customer_handle,
        "created_at": created_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
    }


def _opt_str(options: Mapping[str, Any], key: str, prefix: str, default: str | None = None) -> str:
    value = options.get(key, default)
    if not isinstance(value, str) or (default is None and not value.strip()):
        raise ConfigError(f"{prefix}.{key}", "a non-empty string" if default is None else "a string")
    return value


def parse_options(options: Mapping[str, Any], key: str) -> WebhookOptions:
    """WebhookOptions from a `[[connectors]]` entry; ConfigError naming the bad option otherwise."""
    name = _opt_str(options, "name", key)
    prefix = f"connectors.{name}"
    max_body = options.get("max_body_bytes", 1024 * 1024)
    if isinstance(max_body, bool) or not isinstance(max_body, int) or not 1024 <= max_body <= 64 * 1024 * 1024:
        raise ConfigError(f"{prefix}.max_body_bytes", "an integer from 1024 to 67108864")
    attempts = options.get("send_attempts", 3)
    if isinstance(attempts, bool) or not isinstance(attempts, int) or not 1 <= attempts <= 10:
        raise ConfigError(f"{prefix}.send_attempts", "an integer from 1 to 10")
    callback_url = _opt_str(options, "callback_url", prefix, "")
    if callback_url and not callback_url.startswith(("http://", "https://")):
        raise ConfigError(f"{prefix}.callback_url", "an http:// or https:// URL, or nothing")
    tolerance = parse_duration(options.get("tolerance", "5m"), f"{prefix}.tolerance")
    if tolerance <= 0:
        raise ConfigError(f"{prefix}.tolerance", "a positive duration such as \"5m\"")
    return WebhookOptions(
        name=name,
        account=_opt_str(options, "account", prefix),
        secret_env=_opt_str(options, "secret_env", prefix),
        network=_opt_str(options, "network", prefix, NETWORK) or NETWORK,
        tolerance_s=tolerance,
        max_body_bytes=max_body,
        callback_url=callback_url,
        callback_secret_env=_opt_str(options, "callback_secret_env", prefix, ""),
        callback_timeout_s=parse_duration(options.get("callback_timeout", "10s"), f"{prefix}.callback_timeout"),
        send_attempts=attempts,
    )


class WebhookConnector(Health):
    """Receives signed mention deliveries; sends replies, signed, to an optional callback URL."""

    health_log = log

    def __init__(
        self,
        options: WebhookOptions,
        *,
        secret: str,
        session: aiohttp.ClientSession,
        callback_secret: str | None = None,
        clock: Callable[[], float] = time.time,
        backoff: Backoff | None = None,
    ) -> None:
        self.options = options
        self.name = options.name
        self.network = options.network
        self.account = options.account
        self.health_subject = f"{self.name}:"
        self._secret = secret
        self._callback_secret = callback_secret or secret
        self._session = session
        self._clock = clock
        self._backoff = backoff or Backoff()

    def routes(self, sink: MentionSink) -> list[web.RouteDef]:
        """The delivery endpoint, relative to the connector's mount: POST /hooks/<name>/."""

        async def receive(request: web.Request) -> web.StreamResponse:
            return await self.receive(request, sink)

        return [web.post("/", receive)]

    async def _read_body(self, request: web.Request) -> bytes | None:
        """The body, or None when it is larger than `max_body_bytes`."""
        limit = self.options.max_body_bytes
        if request.content_length is not None and request.content_length > limit:
            return None
        body = bytearray()
        async for chunk in request.content.iter_chunked(64 * 1024):
            body += chunk
            if len(body) > limit:
                return None
        return bytes(body)

    async def receive(self, request: web.Request, sink: MentionSink) -> web.StreamResponse:
        """Verify, parse and make one delivery durable; only then answer 202."""
        body = await self._read_body(request)
        if body is None:
            log.warning("%s: delivery refused, body over %d bytes", self.name, self.options.max_body_bytes)
            return web.json_response({"error": "body too large"}, status=413)
        problem = verify(
            self._secret, request.headers.get(SIGNATURE_HEADER), body, self._clock(), self.options.tolerance_s
        )
        if problem is not None:
            # the reason is logged, never told to the caller
            log.warning("%s: delivery refused from %s: %s", self.name, request.remote, problem)
            return web.Response(status=401, text="unauthorized")
        answer: dict[str, Any]
        try:
            mentions, rejected = parse_delivery(
                body, source=self.name, network=self.options.network, account=self.account
            )
            status, answer = 202, {"accepted": len(mentions), "rejected": len(rejected)}
        except BadPayload as err:
            mentions, rejected = (), (Rejected(self.name, body.decode("utf-8", "replace"), err.reason),)
            status, answer = 400, {"error": "body is not JSON", "accepted": 0, "rejected": 1}
        if mentions or rejected:
            try:
                await sink.put_durable(IngestBatch(source=self.name, mentions=mentions, rejected=rejected))
            except Exception as err:  # noqa: BLE001 - nothing may be acknowledged that is not stored
                self._failed(err)
                return web.json_response({"error": "temporarily unavailable"}, status=503, headers={"Retry-After": "30"})
        self._ok()
        if rejected and status == 202:
            answer["errors"] = [r.reason for r in rejected]
        return web.json_response(answer, status=status)

    async def run(self, sink: MentionSink, cursor: str | None) -> None:
        """Deliveries arrive through routes(); nothing to poll, so wait until cancelled."""
        await asyncio.Event().wait()

    async def send_reply(self, reply: OutboundReply) -> SentReply:
        """POST the reply, signed, to the callback URL; ReplyRejected when none is configured."""
        if not self.options.callback_url:
            raise ReplyRejected(self.name, "this webhook connector has no callback_url: it cannot deliver replies")
        reply_id = str(uuid.uuid4())
        now = datetime.now(UTC)
        body = orjson.dumps(reply_payload(reply, reply_id, now))

        async def post() -> Any:
            headers = {
                "Content-Type": "application/json",
                SIGNATURE_HEADER: sign(self._callback_secret, body, int(self._clock())),
                IDEMPOTENCY_HEADER: reply_id,
            }
            try:
                doc, _ = await request_json(
                    self._session,
                    self.name,
                    "POST",
                    self.options.callback_url,
                    timeout=self.options.callback_timeout_s,
                    data=body,
                    headers=headers,
                )
            except (ConnectorUnavailable, RateLimited, AuthenticationFailed, ReplyRejected) as err:
                self._failed(err)  # health shows it, including "needs new credentials" after a 401/403
                raise
            return doc

        doc = await with_retries(post, attempts=self.options.send_attempts, backoff=self._backoff)
        self._ok()
        doc = doc if isinstance(doc, dict) else {}
        external_id = doc.get("external_id") or doc.get("id") or reply_id
        url = doc.get("url") if isinstance(doc.get("url"), str) else None
        return SentReply(external_id=str(external_id), created_at=now, url=url, raw=doc)


def from_config(
    name: str, options: Mapping[str, Any], *, session: aiohttp.ClientSession, environ: Mapping[str, str]
) -> WebhookConnector:
    """A WebhookConnector from its `[[connectors]]` entry; secrets come from `environ`."""
    opts = parse_options({**options, "name": name}, f"connectors.{name}")
    secret = environ.get(opts.secret_env, "")
    if not secret:
        raise ConfigError(f"connectors.{name}.secret_env", f"the environment variable {opts.secret_env} to be set")
    callback_secret = None
    if opts.callback_secret_env:
        callback_secret = environ.get(opts.callback_secret_env, "")
        if not callback_secret:
            raise ConfigError(
                f"connectors.{name}.callback_secret_env",
                f"the environment variable {opts.callback_secret_env} to be set",
            )
    return WebhookConnector(opts, secret=secret, session=session, callback_secret=callback_secret)
