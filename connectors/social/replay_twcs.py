"""TWCS ("Customer Support on Twitter") CSV files read as mentions: brands outbound, customers inbound."""

from __future__ import annotations

import csv
import io
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import lru_cache
from typing import IO, Any

from carebox.errors import BadPayload
from carebox.ports import Direction, InboundMention, Rejected

TWCS_COLUMNS = (
    "tweet_id",
    "author_id",
    "inbound",
    "created_at",
    "text",
    "response_tweet_id",
    "in_response_to_tweet_id",
)
TWCS_TIME = "%a %b %d %H:%M:%S %z %Y"
_HANDLE = re.compile(r"@(\w+)")
_MONTHS = {
    m: i
    for i, m in enumerate(
        ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"], start=1
    )
}
_CR = "\ue000"  # a private-use character stands for a bare carriage return while csv parses
_BOOL = {"true": True, "false": False, "1": True, "0": False}
Source = str | os.PathLike[str] | IO[Any]
Record = InboundMention | Rejected


def twcs_id(value: str | None, column: str) -> str:
    """A tweet id as an integer string ("3.0" -> "3"); BadPayload when it is not one."""
    text = (value or "").strip()
    text = text.removesuffix(".0")
    if not (text.isascii() and text.isdigit() and len(text) <= 40):  # '²'.isdigit() is True; ids are 64-bit
        raise BadPayload(f"{column} is not a tweet id: {value!r}")
    return str(int(text))


def parse_twcs_time(value: str | None) -> datetime:
    """A TWCS created_at ("Tue Oct 31 22:10:47 +0000 2017") as an aware UTC datetime."""
    text = (value or "").strip()
    parts = text.split(" ")
    if len(parts) == 6 and parts[4] == "+0000" and parts[1] in _MONTHS:  # the usual case, 20x faster
        try:
            hour, minute, second = (int(x) for x in parts[3].split(":"))
            return datetime(int(parts[5]), _MONTHS[parts[1]], int(parts[2]), hour, minute, second, tzinfo=UTC)
        except ValueError:
            pass
    try:
        return datetime.strptime(text, TWCS_TIME).astimezone(UTC)
    except (ValueError, OverflowError) as err:
        raise BadPayload(f"created_at is not a TWCS date: {value!r}") from err


def parse_twcs_row(row: Mapping[str, str], brands: frozenset[str]) -> InboundMention:
    """One TWCS row as a mention: customers inbound, brands (authors of inbound=False rows) outbound."""
    if None in row or any(row.get(col) is None for col in TWCS_COLUMNS):
        raise BadPayload(f"expected the TWCS columns {', '.join(TWCS_COLUMNS)}")
    inbound = _BOOL.get(row["inbound"].strip().lower())
    if inbound is None:
        raise BadPayload(f"inbound must be True or False, got {row['inbound']!r}")
    author = row["author_id"].strip()
    if not author:
        raise BadPayload("author_id is empty")
    text = row["text"]
    parent = row["in_response_to_tweet_id"].strip()
    if inbound:
        account = brand_mentioned(text, brands) or "unknown"
    else:
        account = author
    return InboundMention(
        network="x",
        account=account,
        external_id=twcs_id(row["tweet_id"], "tweet_id"),
        author_id=author,
        author_handle=author,
        text=text,
        created_at=parse_twcs_time(row["created_at"]),
        direction=Direction.INBOUND if inbound else Direction.OUTBOUND,
        in_reply_to=twcs_id(parent, "in_response_to_tweet_id") if parent else None,
        raw={k: v for k, v in row.items() if k},
    )


@lru_cache(maxsize=8)
def _folded(brands: frozenset[str]) -> dict[str, str]:
    return {b.lower(): b for b in brands}


def brand_mentioned(text: str, brands: frozenset[str]) -> str | None:
    """The first @handle in `text` that is a known brand (case-insensitive), in the brand's own case."""
    if not brands:
        return None
    folded = _folded(brands)
    for match in _HANDLE.finditer(text):
        brand = folded.get(match.group(1).lower())
        if brand is not None:
            return brand
    return None


