"""One adapter per connector type: start its fake, build the connector against it, feed it, read back.

Every adapter answers the same questions, so test_contract.py states each rule once for all types.
Pull adapters make the fake hold mentions; push adapters deliver them signed through the connector.
`SKIPS[type][case]` says why a contract case cannot apply to a type by design.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from email import message_from_bytes, policy
from typing import Any, Self

import aiohttp
import orjson
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from aiosmtpd.smtp import SMTP, Envelope, Session

from carebox.errors import AuthenticationFailed
from carebox.ports import InboundMention, OutboundReply
from connectors._http import Backoff
from connectors._signing import SIGNATURE_HEADER, sign, verify
from connectors.social import bluesky, email, facebook, instagram, mastodon, webhook, x
from tests.fakes import graph as g
from tests.fakes.bluesky import APP_PASSWORD, BRAND_HANDLE, FakeBluesky
from tests.fakes.imap import FakeImapServer
from tests.fakes.mastodon import TOKEN as MASTODON_TOKEN
from tests.fakes.mastodon import FakeMastodon
from tests.fakes.sink import RecordingSink
from tests.fakes.x import APP_TOKEN, BRAND_ID, USER_TOKEN, FakeX

PAGE = 3  # page size asked of every fake that pages
PUSH_NO_RUN = "push: run() only waits; credentials are used by send_reply, covered by the auth case"
PUSH_NO_CURSOR = "push: the sender retries until a durable 2xx, there is no cursor to page or resume from"


class Sleeps(list):
    """An injected sleep: records every wait asked for, waits only a moment."""

    async def __call__(self, seconds: float) -> None:
        self.append(seconds)
        await asyncio.sleep(min(seconds, 0.005))


class Waits(Backoff):
    """A Backoff that records the wait it computes into `asked` and then waits nothing."""

    def __init__(self, asked: list[float]) -> None:
        super().__init__(base=0)
        self.asked = asked

    def delay(self, error: BaseException | None = None) -> float:
        self.asked.append(super().delay(error))
        return 0.0


async def post_signed(conn: Any, sink: RecordingSink, deliveries: list[tuple[bytes, dict[str, str]]],
                      status: int) -> None:
    """POST each (body, headers) to the connector's routes mounted as the composition root does."""
    app, sub = web.Application(), web.Application()
    sub.add_routes(conn.routes(sink))
    app.add_subapp(f"/hooks/{conn.name}/", sub)
    async with TestClient(TestServer(app)) as client:
        for body, headers in deliveries:
            resp = await client.post(f"/hooks/{conn.name}/", data=body, headers=headers)
            assert resp.status == status, await resp.text()


async def until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    """Poll `predicate` until true; TimeoutError after `timeout` seconds."""
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.005)


@contextlib.asynccontextmanager
async def running(conn: Any, sink: RecordingSink, cursor: str | None = None) -> AsyncIterator[asyncio.Task]:
    """Run `conn` into `sink` for the duration of the block, then cancel it."""
    task = asyncio.create_task(conn.run(sink, cursor))
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, AuthenticationFailed):
            await task


class Adapter:
    """What the contract suite needs of one connector type and its fake."""

    type = ""
    push = False
    retry_hint = 7.0  # the wait a `fail_next(429, retry_after=7)` must lead to

    async def __aenter__(self) -> Self:
        self.n = 0  # mentions added or delivered so far
        self.session = aiohttp.ClientSession()
        self.sleeps = Sleeps()
        self._servers: list[Any] = []
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        for server in reversed(self._servers):
            await server.close()
        await self.session.close()

    async def serve(self, app: web.Application) -> TestServer:
        """Serve `app` on a local port until the adapter closes."""
        server = TestServer(app)
        await server.start_server()
        self._servers.append(server)
        return server

    async def start(self) -> None:
        """Start the fake."""

    def build(self, *, bad_auth: bool = False, stream: bool = False) -> Any:
        """The connector pointed at the fake (with refused credentials when `bad_auth`)."""
        raise NotImplementedError

    def start_cursor(self) -> str | None:
        """A cursor older than every mention the test adds (pull only)."""
        return None

    def add(self, n: int) -> None:
        """Make the fake hold `n` new mentions (pull only)."""
        raise NotImplementedError

    async def deliver(self, conn: Any, sink: RecordingSink, n: int) -> None:
        """Deliver `n` new mentions to `conn` as the network would (push only)."""
        raise NotImplementedError

    def page_requests(self) -> int:
        """How many list requests the fake has answered."""
        raise NotImplementedError

    def fail_next(self, status: int, times: int = 1, retry_after: float | None = None) -> None:
        """Answer the next `times` requests with `status`."""
        raise NotImplementedError

    def drop_once(self) -> None:
        """Drop the stream / connection once, mid-way."""
        raise NotImplementedError

    def connected(self) -> bool:
        """True once the connector holds its stream / connection open."""
        raise NotImplementedError

    def reconnected(self) -> bool:
        """True once the connector has come back after the drop."""
        raise NotImplementedError

    def reply_to(self, mention: InboundMention) -> OutboundReply:
        """An agent's reply to `mention` (preparing the fake so the target exists)."""
        return OutboundReply(mention.network, mention.account, mention.external_id, "We are on it",
                             public=mention.public, customer_handle=mention.author_handle,
                             customer_id=mention.author_id, thread_key=mention.thread_key)

    def threading(self, mention: InboundMention) -> tuple[Any, Any]:
        """(what the fake recorded, what it must be) for the reply's threading fields."""
        raise NotImplementedError


