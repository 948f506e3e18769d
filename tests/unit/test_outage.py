"""Rules of the streaming outage detector, on synthetic complaint series."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta

import pytest

from carebox.errors import ConfigError
from carebox.outage import (
    Detector,
    DetectorSettings,
    EpisodeEvent,
    detect_series,
    parse_settings,
)
from carebox.outage_baseline import SeasonalBaseline, poisson_surprise
from carebox.outage_series import Series

T0 = datetime(2026, 3, 2, 0, 0, tzinfo=UTC)  # a Monday
MINUTE = timedelta(minutes=1)


def poisson(rng: random.Random, lam: float) -> int:
    """A Poisson draw (Knuth), enough for the small rates of these tests."""
    limit, k, p = pow(2.718281828459045, -lam), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


class Feed:
    """Drives a detector minute by minute with distinct authors, recording events by minute."""

    def __init__(self, detector: Detector | None = None, account: str = "telco") -> None:
        self.detector = detector or Detector()
        self.account = account
        self.minute = 0
        self.author = 0
        self.events: list[tuple[int, EpisodeEvent]] = []

    def complaints(self, key: str | None, n: int, **extra: object) -> None:
        """n complaints from n new authors in the current minute."""
        for _ in range(n):
            self.author += 1
            self.detector.observe(account=self.account, cluster_key=key, author=f"u{self.author}",
                                  text=f"down again #{self.author}", at=T0 + self.minute * MINUTE + 5 * self.author % 50 * timedelta(seconds=1),
                                  category=str(extra.get("category", "complaint")),
                                  is_repost=bool(extra.get("is_repost", False)))

    def close_minute(self) -> list[EpisodeEvent]:
        """Tick at the end of the current minute and move on."""
        self.minute += 1
        new = self.detector.tick(T0 + self.minute * MINUTE)
        self.events.extend((self.minute - 1, e) for e in new)
        return new

    def run(self, minutes: int, rates: dict[str | None, float], rng: random.Random) -> None:
        """Poisson complaints per key at the given rates per minute."""
        for _ in range(minutes):
            for key, rate in rates.items():
                self.complaints(key, poisson(rng, rate))
            self.close_minute()

    def kinds(self, since: int = 0, key: object = "any") -> list[str]:
        """Event kinds from minute `since`, for one key or all."""
        return [e.kind for m, e in self.events if m >= since and (key == "any" or e.key == key)]


@pytest.fixture(scope="module")
def calm_two_days() -> Feed:
    """Two days of calm traffic on two clusters; shared, copied through snapshots."""
    feed = Feed()
    feed.run(2 * 1440, {"4G": 0.005, "fibre": 0.5, "tv": 5.0}, random.Random(7))
    return feed


def fork(feed: Feed, settings: DetectorSettings | None = None) -> Feed:
    """An independent copy of a feed's detector at the same minute (with other settings if given)."""
    copy = Feed(Detector(settings or feed.detector.settings))
    copy.detector.restore(json.loads(json.dumps(feed.detector.snapshot())))
    copy.minute, copy.author = feed.minute, feed.author
    return copy


def test_steady_poisson_noise_opens_no_episode(calm_two_days: Feed) -> None:
    assert calm_two_days.kinds(since=60) == []


def test_rise_from_zero_to_four_complaints_in_three_minutes_opens_an_episode(calm_two_days: Feed) -> None:
    feed = fork(calm_two_days)
    start = feed.minute
    for n in (1, 2, 1):
        feed.complaints("4G", n)
        feed.close_minute()
    opened = [(m, e) for m, e in feed.events if e.kind == "opened" and e.key == "4G"]
    assert opened and opened[0][0] <= start + 2
    assert opened[0][1].account == "telco" and opened[0][1].count >= 4


def test_three_complaints_in_a_quiet_cluster_are_not_enough(calm_two_days: Feed) -> None:
    feed = fork(calm_two_days)
    for n in (1, 1, 1):
        feed.complaints("4G", n)
        feed.close_minute()
    assert feed.kinds(key="4G") == []


