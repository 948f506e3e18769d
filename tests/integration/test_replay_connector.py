"""The replay connector against a recording sink: every record once, in batches, resumable."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from carebox.errors import ConfigError
from carebox.ports import OutboundReply
from connectors.social.replay import (
    ReplayConnector,
    count_records,
    from_config,
    parse_options,
)
from connectors.social.simulator import write_jsonl
from tests.fakes.sink import RecordingSink

FIXTURE = Path(__file__).parent.parent / "fixtures" / "twcs_small.csv"
START = datetime(2026, 11, 16, 8, tzinfo=UTC)


@pytest.fixture
def jsonl(tmp_path) -> Path:
    path = tmp_path / "sim.jsonl"
    write_jsonl(path, 1234, 5, START, 30.0, "acme")
    with open(path, "ab") as out:
        out.write(b"this line is broken\n")
    return path


def ids(sink: RecordingSink) -> list[str]:
    return [m.external_id for m in sink.mentions]


async def test_jsonl_replay_emits_every_record_once_in_batches_and_returns(jsonl):
    sink = RecordingSink()
    await ReplayConnector(jsonl, batch_size=500).run(sink, None)
    assert [len(b.mentions) + len(b.rejected) for b in sink.batches] == [500, 500, 235]
    assert ids(sink) == [f"sim-5-{k}" for k in range(1234)]
    assert len(sink.rejected) == 1 and sink.rejected[0].reason.startswith("line 1235: ")
    assert [b.cursor for b in sink.batches] == ["500", "1000", "1235"]
    assert all(b.source == "replay" for b in sink.batches)


async def test_original_timestamps_are_preserved(jsonl):
    sink = RecordingSink()
    await ReplayConnector(jsonl).run(sink, None)
    times = [m.created_at for m in sink.mentions]
    assert times[0] >= START and times == sorted(times)


async def test_resume_from_cursor_emits_only_what_follows(jsonl):
    whole, tail = RecordingSink(), RecordingSink()
    await ReplayConnector(jsonl, batch_size=100).run(whole, None)
    await ReplayConnector(jsonl, batch_size=100).run(tail, "700")
    assert ids(tail) == ids(whole)[700:]
    assert tail.batches[0].cursor == "800" and tail.cursor == "1235"


async def test_resume_after_the_end_emits_nothing(jsonl):
    sink = RecordingSink()
    await ReplayConnector(jsonl).run(sink, "1235")
    assert sink.batches == []


async def test_interrupted_replay_resumed_from_last_cursor_has_no_gap_and_no_repeat(jsonl):
    class StopAfter(RecordingSink):
        async def put(self, batch):
            await super().put(batch)
            if len(self.batches) == 2:
                raise RuntimeError("killed")

    first, second = StopAfter(), RecordingSink()
    with pytest.raises(RuntimeError):
        await ReplayConnector(jsonl, batch_size=300).run(first, None)
    await ReplayConnector(jsonl, batch_size=300).run(second, first.cursor)
    assert ids(first) + ids(second) == [f"sim-5-{k}" for k in range(1234)]


async def test_progress_reports_every_record(jsonl):
    seen: list[int] = []
    await ReplayConnector(jsonl, batch_size=400).run(RecordingSink(), None, progress=seen.append)
    assert seen == [400, 400, 400, 35] and sum(seen) == count_records(jsonl)


async def test_progress_callback_can_be_given_to_the_constructor(jsonl):
    seen: list[int] = []
    await ReplayConnector(jsonl, progress=seen.append).run(RecordingSink(), "1200")
    assert seen == [35]


async def test_twcs_replay_emits_rejects_first_then_mentions_in_time_order():
    sink = RecordingSink()
    connector = ReplayConnector(FIXTURE, batch_size=5)
    assert (connector.format, connector.network) == ("twcs", "x")
    await connector.run(sink, None)
    assert len(sink.rejected) == 4 and len(sink.mentions) == 9
    assert [b.cursor for b in sink.batches] == ["5", "10", "13"]
    assert ids(sink)[:3] == ["11", "10", "12"]


async def test_twcs_replay_twice_hands_over_the_same_records():
    one, two = RecordingSink(), RecordingSink()
    await ReplayConnector(FIXTURE).run(one, None)
    await ReplayConnector(FIXTURE).run(two, None)
    assert one.mentions == two.mentions and one.rejected == two.rejected


async def test_replies_are_recorded_only():
    connector = ReplayConnector(FIXTURE)
    reply = OutboundReply(network="x", account="AcmeCare", in_reply_to="11", text="@900001 hi")
    sent = await connector.send_reply(reply)
    assert connector.posted == [reply] and sent.raw["recorded_only"] is True


def test_from_config_reads_path_format_and_batch_size():
    connector = from_config(
        "old", {"type": "replay", "account": "acme", "path": str(FIXTURE), "batch_size": 50}
    )
    assert (connector.name, connector.format, connector.batch_size, connector.account) == (
        "old",
        "twcs",
        50,
        "acme",
    )


@pytest.mark.parametrize(
    ("options", "key"),
    [
        ({}, "c.r.path"),
        ({"path": "a.csv", "format": "xml"}, "c.r.format"),
        ({"path": "a.csv", "batch_size": 0}, "c.r.batch_size"),
        ({"path": "a.csv", "batch_size": True}, "c.r.batch_size"),
    ],
)
def test_bad_replay_options_name_the_key(options, key):
    with pytest.raises(ConfigError) as err:
        parse_options(options, "c.r")
    assert err.value.key == key
