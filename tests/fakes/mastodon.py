"""A fake Mastodon instance: notifications (min_id/since_id/max_id + Link), statuses, user streaming (SSE).

Switches: `fail_next(status, times, retry_after)` answers the next API requests with an error,
`malformed_next` answers invalid JSON, `delay` slows every answer, `drop_stream_after` closes the
stream after that many events, `lose_answer_next` creates the next posted status but answers 502,
`pad_stream_next` pads the next notification event's data line to at least that many bytes,
`abort_streams(fragment)` sends a fragment and drops the connections without ending the chunked body,
`link_base` puts another origin (or "" for relative links) in the `Link` header's URLs.
`posted` records every status created through the API.

Run it alone for a demo round trip: `python -m tests.fakes.mastodon --port 8099`, then
`curl -d '{"acct": "ann@example.org", "text": "my router is down"}' localhost:8099/_fake/mentions`
and `curl localhost:8099/_fake/posted` (the `/_fake/` routes are test controls, not Mastodon's API).
"""

from __future__ import annotations

import argparse
import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from aiohttp import web

TOKEN = "mastodon-test-token"
START = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


def account_entity(acct_id: str, acct: str, display_name: str = "", followers: int = 12, bot: bool = False) -> dict[str, Any]:
    """An Account entity as the API returns it (the fields carebox reads, and a few more)."""
    username = acct.split("@")[0]
    host = acct.split("@")[1] if "@" in acct else "fake.social"
    return {
        "id": acct_id, "username": username, "acct": acct, "display_name": display_name or username,
        "locked": False, "bot": bot, "discoverable": True, "group": False,
        "created_at": "2020-01-01T00:00:00.000Z", "note": "<p></p>", "url": f"https://{host}/@{username}",
        "avatar": f"https://{host}/avatars/original/missing.png", "followers_count": followers,
        "following_count": 3, "statuses_count": 42, "last_status_at": "2026-11-19", "emojis": [], "fields": [],
    }


