"""X (API v2) payloads: tweets, DM events, pages and stream lines to mentions; ids, cursors, reply answers."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from carebox.errors import BadPayload, ConnectorUnavailable
from carebox.ports import Direction, InboundMention, Rejected, SentReply
from connectors._time import parse_iso
from connectors.social.jsonl import payload_text

NETWORK = "x"
TWEET_FIELDS = "created_at,author_id,conversation_id,in_reply_to_user_id,referenced_tweets,public_metrics,lang"
USER_FIELDS = "username,name,public_metrics,verified"
DM_FIELDS = "id,text,event_type,created_at,dm_conversation_id,sender_id,participant_ids,referenced_tweets"
TWITTER_EPOCH_MS = 1288834974657
MAX_ID_DIGITS = 40  # snowflakes are 64-bit (20 digits); longer "ids" are garbage, and int() of huge text is slow


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


def _common_fields(
    obj: Mapping[str, Any], item_id: str, author_id: str, users: Mapping[str, Mapping[str, Any]], *, account: str,
    brand_user_id: str,
) -> dict[str, Any]:
    """The InboundMention fields a tweet and a DM event share; `raw` keeps the author's user expansion."""
    text = obj.get("text")
    if not isinstance(text, str):
        raise BadPayload("missing field 'text'")
    user = users.get(author_id)
    raw: dict[str, Any] = {"data": dict(obj)}
    if user:
        raw["includes"] = {"users": [dict(user)]}
    return {
        "network": NETWORK,
        "account": account,
        "external_id": item_id,
        "author_id": author_id,
        "text": text,
        "created_at": parse_iso(obj.get("created_at")),
        "direction": Direction.OUTBOUND if author_id == brand_user_id else Direction.INBOUND,
        "raw": raw,
        **_author(user, author_id),
    }


def parse_tweet(
    tweet: Any, users: Mapping[str, Mapping[str, Any]], *, account: str, brand_user_id: str
) -> InboundMention:
    """An InboundMention from one v2 tweet object and the `includes.users` expansion."""
    if not isinstance(tweet, Mapping):
        raise BadPayload("a tweet must be a JSON object")
    tweet_id = _str_field(tweet, "id")
    fields = _common_fields(tweet, tweet_id, _str_field(tweet, "author_id"), users, account=account,
                            brand_user_id=brand_user_id)
    refs = tweet.get("referenced_tweets")
    refs = [r for r in refs if isinstance(r, Mapping)] if isinstance(refs, list) else []
    parent = next((str(r.get("id")) for r in refs if r.get("type") == "replied_to" and r.get("id")), None)
    metrics = tweet.get("public_metrics")
    lang = tweet.get("lang")
    return InboundMention(
        **fields,
        in_reply_to=parent,
        thread_key=str(tweet["conversation_id"]) if tweet.get("conversation_id") else None,
        public=True,
        reposts=_count(metrics, "retweet_count") + _count(metrics, "quote_count"),
        is_repost=any(r.get("type") == "retweeted" for r in refs),
        lang_hint=lang if isinstance(lang, str) and lang not in ("und", "") else None,
        url=f"https://x.com/{fields['author_handle']}/status/{tweet_id}",
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
    fields = _common_fields(event, event_id, _str_field(event, "sender_id"), users, account=account,
                            brand_user_id=brand_user_id)
    return InboundMention(
        **fields,
        thread_key=str(event["dm_conversation_id"]) if event.get("dm_conversation_id") else None,
        public=False,
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


def refuses_since_id(detail: str) -> bool:
    """True when an X error is the 400 "Invalid 'since_id'" answer to a cursor that is too old or unknown."""
    return detail.startswith("HTTP 400") and "since_id" in detail


def catch_up_start(cursor_id: str | None, now: datetime, catch_up: timedelta) -> datetime:
    """Where to resume once X refuses the cursor: the cursor's own time, bounded to [now - catch_up, now]."""
    floor = now - catch_up
    try:
        at = snowflake_time(cursor_id) if cursor_id else floor
    except BadPayload:
        at = floor
    return min(max(at, floor), now)


def format_start_time(when: datetime) -> str:
    """An X `start_time` value: UTC, RFC 3339, second granularity (inclusive)."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


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