def _physical_lines(file: IO[str]) -> Iterator[str]:
    """Lines split on "\n" only, a bare "\r" inside a text hidden as _CR (csv would end the row there)."""
    rest = ""
    for chunk in iter(lambda: file.read(1 << 20), ""):
        parts = (rest + chunk).split("\n")
        rest = parts.pop()
        for part in parts:
            yield _hide_cr(part) + "\n"
    if rest:
        yield _hide_cr(rest)


def _hide_cr(line: str) -> str:
    line = line.removesuffix("\r")
    return line.replace("\r", _CR) if "\r" in line else line


def twcs_rows(file: IO[str]) -> Iterator[tuple[int, dict[str, str] | None, list[str]]]:
    """(line number, row or None when malformed, fields) for each data row, the index column dropped."""
    reader = csv.reader(_physical_lines(file))
    header = next(reader, None)
    if header is None:
        return
    names = [h.strip() for h in header]
    skip = 1 if names and names[0] == "" else 0
    names = names[skip:]
    line = reader.line_num + 1
    for fields in reader:
        if any(_CR in f for f in fields):
            fields = [f.replace(_CR, "\r") for f in fields]
        values = fields[skip:]
        row = dict(zip(names, values, strict=True)) if len(values) == len(names) else None
        yield line, row, fields
        line = reader.line_num + 1


@dataclass(order=True, slots=True)
class _Sorted:
    key: tuple[int, Any, int]
    record: Record = field(compare=False)


def read_twcs(file: Source) -> Iterator[Record]:
    """Every row of a TWCS CSV, in created_at order (ties by tweet_id); bad rows become Rejected first."""
    with _open_text(file) as handle:
        rows = list(twcs_rows(handle))
    brands = frozenset(
        (row.get("author_id") or "").strip()  # a damaged header may lack the column: the row is rejected below
        for _, row, _ in rows
        if row is not None and (row.get("inbound") or "").strip().lower() in ("false", "0")
    ) - {""}
    items: list[_Sorted] = []
    for line, row, fields in rows:
        try:
            if row is None:
                raise BadPayload(f"expected {len(TWCS_COLUMNS)} columns (after an optional index column)")
            mention = parse_twcs_row(row, brands)
        except BadPayload as err:
            rejected = Rejected("replay:twcs", _csv_line(fields), f"line {line}: {err.reason}")
            items.append(_Sorted((0, line, 0), rejected))
            continue
        items.append(_Sorted((1, mention.created_at, int(mention.external_id)), mention))
    items.sort()
    _inherit_accounts(items)
    return (item.record for item in items)


def _csv_line(fields: list[str]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="").writerow(fields)
    return out.getvalue()


def _inherit_accounts(items: list[_Sorted]) -> None:
    """A customer tweet naming no brand belongs to the brand account of the tweet it answers."""
    account = {i.record.external_id: i.record.account for i in items if isinstance(i.record, InboundMention)}
    for item in items:
        m = item.record
        if isinstance(m, InboundMention) and m.account == "unknown" and m.in_reply_to:
            parent = account.get(m.in_reply_to, "unknown")
            if parent != "unknown":
                item.record = replace(m, account=parent)
                account[m.external_id] = parent


class Borrowed:
    """A context manager around a file the caller owns: not closed on exit."""

    def __init__(self, file: IO[Any]) -> None:
        self.file = file

    def __enter__(self) -> IO[Any]:
        return self.file

    def __exit__(self, *exc: object) -> None:
        return None


class _Wrapped(Borrowed):
    """A text view of the caller's binary file: detached on exit so the caller's file stays open."""

    def __exit__(self, *exc: object) -> None:
        if isinstance(self.file, io.TextIOWrapper):
            self.file.detach()


def _open_text(file: Source) -> Any:
    """A text handle on `file`; bytes that are not UTF-8 become U+FFFD (one bad byte must not stop a replay)."""
    if isinstance(file, str | os.PathLike):
        return open(file, encoding="utf-8", errors="replace", newline="")
    if isinstance(file, io.TextIOBase):
        return Borrowed(file)
    return _Wrapped(io.TextIOWrapper(file, encoding="utf-8", errors="replace", newline=""))
