"""The simulator connector: a brand's realistic mention stream emitted in real time, replies recorded.

The stream itself is pure and lives in simulator_stream (re-exported here): `generate`,
`write_jsonl` (for `carebox simulate`). The connector's cursor is the sequence number k of the
next item, so a restart from cursor k emits items k, k+1, ... again: no loss, no duplicates.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from carebox.duration import parse_duration
from carebox.errors import ConfigError, ReplyRejected
from carebox.ports import (
    Direction,
    InboundMention,
    IngestBatch,
    MentionSink,
    OutboundReply,
    SentReply,
)
from connectors.social import simulator_texts as texts
from connectors.social.simulator_stream import (
    DEFAULT_PROFILE,
    Customer,
    Profile,
    generate,
    stream,
    write_jsonl,
)
from connectors.social.simulator_timeline import Outage, Timeline

__all__ = [
    "Customer",
    "Outage",
    "Profile",
    "SimulatorConnector",
    "SimulatorOptions",
    "Timeline",
    "from_config",
    "generate",
    "parse_options",
    "stream",
    "write_jsonl",
]

log = logging.getLogger(__name__)
MAX_BATCH = 1000


@dataclass(frozen=True, slots=True)
class SimulatorOptions:
    """One `[[connectors]]` entry of type "simulator"."""

    name: str = "simulator"
    account: str = "acme"
    network: str = "x"
    rate: float = 30.0
    seed: int = 1
    profile: Profile = DEFAULT_PROFILE
    reply_followups: float = 0.2
    tick: float = 1.0
    backlog: int = 10


def _number(options: Mapping[str, Any], key: str, where: str, default: float, lo: float, hi: float) -> float:
    value = options.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not lo <= value <= hi:
        raise ConfigError(f"{where}.{key}", f"a number from {lo:g} to {hi:g}")
    return float(value)


def _languages(value: Any, key: str) -> tuple[tuple[str, float], ...]:
    expected = 'a table of language shares such as { en = 0.5, fr = 0.5 } (languages "en", "fr")'
    if not isinstance(value, Mapping) or not value:
        raise ConfigError(key, expected)
    shares = []
    for lang, share in value.items():
        if (
            lang not in texts.BANK
            or isinstance(share, bool)
            or not isinstance(share, int | float)
            or share < 0
        ):
            raise ConfigError(key, expected)
        shares.append((lang, float(share)))
    if sum(s for _, s in shares) <= 0:
        raise ConfigError(key, expected + " with a positive total")
    return tuple(shares)


def parse_options(options: Mapping[str, Any], key: str) -> SimulatorOptions:
    """SimulatorOptions from a `[[connectors]]` table; `key` is "connectors.<name>"; ConfigError when bad."""
    for str_key in ("name", "account", "network", "timezone"):
        if str_key in options and (not isinstance(options[str_key], str) or not options[str_key].strip()):
            raise ConfigError(f"{key}.{str_key}", "a non-empty string")
    seed = options.get("seed", 1)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ConfigError(f"{key}.seed", "an integer")
    rhythm = options.get("rhythm", True)
    if not isinstance(rhythm, bool):
        raise ConfigError(f"{key}.rhythm", "true or false")
    timezone = options.get("timezone", "Europe/Paris")
    try:
        ZoneInfo(timezone)
    except (ValueError, KeyError, OSError, TypeError) as err:
        raise ConfigError(f"{key}.timezone", 'an IANA time zone such as "Europe/Paris"') from err
    every_raw = options.get("outage_every", "6h")
    never = isinstance(every_raw, str) and every_raw.strip().lower() in ("0", "never", "off")
    every = 0.0 if never else parse_duration(every_raw, f"{key}.outage_every")
    if 0 < every < 1800:
        raise ConfigError(f"{key}.outage_every", 'a duration of at least "30m", or "0" for never')
    first_raw = options.get("first_outage")
    first = None if first_raw is None else parse_duration(first_raw, f"{key}.first_outage")
    if first is not None and not 0 <= first <= 86400:
        raise ConfigError(f"{key}.first_outage", 'a duration from "0s" to "1d"')
    length_raw = options.get("outage_length")
    length = None if length_raw is None else parse_duration(length_raw, f"{key}.outage_length")
    if length is not None and not 10 <= length <= 3600:
        raise ConfigError(f"{key}.outage_length", 'a duration from "10s" to "1h"')
    brand = _number(options, "brand_replies", key, 0.12, 0.0, 0.5)
    followups = _number(options, "followups", key, 0.08, 0.0, 0.5)
    profile = Profile(
        outage_every=every,
        languages=_languages(options.get("languages", {"en": 0.5, "fr": 0.5}), f"{key}.languages"),
        timezone=timezone,
        rhythm=rhythm,
        customers=int(_number(options, "customers", key, 20000, 1, 10_000_000)),
        brand_replies=brand,
        followups=followups,
        first_outage=first,
        outage_length=length,
    )
    tick = parse_duration(options.get("tick", "1s"), f"{key}.tick")
    if not 0.01 <= tick <= 60:
        raise ConfigError(f"{key}.tick", "a duration from 10ms to 1m")
    return SimulatorOptions(
        name=options.get("name", "simulator").strip(),
        account=options.get("account", "acme").strip().lstrip("@"),
        network=options.get("network", "x").strip(),
        rate=_number(options, "rate", key, 30.0, 0.001, 100_000.0),
        seed=seed,
        profile=profile,
        reply_followups=_number(options, "reply_followups", key, 0.2, 0.0, 1.0),
        tick=tick,
        backlog=int(_number(options, "backlog", key, 10, 0, 10_000)),
    )


def from_config(name: str, options: Mapping[str, Any], **_: Any) -> SimulatorConnector:
    """A SimulatorConnector for one `[[connectors]]` entry (it needs no session or secrets)."""
    return SimulatorConnector(parse_options({**options, "name": name}, f"connectors.{name}"))


def parse_cursor(cursor: str | None) -> int:
    """The sequence number a simulator cursor points at (0 when there is none)."""
    if cursor is None or cursor == "":
        return 0
    try:
        k = int(cursor)
    except ValueError:
        log.warning("simulator cursor %r is not a sequence number; starting from 0", cursor)
        return 0
    return max(0, k)


@dataclass(order=True, slots=True)
class _Due:
    at: datetime
    mention: InboundMention = field(compare=False)


class SimulatorConnector:
    """Emits the simulated stream at its own pace; `posted` holds every reply sent through it."""

    def __init__(
        self,
        options: SimulatorOptions | None = None,
        *,
        clock: Callable[[], datetime] | None = None,
        sleep: Callable[[float], Awaitable[None]] | None = None,
    ) -> None:
        self.options = options or SimulatorOptions()
        self.name = self.options.name
        self.network = self.options.network
        self.account = self.options.account
        self.posted: list[OutboundReply] = []
        self.sent: list[SentReply] = []
        self._clock = clock or (lambda: datetime.now(UTC))
        self._sleep = sleep or asyncio.sleep
        self._rng = random.Random(f"{self.options.seed}:replies")
        self._due: list[_Due] = []
        self._run_tag = format(
            int(self._clock().timestamp() * 1000), "x"
        )  # keeps reply ids unique across runs
        self._count = 0
        self._seen: dict[str, InboundMention] = {}

    async def run(self, sink: MentionSink, cursor: str | None) -> None:
        """Emit what is due every tick, from item `cursor` on, until cancelled."""
        opts = self.options
        first = parse_cursor(cursor)
        start = self._clock()
        self._run_tag = format(int(start.timestamp() * 1000), "x")
        log.info(
            "simulator %s: %.1f mentions/min for @%s from item %d", self.name, opts.rate, self.account, first
        )
        items = stream(
            opts.seed,
            start,
            opts.rate,
            self.account,
            self.network,
            profile=opts.profile,
            first=first,
            base=first + opts.backlog,  # the first `backlog` items are due at once, as a feed catching up
        )
        pending = next(items)
        while True:
            now = self._clock()
            batch: list[InboundMention] = []
            while len(batch) < MAX_BATCH and pending[1] <= now.timestamp():
                batch.append(replace(pending[2], created_at=now))
                self._remember(pending[2])
                first = pending[0] + 1
                pending = next(items)
            while self._due and self._due[0].at <= now and len(batch) < MAX_BATCH:
                batch.append(replace(heapq.heappop(self._due).mention, created_at=now))
            if batch:
                await sink.put(IngestBatch(source=self.name, mentions=tuple(batch), cursor=str(first)))
            if len(batch) < MAX_BATCH:
                await self._sleep(opts.tick)

    async def send_reply(self, reply: OutboundReply) -> SentReply:
        """Record the reply, maybe schedule the customer's answer to it, and confirm it."""
        if not reply.in_reply_to or not reply.text.strip():
            raise ReplyRejected(self.name, "a reply needs in_reply_to and a text")
        now = self._clock()
        self._count += 1
        sent = SentReply(
            external_id=f"sim-{self.options.seed}-reply-{self._run_tag}-{self._count}",
            created_at=now,
            raw={"text": reply.text, "in_reply_to": reply.in_reply_to},
        )
        self.posted.append(reply)
        self.sent.append(sent)
        if self._rng.random() < self.options.reply_followups:
            heapq.heappush(
                self._due,
                _Due(now + timedelta(seconds=self._rng.uniform(20, 180)), self._followup(reply, sent, now)),
            )
        return sent

    def _remember(self, mention: InboundMention) -> None:
        if mention.direction is Direction.INBOUND:
            if len(self._seen) > 100_000:
                self._seen.clear()
            self._seen[mention.author_id] = self._seen[mention.author_handle] = mention

    def _followup(self, reply: OutboundReply, sent: SentReply, now: datetime) -> InboundMention:
        """The customer's answer to a reply sent through carebox: thanks, or still not working."""
        who = self._customer(reply)
        lang = who.lang_hint if who and who.lang_hint else ("fr" if _looks_french(reply.text) else "en")
        kind = "thanks" if self._rng.random() < 0.55 else "still"
        text = texts.customer_text(kind, lang, self._rng, brand=self.account, reply=True)
        handle = who.author_handle if who else (reply.customer_handle or reply.customer_id or "customer")
        return InboundMention(
            network=self.network,
            account=self.account,
            external_id=f"{sent.external_id}-answer",
            author_id=who.author_id if who else (reply.customer_id or handle),
            author_handle=handle,
            author_name=who.author_name if who else "",
            text=text,
            created_at=now,
            in_reply_to=sent.external_id,
            thread_key=reply.thread_key,
            followers=who.followers if who else None,
            verified=who.verified if who else False,
            lang_hint=lang,
            raw={"sim": {"role": "reply_followup", "kind": kind}},
        )

    def _customer(self, reply: OutboundReply) -> InboundMention | None:
        """The last post seen from the customer a reply is addressed to, if the simulator wrote it."""
        return self._seen.get(reply.customer_id) or self._seen.get(reply.customer_handle)


def _looks_french(text: str) -> bool:
    words = set(text.lower().replace(",", " ").replace(".", " ").split())
    return len(words & {"bonjour", "merci", "vous", "nous", "votre", "désolés", "pouvez", "est"}) >= 1
