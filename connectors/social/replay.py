"""The replay connector: ingests a JSONL file of mentions or a TWCS CSV, original timestamps preserved.

Replay is finite: `run` returns when the file is done. Its cursor is the number of records
(mentions and rejects) already emitted, so a restart resumes after the last committed batch.
Idempotency across runs comes from the store's unique (network, external_id).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from carebox.errors import BadPayload, ConfigError
from carebox.ports import (
    InboundMention,
    IngestBatch,
    MentionSink,
    OutboundReply,
    Rejected,
    SentReply,
)
from connectors.social.jsonl import parse_line
from connectors.social.replay_twcs import (
    TWCS_COLUMNS,
    Borrowed,
    Record,
    Source,
    brand_mentioned,
    parse_twcs_row,
    parse_twcs_time,
    read_twcs,
    twcs_id,
    twcs_rows,
)

__all__ = [
    "TWCS_COLUMNS",
    "ReplayConnector",
    "brand_mentioned",
    "count_records",
    "detect_format",
    "from_config",
    "parse_options",
    "parse_twcs_row",
    "parse_twcs_time",
    "read_jsonl",
    "read_records",
    "read_twcs",
    "twcs_id",
]

log = logging.getLogger(__name__)

FORMATS = ("jsonl", "twcs")


# ---------------------------------------------------------------- JSONL


def _open_binary(file: Source) -> Any:
    if isinstance(file, str | os.PathLike):
        return open(file, "rb")
    return Borrowed(file)


def read_jsonl(file: Source, *, network: str | None = None, account: str | None = None) -> Iterator[Record]:
    """Every non-blank line of a JSONL file of mentions, in file order; bad lines become Rejected."""
    with _open_binary(file) as handle:
        for number, line in enumerate(handle, start=1):
            if isinstance(line, str):
                line = line.encode()
            if not line.strip():
                continue
            try:
                yield parse_line(line, network=network, account=account)
            except BadPayload as err:
                text = line.decode("utf-8", "replace").rstrip("\r\n")
                yield Rejected("replay:jsonl", text, f"line {number}: {err.reason}")


def detect_format(path: str | os.PathLike[str]) -> str:
    """ "jsonl" or "twcs", from the file name, else from the first non-blank character."""
    suffix = Path(path).suffix.lower()
    if suffix in (".jsonl", ".ndjson", ".json"):
        return "jsonl"
    if suffix == ".csv":
        return "twcs"
    with open(path, "rb") as handle:
        head = handle.read(4096).lstrip()
    if head.startswith(b"{"):
        return "jsonl"
    if b"tweet_id" in head.split(b"\n", 1)[0]:
        return "twcs"
    raise ConfigError("replay.format", '"jsonl" or "twcs" (the file does not tell; pass --format)', str(path))


def read_records(
    path: Source, fmt: str, *, network: str | None = None, account: str | None = None
) -> Iterator[Record]:
    """The records of a replay file in emission order."""
    if fmt == "twcs":
        return read_twcs(path)
    if fmt == "jsonl":
        return read_jsonl(path, network=network, account=account)
    raise ConfigError("replay.format", '"jsonl" or "twcs"')


def count_records(path: str | os.PathLike[str], fmt: str | None = None) -> int:
    """How many records a replay of `path` emits (for a progress bar's total)."""
    fmt = fmt or detect_format(path)
    if fmt == "jsonl":
        with open(path, "rb") as handle:
            return sum(1 for line in handle if line.strip())
    with open(path, encoding="utf-8", errors="replace", newline="") as handle:
        return sum(1 for _ in twcs_rows(handle))


# ---------------------------------------------------------------- connector


def parse_cursor(cursor: str | None) -> int:
    """The number of records a replay cursor says were already emitted."""
    if not cursor:
        return 0
    try:
        return max(0, int(cursor))
    except ValueError:
        log.warning("replay cursor %r is not a record count; starting from the beginning", cursor)
        return 0


class ReplayConnector:
    """Emits a file's records in batches with their original timestamps, then returns."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        fmt: str | None = None,
        name: str = "replay",
        network: str | None = None,
        account: str | None = None,
        batch_size: int = 500,
        progress: Callable[[int], None] | None = None,
    ) -> None:
        if batch_size < 1:
            raise ConfigError(f"connectors.{name}.batch_size", "a positive integer")
        self.path = path
        self.format = fmt or detect_format(path)
        if self.format not in FORMATS:
            raise ConfigError(f"connectors.{name}.format", '"jsonl" or "twcs"')
        self.name = name
        self.network = network or "x"
        self.account = account or "unknown"
        self.batch_size = batch_size
        self.progress = progress
        self.posted: list[OutboundReply] = []
        self._sent = 0

    async def run(
        self, sink: MentionSink, cursor: str | None, progress: Callable[[int], None] | None = None
    ) -> None:
        """Emit every record after `cursor` in batches; `progress` is called with each batch's size."""
        progress = progress or self.progress
        done = parse_cursor(cursor)
        records = read_records(self.path, self.format, network=self.network, account=self.account)
        log.info("replay %s: %s file %s from record %d", self.name, self.format, self.path, done)
        for index, batch in _batches(records, self.batch_size, skip=done):
            mentions = tuple(r for r in batch if isinstance(r, InboundMention))
            rejected = tuple(r for r in batch if isinstance(r, Rejected))
            await sink.put(
                IngestBatch(source=self.name, mentions=mentions, rejected=rejected, cursor=str(index))
            )
            if progress is not None:
                progress(len(batch))
        log.info("replay %s: done", self.name)

    async def send_reply(self, reply: OutboundReply) -> SentReply:
        """A replayed network cannot be answered: the reply is recorded only, as the simulator does."""
        self._sent += 1
        self.posted.append(reply)
        return SentReply(
            external_id=f"{self.name}-reply-{self._sent}",
            created_at=datetime.now(UTC),
            raw={"text": reply.text, "recorded_only": True},
        )


def _batches(records: Iterable[Record], size: int, *, skip: int) -> Iterator[tuple[int, list[Record]]]:
    """(records emitted after this batch, batch) for the records after the first `skip`."""
    batch: list[Record] = []
    index = 0
    for record in records:
        index += 1
        if index <= skip:
            continue
        batch.append(record)
        if len(batch) >= size:
            yield index, batch
            batch = []
    if batch:
        yield index, batch


def parse_options(options: Mapping[str, Any], key: str) -> dict[str, Any]:
    """The keyword arguments of ReplayConnector from a `[[connectors]]` table; ConfigError when bad."""
    path = options.get("path")
    if not isinstance(path, str) or not path.strip():
        raise ConfigError(f"{key}.path", "the path of a .jsonl or TWCS .csv file")
    fmt = options.get("format", "auto")
    if fmt not in ("auto", *FORMATS):
        raise ConfigError(f"{key}.format", '"auto", "jsonl" or "twcs"')
    size = options.get("batch_size", 500)
    if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= 100_000:
        raise ConfigError(f"{key}.batch_size", "an integer from 1 to 100000")
    network = options.get("network")
    if network is not None and (not isinstance(network, str) or not network.strip()):
        raise ConfigError(f"{key}.network", "a non-empty string")
    return {
        "path": path,
        "fmt": None if fmt == "auto" else fmt,
        "batch_size": size,
        "network": network,
        "account": options.get("account") or None,
    }


def from_config(name: str, options: Mapping[str, Any], **_: Any) -> ReplayConnector:
    """A ReplayConnector for one `[[connectors]]` entry of type "replay"."""
    kwargs = parse_options(options, f"connectors.{name}")
    return ReplayConnector(kwargs.pop("path"), name=name, **kwargs)
