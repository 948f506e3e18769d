"""The replay readers over damaged files: every non-blank JSONL line comes out as exactly one mention or one
rejected record (nothing lost, nothing invented), and a damaged TWCS file yields records, never an exception."""

from __future__ import annotations

import io
import json
import random
from datetime import UTC, datetime
from pathlib import Path

from hypothesis import example, given
from hypothesis import strategies as st

from carebox.ports import InboundMention, Rejected
from connectors.social.jsonl import dumps
from connectors.social.replay import read_jsonl, read_twcs
from tests.fuzz.strategies import FUZZ, NASTY_VALUES, bend, many

TWCS = (Path(__file__).parent.parent / "fixtures" / "twcs_small.csv").read_bytes()
GOOD = dumps(InboundMention(network="x", account="acme", external_id="1", author_id="u1", author_handle="ann",
                            text="my fibre is down", created_at=datetime(2026, 11, 22, 9, 0, tzinfo=UTC), raw={"id": 1}))
NOISE = (b"\x00", b"\r", b"\xff\xfe", b'"', b",", b"{", b"}", b"\\", "é".encode(), b"\xe2\x80", b"\r\n", b"\n\n")


def damage(rng: random.Random, data: bytes) -> bytes:
    """Bytes dropped, inserted, duplicated or cut at random places."""
    out = bytearray(data)
    for _ in range(rng.randrange(6)):
        at = rng.randrange(len(out) + 1)
        kind = rng.randrange(5)
        if kind == 0 and out:
            del out[at: at + rng.randrange(1, 20)]
        elif kind == 1:
            out[at:at] = rng.choice(NOISE)
        elif kind == 2:
            out[at:at] = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 8)))
        elif kind == 3:
            out = out[:at]
        else:
            line = bytes(out[at: at + rng.randrange(1, 200)])
            out[at:at] = line
    return bytes(out)


def jsonl_file(seed: int) -> bytes:
    """A JSONL file of good, bent and damaged lines."""
    rng = random.Random(seed)
    lines = []
    for _ in range(rng.randrange(1, 12)):
        kind = rng.randrange(4)
        if kind == 0:
            lines.append(GOOD)
        elif kind == 1:
            lines.append(_json(bend(rng, json.loads(GOOD))))
        else:
            lines.append(damage(rng, GOOD))
    return b"\n".join(line.replace(b"\n", b" ") for line in lines) + rng.choice((b"", b"\n", b"\r\n"))


def _json(value: object) -> bytes:
    return json.dumps(value, default=str).encode()


def _nonblank_lines(data: bytes) -> int:
    return sum(1 for line in io.BytesIO(data) if line.strip())


@FUZZ
@given(many(st.integers(0, 2**64)), many(st.binary(max_size=400)))
@example([0], [GOOD.replace(b"2026-11-22T09:00:00Z", b"0001-01-01T00:00:00+14:00")])
def test_jsonl_reader_turns_every_line_into_one_record(seeds, noise):
    for data in [*(jsonl_file(s) for s in seeds), *noise]:
        records = list(read_jsonl(io.BytesIO(data)))
        assert all(isinstance(r, InboundMention | Rejected) for r in records)
        assert len(records) == _nonblank_lines(data)


@FUZZ
@given(many(st.integers(0, 2**64)))
def test_jsonl_reader_keeps_good_lines_among_damaged_ones(seeds):
    for seed in seeds:
        rng = random.Random(seed)
        good = [GOOD.replace(b'"external_id":"1"', f'"external_id":"{i}"'.encode()) for i in range(rng.randrange(1, 6))]
        bad = [b"#" + damage(rng, GOOD).replace(b"\n", b"").replace(b"\r", b"") for _ in range(rng.randrange(6))]
        lines = good + bad
        rng.shuffle(lines)
        records = list(read_jsonl(io.BytesIO(b"\n".join(lines))))
        assert sorted(r.external_id for r in records if isinstance(r, InboundMention)) == sorted(map(str, range(len(good))))
        assert sum(isinstance(r, Rejected) for r in records) == len(bad)


@FUZZ
@given(many(st.integers(0, 2**64)), many(st.binary(max_size=400)))
@example([0], [TWCS.replace(b",11,900001,", ",\u00b2,900001,".encode())])
def test_twcs_reader_yields_records_from_any_damaged_file(seeds, noise):
    for data in [*(damage(random.Random(s), TWCS) for s in seeds), *noise]:
        records = list(read_twcs(io.BytesIO(data)))
        assert all(isinstance(r, InboundMention | Rejected) for r in records)


@FUZZ
@given(many(st.integers(0, 2**64)))
def test_twcs_reader_rejects_damaged_rows_and_keeps_the_others(seeds):
    for seed in seeds:
        rng = random.Random(seed)
        rows = TWCS.splitlines(keepends=True)
        header, body = rows[0], rows[1:]
        hit = rng.randrange(len(body))
        body[hit] = b",".join(body[hit].split(b",")[: rng.randrange(1, 4)]) + b"\n"  # too few columns
        records = list(read_twcs(io.BytesIO(header + b"".join(body))))
        # the fixture holds 9 good rows and 4 bad ones; cutting one row's columns rejects it (and at worst
        # breaks the quoted multi-line row it belongs to), never more
        assert sum(isinstance(r, Rejected) for r in records) >= 4
        assert sum(isinstance(r, InboundMention) for r in records) >= 9 - 2
        assert len(records) <= 13 + 2


def test_the_nasty_values_include_the_dates_that_broke_parsers():
    assert "0001-01-01T00:00:00+14:00" in NASTY_VALUES and "\u00b2" in NASTY_VALUES