def test_burst_after_quiet_opens_within_three_minutes_and_escalates_when_it_grows(calm_two_days: Feed) -> None:
    feed = fork(calm_two_days)
    start = feed.minute
    rng = random.Random(3)
    feed.run(5, {"fibre": 4.0}, rng)
    feed.run(20, {"fibre": 40.0}, rng)
    fibre = [(m, e) for m, e in feed.events if e.key == "fibre"]
    assert fibre[0][1].kind == "opened" and fibre[0][0] <= start + 3
    escalated = [m for m, e in fibre if e.kind == "escalated"]
    assert escalated and escalated[0] - fibre[0][0] >= 15  # not before escalate_hold after the opening alert
    assert fibre[-1][1].severity == "critical"


def test_growth_within_the_escalation_hold_is_paged_once_when_the_hold_ends(calm_two_days: Feed) -> None:
    feed = fork(calm_two_days)
    rng = random.Random(3)
    feed.run(5, {"fibre": 4.0}, rng)
    feed.run(5, {"fibre": 40.0}, rng)
    feed.run(30, {"fibre": 0.5}, rng)
    fibre = [(m, e) for m, e in feed.events if e.key == "fibre" and e.kind != "resolved"]
    assert [e.kind for _, e in fibre] == ["opened", "escalated"]
    assert fibre[1][0] - fibre[0][0] == 15 and fibre[1][1].severity == "critical"


def test_episode_resolves_after_the_calm_period_and_not_before(calm_two_days: Feed) -> None:
    feed = fork(calm_two_days)
    rng = random.Random(4)
    feed.run(5, {"fibre": 10.0}, rng)
    last_burst = feed.minute
    feed.run(180, {"fibre": 0.5, "4G": 0.005}, rng)
    resolved = [(m, e) for m, e in feed.events if e.kind == "resolved" and e.key == "fibre"]
    assert len(resolved) == 1
    settings = feed.detector.settings
    longest = (max(settings.windows) + settings.plateau_window + settings.calm) / 60  # the burst leaves every window
    assert last_burst + settings.calm / 60 - 1 <= resolved[0][0] <= last_burst + longest


def test_sustained_plateau_below_the_spike_ratio_opens_on_the_plateau_window(calm_two_days: Feed) -> None:
    feed = fork(calm_two_days)
    for _ in range(60):
        feed.complaints("tv", 8 + feed.minute % 2)  # 1.7x the usual 5 a minute, without the noise of a spike
        feed.close_minute()
    opened = [e for _, e in feed.events if e.kind == "opened" and e.key == "tv"]
    assert opened and opened[0].window == feed.detector.settings.plateau_window


def test_one_author_repeating_a_complaint_counts_once(calm_two_days: Feed) -> None:
    feed = fork(calm_two_days)
    for _ in range(3):
        for i in range(5):
            feed.detector.observe(account="telco", cluster_key="4G", author="angry", text=f"still down {i}",
                                  at=T0 + feed.minute * MINUTE, category="outage")
        feed.close_minute()
    assert feed.kinds(key="4G") == []


def test_identical_texts_from_many_authors_count_once(calm_two_days: Feed) -> None:
    feed = fork(calm_two_days)
    for i in range(8):
        feed.detector.observe(account="telco", cluster_key="4G", author=f"bot{i}", text="4G  DOWN in Lyon",
                              at=T0 + feed.minute * MINUTE, category="outage")
    feed.close_minute()
    assert feed.kinds(key="4G") == []


@pytest.mark.parametrize(("category", "is_repost"), [("complaint", True), ("question", False), ("praise", False)])
def test_reposts_and_other_categories_are_not_counted(calm_two_days: Feed, category: str, is_repost: bool) -> None:
    feed = fork(calm_two_days)
    for _ in range(3):
        feed.complaints("4G", 5, category=category, is_repost=is_repost)
        feed.close_minute()
    assert feed.kinds() == []


