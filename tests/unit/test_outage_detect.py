"""`carebox detect` writes one NAB result row per data row, 1.0 where an alert opens or escalates."""

from __future__ import annotations

import argparse
import csv
import random
from datetime import datetime, timedelta
from pathlib import Path

from carebox.commands.detect import register
from carebox.outage import detect_series


def write_series(path: Path, counts: list[int]) -> list[str]:
    """A NAB-format data file of 5-minute buckets; its timestamps."""
    start = datetime(2015, 2, 26, 21, 42, 53)
    stamps = [(start + i * timedelta(minutes=5)).strftime("%Y-%m-%d %H:%M:%S") for i in range(len(counts))]
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["timestamp", "value"])
        writer.writerows(zip(stamps, counts, strict=True))
    return stamps


def run_detect(data: Path, out: Path) -> list[dict[str, str]]:
    """Parse and run `detect` as the CLI would; the rows written."""
    parser = argparse.ArgumentParser(prog="carebox")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["detect", "--nab", str(data), "--out", str(out)])
    assert args.handler(args) == 0
    with out.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_detect_scores_the_burst_row_and_keeps_one_row_per_input_row(tmp_path: Path) -> None:
    rng = random.Random(2)
    counts = [rng.randint(3, 7) for _ in range(3 * 288)] + [90, 60] + [rng.randint(3, 7) for _ in range(100)]
    stamps = write_series(tmp_path / "data.csv", counts)
    rows = run_detect(tmp_path / "data.csv", tmp_path / "out" / "results.csv")
    assert [r["timestamp"] for r in rows] == stamps
    assert list(rows[0]) == ["timestamp", "value", "anomaly_score", "label"]
    assert {r["label"] for r in rows} == {"0"}
    alerts = [i for i, r in enumerate(rows) if r["anomaly_score"] == "1.0"]
    assert alerts and alerts[0] == 3 * 288
    assert all(r["anomaly_score"] in ("0.0", "1.0") for r in rows)


def test_detect_scores_the_rows_where_an_alert_opens_or_escalates_but_not_its_resolve(tmp_path: Path) -> None:
    rng = random.Random(2)
    counts = [rng.randint(3, 7) for _ in range(3 * 288)] + [30, 90, 300, 300] + [rng.randint(3, 7) for _ in range(100)]
    stamps = write_series(tmp_path / "data.csv", counts)
    rows = run_detect(tmp_path / "data.csv", tmp_path / "results.csv")
    events = detect_series([datetime.fromisoformat(t) for t in stamps], counts, bucket_seconds=300.0)
    kinds = {i: [e.kind for e in found] for i, found in enumerate(events) if found}
    # the growth at +5 and +10 min is held (escalate_hold, 15 min); still there at +15 min, it escalates
    assert kinds[3 * 288] == ["opened"] and 3 * 288 + 1 not in kinds and kinds[3 * 288 + 3] == ["escalated"]
    assert any(found == ["resolved"] for found in kinds.values())
    assert [i for i, r in enumerate(rows) if r["anomaly_score"] == "1.0"] == [
        i for i, found in kinds.items() if "opened" in found or "escalated" in found]
