"""`carebox detect`: run the production outage detector over a NAB-format count series."""

from __future__ import annotations

import argparse
import csv
import logging
from datetime import datetime
from pathlib import Path

from carebox.outage import DetectorSettings, detect_series

log = logging.getLogger(__name__)

NAB_BUCKET_SECONDS = 300.0
# The buckets where the detector alerts ops (issue 5): an episode opens, or an open episode escalates (PagerDuty
# triggers on both). A resolve is not an alert.
ALERT_KINDS = frozenset({"opened", "escalated"})


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the `detect` command."""
    parser = subparsers.add_parser(
        "detect",
        help="run the outage detector over a NAB-format series",
        description="Run the outage detector, with its default configuration, over a NAB-format series "
                    "(timestamp,value in 5-minute buckets, values taken as one cluster's complaint counts) "
                    "and write timestamp,value,anomaly_score,label: 1.0 where an alert opens or escalates, else 0.0.",
    )
    parser.add_argument("--nab", required=True, type=Path, metavar="DATA.csv", help="NAB data file")
    parser.add_argument("--out", required=True, type=Path, metavar="RESULTS.csv", help="results file to write")
    parser.set_defaults(func=run, handler=run)


def run(args: argparse.Namespace) -> int:
    """Handler of `carebox detect`."""
    rows = detect_nab_file(args.nab, args.out)
    log.info("detect: %d rows from %s written to %s", rows, args.nab, args.out)
    return 0


def read_nab(path: Path) -> tuple[list[str], list[datetime], list[float]]:
    """The raw timestamps, parsed instants and values of a NAB data file."""
    raw: list[str] = []
    values: list[float] = []
    with path.open(newline="") as handle:
        for row in csv.DictReader(handle):
            raw.append(row["timestamp"])
            values.append(float(row["value"]))
    return raw, [datetime.fromisoformat(t) for t in raw], values


def nab_scores(instants: list[datetime], values: list[float], settings: DetectorSettings | None = None) -> list[float]:
    """1.0 on every row where the detector opens or escalates an episode, 0.0 elsewhere."""
    decided = detect_series(instants, values, bucket_seconds=NAB_BUCKET_SECONDS, settings=settings)
    return [1.0 if any(e.kind in ALERT_KINDS for e in events) else 0.0 for events in decided]


def detect_nab_file(data: Path, out: Path, settings: DetectorSettings | None = None) -> int:
    """Write the NAB results file for one data file; the number of rows."""
    raw, instants, values = read_nab(data)
    scores = nab_scores(instants, values, settings)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["timestamp", "value", "anomaly_score", "label"])
        for stamp, value, score in zip(raw, values, scores, strict=True):
            writer.writerow([stamp, f"{value:g}", f"{score:.1f}", 0])
    return len(raw)