def test_clusters_rising_together_corroborate_each_other(calm_two_days: Feed) -> None:
    lone, pair = fork(calm_two_days), fork(calm_two_days)
    for _ in range(2):
        lone.complaints("4G", 1 + lone.minute % 2)
        pair.complaints("4G", 1 + pair.minute % 2)
        pair.complaints("fibre", 4)
        lone.close_minute()
        pair.close_minute()
    assert lone.kinds(key="4G") == []
    opened = [e for _, e in pair.events if e.kind == "opened" and e.key == "4G"]
    assert opened and "corroborated by fibre" in opened[0].reason


def test_repeated_outages_of_the_same_size_each_open_an_episode_within_three_minutes(calm_two_days: Feed) -> None:
    feed = fork(calm_two_days)
    rng = random.Random(5)
    starts = []
    for _ in range(4):
        starts.append(feed.minute)
        feed.run(20, {"tv": 25.0}, rng)  # 5x the usual 5 a minute
        feed.run(240, {"tv": 5.0}, rng)  # calm long enough to resolve
    opened = [m for m, e in feed.events if e.kind == "opened" and e.key == "tv"]
    assert len(opened) == len(starts)
    assert all(start <= m <= start + 2 for start, m in zip(starts, opened, strict=True))


def test_burst_in_the_minute_still_open_alerts_at_the_tick_before_that_minute_closes(calm_two_days: Feed) -> None:
    feed = fork(calm_two_days, DetectorSettings(rate_budget=1e-300))  # the rate signal (it decides sooner) kept out
    minute = T0 + feed.minute * MINUTE
    for i in range(30):  # fibre usually gets 0.5 a minute
        feed.detector.observe(account="telco", cluster_key="fibre", author=f"early{i}", text=f"no internet {i}",
                              at=minute + timedelta(seconds=i), category="outage")
    early = feed.detector.tick(minute + timedelta(seconds=30))
    assert [(e.kind, e.key, e.at) for e in early if e.key == "fibre"] == [("opened", "fibre", minute + timedelta(seconds=30))]
    assert "in the last 0.5 min" in early[0].reason
    assert [e.kind for e in feed.detector.tick(minute + MINUTE) if e.key == "fibre"] == []


def test_ticks_inside_a_minute_change_nothing_while_traffic_is_calm(calm_two_days: Feed) -> None:
    plain, peeking = fork(calm_two_days), fork(calm_two_days)
    for feed in (plain, peeking):
        rng = random.Random(13)
        for _ in range(90):
            for key, rate in {"4G": 0.005, "fibre": 0.5, "tv": 5.0}.items():
                feed.complaints(key, poisson(rng, rate))
            if feed is peeking:
                assert feed.detector.tick(T0 + feed.minute * MINUTE + timedelta(seconds=30)) == []
            feed.close_minute()
    assert plain.events == peeking.events == []
    assert json.dumps(plain.detector.snapshot(), sort_keys=True) == json.dumps(
        peeking.detector.snapshot(), sort_keys=True)


def test_hourly_baseline_is_interpolated_between_the_middles_of_the_hours() -> None:
    baseline = SeasonalBaseline(history_days=28, min_days=1)
    day = T0.timestamp()
    for minute in range(1440):  # one past day: 1 a bucket from 08:00, 3 a bucket from 09:00
        baseline.add(day + 60 * minute, 1.0 if minute < 9 * 60 else 3.0 if minute < 10 * 60 else 0.0)
    tomorrow = day + 86400
    expected = {h: baseline.expected(tomorrow + h * 3600) for h in (8.5, 8.75, 9.0, 9.5, 9.75)}
    assert expected == pytest.approx({8.5: 1.0, 8.75: 1.5, 9.0: 2.0, 9.5: 3.0, 9.75: 2.25})
    assert baseline.expected(day + 9 * 3600) is None  # nothing from the day itself


def test_appending_future_data_never_changes_past_decisions() -> None:
    rng = random.Random(11)
    counts = [poisson(rng, 3.0) for _ in range(3000)] + [30] * 5 + [poisson(rng, 3.0) for _ in range(200)]
    stamps = [T0 + i * MINUTE for i in range(len(counts))]
    full = detect_series(stamps, counts, bucket_seconds=60)
    cut = 3002
    prefix = detect_series(stamps[:cut], counts[:cut], bucket_seconds=60)
    assert prefix == full[:cut]
    assert any(e.kind == "opened" for events in full[3000:3005] for e in events)