# --------------------------------------------------------------------------------------- pull


class XAdapter(Adapter):
    type = "x"

    async def start(self) -> None:
        self.fake = FakeX()
        self.server = await self.serve(self.fake.app)

    def build(self, *, bad_auth: bool = False, stream: bool = False) -> x.XConnector:
        table = {"type": "x", "account": "brand", "user_id": BRAND_ID, "token_env": "X_BEARER",
                 "base_url": str(self.server.make_url("")), "poll_interval": "10ms", "backoff_base": "1ms",
                 "max_results": 5, "mode": "stream" if stream else "poll"}
        token = "wrong" if bad_auth else APP_TOKEN
        return x.XConnector("x-brand", x.parse_options(table, "connectors.x-brand"), session=self.session,
                            app_token=token, user_token=USER_TOKEN, sleep=self.sleeps)

    def start_cursor(self) -> str:
        return self.fake.add_tweet("early", "@brand already handled")["id"]

    def add(self, n: int) -> None:
        for _ in range(n):
            self.n += 1
            self.fake.add_tweet(f"c{self.n}", f"@brand help {self.n}")

    def page_requests(self) -> int:
        return sum("/mentions" in r for r in self.fake.requests)

    def fail_next(self, status: int, times: int = 1, retry_after: float | None = None) -> None:
        self.fake.fail_next(status, times, retry_after=retry_after)

    def drop_once(self) -> None:
        self.fake.drop_stream_after = 1

    def connected(self) -> bool:
        return bool(self.fake._streams)

    def reconnected(self) -> bool:
        return self.fake.stream_connections >= 2 and bool(self.fake._streams)

    def threading(self, mention: InboundMention) -> tuple[Any, Any]:
        return self.fake.posted[-1].get("reply"), {"in_reply_to_tweet_id": mention.external_id}


class MastodonAdapter(Adapter):
    type = "mastodon"

    async def start(self) -> None:
        self.fake = FakeMastodon()
        self.server = await self.serve(self.fake.app)

    def build(self, *, bad_auth: bool = False, stream: bool = False) -> mastodon.MastodonConnector:
        table = {"type": "mastodon", "account": "brand", "base_url": str(self.server.make_url("")),
                 "token_env": "MASTODON_TOKEN", "poll_interval": "10ms", "backoff_base": "1ms",
                 "mode": "stream" if stream else "poll", "limit": PAGE}
        return mastodon.MastodonConnector("masto", mastodon.parse_options(table, "connectors.masto"),
                                          session=self.session, token="wrong" if bad_auth else MASTODON_TOKEN,
                                          sleep=self.sleeps)

    def start_cursor(self) -> str:
        return self.fake.add_mention("early@x.org", "already handled")["id"]

    def add(self, n: int) -> None:
        for _ in range(n):
            self.n += 1
            self.fake.add_mention(f"c{self.n}@x.org", f"help {self.n}")

    def page_requests(self) -> int:
        return sum("/notifications" in r for r in self.fake.requests)

    def fail_next(self, status: int, times: int = 1, retry_after: float | None = None) -> None:
        self.fake.fail_next(status, times, retry_after=retry_after)

    def drop_once(self) -> None:
        self.fake.drop_stream_after = 1

    def connected(self) -> bool:
        return bool(self.fake._streams)

    def reconnected(self) -> bool:
        return sum("/streaming/" in r for r in self.fake.requests) >= 2 and bool(self.fake._streams)

    def threading(self, mention: InboundMention) -> tuple[Any, Any]:
        return self.fake.posted[-1].get("in_reply_to_id"), mention.external_id


