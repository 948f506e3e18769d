"""The simulator's stream: deterministic, restartable, rhythmic, bilingual, with bursts and threads."""

from __future__ import annotations

import asyncio
import io
import itertools
import re
from collections import Counter
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from carebox.errors import ConfigError
from carebox.ports import Direction, OutboundReply
from connectors.social.jsonl import mention_to_dict
from connectors.social.replay import read_jsonl
from connectors.social.simulator import (
    Profile,
    SimulatorConnector,
    SimulatorOptions,
    Timeline,
    generate,
    parse_options,
    write_jsonl,
)
from connectors.social.simulator_texts import service_word
from tests.fakes.sink import RecordingSink

MONDAY = datetime(2026, 11, 16, tzinfo=UTC)
PARIS = ZoneInfo("Europe/Paris")
QUIET = Profile(outage_every=0)


def take(n: int, **kwargs):
    args = {"seed": 7, "start": MONDAY, "rate_per_min": 10.0, "account": "acme"} | kwargs
    return list(itertools.islice(generate(**args), n))


@pytest.fixture(scope="module")
def week() -> list:
    """A simulated week at one mention every two minutes on average."""
    end = MONDAY + timedelta(days=7)
    return list(itertools.takewhile(lambda m: m.created_at < end, generate(3, MONDAY, 0.5, "acme")))


def test_same_seed_gives_the_same_stream():
    assert take(1000) == take(1000)


def test_another_seed_gives_another_stream():
    assert [m.text for m in take(50)] != [m.text for m in take(50, seed=8)]


@pytest.mark.parametrize("k", [0, 1, 137, 599])
def test_restart_from_cursor_k_reproduces_the_tail_exactly(k):
    full = take(600)
    assert take(600 - k, first=k) == full[k:]


def test_external_ids_are_unique_and_name_the_seed():
    ids = [m.external_id for m in take(1000)]
    assert len(set(ids)) == len(ids)
    assert all(i.startswith("sim-7-") for i in ids)


def test_items_are_in_time_order_from_start():
    times = [m.created_at for m in take(1000)]
    assert times == sorted(times) and times[0] >= MONDAY


def usual(week: list) -> list:
    """The mentions that are not outage reports."""
    return [m for m in week if m.raw["sim"].get("kind") != "outage"]


def test_rate_is_the_average_over_a_week(week):
    assert 0.85 * 7 * 720 < len(usual(week)) < 1.15 * 7 * 720
    assert len(week) < 1.4 * 7 * 720  # outage bursts add on top of the rate


def test_more_mentions_at_lunchtime_than_at_night(week):
    hours = Counter(m.created_at.astimezone(PARIS).hour for m in usual(week))
    assert hours[12] + hours[13] > 5 * (hours[3] + hours[4])


def test_fewer_mentions_on_sunday_than_on_a_weekday(week):
    days = Counter(m.created_at.astimezone(PARIS).weekday() for m in usual(week))
    weekday_mean = sum(days[d] for d in range(5)) / 5
    assert days[6] < 0.8 * weekday_mean


def test_flat_profile_has_no_rhythm():
    end = MONDAY + timedelta(days=1)
    flat = Profile(outage_every=0, rhythm=False)
    day = list(
        itertools.takewhile(lambda m: m.created_at < end, generate(3, MONDAY, 2.0, "acme", profile=flat))
    )
    hours = Counter(m.created_at.astimezone(PARIS).hour for m in day)
    assert hours[3] + hours[4] > 0.5 * (hours[12] + hours[13])


def test_both_languages_are_present(week):
    langs = Counter(m.lang_hint for m in week)
    assert langs["en"] > 0.3 * len(week) and langs["fr"] > 0.3 * len(week)
    texts = " ".join(m.text for m in week)
    assert " merci" in texts.lower() and " thanks" in texts.lower()


def test_language_share_can_be_all_french():
    mentions = take(300, profile=Profile(languages=(("fr", 1.0),)))
    assert {m.lang_hint for m in mentions} == {"fr"}


def test_every_customer_post_mentions_the_brand(week):
    inbound = [m for m in week if m.direction is Direction.INBOUND]
    assert all("@acme" in m.text for m in inbound)


def test_texts_vary_with_emoji_hashtags_and_elongations(week):
    texts = [m.text for m in week]
    assert len(set(texts)) > 0.6 * len(texts)
    assert any("#" in t for t in texts)
    assert any(re.search(r"[\U0001F300-\U0001FAFF]", t) for t in texts)
    assert any(re.search(r"([a-z])\1\1\1", t) for t in texts)


def test_all_kinds_of_post_appear(week):
    kinds = Counter(m.raw["sim"].get("kind") for m in week)
    for kind in ("question", "complaint", "praise", "spam", "outage", "thanks", "still"):
        assert kinds[kind] > 0, kind