def test_snapshot_restore_round_trip_continues_identically(calm_two_days: Feed) -> None:
    original = fork(calm_two_days)
    restored = fork(original)
    for feed in (original, restored):
        feed.run(30, {"fibre": 6.0, "4G": 0.005}, random.Random(9))
    assert original.events == restored.events
    assert original.events
    assert json.dumps(original.detector.snapshot(), sort_keys=True) == json.dumps(
        restored.detector.snapshot(), sort_keys=True)


def test_late_mention_counts_in_the_next_open_bucket() -> None:
    detector = Detector()
    detector.tick(T0 + 10 * MINUTE)
    detector.observe(account="a", cluster_key=None, author="x", text="down", at=T0, category="outage")
    detector.tick(T0 + 11 * MINUTE)
    assert detector.snapshot()["series"][0][2]["counts"][-1] == 1


def test_parse_settings_of_empty_table_gives_defaults() -> None:
    assert parse_settings({}) == DetectorSettings()


def test_parse_settings_reads_durations_and_numbers() -> None:
    settings = parse_settings({"windows": ["5m", "1m"], "calm": "1h", "threshold": 8, "min_count": 4})
    assert (settings.windows, settings.calm, settings.threshold, settings.min_count) == ((60.0, 300.0), 3600.0, 8.0, 4)


@pytest.mark.parametrize(
    ("table", "key"),
    [
        ({"calm": "soon"}, "outage.calm"),
        ({"windows": []}, "outage.windows"),
        ({"threshold": -1}, "outage.threshold"),
        ({"min_count": 0}, "outage.min_count"),
        ({"min_count": True}, "outage.min_count"),
        ({"sensitivity": 3}, "outage.sensitivity"),
        ({"history_days": 2, "min_history_days": 3}, "outage.min_history_days"),
        ({"episode_peak_share": 1.5}, "outage.episode_peak_share"),
        ({"episode_peak_share": True}, "outage.episode_peak_share"),
    ],
)
def test_parse_settings_names_the_bad_key(table: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_settings(table)
    assert caught.value.key == key


@pytest.mark.parametrize(
    ("observed", "expected", "surprise"),
    [(0, 1.0, 0.0), (1, 2.0, 0.0), (4, 0.06, 6.288), (10, 1.0, 6.953), (100, 50.0, 9.495)],
)
def test_poisson_surprise_is_minus_log10_of_the_upper_tail(observed: int, expected: float, surprise: float) -> None:
    assert poisson_surprise(observed, expected) == pytest.approx(surprise, abs=1e-3)


def test_config_fragment_documents_every_default() -> None:
    import tomllib
    from dataclasses import fields
    from pathlib import Path

    fragment = Path(__file__).parents[2] / "docs" / "config-fragments" / "outage.toml"
    table = tomllib.loads(fragment.read_text())["outage"]
    assert parse_settings(table) == DetectorSettings()
    assert set(table) == {f.name for f in fields(DetectorSettings)}


def test_a_bucket_counts_at_most_min_ratio_times_its_expected_count_in_the_plateau_window() -> None:
    settings = DetectorSettings()
    state = Series(settings).dump() | {"counts": [1] * 59 + [50], "expects": [1.0] * 60}
    series = Series(settings)
    series.load(state)
    sums = series.window_sums()
    assert sums[60] == (59 + settings.min_ratio * 1.0, 60.0)  # the spike counts as a bucket at the spike ratio
    assert sums[1] == (50, 1.0) and sums[15] == (64, 15.0)  # the spike windows see it whole


def test_a_window_ending_in_the_open_minute_reads_in_tenths_of_a_minute() -> None:
    from carebox.outage_series import minutes

    assert (minutes(101.0784), minutes(300), minutes(3600)) == ("1.7 min", "5 min", "60 min")
