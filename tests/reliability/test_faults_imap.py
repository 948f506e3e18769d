"""The IMAP connector behind a chaos proxy (sessions cut mid-FETCH and mid-IDLE, slow answers, answers held past
its timeout) reads every message once, keeps its cursor honest, and reconnects by itself."""

from __future__ import annotations

import asyncio
import os
from collections import Counter
from email.message import EmailMessage

import pytest

from connectors._http import Backoff
from connectors.social.email import EmailConnector, parse_options
from tests.fakes.imap import FakeImapServer
from tests.fakes.sink import RecordingSink
from tests.reliability.chaos import FIGURES, running
from tests.reliability.chaos_imap import ImapChaos, ImapFaults

SEEDS = tuple(range(1, 1 + int(os.environ.get("CAREBOX_FAULT_SEEDS", "2"))))
WAVES, PER_WAVE = 5, 6
FAULTS = ImapFaults(cut_fetch=0.3, cut_idle=0.4, slow=0.1, stall=0.04)


def mail(wave: int, n: int) -> bytes:
    """A customer's message with its own Message-ID."""
    msg = EmailMessage()
    msg["From"] = f"Client {wave}-{n} <client{wave}x{n}@mail.example.org>"
    msg["To"] = "support@brand.example"
    msg["Subject"] = f"Order {wave}-{n} never arrived"
    msg["Message-ID"] = f"<w{wave}n{n}@mail.example.org>"
    msg["Date"] = "Mon, 02 Mar 2026 09:00:00 +0100"
    msg.set_content(f"Hello, order {wave}-{n} never arrived and nobody answers the phone.\n" * 20)
    return bytes(msg)


def _connector(port: int, idle: bool) -> EmailConnector:
    table = {"name": "mail", "account": "support@brand.example", "inbound": "imap", "imap_host": "127.0.0.1",
             "imap_port": port, "imap_security": "none", "imap_password_env": "IMAP_PW", "imap_timeout": "0.6s",
             "poll_interval": "1h" if idle else "20ms", "idle": idle, "batch_size": 4, "start_at": "all"}
    return EmailConnector(parse_options(table, "connectors.mail"), imap_password="app-password",
                          backoff=Backoff(base=0.005, cap=0.1))


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("mode", ["poll", "idle"])
async def test_imap_connector_through_dropped_and_slow_sessions_reads_every_message_once(seed, mode):
    sink, posted = RecordingSink(), set()
    async with FakeImapServer() as server, ImapChaos(server.port, seed, FAULTS) as chaos:
        server.mailbox.idle = mode == "idle"  # "idle": only IDLE pushes (or a reconnection) wake the connector
        conn = _connector(chaos.port, idle=mode == "idle")
        async with running(conn, sink, None):
            for wave in range(WAVES):
                chaos.enabled = wave < WAVES - 1  # the last wave after the network heals
                for n in range(PER_WAVE):
                    server.mailbox.add(mail(wave, n))
                    posted.add(f"w{wave}n{n}@mail.example.org")
                await sink.wait_for(lambda s: posted <= {m.external_id for m in s.mentions}, timeout=30)
                if chaos.enabled:
                    await asyncio.sleep(0.3)  # polls and IDLEs go on through the faults a while
            uidvalidity = server.mailbox.uidvalidity
            await sink.wait_for(lambda s: s.cursor == f"{uidvalidity}:{len(posted)}", timeout=10)
    got = Counter(m.external_id for m in sink.mentions)
    assert set(got) == posted and max(got.values()) == 1, "lost or duplicated messages"
    assert not sink.rejected, [r.reason for r in sink.rejected]
    assert chaos.total_injected >= 5 and chaos.connections > 1, chaos.injected
    cursors = [int(b.cursor.split(":")[1]) for b in sink.batches if b.cursor]
    assert cursors == sorted(cursors), "the cursor went backwards"
    assert conn.last_error is None, "the connector did not report itself back"
    FIGURES.append({"connector": "email", "mode": f"imap-{mode}", "mentions": len(posted),
                    "faults": dict(chaos.injected), "reconnections": chaos.connections - 1,
                    "dead_letters": len(sink.rejected)})