def test_repeat_customers_keep_their_identity(week):
    inbound = [m for m in week if m.direction is Direction.INBOUND]
    by_author = {}
    for m in inbound:
        by_author.setdefault(m.author_id, set()).add((m.author_handle, m.followers, m.verified))
    assert all(len(v) == 1 for v in by_author.values())
    counts = Counter(m.author_id for m in inbound)
    assert counts.most_common(1)[0][1] >= 5
    assert any(m.verified for m in inbound)
    assert any(m.followers and m.followers >= 10_000 for m in inbound)


def test_outage_bursts_cluster_on_one_service_term(week):
    end = MONDAY + timedelta(days=7)
    bursts = [b for b in Timeline(3, MONDAY, 0.5).outages(end) if b.end < end]
    # a small night-time burst may be drowned out; every burst expected to bring 10+ reports must show
    bursts = [b for b in bursts if b.extra_per_min * (b.end - b.start).total_seconds() / 60 >= 10]
    assert len(bursts) >= 5
    words = [(m.created_at, set(re.findall(r"\w+", m.text.lower()))) for m in week]

    def about(service: str, since: datetime, until: datetime) -> int:
        terms = {service_word(service, "en").lower(), service_word(service, "fr").lower()}
        return sum(1 for at, found in words if since <= at < until and terms & found)

    for burst in bursts:
        assert timedelta(minutes=10) <= burst.end - burst.start <= timedelta(minutes=60)
        during = about(burst.service, burst.start, burst.end)
        before = about(burst.service, burst.start - (burst.end - burst.start), burst.start)
        assert during >= 2 * before + 4, (burst, during, before)


def test_outage_reports_happen_only_inside_a_burst_about_its_service(week):
    bursts = {b.index: b for b in Timeline(3, MONDAY, 0.5).outages(MONDAY + timedelta(days=7))}
    reports = [m for m in week if m.raw["sim"].get("kind") == "outage"]
    assert reports
    for m in reports:
        burst = bursts[m.raw["sim"]["outage"]]
        assert burst.start <= m.created_at < burst.end
        assert service_word(burst.service, m.lang_hint).lower() in m.text.lower()


def test_no_bursts_when_outage_every_is_zero():
    assert all(m.raw["sim"].get("kind") != "outage" for m in take(1000, profile=QUIET))


def test_brand_replies_answer_an_earlier_customer_post(week):
    by_id = {m.external_id: m for m in week}
    replies = [m for m in week if m.direction is Direction.OUTBOUND]
    assert len(replies) > 0.05 * len(week)
    for reply in replies:
        target = by_id[reply.in_reply_to]
        assert target.direction is Direction.INBOUND and target.created_at <= reply.created_at
        assert reply.text.startswith(f"@{target.author_handle} ") and reply.author_id == "acme"
        assert reply.thread_key == target.thread_key


def test_follow_ups_reference_an_earlier_brand_reply_in_the_same_thread(week):
    by_id = {m.external_id: m for m in week}
    follow_ups = [m for m in week if m.direction is Direction.INBOUND and m.in_reply_to]
    assert len(follow_ups) > 0.03 * len(week)
    for m in follow_ups:
        parent = by_id[m.in_reply_to]
        assert parent.direction is Direction.OUTBOUND and parent.created_at <= m.created_at
        assert parent.text.startswith(f"@{m.author_handle} ")
        assert m.thread_key == parent.thread_key


def test_write_jsonl_produces_the_same_stream_as_generate():
    out = io.BytesIO()
    assert write_jsonl(out, 200, 7, MONDAY, 10.0, "acme") == 200
    out.seek(0)
    read = list(read_jsonl(out))
    assert [mention_to_dict(m) for m in read] == [mention_to_dict(m) for m in take(200)]


def test_write_jsonl_to_a_path(tmp_path):
    path = tmp_path / "sim.jsonl"
    assert write_jsonl(path, 25, 1, MONDAY, 30.0, "acme") == 25
    assert len(path.read_bytes().splitlines()) == 25


# ---------------------------------------------------------------- options


def test_options_have_documented_defaults():
    opts = parse_options({"account": "acme"}, "connectors.sim")
    assert (opts.rate, opts.seed, opts.network, opts.profile.outage_every) == (30.0, 1, "x", 6 * 3600)
    assert opts.profile.languages == (("en", 0.5), ("fr", 0.5))


def test_outage_every_zero_means_never():
    assert parse_options({"outage_every": "0"}, "c.s").profile.outage_every == 0


