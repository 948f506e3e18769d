"""Replay a TWCS sample through the pipeline into a temporary store and print the per-account report.

    python -m benchmarks.twcs --data ../shared/data/twcs/twcs_head5000.csv [--format text|json] [--batch 500]

Conversations are reply chains (quiet gap 0, as `carebox replay --format twcs` does); the report is computed
"as of" the last tweet of the file, so that nothing is counted as overdue because the sample is old.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from carebox import config, reports, reports_config
from carebox.ports import InboundMention, IngestBatch
from carebox.reports_charts import text_table
from carebox.runtime import make_pipeline
from carebox.store import reporting
from carebox.store.engine import make_engine
from carebox.store.migrate import upgrade
from connectors.social.replay import read_records


async def run(data: str, batch: int, fmt: str) -> None:
    """Replay `data`, then print the report and the timings."""
    tmp = Path(tempfile.mkdtemp())
    url = f"sqlite+aiosqlite:///{tmp / 'twcs.db'}"
    settings = config.parse({"carebox": {"data_dir": str(tmp)}, "database": {"url": url}}, environ={})
    settings = replace(settings, pipeline=replace(settings.pipeline, quiet_gap_s=0.0))
    await upgrade(url)
    engine = make_engine(url)
    try:
        pipeline, _ = make_pipeline(settings, engine)
        records = list(read_records(data, "twcs"))
        mentions = [r for r in records if isinstance(r, InboundMention)]
        last = max(m.created_at for m in mentions)
        t = time.perf_counter()
        for i in range(0, len(mentions), batch):
            await pipeline.ingest([IngestBatch("replay:twcs", tuple(mentions[i:i + batch]))], last)
        replay_s = time.perf_counter() - t
        rs = reports_config.parse_settings(settings.raw, settings.sla)
        t = time.perf_counter()
        report = await reporting.build_report(engine, reporting.make_scope(rs, last), rs)
        report_s = time.perf_counter() - t
    finally:
        await engine.dispose()
    if fmt == "json":
        print(json.dumps(reports.to_json(report)["by_account"], indent=2, default=str))
    else:
        print(text_table(report.by_account, report.totals))
    t = report.totals
    print(f"\nnext responses: {t.nrt_wall.count}, wall p50 {t.nrt_wall.p50 or 0:.0f}s p90 {t.nrt_wall.p90 or 0:.0f}s, "
          f"business p50 {t.nrt_business.p50 or 0:.0f}s p90 {t.nrt_business.p90 or 0:.0f}s")
    print(f"\n{len(records)} records ({len(records) - len(mentions)} rejected), {report.totals.conversations} conversations, "
          f"{len(report.by_account)} accounts; replay {replay_s:.1f}s, report {report_s:.2f}s; "
          f"report as of {last.isoformat()} ({report.timezone} service hours)")


def main() -> None:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True, help="a TWCS CSV file")
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--format", choices=("text", "json"), default="text")
    args = parser.parse_args()
    asyncio.run(run(args.data, args.batch, args.format))


if __name__ == "__main__":
    main()
