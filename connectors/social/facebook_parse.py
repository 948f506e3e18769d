"""Facebook and Instagram webhook payloads, pure: signature and handshake checks, parsers, Graph errors.

`facebook.py` holds the connector and re-exports these names.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from carebox.errors import (
    AuthenticationFailed,
    BadPayload,
    ConnectorError,
    ConnectorUnavailable,
    RateLimited,
    ReplyRejected,
)
from carebox.ports import Direction, InboundMention, Rejected
from connectors._http import error_for_status
from connectors.social.graph_usage import regain_wait
from connectors.social.jsonl import payload_text

log = logging.getLogger("connectors.social.facebook")


SIGNATURE_HEADER = "X-Hub-Signature-256"
FEED_ITEMS = {"comment", "post", "status", "photo", "video", "share"}
# Graph API error codes (https://developers.facebook.com/docs/graph-api/guides/error-handling)
AUTH_CODES = {102, 190, 10} | set(range(200, 300))
RATE_CODES = {4, 17, 32, 613, 80001, 80002, 80004, 80005, 80006}
TRANSIENT_CODES = {1, 2}
OUTSIDE_WINDOW_SUBCODE = 2018278  # Send API: the 24-hour messaging window is closed
GRAPH_RATE_WAIT = 60.0
ENRICH_ATTEMPTS = 3  # a lookup failing on a network error is tried this often within one delivery

# ---------------------------------------------------------------- pure webhook helpers


def verify_signature(app_secret: str, header: str | None, body: bytes) -> bool:
    """True when `header` is "sha256=<hex HMAC-SHA256 of body keyed by the app secret>"."""
    if not header or not header.startswith("sha256="):
        return False
    expected = hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, header.removeprefix("sha256=").strip().lower())


def handshake(query: Mapping[str, str], verify_token: str) -> str | None:
    """The hub.challenge to echo when the subscription request carries our verify token, else None."""
    if query.get("hub.mode") != "subscribe":
        return None
    if not hmac.compare_digest(query.get("hub.verify_token", "").encode(), verify_token.encode()):
        return None
    return query.get("hub.challenge")


def epoch_time(value: Any, field: str) -> datetime:
    """Aware UTC from Graph epoch seconds or milliseconds (or ISO 8601 text); BadPayload otherwise."""
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace("+0000", "+00:00"))
        except ValueError:
            digits = value.isascii() and value.isdigit() and len(value) <= 20
            value = int(value) if digits else None
        else:
            if parsed.tzinfo is None:
                raise BadPayload(f"{field} has no time zone")
            try:
                return parsed.astimezone(UTC)
            except (OverflowError, ValueError) as err:
                raise BadPayload(f"{field} out of range in UTC") from err
    if not isinstance(value, int | float) or isinstance(value, bool) or not value > 0:
        raise BadPayload(f"{field} missing or not a timestamp")
    try:
        seconds = value / 1000 if value > 100_000_000_000 else value  # messaging timestamps are milliseconds
        return datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError) as err:
        raise BadPayload(f"{field} out of range") from err


def _id(obj: Any, key: str, what: str) -> str:
    value = obj.get(key) if isinstance(obj, Mapping) else None
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str) or not value:
        raise BadPayload(f"{what} has no {key}")
    return value


def _text_of(obj: Any, key: str) -> str:
    value = obj.get(key) if isinstance(obj, Mapping) else None
    return value if isinstance(value, str) else ""


def _opt_id(obj: Any, key: str) -> str | None:
    value = obj.get(key) if isinstance(obj, Mapping) else None
    return str(value) if isinstance(value, str | int) and not isinstance(value, bool) and value != "" else None


@dataclass(frozen=True, slots=True)
class Context:
    """What a parser needs besides the payload: who we are and when the entry was sent."""

    network: str
    account: str
    own_id: str
    entry_time: Any = None


# ---------------------------------------------------------------- Facebook parsers


def parse_feed_change(value: Any, ctx: Context) -> InboundMention | None:
    """A mention from a page `feed` change (comment or visitor post); None for events that are not one."""
    if not isinstance(value, Mapping):
        raise BadPayload("feed change value is not an object")
    item, verb = value.get("item"), value.get("verb")
    if not (isinstance(item, str) and item in FEED_ITEMS) or verb not in ("add", "edited"):
        return None  # reactions, likes, removals, hides: nothing to answer
    sender = value.get("from")
    author_id = _id(sender, "id", "feed change 'from'")
    post_id = _id(value, "post_id", "feed change")
    if item != "comment" and author_id == ctx.own_id:
        return None  # the page's own broadcast posts are not conversations
    external_id = _id(value, "comment_id", "comment") if item == "comment" else post_id
    name = _text_of(sender, "name")
    post = value.get("post")
    permalink = post.get("permalink_url") if isinstance(post, Mapping) else None
    message = value.get("message", "")
    return InboundMention(
        network=ctx.network,
        account=ctx.account,
        external_id=external_id,
        author_id=author_id,
        author_handle=name or author_id,
        author_name=name,
        text=message if isinstance(message, str) else "",
        created_at=epoch_time(value.get("created_time", ctx.entry_time), "created_time"),
        direction=Direction.OUTBOUND if author_id == ctx.own_id else Direction.INBOUND,
        in_reply_to=_opt_id(value, "parent_id") if item == "comment" else None,
        thread_key=post_id,
        url=permalink if isinstance(permalink, str) else f"https://www.facebook.com/{external_id}",
        raw=dict(value),
    )


def parse_page_mention(value: Any, ctx: Context) -> InboundMention | None:
    """A mention from a page `mention` change (the page was tagged in a post or comment)."""
    if not isinstance(value, Mapping):
        raise BadPayload("mention change value is not an object")
    if value.get("verb", "add") != "add":
        return None
    post_id = _id(value, "post_id", "page mention")
    is_comment = value.get("item") == "comment"
    external_id = _id(value, "comment_id", "comment mention") if is_comment else post_id
    author_id = _id(value, "sender_id", "page mention")
    name = _text_of(value, "sender_name")
    message = value.get("message", "")
    permalink = value.get("permalink_url")
    return InboundMention(
        network=ctx.network,
        account=ctx.account,
        external_id=external_id,
        author_id=author_id,
        author_handle=name or author_id,
        author_name=name,
        text=message if isinstance(message, str) else "",
        created_at=epoch_time(value.get("created_time", ctx.entry_time), "created_time"),
        direction=Direction.OUTBOUND if author_id == ctx.own_id else Direction.INBOUND,
        in_reply_to=post_id if is_comment else None,
        thread_key=post_id,
        url=permalink if isinstance(permalink, str) else f"https://www.facebook.com/{external_id}",
        raw=dict(value),
    )


def _attachment_text(message: Mapping[str, Any]) -> str:
    found = message.get("attachments")
    kinds = [a.get("type", "file") for a in found if isinstance(a, Mapping)] if isinstance(found, list) else []
    return " ".join(f"[{k}]" for k in kinds)


def parse_messaging(event: Any, ctx: Context) -> InboundMention | None:
    """A private mention from one Messenger / Instagram `messaging` event; None for receipts and postbacks."""
    if not isinstance(event, Mapping):
        raise BadPayload("messaging event is not an object")
    message = event.get("message")
    if not isinstance(message, Mapping) or message.get("is_deleted"):
        return None  # delivery/read receipts, reactions, postbacks, unsends
    sender = _id(event.get("sender"), "id", "messaging event sender")
    recipient = _id(event.get("recipient"), "id", "messaging event recipient")
    echo = bool(message.get("is_echo")) or sender == ctx.own_id
    customer = recipient if echo else sender
    text = _text_of(message, "text") or _attachment_text(message)
    return InboundMention(
        network=ctx.network,
        account=ctx.account,
        external_id=_id(message, "mid", "message"),
        author_id=sender,
        author_handle=sender,
        text=text,
        created_at=epoch_time(event.get("timestamp", ctx.entry_time), "timestamp"),
        direction=Direction.OUTBOUND if echo else Direction.INBOUND,
        in_reply_to=_opt_id(message.get("reply_to"), "mid"),
        thread_key=f"dm:{customer}",
        public=False,
        raw=dict(event),
    )


ChangeParser = Callable[[Any, Context], "InboundMention | None"]
FACEBOOK_FIELDS: dict[str, ChangeParser] = {"feed": parse_feed_change, "mention": parse_page_mention}


def parse_delivery(
    body: Any, ctx: Context, source: str, *, obj: str, fields: Mapping[str, ChangeParser], messaging: bool
) -> tuple[list[InboundMention], list[Rejected]]:
    """Mentions and rejects from one webhook delivery; each change or event is parsed on its own."""
    if not isinstance(body, Mapping) or not isinstance(body.get("entry"), list):
        raise BadPayload("delivery is not an object with an entry list")
    if body.get("object") != obj:
        raise BadPayload(f"delivery object is {body.get('object')!r}, expected {obj!r}")
    mentions: list[InboundMention] = []
    rejected: list[Rejected] = []
    for entry in body["entry"]:
        entry_id = _opt_id(entry, "id")
        if entry_id != ctx.own_id:
            rejected.append(Rejected(source, _dump(entry), f"entry for {entry_id!r}, this connector is {ctx.own_id!r}"))
            continue
        changes, events = entry.get("changes"), entry.get("messaging") if messaging else None
        if not isinstance(changes, list | None) or not isinstance(events, list | None):
            rejected.append(Rejected(source, _dump(entry), "entry 'changes' or 'messaging' is not a list"))
            continue
        ectx = Context(ctx.network, ctx.account, ctx.own_id, entry.get("time"))
        items: list[tuple[Any, Callable[[Any, Context], InboundMention | None]]] = []
        for change in changes or ():
            field = change.get("field") if isinstance(change, Mapping) else None
            parser = fields.get(field) if isinstance(field, str) else None
            if parser is None:
                log.debug("ignoring %s change field %r", ctx.network, field)
                continue
            items.append((change.get("value"), parser))
        if messaging:
            items.extend((event, parse_messaging) for event in events or ())
        for payload, parser in items:
            try:
                mention = parser(payload, ectx)
            except BadPayload as err:
                rejected.append(Rejected(source, _dump(payload), err.reason))
            else:
                if mention is not None:
                    mentions.append(mention)
    return mentions, rejected


def _dump(obj: Any) -> str:
    return payload_text(obj)


def graph_error(connector: str, status: int, headers: Any, body: bytes) -> ConnectorError:
    """The carebox error for a Graph API failure: its error code first, the HTTP status otherwise."""
    try:
        err = orjson.loads(body).get("error", {})
        code = int(err.get("code"))
        detail = f"HTTP {status} code {code}: {str(err.get('message', ''))[:160]}"
    except (orjson.JSONDecodeError, AttributeError, TypeError, ValueError, OverflowError):
        return error_for_status(connector, status, headers, body.decode("utf-8", "replace"))
    if err.get("error_subcode") == OUTSIDE_WINDOW_SUBCODE:
        return ReplyRejected(connector, detail + " (outside the 24-hour messaging window)")
    if code in AUTH_CODES:
        return AuthenticationFailed(connector, detail)
    if code in RATE_CODES:
        wait = regain_wait(headers)
        return RateLimited(connector, GRAPH_RATE_WAIT if wait is None else wait, detail)
    if code in TRANSIENT_CODES or status >= 500:
        return ConnectorUnavailable(connector, detail)
    return error_for_status(connector, status, headers, detail)