@pytest.mark.parametrize(
    ("options", "key"),
    [
        ({"rate": 0}, "c.s.rate"),
        ({"rate": "fast"}, "c.s.rate"),
        ({"seed": 1.5}, "c.s.seed"),
        ({"outage_every": "soon"}, "c.s.outage_every"),
        ({"outage_every": "5m"}, "c.s.outage_every"),
        ({"languages": {"de": 1}}, "c.s.languages"),
        ({"languages": {"en": 0, "fr": 0}}, "c.s.languages"),
        ({"timezone": "Mars/Olympus"}, "c.s.timezone"),
        ({"rhythm": "yes"}, "c.s.rhythm"),
        ({"reply_followups": 2}, "c.s.reply_followups"),
        ({"tick": "2h"}, "c.s.tick"),
        ({"backlog": -1}, "c.s.backlog"),
    ],
)
def test_bad_options_name_the_key(options, key):
    with pytest.raises(ConfigError) as err:
        parse_options(options, "c.s")
    assert err.value.key == key


# ---------------------------------------------------------------- connector


class FakeTime:
    """A clock that only moves when the connector sleeps."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def clock(self) -> datetime:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)
        await asyncio.sleep(0)


async def run_until(connector, sink, predicate, cursor=None):
    task = asyncio.create_task(connector.run(sink, cursor))
    try:
        await sink.wait_for(predicate)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


def connector(time: FakeTime, **kwargs) -> SimulatorConnector:
    opts = SimulatorOptions(rate=60.0, seed=9, profile=QUIET, **kwargs)
    return SimulatorConnector(opts, clock=time.clock, sleep=time.sleep)


async def test_connector_emits_the_stream_in_real_time_with_a_sequence_cursor():
    time = FakeTime(MONDAY + timedelta(hours=12))
    sink = RecordingSink()
    await run_until(connector(time), sink, lambda s: len(s.mentions) >= 30)
    ids = [m.external_id for m in sink.mentions]
    assert ids == [f"sim-9-{k}" for k in range(len(ids))]
    assert sink.cursor == str(len(ids))
    assert all(m.created_at <= time.now for m in sink.mentions)
    assert len(sink.batches) > 3  # emitted as time passes, not all at once


async def test_connector_starts_with_a_small_backlog_then_follows_the_rate():
    time = FakeTime(MONDAY + timedelta(hours=12))
    sink = RecordingSink()
    await run_until(connector(time, backlog=7), sink, lambda s: len(s.batches) >= 2)
    assert len(sink.batches[0].mentions) == 7
    assert sink.batches[0].mentions[0].created_at == MONDAY + timedelta(hours=12)
    assert len(sink.batches[1].mentions) < 7


async def test_connector_stamps_mentions_with_the_emission_time():
    time = FakeTime(MONDAY + timedelta(hours=12))
    sink = RecordingSink()
    await run_until(connector(time), sink, lambda s: len(s.mentions) >= 10)
    start = MONDAY + timedelta(hours=12)
    assert all((m.created_at - start).total_seconds() % 1.0 == 0 for m in sink.mentions)


async def test_connector_restart_from_cursor_neither_loses_nor_repeats():
    time = FakeTime(MONDAY + timedelta(hours=12))
    first, second = RecordingSink(), RecordingSink()
    await run_until(connector(time), first, lambda s: len(s.mentions) >= 20)
    await run_until(connector(time), second, lambda s: len(s.mentions) >= 20, cursor=first.cursor)
    ids = [m.external_id for m in first.mentions + second.mentions]
    assert ids == [f"sim-9-{k}" for k in range(len(ids))]
    texts = [m.text for m in take(len(ids), seed=9, rate_per_min=60.0, profile=QUIET)]
    assert [m.text for m in first.mentions + second.mentions] == texts


async def test_send_reply_is_recorded_and_gets_a_new_id():
    time = FakeTime(MONDAY)
    sim = connector(time, reply_followups=0.0)
    reply = OutboundReply(network="x", account="acme", in_reply_to="sim-9-3", text="@bob sorry!")
    sent = await sim.send_reply(reply)
    again = await sim.send_reply(reply)
    assert sim.posted == [reply, reply]
    assert sent.external_id != again.external_id and sent.created_at == MONDAY


async def test_customer_answers_a_reply_a_bit_later_when_follow_ups_are_on():
    time = FakeTime(MONDAY + timedelta(hours=12))
    sim = connector(time, reply_followups=1.0)
    sink = RecordingSink()
    task = asyncio.create_task(sim.run(sink, None))
    await sink.wait_for(lambda s: len(s.mentions) >= 3)
    customer = next(m for m in sink.mentions if m.direction is Direction.INBOUND)
    reply = OutboundReply(
        network="x",
        account="acme",
        in_reply_to=customer.external_id,
        text=f"@{customer.author_handle} sorry!",
        customer_id=customer.author_id,
    )
    sent = await sim.send_reply(reply)
    await sink.wait_for(lambda s: any(m.in_reply_to == sent.external_id for m in s.mentions))
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    answer = next(m for m in sink.mentions if m.in_reply_to == sent.external_id)
    assert answer.author_id == customer.author_id and answer.lang_hint == customer.lang_hint
    assert answer.created_at > sent.created_at
    assert answer.raw["sim"]["kind"] in ("thanks", "still")