class BlueskyAdapter(Adapter):
    type = "bluesky"

    async def start(self) -> None:
        self.fake = FakeBluesky()
        self.server = await self.serve(self.fake.app())

    def build(self, *, bad_auth: bool = False, stream: bool = False) -> bluesky.BlueskyConnector:
        options = {"account": BRAND_HANDLE, "app_password_env": "BSKY_PW", "poll_interval": 0.01,
                   "service_url": str(self.server.make_url("")), "page_limit": PAGE}
        opts = bluesky.parse_options({"name": "bsky-acme", **options}, "connectors.bsky-acme")
        return bluesky.BlueskyConnector(opts, "wrong" if bad_auth else APP_PASSWORD, session=self.session,
                                        sleep=self.sleeps)

    def start_cursor(self) -> str:
        return bluesky.encode_cursor(datetime(2026, 1, 1, tzinfo=UTC), ())

    def add(self, n: int) -> None:
        for _ in range(n):
            self.n += 1
            self.fake.add_post(f"did:plc:c{self.n}", f"c{self.n}.bsky.social", f"@{BRAND_HANDLE} panne {self.n}")

    def page_requests(self) -> int:
        return sum(1 for nsid, _ in self.fake.requests if nsid.endswith("listNotifications"))

    def fail_next(self, status: int, times: int = 1, retry_after: float | None = None) -> None:
        self.fake.fail_next(status, times, retry_after=retry_after)

    def threading(self, mention: InboundMention) -> tuple[Any, Any]:
        note = next(n for n in self.fake.notifications if n["uri"] == mention.external_id)
        ref = {"uri": note["uri"], "cid": note["cid"]}
        return self.fake.posted[-1]["record"].get("reply"), {"root": ref, "parent": ref}


class _Outbox:
    """The SMTP server replies are sent to: records each envelope it accepts."""

    def __init__(self) -> None:
        self.received: list[Envelope] = []

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.received.append(envelope)
        return "250 OK"


class EmailAdapter(Adapter):
    type = "email"

    async def start(self) -> None:
        self.imap = FakeImapServer()
        await self.imap.__aenter__()
        self.outbox = _Outbox()
        loop = asyncio.get_running_loop()
        self.smtp = await loop.create_server(lambda: SMTP(self.outbox), "127.0.0.1", 0)

    async def __aexit__(self, *exc: object) -> None:
        self.smtp.close()
        await self.smtp.wait_closed()
        await self.imap.__aexit__(*exc)
        await super().__aexit__(*exc)

    def build(self, *, bad_auth: bool = False, stream: bool = False) -> email.EmailConnector:
        self.imap.mailbox.refuse_login = bad_auth
        base = {"name": "mail", "account": self.imap.mailbox.username, "inbound": "imap",
                "imap_host": "127.0.0.1", "imap_port": self.imap.port, "imap_security": "none",
                "imap_password_env": "IMAP_PW", "poll_interval": "20ms", "imap_timeout": "5s", "start_at": "all",
                "batch_size": PAGE, "smtp_port": self.smtp.sockets[0].getsockname()[1], "smtp_security": "none",
                "smtp_timeout": "5s"}
        return email.EmailConnector(email.parse_options(base, "connectors.mail"), imap_password="app-password",
                                    backoff=Backoff(base=0))

    def start_cursor(self) -> str:
        return f"{self.imap.mailbox.uidvalidity}:0"

    def add(self, n: int) -> None:
        for _ in range(n):
            self.n += 1
            self.imap.mailbox.add((
                f"From: Customer {self.n} <c{self.n}@example.org>\r\nTo: support@brand.example\r\n"
                f"Subject: Problem {self.n}\r\nDate: Sun, 22 Nov 2026 08:01:00 +0100\r\n"
                f"Message-ID: <m{self.n}@mail.example.org>\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
                f"Down since {self.n}am.\r\n").encode())

    def page_requests(self) -> int:
        return sum("FETCH" in c.upper() for c in self.imap.mailbox.commands)

    def fail_next(self, status: int, times: int = 1, retry_after: float | None = None) -> None:
        self.imap.mailbox.login_unavailable = times  # IMAP's temporary refusal (RFC 5530 UNAVAILABLE)

    def drop_once(self) -> None:
        self.imap.mailbox.drop_on_fetch = 1

    def connected(self) -> bool:
        return self.imap.mailbox.logins >= 1

    def reconnected(self) -> bool:
        return self.imap.mailbox.logins >= 2

    def threading(self, mention: InboundMention) -> tuple[Any, Any]:
        msg = message_from_bytes(self.outbox.received[-1].original_content, policy=policy.default)
        wanted = f"<{mention.external_id}>"
        return (msg["In-Reply-To"], wanted in (msg["References"] or "")), (wanted, True)


