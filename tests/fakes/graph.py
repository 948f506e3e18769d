"""A fake Meta Graph API (replies, Send API with private replies to comments, lookups) and builders of signed
webhook deliveries."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

VERSION = "v21.0"
PAGE_ID = "104729838123456"
IG_USER_ID = "17841405822304914"
PAGE_TOKEN = "EAAGm0PX4ZCpsBAFakePageToken"
APP_SECRET = "5f1d3c2b4a6978e0d1c2b3a4f5e6d7c8"
VERIFY_TOKEN = "carebox-verify-7d1c"


def sign(body: bytes, secret: str = APP_SECRET) -> str:
    """The X-Hub-Signature-256 value Meta sends with `body`."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def delivery(obj: str, entries: list[dict[str, Any]]) -> bytes:
    """A webhook delivery body as Meta posts it."""
    return orjson.dumps({"object": obj, "entry": entries})


def page_entry(changes: list[dict[str, Any]] | None = None, messaging: list[dict[str, Any]] | None = None,
               page_id: str = PAGE_ID, time: int = 1772486045) -> dict[str, Any]:
    """One `entry` of an object "page" delivery."""
    entry: dict[str, Any] = {"id": page_id, "time": time}
    if changes is not None:
        entry["changes"] = changes
    if messaging is not None:
        entry["messaging"] = messaging
    return entry


def feed_comment(comment_id: str, message: str, *, user: str = "6071234567890123", name: str = "Marie Dupont",
                 post: str = f"{PAGE_ID}_880011223344", parent: str | None = None, verb: str = "add",
                 created: int = 1772486045) -> dict[str, Any]:
    """A `feed` change for a comment (shape of Meta's sample payload)."""
    return {"field": "feed", "value": {
        "from": {"id": user, "name": name},
        "post": {"status_type": "mobile_status_update", "is_published": True, "updated_time": "2026-03-02T21:14:05+0000",
                 "permalink_url": f"https://www.facebook.com/{post.replace('_', '/posts/')}",
                 "promotion_status": "inactive", "id": post},
        "message": message, "post_id": post, "comment_id": comment_id, "created_time": created,
        "item": "comment", "parent_id": parent or post, "verb": verb,
    }}


def feed_visitor_post(post_id: str, message: str, *, user: str = "6071234567890123", name: str = "Paul Martin",
                      created: int = 1772486100) -> dict[str, Any]:
    """A `feed` change for a visitor post on the page."""
    return {"field": "feed", "value": {"from": {"id": user, "name": name}, "post_id": post_id, "message": message,
                                       "created_time": created, "item": "status", "verb": "add", "published": 1}}


def feed_reaction(post_id: str) -> dict[str, Any]:
    """A `feed` change for a reaction (not a mention)."""
    return {"field": "feed", "value": {"from": {"id": "6071", "name": "X"}, "post_id": post_id, "created_time": 1,
                                       "item": "reaction", "verb": "add", "reaction_type": "like"}}


def page_mention(post_id: str, *, sender: str = "6079876543210987", name: str = "Luc Bernard") -> dict[str, Any]:
    """A page `mention` change: ids only, as Meta sends it."""
    return {"field": "mention", "value": {"post_id": post_id, "sender_name": name, "item": "post",
                                          "sender_id": sender, "verb": "add"}}


def messenger(mid: str, text: str, *, psid: str = "7012345678901234", echo: bool = False,
              timestamp: int = 1772486200123, page_id: str = PAGE_ID) -> dict[str, Any]:
    """One `messaging` event: a customer message, or the page's own echo."""
    message: dict[str, Any] = {"mid": mid, "text": text}
    if echo:
        message |= {"is_echo": True, "app_id": 1517776481860111}
    sender, recipient = (page_id, psid) if echo else (psid, page_id)
    return {"sender": {"id": sender}, "recipient": {"id": recipient}, "timestamp": timestamp, "message": message}


def ig_entry(changes: list[dict[str, Any]] | None = None, messaging: list[dict[str, Any]] | None = None,
             time: int = 1772486045) -> dict[str, Any]:
    """One `entry` of an object "instagram" delivery."""
    return page_entry(changes, messaging, page_id=IG_USER_ID, time=time)


def ig_comment(comment_id: str, text: str, *, user: str = "17841401112223334", username: str = "marie.dpt",
               media: str = "17920238422030506", parent: str | None = None) -> dict[str, Any]:
    """An Instagram `comments` change (shape of Meta's sample payload)."""
    value: dict[str, Any] = {"from": {"id": user, "username": username},
                             "media": {"id": media, "media_product_type": "FEED"}, "id": comment_id, "text": text}
    if parent:
        value["parent_id"] = parent
    return {"field": "comments", "value": value}


def ig_mention(media_id: str, comment_id: str | None = None) -> dict[str, Any]:
    """An Instagram `mentions` change: ids only."""
    value = {"media_id": media_id} | ({"comment_id": comment_id} if comment_id else {})
    return {"field": "mentions", "value": value}