class FakeMastodon:
    """State and handlers of one fake instance; `app` is the aiohttp application to serve."""

    def __init__(self, brand_acct: str = "brand", token: str = TOKEN) -> None:
        self.token = token
        self.brand = account_entity("1", brand_acct, "Brand Care", followers=5000)
        self.notifications: list[dict[str, Any]] = []
        self.statuses: dict[str, dict[str, Any]] = {}
        self.posted: list[dict[str, Any]] = []
        self.idempotency: dict[str, dict[str, Any]] = {}
        self.requests: list[str] = []
        self.delay = 0.0
        self.malformed_next = 0
        self.drop_stream_after: int | None = None
        self.lose_answer_next = 0
        self.stream_connections = 0
        self.pad_stream_next = 0
        self.link_base: str | None = None
        self._failures: list[tuple[int, float | None]] = []
        self._streams: list[asyncio.Queue[bytes | None]] = []
        self._seq = 0
        self.app = web.Application(middlewares=[self._middleware])
        self.app.router.add_get("/api/v1/notifications", self.list_notifications)
        self.app.router.add_get("/api/v1/statuses/{id}", self.get_status)
        self.app.router.add_post("/api/v1/statuses", self.post_status)
        self.app.router.add_get("/api/v1/streaming/user/notification", self.stream)
        self.app.router.add_post("/_fake/mentions", self.inject_mention)
        self.app.router.add_get("/_fake/posted", self.list_posted)

    # --- test controls -------------------------------------------------------------------------

    def fail_next(self, status: int, times: int = 1, retry_after: float | None = None) -> None:
        """Answer the next `times` requests with `status` (and Retry-After when given)."""
        self._failures.extend([(status, retry_after)] * times)

    def _next_id(self) -> str:
        self._seq += 1
        return str(109_000_000_000_000_000 + self._seq)

    def add_status(self, acct: str, html: str, *, visibility: str = "public", in_reply_to_id: str | None = None,
                   account_id: str | None = None) -> dict[str, Any]:
        """Store a status written by `acct` (without notifying anyone)."""
        status_id = self._next_id()
        created = START + timedelta(minutes=self._seq)
        author = self.brand if acct == self.brand["acct"] else account_entity(account_id or f"9{self._seq}", acct)
        host = acct.split("@")[1] if "@" in acct else "fake.social"
        status = {
            "id": status_id, "created_at": created.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "in_reply_to_id": in_reply_to_id, "in_reply_to_account_id": "1" if in_reply_to_id else None,
            "sensitive": False, "spoiler_text": "", "visibility": visibility, "language": "en",
            "uri": f"https://{host}/users/{author['username']}/statuses/{status_id}",
            "url": f"https://{host}/@{author['username']}/{status_id}", "replies_count": 0,
            "reblogs_count": 0, "favourites_count": 0, "edited_at": None, "content": html, "reblog": None,
            "application": None, "account": author, "media_attachments": [],
            "mentions": [{"id": "1", "username": self.brand["username"], "acct": self.brand["acct"],
                          "url": self.brand["url"]}],
            "tags": [], "emojis": [], "card": None, "poll": None,
        }
        self.statuses[status_id] = status
        return status

    def add_mention(self, acct: str, text: str, **kwargs: Any) -> dict[str, Any]:
        """A customer mentions the brand: a status plus a `mention` notification, pushed to open streams."""
        status = self.add_status(
            acct, f'<p><span class="h-card"><a href="https://fake.social/@brand" class="u-url mention">'
                  f'@<span>{self.brand["username"]}</span></a></span> {text}</p>', **kwargs)
        return self._notify("mention", status["account"], status)

    def add_notification(self, kind: str, acct: str = "fan@example.org") -> dict[str, Any]:
        """A notification of another type (favourite, follow...)."""
        return self._notify(kind, account_entity(f"8{self._seq}", acct), None)

    def _notify(self, kind: str, account: dict[str, Any], status: dict[str, Any] | None) -> dict[str, Any]:
        note = {"id": self._next_id(), "type": kind, "created_at": (status or {}).get(
            "created_at", START.isoformat().replace("+00:00", "Z")), "account": account, "status": status}
        self.notifications.append(note)
        event = note
        if self.pad_stream_next:  # an unknown field, as a newer Mastodon version might add
            event, self.pad_stream_next = {**note, "padding": "x" * self.pad_stream_next}, 0
        frame = b"event: notification\ndata: " + orjson.dumps(event) + b"\n\n"
        for queue in self._streams:
            queue.put_nowait(frame)
        return note

    def push_raw(self, frame: bytes) -> None:
        """Send raw bytes to every open stream (malformed events, other event types)."""
        for queue in self._streams:
            queue.put_nowait(frame)

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
        if request.path.startswith("/_fake/"):
            return await handler(request)
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return web.json_response({"error": "The access token is invalid"}, status=401)
        if self._failures:
            status, retry_after = self._failures.pop(0)
            headers = {"Retry-After": f"{retry_after:g}"} if retry_after is not None else {}
            return web.json_response({"error": "Too many requests" if status == 429 else "Oops"},
                                     status=status, headers=headers)
        if self.malformed_next and not request.path.startswith("/api/v1/streaming"):
            self.malformed_next -= 1
            return web.Response(text='[{"id": "1", "type": "menti', content_type="application/json")
        return await handler(request)

    async def list_notifications(self, request: web.Request) -> web.Response:
        q = request.query
        types = q.getall("types[]", [])
        items = [n for n in self.notifications if not types or n["type"] in types]
        key = lambda n: int(n["id"])
        for name, keep in (("since_id", lambda n, v: key(n) > v), ("min_id", lambda n, v: key(n) > v),
                           ("max_id", lambda n, v: key(n) < v)):
            if name in q:
                items = [n for n in items if keep(n, int(q[name]))]
        limit = min(int(q.get("limit", 40)), 80)
        items.sort(key=key)
        # min_id: the page just after min_id; otherwise the newest page
        page = items[:limit] if "min_id" in q else items[-limit:]
        page.reverse()
        headers = {}
        if page:
            base = request.url.with_query([(k, v) for k, v in q.items() if k not in ("since_id", "min_id", "max_id")])
            nxt = base.update_query(max_id=page[-1]["id"])
            prev = base.update_query(min_id=page[0]["id"])
            if self.link_base is not None:
                nxt, prev = (self.link_base + str(u.relative()) for u in (nxt, prev))
            headers["Link"] = f'<{nxt}>; rel="next", <{prev}>; rel="prev"'
        return web.json_response(page, headers=headers)

    async def get_status(self, request: web.Request) -> web.Response:
        status = self.statuses.get(request.match_info["id"])
        if status is None:
            return web.json_response({"error": "Record not found"}, status=404)
        return web.json_response(status)

    async def post_status(self, request: web.Request) -> web.Response:
        key = request.headers.get("Idempotency-Key")
        if key and key in self.idempotency:
            return web.json_response(self.idempotency[key])
        form = await request.json() if request.content_type == "application/json" else dict(await request.post())
        if not form.get("status"):
            return web.json_response({"error": "Validation failed: Text can't be blank"}, status=422)
        parent = form.get("in_reply_to_id")
        if parent and parent not in self.statuses:
            return web.json_response({"error": "Record not found"}, status=404)
        status = self.add_status(self.brand["acct"], f"<p>{form['status']}</p>",
                                 visibility=form.get("visibility", "public"), in_reply_to_id=parent)
        self.posted.append({**form, "idempotency_key": key, "id": status["id"]})
        if key:
            self.idempotency[key] = status
        if self.lose_answer_next:
            self.lose_answer_next -= 1
            return web.json_response({"error": "Bad gateway"}, status=502)
        return web.json_response(status)

    async def stream(self, request: web.Request) -> web.StreamResponse:
        self.stream_connections += 1
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store"})
        await resp.prepare(request)
        await resp.write(b":)\n")
        queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._streams.append(queue)
        sent = 0
        try:
            while self.drop_stream_after is None or sent < self.drop_stream_after:
                try:
                    frame = await asyncio.wait_for(queue.get(), 0.2)
                except TimeoutError:
                    await resp.write(b":thump\n")
                    continue
                if frame is None:
                    assert request.transport is not None
                    request.transport.abort()
                    return resp
                await resp.write(frame)
                sent += 1
        finally:
            self._streams.remove(queue)
        self.drop_stream_after = None  # drop once; the next connection stays up
        return resp

    async def inject_mention(self, request: web.Request) -> web.Response:
        body = await request.json()
        note = self.add_mention(str(body.get("acct", "ann@example.org")), str(body.get("text", "hello")),
                                visibility=str(body.get("visibility", "public")))
        return web.json_response(note, status=201)

    async def list_posted(self, request: web.Request) -> web.Response:
        return web.json_response(self.posted)


def main() -> None:
    """Serve a fake instance on localhost for demos."""
    parser = argparse.ArgumentParser(description="A fake Mastodon instance for carebox demos.")
    parser.add_argument("--port", type=int, default=8099)
    parser.add_argument("--brand", default="brand")
    args = parser.parse_args()
    print(f"fake Mastodon on http://127.0.0.1:{args.port} (token {TOKEN!r}, brand @{args.brand})")
    web.run_app(FakeMastodon(args.brand).app, host="127.0.0.1", port=args.port, print=None)


if __name__ == "__main__":
    main()
