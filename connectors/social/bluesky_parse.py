"""Bluesky payloads: notifications to mentions, reply records and facets, carebox's cursor; pure functions."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson

from carebox.errors import BadPayload
from carebox.ports import Direction, InboundMention
from connectors._time import parse_iso

log = logging.getLogger(__name__)

NETWORK = "bluesky"
POST_COLLECTION = "app.bsky.feed.post"
MENTION_FEATURE = "app.bsky.richtext.facet#mention"
REASONS = ("mention", "reply", "quote")


# ---------------------------------------------------------------- pure parsing


def post_url(web_url: str, author: str, uri: str) -> str:
    """The bsky.app link of a post from its at:// URI and its author's handle or DID."""
    return f"{web_url.rstrip('/')}/profile/{author}/post/{uri.rsplit('/', 1)[-1]}"


def _ref_uri(reply: Any, which: str) -> str | None:
    ref = reply.get(which) if isinstance(reply, Mapping) else None
    uri = ref.get("uri") if isinstance(ref, Mapping) else None
    return uri if isinstance(uri, str) and uri else None


def parse_notification(
    note: Any, *, account: str, brand_did: str | None = None, web_url: str = "https://bsky.app"
) -> InboundMention:
    """An InboundMention from one listNotifications item (reason mention, reply or quote)."""
    if not isinstance(note, Mapping):
        raise BadPayload("a notification must be a JSON object")
    uri, author, record = note.get("uri"), note.get("author"), note.get("record")
    if not isinstance(uri, str) or not uri.startswith("at://"):
        raise BadPayload("notification has no at:// uri")
    if not isinstance(author, Mapping) or not isinstance(author.get("did"), str):
        raise BadPayload("notification has no author did")
    if not isinstance(record, Mapping) or record.get("$type") != POST_COLLECTION:
        raise BadPayload(f"notification record is not an {POST_COLLECTION}")
    text = record.get("text")
    if not isinstance(text, str):
        raise BadPayload("post record has no text")
    try:
        created_at = parse_iso(record.get("createdAt"), "record.createdAt")
    except BadPayload:
        created_at = parse_iso(note.get("indexedAt"), "indexedAt")
    did = author["did"]
    handle: str = author["handle"] if isinstance(author.get("handle"), str) else did
    reply = record.get("reply")
    langs = record.get("langs")
    verification = author.get("verification")
    return InboundMention(
        network=NETWORK,
        account=account,
        external_id=uri,
        author_id=did,
        author_handle=handle,
        author_name=author["displayName"] if isinstance(author.get("displayName"), str) else "",
        text=text,
        created_at=created_at,
        direction=Direction.OUTBOUND if brand_did and did == brand_did else Direction.INBOUND,
        in_reply_to=_ref_uri(reply, "parent"),
        thread_key=_ref_uri(reply, "root") or uri,
        verified=isinstance(verification, Mapping) and verification.get("verifiedStatus") == "valid",
        lang_hint=langs[0] if isinstance(langs, list) and langs and isinstance(langs[0], str) else None,
        url=post_url(web_url, handle, uri),
        raw=dict(note),
    )


def with_profiles(mentions: Iterable[InboundMention], profiles: Iterable[Any]) -> list[InboundMention]:
    """The mentions with followers/verified taken from getProfiles' profileViewDetailed items."""
    by_did = {p["did"]: p for p in profiles if isinstance(p, Mapping) and isinstance(p.get("did"), str)}
    out = []
    for m in mentions:
        p = by_did.get(m.author_id)
        if p is None:
            out.append(m)
            continue
        followers = p.get("followersCount")
        verification = p.get("verification")
        out.append(
            dataclasses.replace(
                m,
                followers=followers if isinstance(followers, int) and not isinstance(followers, bool) else None,
                verified=m.verified
                or (isinstance(verification, Mapping) and verification.get("verifiedStatus") == "valid"),
            )
        )
    return out


def mention_facets(text: str, handle: str, did: str) -> list[dict[str, Any]]:
    """Mention facets for every `@handle` in `text`, indexed in UTF-8 bytes as the lexicon requires."""
    if not handle or not did:
        return []
    data, needle = text.encode("utf-8"), f"@{handle}".encode()
    facets, start = [], data.find(needle)
    while start != -1:
        end = start + len(needle)
        nxt = data[end : end + 1]
        if not nxt or not (nxt.isalnum() or nxt in b".-_"):
            facets.append(
                {"index": {"byteStart": start, "byteEnd": end}, "features": [{"$type": MENTION_FEATURE, "did": did}]}
            )
        start = data.find(needle, end)
    return facets


def build_reply_record(
    text: str, parent: Mapping[str, Any], *, customer_handle: str, customer_did: str, created_at: datetime
) -> dict[str, Any]:
    """The app.bsky.feed.post record replying to `parent` (a getPosts postView), with root and parent refs."""
    parent_ref = {"uri": parent["uri"], "cid": parent["cid"]}
    root = parent.get("record", {}).get("reply", {}).get("root") if isinstance(parent.get("record"), Mapping) else None
    root_ref = (
        {"uri": root["uri"], "cid": root["cid"]}
        if isinstance(root, Mapping) and isinstance(root.get("uri"), str) and isinstance(root.get("cid"), str)
        else parent_ref
    )
    record: dict[str, Any] = {
        "$type": POST_COLLECTION,
        "text": text,
        "createdAt": created_at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "reply": {"root": root_ref, "parent": parent_ref},
    }
    facets = mention_facets(text, customer_handle, customer_did)
    if facets:
        record["facets"] = facets
    return record


# ---------------------------------------------------------------- cursor


def decode_cursor(cursor: str | None) -> tuple[datetime, frozenset[str]] | None:
    """(newest indexedAt read, URIs read at that instant) from carebox's cursor text; None when absent or bad."""
    if not cursor:
        return None
    try:
        obj = orjson.loads(cursor)
        return parse_iso(obj["t"], "cursor.t"), frozenset(u for u in obj.get("u", ()) if isinstance(u, str))
    except (orjson.JSONDecodeError, BadPayload, KeyError, TypeError) as err:
        log.warning("ignoring unreadable bluesky cursor %r: %s", cursor[:80], err)
        return None


def encode_cursor(newest: datetime, uris: Iterable[str]) -> str:
    """The cursor text for the newest indexedAt read and the URIs read at that instant."""
    t = newest.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
    return orjson.dumps({"t": t, "u": sorted(uris)}).decode()


def advance_cursor(
    state: tuple[datetime, frozenset[str]] | None, notes: Sequence[Mapping[str, Any]]
) -> tuple[datetime, frozenset[str]] | None:
    """The cursor state after reading `notes` (their indexedAt must parse)."""
    newest, uris = state if state else (None, frozenset())
    for n in notes:
        at = parse_iso(n.get("indexedAt"), "indexedAt")
        if newest is None or at > newest:
            newest, uris = at, frozenset({n["uri"]})
        elif at == newest:
            uris = uris | {n["uri"]}
    return (newest, uris) if newest is not None else None


def xrpc_error(body: bytes) -> str | None:
    """The `error` name of an XRPC error body, or None."""
    try:
        obj = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    return obj.get("error") if isinstance(obj, dict) and isinstance(obj.get("error"), str) else None
