"""The simulator's pure generator: a brand's deterministic stream of English and French mentions.

Item k depends only on (seed, k) and the timeline, so a restart from cursor k re-produces items
k, k+1, ... exactly. Roles: new customer posts (question, complaint, praise, spam), the brand's
replies (outbound, as if answered outside carebox) and customers' follow-ups to those replies.
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import IO, Any

from carebox.ports import Direction, InboundMention
from connectors.social import simulator_texts as texts
from connectors.social.jsonl import dumps
from connectors.social.simulator_timeline import Outage, Timeline, rng_for, units

NEW, BRAND, FOLLOWUP = "new", "brand", "followup"
_KIND_SHARES = (("question", 0.34), ("complaint", 0.36), ("praise", 0.18), ("spam", 0.12))
_FIRST = (
    "Marie",
    "Lucas",
    "Camille",
    "Hugo",
    "Léa",
    "Nathan",
    "Chloé",
    "Julien",
    "Sarah",
    "Tom",
    "Emma",
    "Jack",
    "Olivia",
    "Harry",
    "Amelia",
    "Noah",
    "Sophie",
    "Karim",
    "Inès",
    "Yanis",
)
_LAST = (
    "Martin",
    "Bernard",
    "Dubois",
    "Petit",
    "Moreau",
    "Laurent",
    "Smith",
    "Jones",
    "Taylor",
    "Brown",
    "Wilson",
    "Nguyen",
    "Benali",
    "Garcia",
    "Roux",
    "Fournier",
    "Evans",
    "Clarke",
)
_REACH = 1500  # items; at 30 mentions/min a brand reply comes up to ~50 min after the post
_SIGNATURES = ("AB", "JM", "KC", "SL", "TR", "MP")


@dataclass(frozen=True, slots=True)
class Profile:
    """The shape of a simulated stream besides seed, start and rate."""

    outage_every: float = 6 * 3600.0
    languages: tuple[tuple[str, float], ...] = (("en", 0.5), ("fr", 0.5))
    timezone: str = "Europe/Paris"
    rhythm: bool = True
    customers: int = 20000
    brand_replies: float = 0.12
    followups: float = 0.08
    first_outage: float | None = None  # seconds after start of a sure first burst (None: bursts at random only)
    outage_length: float | None = None  # seconds every burst lasts (None: 10 to 60 minutes at random)


DEFAULT_PROFILE = Profile()


@dataclass(frozen=True, slots=True)
class Customer:
    """A member of the simulated customer population; stable for a given seed."""

    index: int
    author_id: str
    handle: str
    name: str
    lang: str
    followers: int
    verified: bool


@dataclass(frozen=True, slots=True)
class Skeleton:
    """What item k is, independent of time: its role, kind, customer, reply target and thread root."""

    role: str
    kind: str
    customer: int
    ref: int | None
    root: int


@lru_cache(maxsize=65536)
def customer(seed: int, index: int, languages: tuple[tuple[str, float], ...]) -> Customer:
    """Customer `index` of the population of `seed`."""
    rng = rng_for(seed, "c", index)
    lang = _pick(rng.random(), languages)
    first, last = rng.choice(_FIRST), rng.choice(_LAST)
    style = rng.randrange(4)
    base = (
        first + last
        if style == 0
        else f"{first}_{last}"
        if style == 1
        else first + str(rng.randrange(10, 999))
        if style == 2
        else f"{first[0]}{last}"
    )
    handle = "".join(ch for ch in base.lower() if ch.isascii() and (ch.isalnum() or ch == "_"))[:12]
    handle += str(rng.randrange(1, 99)) if rng.random() < 0.5 else ""
    large = rng.random() < 0.03
    followers = int(10 ** rng.uniform(4.3, 6.3)) if large else max(0, int(10 ** rng.gauss(2.2, 0.6)))
    verified = rng.random() < (0.4 if large else 0.01)
    return Customer(
        index, str(rng.randrange(10**9, 10**10)), handle, f"{first} {last}", lang, followers, verified
    )


def _pick(r: float, shares: tuple[tuple[str, float], ...]) -> str:
    total = sum(share for _, share in shares)
    acc = 0.0
    for name, share in shares:
        acc += share / total
        if r < acc:
            return name
    return shares[-1][0]


@lru_cache(maxsize=65536)
def _role(seed: int, k: int, profile: Profile) -> tuple[str, str]:
    """(role, kind) of item k as first drawn, before checking reply targets exist."""
    r, rk = units(seed, "r", k)
    kind = _pick(rk, _KIND_SHARES)
    if r < profile.brand_replies:
        return BRAND, kind
    if r < profile.brand_replies + profile.followups:
        return FOLLOWUP, kind
    return NEW, kind


@lru_cache(maxsize=65536)
def skeleton(seed: int, k: int, profile: Profile) -> Skeleton:
    """The time-independent part of item k: brand replies answer a recent customer post, follow-ups a recent brand reply."""
    role, kind = _role(seed, k, profile)
    if role == NEW:
        return Skeleton(NEW, kind, _customer_index(seed, k, profile), None, k)
    rng = rng_for(seed, "s", k)
    # how far back the answered post is: log-uniform, so most answers come soon and a few much later
    back = int(math.exp(rng.uniform(math.log(3), math.log(_REACH))))
    if role == BRAND:
        for j in range(k - back, max(-1, k - back - 60), -1):
            if j >= 0 and _answerable(seed, j, profile):
                target = skeleton(seed, j, profile)
                return Skeleton(BRAND, target.kind, target.customer, j, target.root)
    elif role == FOLLOWUP:
        for j in range(k - back, max(-1, k - back - 200), -1):
            if j >= 0 and _role(seed, j, profile)[0] == BRAND and skeleton(seed, j, profile).role == BRAND:
                target = skeleton(seed, j, profile)
                kind = _pick(rng.random(), (("thanks", 0.45), ("still", 0.35), ("info", 0.2)))
                return Skeleton(FOLLOWUP, kind, target.customer, j, target.root)
    return Skeleton(NEW, kind, _customer_index(seed, k, profile), None, k)


def _customer_index(seed: int, k: int, profile: Profile) -> int:
    """A skewed draw over the population: some customers come back often."""
    return int(profile.customers * units(seed, "s", k)[0] ** 1.6)


def _answerable(seed: int, j: int, profile: Profile) -> bool:
    if _role(seed, j, profile)[0] == BRAND:
        return False
    s = skeleton(seed, j, profile)
    return s.role == FOLLOWUP and s.kind != "thanks" or s.role == NEW and s.kind != "spam"


def _external_id(seed: int, k: int) -> str:
    return f"sim-{seed}-{k}"


def build(
    seed: int,
    k: int,
    ts: float,
    burst_share: float,
    burst: Outage | None,
    *,
    account: str,
    network: str,
    profile: Profile,
) -> InboundMention:
    """Item k at epoch second `ts`; a complaint or question inside a burst may become an outage report."""
    sk = skeleton(seed, k, profile)
    who = customer(seed, sk.customer, profile.languages)
    rng = rng_for(seed, "t", k)
    common: dict[str, Any] = {
        "network": network,
        "account": account,
        "external_id": _external_id(seed, k),
        "created_at": datetime.fromtimestamp(round(ts, 3), UTC),
        "thread_key": _external_id(seed, sk.root),
        "lang_hint": who.lang,
        "in_reply_to": _external_id(seed, sk.ref) if sk.ref is not None else None,
    }
    if sk.role == BRAND:
        signature = rng.choice(_SIGNATURES)
        # during a burst the brand acknowledges the incident (its target was probably a report)
        service = burst.service if burst else None
        text = texts.brand_text(
            sk.kind, who.lang, rng, customer_handle=who.handle, signature=signature, service=service
        )
        raw = {"sim": {"k": k, "role": BRAND}}
        return InboundMention(
            author_id=account, author_handle=account, author_name=account, text=text,
            direction=Direction.OUTBOUND, raw=raw, **common,
        )  # fmt: skip
    kind, service, city, outage = sk.kind, None, None, None
    # burst_share/0.7: only questions and complaints turn into outage reports (about 70% of new posts)
    if sk.role == NEW and burst and kind in ("question", "complaint") and rng.random() < burst_share / 0.7:
        kind, service, outage = "outage", burst.service, burst.index
        city = burst.city if burst.city and rng.random() < 0.6 else None
    reply = sk.role == FOLLOWUP
    text = texts.customer_text(kind, who.lang, rng, brand=account, service=service, city=city, reply=reply)
    reposts = 0
    if kind in ("outage", "complaint") and rng.random() < 0.2:
        reposts = int(rng.paretovariate(1.2)) + (who.followers // 2000)
    raw = {"sim": {"k": k, "role": sk.role, "kind": kind, "service": service, "outage": outage}}
    return InboundMention(
        author_id=who.author_id, author_handle=who.handle, author_name=who.name, text=text,
        followers=who.followers, verified=who.verified, reposts=reposts, raw=raw, **common,
    )  # fmt: skip


def stream(
    seed: int,
    start: datetime,
    rate_per_min: float,
    account: str,
    network: str = "x",
    *,
    profile: Profile = DEFAULT_PROFILE,
    first: int = 0,
    base: int = 0,
) -> Iterator[tuple[int, float, InboundMention]]:
    """(k, epoch second, mention) from item `first` on; item k sits at position k - base on the timeline."""
    timeline = Timeline(
        seed,
        start,
        rate_per_min,
        outage_every=profile.outage_every,
        timezone=profile.timezone,
        rhythm=profile.rhythm,
        first_outage=profile.first_outage,
        outage_length=profile.outage_length,
    )
    for k, ts, share, burst in timeline.positions(first, base):
        yield k, ts, build(seed, k, ts, share, burst, account=account, network=network, profile=profile)


def generate(
    seed: int,
    start: datetime,
    rate_per_min: float,
    account: str,
    network: str = "x",
    *,
    profile: Profile = DEFAULT_PROFILE,
    first: int = 0,
) -> Iterator[InboundMention]:
    """The endless stream of mentions from `start` at `rate_per_min` on average; `first` skips to item k."""
    for _, _, mention in stream(seed, start, rate_per_min, account, network, profile=profile, first=first):
        yield mention


def write_jsonl(
    path_or_file: str | os.PathLike[str] | IO[Any],
    n: int,
    seed: int,
    start: datetime,
    rate_per_min: float,
    account: str,
    *,
    network: str = "x",
    profile: Profile = DEFAULT_PROFILE,
) -> int:
    """Write the first `n` mentions of the stream as JSONL; returns the number written."""
    if isinstance(path_or_file, str | os.PathLike):
        with open(path_or_file, "wb") as out:
            return write_jsonl(out, n, seed, start, rate_per_min, account, network=network, profile=profile)
    text = isinstance(path_or_file, io.TextIOBase)
    written = 0
    for mention in generate(seed, start, rate_per_min, account, network, profile=profile):
        if written >= n:
            break
        line = dumps(mention) + b"\n"
        path_or_file.write(line.decode() if text else line)
        written += 1
    return written