# --------------------------------------------------------------------------------------- push


class _GraphAdapter(Adapter):
    push = True
    retry_hint = facebook.GRAPH_RATE_WAIT  # Graph sends no Retry-After: code 4 means "wait a while"

    async def start(self) -> None:
        self.fake = g.FakeGraph()
        self.server = await self.serve(self.fake.app())

    def build(self, *, bad_auth: bool = False, stream: bool = False) -> facebook.GraphConnector:
        options = {"type": self.type, "account": "acme", "token_env": "FB_TOKEN", "app_secret_env": "FB_SECRET",
                   "verify_token_env": "FB_VERIFY", "graph_url": str(self.server.make_url("")).rstrip("/"),
                   "api_version": g.VERSION, "messaging": True}
        token = "expired" if bad_auth else g.PAGE_TOKEN
        if self.type == "facebook":
            opts = facebook.parse_options(options | {"name": "fb-acme", "page_id": g.PAGE_ID}, "connectors.fb-acme")
            return facebook.GraphConnector("facebook", opts, token, g.APP_SECRET, g.VERIFY_TOKEN,
                                           session=self.session, sleep=self.sleeps)
        opts = facebook.parse_options(options | {"name": "ig-acme", "ig_user_id": g.IG_USER_ID},
                                      "connectors.ig-acme", id_key="ig_user_id")
        return facebook.GraphConnector("instagram", opts, token, g.APP_SECRET, g.VERIFY_TOKEN, session=self.session,
                                       fields=instagram.INSTAGRAM_FIELDS, enrichers=instagram.INSTAGRAM_ENRICHERS,
                                       sleep=self.sleeps)

    async def deliver(self, conn: Any, sink: RecordingSink, n: int) -> None:
        bodies = [self.body(self.n + i + 1) for i in range(n)]
        self.n += n
        await post_signed(conn, sink, [(b, {"Content-Type": "application/json",
                                            facebook.SIGNATURE_HEADER: g.sign(b)}) for b in bodies], 200)

    def body(self, n: int) -> bytes:
        """A signed-to-be delivery carrying comment number `n`."""
        raise NotImplementedError

    def fail_next(self, status: int, times: int = 1, retry_after: float | None = None) -> None:
        code = 4 if status == 429 else 2  # Graph: code 4 = app rate limit, code 2 = temporary service error
        self.fake.fail_next(400 if status == 429 else status, code, times)


class FacebookAdapter(_GraphAdapter):
    type = "facebook"

    def body(self, n: int) -> bytes:
        return g.delivery("page", [g.page_entry([g.feed_comment(f"880_{n}", f"Plus de fibre {n}")])])

    def reply_to(self, mention: InboundMention) -> OutboundReply:
        self.fake.objects[mention.external_id] = {"message": mention.text}
        return super().reply_to(mention)

    def threading(self, mention: InboundMention) -> tuple[Any, Any]:
        posted = self.fake.posted[-1]
        return (posted["edge"], posted["target"]), ("comments", mention.external_id)


class InstagramAdapter(_GraphAdapter):
    type = "instagram"

    def body(self, n: int) -> bytes:
        return g.delivery("instagram", [g.ig_entry([g.ig_comment(f"1786{n}", f"Livraison {n} ?")])])

    def reply_to(self, mention: InboundMention) -> OutboundReply:
        self.fake.objects[mention.external_id] = {"id": mention.external_id, "text": mention.text}
        return super().reply_to(mention)

    def threading(self, mention: InboundMention) -> tuple[Any, Any]:
        posted = self.fake.posted[-1]
        return (posted["edge"], posted["target"]), ("replies", mention.external_id)


