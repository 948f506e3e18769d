"""A fake X API v2: mentions timeline, DM events, filtered stream (+ rules), POST /2/tweets, DM sends.

Switches: `fail_next(status, times, retry_after, reset_in)` answers the next requests with an error,
`malformed_next` answers invalid JSON, `delay` slows every answer, `drop_stream_after` closes the
stream after that many tweets (once), `rate_remaining` sets the `x-rate-limit-remaining` header,
`pad_stream_next` pads the next streamed tweet's line to at least that many bytes, `abort_streams(fragment)`
sends a fragment and drops the connections without ending the chunked body, `since_id_floor` makes
the mentions timeline refuse (400, as X does) a `since_id` minted before that instant; `start_time` is honoured.
`posted` records every tweet and DM created through the API.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from aiohttp import web

APP_TOKEN = "x-app-bearer"
USER_TOKEN = "x-user-oauth2"
BRAND_ID = "1500000000000000001"
START = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
TWITTER_EPOCH_MS = 1288834974657


def snowflake(when: datetime, seq: int) -> str:
    """An X id minted at `when` (ids embed their creation time)."""
    return str(((int(when.timestamp() * 1000) - TWITTER_EPOCH_MS) << 22) + seq)


def iso(when: datetime) -> str:
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class FakeX:
    """State and handlers of a fake X API; `app` is the aiohttp application to serve."""

    def __init__(self, brand: str = "brand") -> None:
        self.users: dict[str, dict[str, Any]] = {}
        self.brand = self.add_user(brand, "Brand Care", followers=90000, verified=True, user_id=BRAND_ID)
        self.tweets: list[dict[str, Any]] = []
        self.dm_events: list[dict[str, Any]] = []
        self.rules: list[dict[str, Any]] = []
        self.posted: list[dict[str, Any]] = []
        self.requests: list[str] = []
        self.delay = 0.0
        self.malformed_next = 0
        self.drop_stream_after: int | None = None
        self.rate_remaining: int | None = None
        self.rate_reset_in = 900
        self.stream_connections = 0
        self.pad_stream_next = 0
        self.since_id_floor: datetime | None = None
        self._failures: list[tuple[int, float | None, float | None]] = []
        self._streams: list[asyncio.Queue[bytes | None]] = []
        self._seq = 0
        self.app = web.Application(middlewares=[self._middleware])
        r = self.app.router
        r.add_get("/2/users/{id}/mentions", self.mentions)
        r.add_get("/2/dm_events", self.list_dm_events)
        r.add_get("/2/tweets/search/stream/rules", self.get_rules)
        r.add_post("/2/tweets/search/stream/rules", self.post_rules)
        r.add_get("/2/tweets/search/stream", self.stream)
        r.add_post("/2/tweets", self.post_tweet)
        r.add_post("/2/dm_conversations/with/{participant}/messages", self.post_dm)
        r.add_post("/2/dm_conversations/{conversation}/messages", self.post_dm)

    # --- test controls -------------------------------------------------------------------------

    def fail_next(self, status: int, times: int = 1, retry_after: float | None = None,
                  reset_in: float | None = None) -> None:
        """Answer the next `times` requests with `status` (Retry-After / x-rate-limit-reset when given)."""
        self._failures.extend([(status, retry_after, reset_in)] * times)

    def _next(self) -> tuple[str, datetime]:
        self._seq += 1
        when = START + timedelta(minutes=self._seq)
        return snowflake(when, self._seq), when

    def add_user(self, username: str, name: str = "", followers: int = 10, verified: bool = False,
                 user_id: str | None = None) -> dict[str, Any]:
        """A user object with the fields asked for by `user.fields=username,name,public_metrics,verified`."""
        user_id = user_id or str(2244994945 + len(self.users))
        user = {"id": user_id, "name": name or username.title(), "username": username, "verified": verified,
                "public_metrics": {"followers_count": followers, "following_count": 5, "tweet_count": 100,
                                   "listed_count": 1, "like_count": 3}}
        self.users[user_id] = user
        return user

    def add_tweet(self, username: str, text: str, *, reply_to: dict[str, Any] | None = None,
                  retweet_of: str | None = None) -> dict[str, Any]:
        """A tweet by `username` (created if unknown), pushed to open streams when it mentions the brand."""
        user = next((u for u in self.users.values() if u["username"] == username), None) or self.add_user(username)
        tweet_id, when = self._next()
        tweet: dict[str, Any] = {
            "id": tweet_id, "text": text, "author_id": user["id"], "created_at": iso(when),
            "conversation_id": reply_to["conversation_id"] if reply_to else tweet_id, "lang": "en",
            "edit_history_tweet_ids": [tweet_id],
            "public_metrics": {"retweet_count": 1, "reply_count": 0, "like_count": 2, "quote_count": 1,
                               "bookmark_count": 0, "impression_count": 40},
        }
        if reply_to:
            tweet["in_reply_to_user_id"] = reply_to["author_id"]
            tweet["referenced_tweets"] = [{"type": "replied_to", "id": reply_to["id"]}]
        if retweet_of:
            tweet["referenced_tweets"] = [{"type": "retweeted", "id": retweet_of}]
        self.tweets.append(tweet)
        if f"@{self.brand['username']}" in text and username != self.brand["username"]:
            line = {"data": tweet, "includes": {"users": [user]},
                    "matching_rules": [{"id": r["id"], "tag": r.get("tag", "")} for r in self.rules]}
            if self.pad_stream_next:  # an unknown field, as a future API version might add
                line["padding"], self.pad_stream_next = "x" * self.pad_stream_next, 0
            self.push_raw(orjson.dumps(line) + b"\r\n")
        return tweet

    def add_dm(self, username: str, text: str) -> dict[str, Any]:
        """A MessageCreate DM event from `username` to the brand."""
        user = next((u for u in self.users.values() if u["username"] == username), None) or self.add_user(username)
        event_id, when = self._next()
        low, high = sorted((user["id"], BRAND_ID), key=int)
        event = {"id": event_id, "event_type": "MessageCreate", "text": text, "sender_id": user["id"],
                 "dm_conversation_id": f"{low}-{high}", "created_at": iso(when),
                 "participant_ids": [user["id"], BRAND_ID]}
        self.dm_events.append(event)
        return event

    def push_raw(self, data: bytes) -> None:
        """Send raw bytes to every open stream."""
        for queue in self._streams:
            queue.put_nowait(data)

    def abort_streams(self, fragment: bytes = b"") -> None:
        """Send `fragment` to every open stream, then drop the connection mid-body (no closing chunk)."""
        for queue in self._streams:
            queue.put_nowait(fragment)
            queue.put_nowait(None)

    # --- handlers ------------------------------------------------------------------------------

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.requests.append(f"{request.method} {request.path_qs}")
        if self.delay:
            await asyncio.sleep(self.delay)
        auth = request.headers.get("Authorization")
        if auth not in (f"Bearer {APP_TOKEN}", f"Bearer {USER_TOKEN}"):
            return self._problem(401, "Unauthorized", "Unauthorized")
        user_context = request.method == "POST" and "/stream/rules" not in request.path or "dm_" in request.path
        if user_context and auth != f"Bearer {USER_TOKEN}":
            return self._problem(403, "Unsupported Authentication",
                                 "Authenticating with OAuth 2.0 Application-Only is forbidden for this endpoint.")
        if self._failures:
            status, retry_after, reset_in = self._failures.pop(0)
            headers = {}
            if retry_after is not None:
                headers["Retry-After"] = f"{retry_after:g}"
            if reset_in is not None:
                headers.update({"x-rate-limit-limit": "450", "x-rate-limit-remaining": "0",
                                "x-rate-limit-reset": str(int(time.time() + reset_in))})
            title = "Too Many Requests" if status == 429 else "Service Unavailable"
            return self._problem(status, title, title, headers)
        if self.malformed_next and "/stream" not in request.path:
            self.malformed_next -= 1
            return web.Response(text='{"data": [{"id": "12', content_type="application/json")
        resp = await handler(request)
        if self.rate_remaining is not None and not resp.prepared:
            resp.headers.update({"x-rate-limit-limit": "450", "x-rate-limit-remaining": str(self.rate_remaining),
                                 "x-rate-limit-reset": str(int(time.time() + self.rate_reset_in))})
        return resp

    @staticmethod
    def _problem(status: int, title: str, detail: str, headers: dict[str, str] | None = None) -> web.Response:
        body = {"title": title, "detail": detail, "type": "about:blank", "status": status}
        return web.json_response(body, status=status, headers=headers)

    def _page(self, request: web.Request, items: list[dict[str, Any]], user_key: str) -> web.Response:
        """Newest first, `max_results` per page, `pagination_token` = the index of the page's start."""
        q = request.query
        limit = int(q.get("max_results", 10))
        start = int(q.get("pagination_token", "0") or 0)
        items = sorted(items, key=lambda t: int(t["id"]), reverse=True)
        page = items[start:start + limit]
        meta: dict[str, Any] = {"result_count": len(page)}
        if page:
            meta.update(newest_id=page[0]["id"], oldest_id=page[-1]["id"])
            if start + limit < len(items):
                meta["next_token"] = str(start + limit)
            if start:
                meta["previous_token"] = str(max(0, start - limit))
        body: dict[str, Any] = {"meta": meta}
        if page:
            body["data"] = page
            authors = {t[user_key] for t in page if user_key in t}
            body["includes"] = {"users": [self.users[a] for a in authors if a in self.users]}
        return web.json_response(body)

    async def mentions(self, request: web.Request) -> web.Response:
        user = self.users.get(request.match_info["id"])
        if user is None:
            return self._problem(400, "Invalid Request", "The `id` query parameter value is not valid")
        since_id = request.query.get("since_id")
        if since_id is not None and self._refuses(since_id):
            floor = iso(self.since_id_floor or START).replace(".000Z", "Z")
            return web.json_response({
                "errors": [{"parameters": {"since_id": [since_id]},
                            "message": f"Invalid 'since_id':'{since_id}'. 'since_id' must be a tweet id created "
                                       f"after {floor}."}],
                "title": "Invalid Request", "detail": "One or more parameters to your request was invalid.",
                "type": "https://api.twitter.com/2/problems/invalid-request"}, status=400)
        since = int(since_id or 0)
        start = request.query.get("start_time")
        after = datetime.fromisoformat(start) if start else None
        items = [t for t in self.tweets if f"@{user['username']}" in t["text"] and int(t["id"]) > since
                 and (after is None or datetime.fromisoformat(t["created_at"]) >= after)]
        return self._page(request, items, "author_id")

    def _refuses(self, since_id: str) -> bool:
        """X's rule: a since_id must be a tweet id, minted after the oldest instant it still serves."""
        if not since_id.isdigit():
            return True
        minted = datetime.fromtimestamp(((int(since_id) >> 22) + TWITTER_EPOCH_MS) / 1000, UTC)
        return self.since_id_floor is not None and minted < self.since_id_floor

    async def list_dm_events(self, request: web.Request) -> web.Response:
        return self._page(request, self.dm_events, "sender_id")

    async def get_rules(self, request: web.Request) -> web.Response:
        body: dict[str, Any] = {"meta": {"sent": iso(START), "result_count": len(self.rules)}}
        if self.rules:
            body["data"] = self.rules
        return web.json_response(body)

    async def post_rules(self, request: web.Request) -> web.Response:
        added = []
        for rule in (await request.json()).get("add", []):
            self._seq += 1
            added.append({"id": str(1600000000000000000 + self._seq), **rule})
        self.rules.extend(added)
        return web.json_response({"data": added, "meta": {"sent": iso(START), "summary": {
            "created": len(added), "not_created": 0, "valid": len(added), "invalid": 0}}}, status=201)

    async def stream(self, request: web.Request) -> web.StreamResponse:
        self.stream_connections += 1
        resp = web.StreamResponse(headers={"Content-Type": "application/json; charset=utf-8"})
        await resp.prepare(request)
        queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._streams.append(queue)
        sent = 0
        try:
            await resp.write(b"\r\n")
            while self.drop_stream_after is None or sent < self.drop_stream_after:
                try:
                    data = await asyncio.wait_for(queue.get(), 0.2)
                except TimeoutError:
                    await resp.write(b"\r\n")  # keep-alive
                    continue
                if data is None:
                    assert request.transport is not None
                    request.transport.abort()
                    return resp
                await resp.write(data)
                sent += 1
        finally:
            self._streams.remove(queue)
        self.drop_stream_after = None  # drop once; the next connection stays up
        return resp

    async def post_tweet(self, request: web.Request) -> web.Response:
        body = await request.json()
        text = body.get("text")
        if not isinstance(text, str) or not text:
            return self._problem(400, "Invalid Request", "One or more parameters to your request was invalid.")
        if any(p.get("text") == text for p in self.posted):
            return self._problem(403, "Forbidden", "You are not allowed to create a Tweet with duplicate content.")
        parent_id = (body.get("reply") or {}).get("in_reply_to_tweet_id")
        parent = next((t for t in self.tweets if t["id"] == parent_id), None)
        if parent_id and parent is None:
            return self._problem(400, "Invalid Request", "The reply target does not exist")
        tweet = self.add_tweet(self.brand["username"], text, reply_to=parent)
        self.posted.append({**body, "id": tweet["id"]})
        return web.json_response({"data": {"id": tweet["id"], "text": text,
                                           "edit_history_tweet_ids": [tweet["id"]]}}, status=201)

    async def post_dm(self, request: web.Request) -> web.Response:
        body = await request.json()
        participant = request.match_info.get("participant")
        conversation = request.match_info.get("conversation")
        if participant and participant not in self.users:
            return self._problem(400, "Invalid Request", "The participant does not exist")
        event_id, _ = self._next()
        conversation = conversation or "-".join(sorted((participant or "", BRAND_ID), key=int))
        self.posted.append({**body, "dm_conversation_id": conversation, "participant_id": participant,
                            "dm_event_id": event_id})
        return web.json_response({"data": {"dm_conversation_id": conversation, "dm_event_id": event_id}},
                                 status=201)
