"""`carebox privacy export|erase|purge` and the pure retention rules behind them."""

from __future__ import annotations

import argparse
import asyncio
import json
from datetime import timedelta

import pytest

from carebox import config, privacy
from carebox.commands import privacy as command
from carebox.errors import ConfigError
from carebox.ports import InboundMention, IngestBatch
from tests.conftest import at

NOW = at("2026-11-22T12:00:00+00:00")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="carebox")
    command.register(parser.add_subparsers(dest="command", required=True))
    return parser


def _seed(url: str) -> None:
    from carebox.runtime import make_pipeline
    from carebox.store.engine import make_engine
    from carebox.store.migrate import upgrade

    async def run() -> None:
        await upgrade(url)
        engine = make_engine(url)
        pipeline, _ = make_pipeline(config.parse({"database": {"url": url}}, environ={}), engine)
        m = InboundMention(network="x", account="acme", external_id="1", author_id="carol", author_handle="carol",
                           text="my parcel never came", created_at=at("2026-01-05T10:00:00+00:00"), raw={"id": "1"})
        await pipeline.ingest([IngestBatch("x", (m,))], NOW)
        await engine.dispose()

    asyncio.run(run())


@pytest.fixture
def cli_db(tmp_path, monkeypatch):
    url = f"sqlite+aiosqlite:///{tmp_path / 'carebox.db'}"
    monkeypatch.setenv(config.ENV_DATABASE_URL, url)
    monkeypatch.delenv(config.ENV_CONFIG, raising=False)
    _seed(url)
    return tmp_path


def test_export_command_writes_the_customer_as_json(cli_db):
    out = cli_db / "export.json"
    args = _parser().parse_args(["privacy", "export", "--customer", "1", "--out", str(out)])
    assert args.func(args) == 0
    doc = json.loads(out.read_text())
    assert doc["format"] == "carebox.customer-export/1"
    assert [m["text"] for m in doc["mentions"]] == ["my parcel never came"]


def test_erase_then_purge_commands_report_what_they_touched(cli_db, capsys):
    args = _parser().parse_args(["privacy", "erase", "--customer", "1"])
    assert args.func(args) == 0
    assert json.loads(capsys.readouterr().out)["mentions"] == 1
    args = _parser().parse_args(["privacy", "purge", "--days", "30", "--raw-days", "7"])
    assert args.func(args) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["mention_days"], report["raw_days"], report["mentions"]) == (30, 7, 0)  # already erased


def test_purge_command_rejects_raw_retention_longer_than_mention_retention(cli_db):
    args = _parser().parse_args(["privacy", "purge", "--days", "7", "--raw-days", "30"])
    with pytest.raises(ConfigError) as err:
        args.func(args)
    assert err.value.key == "privacy.raw_days"


@pytest.mark.parametrize(("doc", "expected"), [
    ({}, privacy.PrivacySettings(0, 0)),
    ({"privacy": {}}, privacy.PrivacySettings(0, 0)),
    ({"privacy": {"mention_days": 365, "raw_days": 30}}, privacy.PrivacySettings(365, 30)),
    ({"privacy": {"raw_days": 30}}, privacy.PrivacySettings(0, 30)),
])
def test_privacy_settings_default_to_keeping_everything(doc, expected):
    assert privacy.parse_settings(doc) == expected


@pytest.mark.parametrize(("doc", "key"), [
    ({"privacy": []}, "privacy"),
    ({"privacy": {"mention_days": -1}}, "privacy.mention_days"),
    ({"privacy": {"mention_days": True}}, "privacy.mention_days"),
    ({"privacy": {"mention_days": "30d"}}, "privacy.mention_days"),
    ({"privacy": {"raw_days": 1.5}}, "privacy.raw_days"),
    ({"privacy": {"mention_days": 7, "raw_days": 8}}, "privacy.raw_days"),
    ({"privacy": {"retention": 7}}, "privacy.retention"),
])
def test_bad_privacy_settings_name_the_key(doc, key):
    with pytest.raises(ConfigError) as err:
        privacy.parse_settings(doc)
    assert err.value.key == key


@pytest.mark.parametrize(("mention_days", "raw_days", "mentions_before", "raw_before"), [
    (0, 0, None, None),
    (30, 0, 30, 30),  # raw payloads go with their mention at the latest
    (30, 7, 30, 7),
    (0, 7, None, 7),
])
def test_cutoffs_drop_raw_payloads_no_later_than_their_mentions(mention_days, raw_days, mentions_before, raw_before):
    cut = privacy.cutoffs(privacy.PrivacySettings(mention_days, raw_days), NOW)
    days = lambda d: None if d is None else NOW - timedelta(days=d)
    assert (cut.mentions_before, cut.raw_before) == (days(mentions_before), days(raw_before))


def test_the_privacy_section_is_accepted_by_the_config_loader():
    assert config.parse({"privacy": {"mention_days": 365}}, environ={}).raw["privacy"]["mention_days"] == 365