class _Callback:
    """The sender's side of the generic webhook: receives carebox's signed replies."""

    def __init__(self, secret: str) -> None:
        self.secret = secret
        self.posted: list[dict[str, Any]] = []
        self.fail_with: list[tuple[int, float | None]] = []
        self.app = web.Application()
        self.app.router.add_post("/replies", self.receive)

    async def receive(self, request: web.Request) -> web.Response:
        body = await request.read()
        if verify(self.secret, request.headers.get(SIGNATURE_HEADER), body, time.time()) is not None:
            return web.Response(status=401)
        if self.fail_with:
            status, retry_after = self.fail_with.pop(0)
            return web.Response(status=status, headers={} if retry_after is None else {"Retry-After": f"{retry_after:g}"})
        self.posted.append(orjson.loads(body))
        return web.json_response({"external_id": f"msg-{len(self.posted)}"})


class WebhookAdapter(Adapter):
    type = "webhook"
    push = True
    secret = "s3cret-for-contract"

    async def start(self) -> None:
        self.callback = _Callback("cb")
        self.server = await self.serve(self.callback.app)

    def build(self, *, bad_auth: bool = False, stream: bool = False) -> webhook.WebhookConnector:
        base = {"name": "widget", "account": "brand", "secret_env": "HOOK_SECRET", "callback_secret_env": "CB",
                "callback_url": str(self.server.make_url("/replies"))}
        opts = webhook.parse_options(base, "connectors.widget")
        return webhook.WebhookConnector(opts, secret=self.secret, session=self.session,
                                        callback_secret="wrong" if bad_auth else "cb",
                                        backoff=Waits(self.sleeps))

    async def deliver(self, conn: Any, sink: RecordingSink, n: int) -> None:
        bodies = [orjson.dumps({"external_id": f"chat-{i}", "author_id": f"visitor-{i}", "text": f"App crashes {i}",
                                "created_at": "2026-11-22T09:58:00Z"}) for i in range(self.n + 1, self.n + n + 1)]
        self.n += n
        await post_signed(conn, sink, [(b, {SIGNATURE_HEADER: sign(self.secret, b, int(time.time()))})
                                       for b in bodies], 202)

    def fail_next(self, status: int, times: int = 1, retry_after: float | None = None) -> None:
        self.callback.fail_with.extend([(status, retry_after)] * times)

    def threading(self, mention: InboundMention) -> tuple[Any, Any]:
        doc = self.callback.posted[-1]
        return (doc["in_reply_to"], doc["thread_key"]), (mention.external_id, mention.thread_key)


ADAPTERS: dict[str, type[Adapter]] = {
    "x": XAdapter,
    "mastodon": MastodonAdapter,
    "bluesky": BlueskyAdapter,
    "email": EmailAdapter,
    "facebook": FacebookAdapter,
    "instagram": InstagramAdapter,
    "webhook": WebhookAdapter,
}
# Registered types with no network to fake: they get their own tests instead of the contract suite.
EXCLUDED: dict[str, str] = {
    "simulator": "generates mentions in-process, no network: tests/unit + tests/e2e cover it",
    "replay": "reads a local file, no network: tests/integration/test_replay_connector.py covers it",
}
SKIPS: dict[str, dict[str, str]] = {
    "bluesky": {"reconnect": "the connector only polls listNotifications (no Jetstream): no connection to drop"},
    "email": {"rate_limit": "IMAP/SMTP have no 429 / Retry-After",
              "auth_revoked": "the fake IMAP server refuses only at LOGIN; a session is never revoked mid-way"},
    "facebook": {"pagination": PUSH_NO_CURSOR, "resume": PUSH_NO_CURSOR, "reconnect": PUSH_NO_CURSOR,
               "auth_revoked": PUSH_NO_RUN},
    "instagram": {"pagination": PUSH_NO_CURSOR, "resume": PUSH_NO_CURSOR, "reconnect": PUSH_NO_CURSOR,
                "auth_revoked": PUSH_NO_RUN},
    "webhook": {"pagination": PUSH_NO_CURSOR, "resume": PUSH_NO_CURSOR, "reconnect": PUSH_NO_CURSOR,
              "auth_revoked": PUSH_NO_RUN},
}

