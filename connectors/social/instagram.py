"""Instagram (professional account) via Graph API webhooks: comments, mentions and, when configured, DMs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import aiohttp

from carebox.errors import BadPayload
from carebox.ports import Direction, InboundMention
from connectors.social.facebook import (
    ChangeParser,
    Context,
    Enricher,
    GraphConnector,
    _id,
    _opt_id,
    _text_of,
    epoch_time,
    parse_options,
    resolve_secrets,
)

COMMENT_FIELDS = "id,text,timestamp,username,from,media{id,permalink}"
MEDIA_FIELDS = "id,caption,timestamp,username,permalink,owner"


def parse_ig_comment(value: Any, ctx: Context) -> InboundMention:
    """A mention from an Instagram `comments` change (a comment or a reply on the account's media)."""
    if not isinstance(value, Mapping):
        raise BadPayload("comments change value is not an object")
    sender = value.get("from")
    author_id = _id(sender, "id", "comment 'from'")
    username = _text_of(sender, "username")
    media_id = _id(value.get("media"), "id", "comment media")
    text = value.get("text")
    if not isinstance(text, str):
        raise BadPayload("comment has no text")
    return InboundMention(
        network=ctx.network,
        account=ctx.account,
        external_id=_id(value, "id", "comment"),
        author_id=author_id,
        author_handle=username or author_id,
        author_name=username,
        text=text,
        created_at=epoch_time(value.get("timestamp", ctx.entry_time), "entry time"),
        direction=Direction.OUTBOUND if author_id == ctx.own_id else Direction.INBOUND,
        in_reply_to=_opt_id(value, "parent_id") or media_id,
        thread_key=media_id,
        raw=dict(value),
    )


def parse_ig_mention(value: Any, ctx: Context) -> InboundMention:
    """A mention from an Instagram `mentions` change completed with its `details` (fetched from Graph)."""
    if not isinstance(value, Mapping):
        raise BadPayload("mentions change value is not an object")
    media_id = _id(value, "media_id", "mention")
    comment_id = _opt_id(value, "comment_id")
    details = value.get("details")
    if not isinstance(details, Mapping):
        raise BadPayload("mention details could not be fetched from the Graph API")
    sender = details.get("from") if isinstance(details.get("from"), Mapping) else details.get("owner")
    username = _text_of(details, "username")
    author_id = _opt_id(sender, "id") or username
    if not author_id:
        raise BadPayload("mention details name no author")
    text = details.get("text" if comment_id else "caption", "")
    media: Mapping[str, Any] = details["media"] if isinstance(details.get("media"), Mapping) else details
    permalink = media.get("permalink")
    return InboundMention(
        network=ctx.network,
        account=ctx.account,
        external_id=comment_id or media_id,
        author_id=author_id,
        author_handle=username or author_id,
        author_name=username,
        text=text if isinstance(text, str) else "",
        created_at=epoch_time(details.get("timestamp", ctx.entry_time), "timestamp"),
        direction=Direction.OUTBOUND if author_id == ctx.own_id else Direction.INBOUND,
        in_reply_to=media_id if comment_id else None,
        thread_key=media_id,
        url=permalink if isinstance(permalink, str) else None,
        raw=dict(value),
    )


async def fetch_ig_mention(conn: GraphConnector, value: dict[str, Any]) -> dict[str, Any]:
    """A `mentions` value completed with the comment or caption the webhook leaves out."""
    if "details" in value or not isinstance(value.get("media_id"), str):
        return value
    own = conn.options.own_id
    if isinstance(value.get("comment_id"), str):
        fields = f"mentioned_comment.comment_id({value['comment_id']}){{{COMMENT_FIELDS}}}"
        found = await conn.graph("GET", own, params={"fields": fields})
        details = found.get("mentioned_comment") if isinstance(found, Mapping) else None
    else:
        fields = f"mentioned_media.media_id({value['media_id']}){{{MEDIA_FIELDS}}}"
        found = await conn.graph("GET", own, params={"fields": fields})
        details = found.get("mentioned_media") if isinstance(found, Mapping) else None
    return value | {"details": details} if isinstance(details, Mapping) else value


INSTAGRAM_FIELDS: dict[str, ChangeParser] = {"comments": parse_ig_comment, "mentions": parse_ig_mention}
INSTAGRAM_ENRICHERS: dict[str, Enricher] = {"mentions": fetch_ig_mention}


def from_config(
    name: str, options: Mapping[str, Any], *, session: aiohttp.ClientSession, environ: Mapping[str, str]
) -> GraphConnector:
    """An Instagram account connector for one `[[connectors]]` entry; secrets are read from `environ`."""
    key = f"connectors.{name}"
    opts = parse_options({**options, "name": name}, key, id_key="ig_user_id")
    token, secret, verify = resolve_secrets(opts, environ, key)
    return GraphConnector(
        "instagram", opts, token, secret, verify, session=session,
        fields=INSTAGRAM_FIELDS, enrichers=INSTAGRAM_ENRICHERS,
    )
