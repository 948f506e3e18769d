"""A small IMAP4rev1 server (RFC 3501) for tests: LOGIN, SELECT/EXAMINE, UID SEARCH, UID FETCH, NOOP, LOGOUT.

It speaks the wire protocol on a local port so the e-mail connector's real IMAP client runs against it.
IDLE (RFC 2177) is offered when `idle` is true: new mail is pushed as `* n EXISTS`.
Switches: `refuse_login`, `login_unavailable` (temporary refusals, RFC 5530), `drop_on_fetch` (disconnect mid-session), `fail_select`, `delay` (slow answers),
`idle`, and `uidvalidity` (change it with `rebuild` to simulate a rebuilt mailbox).
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field
from typing import Self

_UID_RANGE = re.compile(r"^(\d+|\*)(?::(\d+|\*))?$")


@dataclass
class FakeMailbox:
    """The state of the fake server: one mailbox of (uid, RFC 822 bytes), credentials and switches."""

    username: str = "support@brand.example"
    password: str = "app-password"
    uidvalidity: int = 1700000000
    messages: list[tuple[int, bytes]] = field(default_factory=list)
    next_uid: int = 1
    refuse_login: bool = False
    login_unavailable: int = 0
    fail_select: bool = False
    drop_on_fetch: int = 0
    delay: float = 0.0
    idle: bool = False
    logins: int = 0
    commands: list[str] = field(default_factory=list)
    watchers: set[asyncio.Event] = field(default_factory=set)

    def add(self, raw: bytes) -> int:
        """Deliver a message into the mailbox; return its UID."""
        uid = self.next_uid
        self.messages.append((uid, raw))
        self.next_uid += 1
        for event in self.watchers:
            event.set()
        return uid

    def rebuild(self, uidvalidity: int) -> None:
        """Renumber every message under a new UIDVALIDITY, as a server does after a mailbox rebuild."""
        self.uidvalidity = uidvalidity
        self.messages = [(i + 1, raw) for i, (_, raw) in enumerate(self.messages)]
        self.next_uid = len(self.messages) + 1

    def uids_in(self, spec: str) -> list[int]:
        """The UIDs matched by a sequence set such as `5:*`, `3`, `1,4:6` (`*` is the highest UID)."""
        highest = self.messages[-1][0] if self.messages else 0
        chosen: set[int] = set()
        for part in spec.split(","):
            match = _UID_RANGE.match(part)
            if not match:
                continue
            low, high = (highest if x == "*" else int(x) for x in (match.group(1), match.group(2) or match.group(1)))
            low, high = min(low, high), max(low, high)
            chosen.update(uid for uid, _ in self.messages if low <= uid <= high)
        return sorted(chosen)


class FakeImapServer:
    """Serves a FakeMailbox over IMAP4rev1 on 127.0.0.1; use `async with` and read `port`."""

    def __init__(self, mailbox: FakeMailbox | None = None) -> None:
        self.mailbox = mailbox or FakeMailbox()
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task] = set()

    async def __aenter__(self) -> Self:
        self._server = await asyncio.start_server(self._session, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        box = self.mailbox
        reported = [0]  # the mailbox size this session was last told (SELECT, NOOP, IDLE pushes)
        try:
            writer.write(b"* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] fake IMAP ready\r\n")
            await writer.drain()
            while line := await reader.readline():
                text = line.decode("utf-8", "replace").rstrip("\r\n")
                box.commands.append(text)
                if box.delay:
                    await asyncio.sleep(box.delay)
                tag, _, rest = text.partition(" ")
                command, _, args = rest.partition(" ")
                if command.upper() == "IDLE" and box.idle:
                    await self._idle(tag, reader, writer, reported)
                    continue
                if command.upper() in ("SELECT", "EXAMINE", "NOOP"):
                    reported[0] = len(box.messages)
                reply = self._answer(tag, command.upper(), args)
                if reply is None:  # the drop switch: hang up mid-session
                    break
                writer.write(reply)
                await writer.drain()
                if command.upper() == "LOGOUT":
                    break
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self._tasks.discard(task)
            self._writers.discard(writer)
            writer.close()

    async def _idle(self, tag: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    reported: list[int]) -> None:
        """Push `* n EXISTS` whenever mail arrives, until the client sends DONE; mail that came since the
        session was last told the size is announced at once, as a real server does (RFC 3501, 7.3.1)."""
        arrived = asyncio.Event()
        self.mailbox.watchers.add(arrived)
        if len(self.mailbox.messages) != reported[0]:
            arrived.set()
        writer.write(b"+ idling\r\n")
        await writer.drain()
        done = asyncio.ensure_future(reader.readline())
        try:
            while True:
                woke = asyncio.ensure_future(arrived.wait())
                await asyncio.wait({done, woke}, return_when=asyncio.FIRST_COMPLETED)
                woke.cancel()
                if done.done():
                    self.mailbox.commands.append(done.result().decode().strip())
                    writer.write(f"{tag} OK IDLE terminated\r\n".encode())
                    await writer.drain()
                    return
                arrived.clear()
                reported[0] = len(self.mailbox.messages)
                writer.write(f"* {reported[0]} EXISTS\r\n".encode())
                await writer.drain()
        finally:
            done.cancel()
            self.mailbox.watchers.discard(arrived)

    def _answer(self, tag: str, command: str, args: str) -> bytes | None:
        box = self.mailbox
        if command == "CAPABILITY":
            extra = " IDLE" if box.idle else ""
            return f"* CAPABILITY IMAP4rev1 AUTH=PLAIN{extra}\r\n{tag} OK CAPABILITY completed\r\n".encode()
        if command == "LOGIN":
            user, _, password = args.partition(" ")
            if box.login_unavailable:
                box.login_unavailable -= 1
                return f"{tag} NO [UNAVAILABLE] Temporary authentication failure\r\n".encode()
            if box.refuse_login or user.strip('"') != box.username or password.strip('"') != box.password:
                return f"{tag} NO [AUTHENTICATIONFAILED] Invalid credentials\r\n".encode()
            box.logins += 1
            return f"{tag} OK [CAPABILITY IMAP4rev1] Logged in\r\n".encode()
        if command in ("SELECT", "EXAMINE"):
            if box.fail_select:
                return f"{tag} NO [NONEXISTENT] Mailbox doesn't exist\r\n".encode()
            mode = "READ-ONLY" if command == "EXAMINE" else "READ-WRITE"
            return (
                f"* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)\r\n"
                f"* {len(box.messages)} EXISTS\r\n* 0 RECENT\r\n"
                f"* OK [UIDVALIDITY {box.uidvalidity}] UIDs valid\r\n"
                f"* OK [UIDNEXT {box.next_uid}] Predicted next UID\r\n"
                f"{tag} OK [{mode}] {command} completed\r\n"
            ).encode()
        if command == "UID":
            return self._uid(tag, args)
        if command == "NOOP":
            return f"* {len(box.messages)} EXISTS\r\n{tag} OK NOOP completed\r\n".encode()
        if command == "LOGOUT":
            return f"* BYE Logging out\r\n{tag} OK Logout completed\r\n".encode()
        return f"{tag} BAD unknown command\r\n".encode()

    def _uid(self, tag: str, args: str) -> bytes | None:
        box = self.mailbox
        sub, _, rest = args.partition(" ")
        words = rest.split()
        if sub.upper() == "SEARCH":
            if words[:1] and words[0].upper() == "CHARSET":
                words = words[2:]
            spec = words[words.index("UID") + 1] if "UID" in (w.upper() for w in words) else "1:*"
            found = " ".join(str(u) for u in box.uids_in(spec))
            return f"* SEARCH {found}\r\n{tag} OK SEARCH completed\r\n".encode().replace(b"SEARCH \r\n", b"SEARCH\r\n")
        if sub.upper() == "FETCH":
            if box.drop_on_fetch:
                box.drop_on_fetch -= 1
                return None
            out = bytearray()
            seq_of = {uid: i + 1 for i, (uid, _) in enumerate(box.messages)}
            wanted = set(box.uids_in(words[0]))
            item = "BODY[]" if "BODY" in rest.upper() else "RFC822"
            for uid, raw in box.messages:
                if uid in wanted:
                    out += f"* {seq_of[uid]} FETCH (UID {uid} {item} {{{len(raw)}}}\r\n".encode() + raw + b")\r\n"
            return bytes(out) + f"{tag} OK FETCH completed\r\n".encode()
        return f"{tag} BAD unknown UID command\r\n".encode()
