"""A fake Bluesky PDS/AppView speaking the XRPC endpoints carebox uses, with failure switches."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

BRAND_DID = "did:plc:brand4xq2k7vhm3wz"
BRAND_HANDLE = "acme.bsky.social"
APP_PASSWORD = "abcd-efgh-ijkl-mnop"
T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


def iso(t: datetime) -> str:
    """AT Protocol datetime text, as the AppView writes it."""
    return t.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def profile(did: str, handle: str, name: str = "", followers: int = 0) -> dict[str, Any]:
    """An app.bsky.actor.defs#profileViewDetailed."""
    return {
        "did": did,
        "handle": handle,
        "displayName": name,
        "avatar": f"https://cdn.bsky.app/img/avatar/plain/{did}/bafkreia@jpeg",
        "followersCount": followers,
        "followsCount": 12,
        "postsCount": 40,
        "indexedAt": "2025-01-01T00:00:00.000Z",
        "createdAt": "2024-02-01T00:00:00.000Z",
        "labels": [],
        "viewer": {"muted": False, "blockedBy": False},
    }


@dataclass
class FakeBluesky:
    """State and switches of the fake; `app()` builds the aiohttp application."""

    identifier: str = BRAND_HANDLE
    password: str = APP_PASSWORD
    notifications: list[dict[str, Any]] = field(default_factory=list)  # newest first
    posts: dict[str, dict[str, Any]] = field(default_factory=dict)  # uri -> postView
    profiles: dict[str, dict[str, Any]] = field(default_factory=dict)
    posted: list[dict[str, Any]] = field(default_factory=list)  # createRecord bodies
    requests: list[tuple[str, str]] = field(default_factory=list)  # (nsid, query string)
    failures: list[tuple[int, float | None, float | None]] = field(default_factory=list)  # status, retry, reset
    delay: float = 0.0
    malformed_next: int = 0
    sessions_created: int = 0
    refreshes: int = 0
    _access: set[str] = field(default_factory=set)
    _refresh: set[str] = field(default_factory=set)
    _expired: set[str] = field(default_factory=set)
    _seq: int = 0

    # ------------------------------------------------------------ test controls

    def fail_next(
        self, status: int, times: int = 1, retry_after: float | None = None, reset_in: float | None = None
    ) -> None:
        """Answer the next `times` XRPC calls with `status` (Retry-After, or ratelimit-reset `reset_in` s ahead)."""
        self.failures.extend([(status, retry_after, reset_in)] * times)

    def expire_access_tokens(self) -> None:
        """Make every access token issued so far answer 400 ExpiredToken."""
        self._expired |= self._access

    def add_post(
        self,
        author_did: str,
        handle: str,
        text: str,
        *,
        name: str = "",
        reason: str = "mention",
        parent: str | None = None,
        followers: int = 10,
        notify: bool = True,
        at: datetime | None = None,
    ) -> dict[str, Any]:
        """Create a post (and its notification to the brand when `notify`); returns the notification."""
        self._seq += 1
        at = at or T0 + timedelta(minutes=self._seq)
        rkey = f"3kz{self._seq:010d}"
        uri, cid = f"at://{author_did}/app.bsky.feed.post/{rkey}", f"bafyreig{self._seq:052d}"
        record: dict[str, Any] = {"$type": "app.bsky.feed.post", "text": text, "createdAt": iso(at), "langs": ["fr"]}
        if f"@{BRAND_HANDLE}" in text:
            start = text.encode().index(f"@{BRAND_HANDLE}".encode())
            record["facets"] = [{
                "index": {"byteStart": start, "byteEnd": start + len(BRAND_HANDLE.encode()) + 1},
                "features": [{"$type": "app.bsky.richtext.facet#mention", "did": BRAND_DID}],
            }]
        if parent is not None:
            p = self.posts[parent]
            root = p["record"].get("reply", {}).get("root") or {"uri": p["uri"], "cid": p["cid"]}
            record["reply"] = {"root": root, "parent": {"uri": p["uri"], "cid": p["cid"]}}
        self.profiles.setdefault(author_did, profile(author_did, handle, name, followers))
        author = {k: self.profiles[author_did][k] for k in ("did", "handle", "displayName", "avatar", "labels")}
        author |= {"viewer": {"muted": False}, "createdAt": "2024-02-01T00:00:00.000Z"}
        self.posts[uri] = {
            "uri": uri, "cid": cid, "author": author, "record": record, "replyCount": 0, "repostCount": 0,
            "likeCount": 0, "quoteCount": 0, "indexedAt": iso(at), "labels": [],
        }
        note = {
            "uri": uri, "cid": cid, "author": author, "reason": reason, "record": record,
            "isRead": False, "indexedAt": iso(at + timedelta(milliseconds=120)), "labels": [],
        }
        if reason in ("reply", "quote") and parent is not None:
            note["reasonSubject"] = parent
        if notify:
            self.notifications.insert(0, note)
            self.notifications.sort(key=lambda n: n["indexedAt"], reverse=True)
        return note

    # ------------------------------------------------------------ server

    def app(self) -> web.Application:
        """The aiohttp application serving /xrpc/<nsid>."""
        app = web.Application(middlewares=[self._switches])
        app.router.add_post("/xrpc/com.atproto.server.createSession", self._create_session)
        app.router.add_post("/xrpc/com.atproto.server.refreshSession", self._refresh_session)
        app.router.add_get("/xrpc/app.bsky.notification.listNotifications", self._list_notifications)
        app.router.add_get("/xrpc/app.bsky.actor.getProfiles", self._get_profiles)
        app.router.add_get("/xrpc/app.bsky.feed.getPosts", self._get_posts)
        app.router.add_post("/xrpc/com.atproto.repo.createRecord", self._create_record)
        return app

    @web.middleware
    async def _switches(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.requests.append((request.path.rsplit("/", 1)[-1], request.query_string))
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.failures:
            status, retry_after, reset_in = self.failures.pop(0)
            headers = {"Retry-After": f"{retry_after:g}"} if retry_after is not None else {}
            if reset_in is not None:  # what bsky.social sends with a 429
                reset = int(datetime.now(UTC).timestamp() + reset_in)
                headers |= {"ratelimit-limit": "3000", "ratelimit-remaining": "0", "ratelimit-reset": str(reset),
                            "ratelimit-policy": "3000;w=300"}
            name = {429: "RateLimitExceeded", 401: "AuthenticationRequired"}.get(status, "InternalServerError")
            return web.json_response({"error": name, "message": "switched"}, status=status, headers=headers)
        if self.malformed_next:
            self.malformed_next -= 1
            return web.Response(text='{"notifications": [', content_type="application/json")
        return await handler(request)

    def _auth(self, request: web.Request, kind: set[str]) -> web.Response | None:
        header = request.headers.get("Authorization", "")
        token = header.removeprefix("Bearer ")
        if not header.startswith("Bearer ") or token not in kind:
            return web.json_response({"error": "AuthenticationRequired", "message": "Authentication Required"},
                                     status=401)
        if token in self._expired:
            return web.json_response({"error": "ExpiredToken", "message": "Token has expired"}, status=400)
        return None

    def _issue(self) -> dict[str, Any]:
        n = self.sessions_created + self.refreshes
        access, refresh = f"access-{n}", f"refresh-{n}"
        self._access.add(access)
        self._refresh.add(refresh)
        return {"accessJwt": access, "refreshJwt": refresh, "handle": BRAND_HANDLE, "did": BRAND_DID, "active": True}

    async def _create_session(self, request: web.Request) -> web.Response:
        body = await request.json()
        if body.get("identifier") not in (self.identifier, BRAND_DID) or body.get("password") != self.password:
            return web.json_response({"error": "AuthenticationRequired", "message": "Invalid identifier or password"},
                                     status=401)
        self.sessions_created += 1
        return web.json_response(self._issue() | {"email": "care@acme.example", "emailConfirmed": True})

    async def _refresh_session(self, request: web.Request) -> web.Response:
        if (denied := self._auth(request, self._refresh)) is not None:
            return denied
        self._refresh.discard(request.headers["Authorization"].removeprefix("Bearer "))  # refresh tokens rotate
        self.refreshes += 1
        return web.json_response(self._issue())

    async def _list_notifications(self, request: web.Request) -> web.Response:
        if (denied := self._auth(request, self._access)) is not None:
            return denied
        limit = int(request.query.get("limit", "50"))
        if not 1 <= limit <= 100:
            return web.json_response({"error": "InvalidRequest", "message": "limit"}, status=400)
        reasons = request.query.getall("reasons", [])
        notes = [n for n in self.notifications if not reasons or n["reason"] in reasons]
        if "cursor" in request.query:
            notes = [n for n in notes if n["indexedAt"] < request.query["cursor"]]
        page = notes[:limit]
        body: dict[str, Any] = {"notifications": page, "priority": False, "seenAt": iso(T0)}
        if len(notes) > limit:
            body["cursor"] = page[-1]["indexedAt"]
        return web.json_response(body)

    async def _get_profiles(self, request: web.Request) -> web.Response:
        if (denied := self._auth(request, self._access)) is not None:
            return denied
        actors = request.query.getall("actors", [])
        if not 1 <= len(actors) <= 25:
            return web.json_response({"error": "InvalidRequest", "message": "actors must have 1..25 items"},
                                     status=400)
        return web.json_response({"profiles": [self.profiles[a] for a in actors if a in self.profiles]})

    async def _get_posts(self, request: web.Request) -> web.Response:
        if (denied := self._auth(request, self._access)) is not None:
            return denied
        uris = request.query.getall("uris", [])
        return web.json_response({"posts": [self.posts[u] for u in uris if u in self.posts]})

    async def _create_record(self, request: web.Request) -> web.Response:
        if (denied := self._auth(request, self._access)) is not None:
            return denied
        body = await request.json()
        record = body.get("record", {})
        problem = self._invalid(body, record)
        if problem:
            return web.json_response({"error": "InvalidRequest", "message": problem}, status=400)
        self.posted.append(body)
        self._seq += 1
        uri = f"at://{BRAND_DID}/app.bsky.feed.post/3lb{self._seq:010d}"
        cid = f"bafyreib{self._seq:052d}"
        author = {"did": BRAND_DID, "handle": BRAND_HANDLE, "displayName": "Acme", "labels": []}
        self.posts[uri] = {"uri": uri, "cid": cid, "author": author, "record": record, "indexedAt": iso(T0)}
        return web.json_response({"uri": uri, "cid": cid, "commit": {"cid": "bafyreic", "rev": "3lb"},
                                  "validationStatus": "valid"})

    def _invalid(self, body: dict[str, Any], record: dict[str, Any]) -> str | None:
        if body.get("repo") not in (BRAND_DID, BRAND_HANDLE) or body.get("collection") != "app.bsky.feed.post":
            return "bad repo or collection"
        if record.get("$type") != "app.bsky.feed.post" or not isinstance(record.get("text"), str):
            return "Record/$type must be app.bsky.feed.post with text"
        for which in ("root", "parent"):
            ref = record.get("reply", {}).get(which, {})
            post = self.posts.get(ref.get("uri", ""))
            if post is None or post["cid"] != ref.get("cid"):
                return f"reply.{which} is not a strong ref to a known post"
        size = len(record["text"].encode())
        for facet in record.get("facets", []):
            idx = facet["index"]
            if not 0 <= idx["byteStart"] < idx["byteEnd"] <= size:
                return "facet index out of range"
        return None