@dataclass
class FakeGraph:
    """State and switches of the fake Graph API; `app()` builds the aiohttp application."""

    token: str = PAGE_TOKEN
    objects: dict[str, dict[str, Any]] = field(default_factory=dict)  # id -> its fields
    posted: list[dict[str, Any]] = field(default_factory=list)
    requests: list[tuple[str, str]] = field(default_factory=list)
    failures: list[tuple[int, int]] = field(default_factory=list)  # next answers: (HTTP status, Graph code)
    delay: float = 0.0
    _seq: int = 0

    def fail_next(self, status: int, code: int, times: int = 1) -> None:
        """Answer the next `times` calls with a Graph error of `code` and HTTP `status`."""
        self.failures.extend([(status, code)] * times)

    def app(self) -> web.Application:
        """The aiohttp application serving /<version>/..."""
        app = web.Application(middlewares=[self._switches])
        app.router.add_post(f"/{VERSION}/me/messages", self._send_message)
        app.router.add_post(f"/{VERSION}/{{id}}/comments", self._comment)
        app.router.add_post(f"/{VERSION}/{{id}}/replies", self._ig_reply)
        app.router.add_get(f"/{VERSION}/{{id}}", self._get)
        return app

    @staticmethod
    def error(status: int, code: int, message: str, kind: str = "OAuthException") -> web.Response:
        """A Graph API error answer."""
        body = {"error": {"message": message, "type": kind, "code": code, "fbtrace_id": "AbCdEf123"}}
        return web.json_response(body, status=status)

    @web.middleware
    async def _switches(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.requests.append((request.method, request.path_qs))
        if self.delay:
            await asyncio.sleep(self.delay)
        token = request.headers.get("Authorization", "").removeprefix("Bearer ") or request.query.get("access_token")
        if token != self.token:
            return self.error(400, 190, "Invalid OAuth access token - Cannot parse access token")
        if self.failures:
            status, code = self.failures.pop(0)
            return self.error(status, code, "switched failure")
        return await handler(request)

    def _next_id(self, prefix: str) -> str:
        self._seq += 1
        return f"{prefix}{self._seq:06d}"

    async def _comment(self, request: web.Request) -> web.Response:
        target = request.match_info["id"]
        if target not in self.objects:
            return self.error(400, 100, f"Unsupported post request. Object with ID '{target}' does not exist",
                              "GraphMethodException")
        body = await request.json()
        new_id = self._next_id(f"{target.split('_')[-1]}_")
        self.posted.append({"edge": "comments", "target": target, "message": body.get("message"), "id": new_id})
        self.objects[new_id] = {"id": new_id, "message": body.get("message"), "parent_id": target}
        return web.json_response({"id": new_id})

    async def _ig_reply(self, request: web.Request) -> web.Response:
        target = request.match_info["id"]
        obj = self.objects.get(target)
        if obj is None or obj.get("parent_id"):
            return self.error(400, 100, "Unsupported post request: replies go on top-level comments",
                              "GraphMethodException")
        body = await request.json()
        new_id = self._next_id("1799")
        self.posted.append({"edge": "replies", "target": target, "message": body.get("message"), "id": new_id})
        self.objects[new_id] = {"id": new_id, "text": body.get("message"), "parent_id": target}
        return web.json_response({"id": new_id})

    async def _send_message(self, request: web.Request) -> web.Response:
        body = await request.json()
        to = body.get("recipient", {})
        if body.get("messaging_type") not in ("RESPONSE", "UPDATE", "MESSAGE_TAG"):
            return self.error(400, 100, "(#100) The parameter messaging_type is required")
        private = to.get("comment_id") or to.get("post_id")
        if private:
            # a private reply: the comment (or visitor post) must exist and be answered privately once only
            if private not in self.objects:
                return self.error(400, 100, f"(#100) Object with ID '{private}' does not exist", "GraphMethodException")
            if any(p.get("private_reply_to") == private for p in self.posted):
                return self.error(400, 10900, "Activity already replied to")
            recipient = self.objects[private].get("from", {}).get("id", "7000000000000001")
        else:
            recipient = to.get("id")
        if not recipient:
            return self.error(400, 100, "(#100) The parameter recipient is required")
        mid = self._next_id("m_AbCdEf")
        self.posted.append({"edge": "messages", "target": recipient, "message": body["message"]["text"], "id": mid}
                           | ({"private_reply_to": private} if private else {}))
        return web.json_response({"recipient_id": recipient, "message_id": mid})

    async def _get(self, request: web.Request) -> web.Response:
        target, fields = request.match_info["id"], request.query.get("fields", "")
        nested = re.match(r"(mentioned_comment|mentioned_media)\.(?:comment_id|media_id)\((\w+)\)", fields)
        if nested:
            found = self.objects.get(nested.group(2))
            if found is None:
                return self.error(400, 100, "Unsupported get request", "GraphMethodException")
            return web.json_response({nested.group(1): found, "id": target})
        obj = self.objects.get(target)
        if obj is None:
            return self.error(400, 100, f"Object with ID '{target}' does not exist", "GraphMethodException")
        wanted = [f for f in fields.split(",") if f] or list(obj)
        return web.json_response({"id": target} | {f: obj[f] for f in wanted if f in obj})
