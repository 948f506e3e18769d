"""The level-shift signal of the outage detector (carebox/outage_shift.py) and the plateau window's blindness rule."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta

import pytest

from carebox.outage import DetectorSettings, detect_series, parse_settings
from carebox.outage_baseline import SeasonalBaseline, normal_surprise
from carebox.outage_series import Series
from carebox.outage_shift import MIN_SAMPLE_DAYS, LevelShift

T0 = datetime(2026, 3, 2, tzinfo=UTC)  # a Monday
BUCKETS_PER_DAY = 288  # 5-minute buckets, as NAB


def noisy_level_series(seed: int, days: int = 30, rise_day: int | None = None, factor: float = 1.9,
                       noise: float = 0.18) -> tuple[list[datetime], list[int]]:
    """5-minute counts around 20 with a daily rhythm, a level that changes by exp(N(0, noise)) every 3 hours, and
    from noon of `rise_day` on a lasting rise by `factor` (below the spike windows' ratio of 2)."""
    rng = random.Random(seed)
    counts, level = [], 1.0
    for i in range(days * BUCKETS_PER_DAY):
        if i % 36 == 0:
            level = math.exp(rng.gauss(0.0, noise))
        hour = (i % BUCKETS_PER_DAY) / 12
        rate = 20 * (1 + 0.5 * math.sin(2 * math.pi * (hour - 9) / 24)) * level
        if rise_day is not None and i >= rise_day * BUCKETS_PER_DAY + BUCKETS_PER_DAY // 2:
            rate *= factor
        counts.append(max(0, round(rng.gauss(rate, math.sqrt(rate)))))
    return [T0 + timedelta(minutes=5 * i) for i in range(len(counts))], counts


def alerts(timestamps: list[datetime], counts: list[int]) -> list[tuple[int, float]]:
    """(row, window in hours) of every opened or escalated event after the first week."""
    return [(i, e.window / 3600) for i, events in enumerate(detect_series(timestamps, counts)) for e in events
            if e.kind != "resolved" and i >= 7 * BUCKETS_PER_DAY]


def test_a_lasting_rise_on_a_noisy_level_opens_one_episode_through_the_shift_window() -> None:
    timestamps, counts = noisy_level_series(3, rise_day=27)
    rise = 27 * BUCKETS_PER_DAY + BUCKETS_PER_DAY // 2
    opened = alerts(timestamps, counts)
    assert [w for _, w in opened] == [6.0]
    assert rise < opened[0][0] <= rise + 6 * 12  # within the 6 hours of the shift window


def test_the_same_noisy_level_without_a_rise_never_opens_on_the_shift_window() -> None:
    timestamps, counts = noisy_level_series(3)
    assert [w for _, w in alerts(timestamps, counts) if w >= 6.0] == []


def test_where_the_plateau_window_sees_the_rise_the_shift_window_stays_silent() -> None:
    timestamps, counts = noisy_level_series(3, rise_day=27, noise=0.0)  # counting noise only
    opened = alerts(timestamps, counts)
    assert opened and opened[0][0] > 27 * BUCKETS_PER_DAY  # the count windows see the rise...
    assert 6.0 not in {w for _, w in opened}  # ...and the shift window leaves it to them


def test_the_plateau_window_is_blind_where_the_hourly_level_varies_more_than_its_ratio_allows() -> None:
    settings = DetectorSettings(bucket=300.0)
    series = Series(settings)
    n = round(settings.plateau_window / settings.bucket)
    hour = {n: (0.0, 240.0)}  # the plateau window's sums: 240 complaints expected
    assert not series.plateau_blind(hour)
    # relative deviation of the hourly level 0.15: a 1.5x plateau stands 3.3 deviations above it, under p = 1e-6
    series.dispersion[n] = (0.0225 * 1e6, 1e6)
    assert series.plateau_blind(hour)
    assert not series.plateau_blind({n: (0.0, 30.0)})  # at 30 an hour counting noise still dominates (kappa x 30 < 1)
    series.dispersion[n] = (0.005 * 1e6, 1e6)  # relative deviation 0.07: 7 deviations
    assert not series.plateau_blind(hour)


def shift_with_samples(values: list[float]) -> LevelShift:
    """A one-bucket window fed one complete hourly sample per value (ratio e**value)."""
    shift = LevelShift(window_buckets=1, bucket_seconds=3600.0, history_days=28)
    for hour, value in enumerate(values):
        shift.add(hour, round(100 * math.exp(value)), 100.0, complete=True)
    return shift


def test_deviation_is_measured_in_the_series_own_robust_units_once_a_week_is_sampled() -> None:
    rng = random.Random(5)
    week = [rng.gauss(0.0, 0.2) for _ in range(MIN_SAMPLE_DAYS * 24)]
    assert shift_with_samples(week[:-1]).deviation() is None
    shift = shift_with_samples(week)
    assert shift.scale == pytest.approx(0.2, rel=0.2)
    shift.add(10_001, 200, 100.0, complete=False)  # not on the hour: slides, adds no sample
    assert shift.deviation() == pytest.approx((math.log(2.0) - shift.centre) / shift.scale)


def test_samples_are_taken_only_once_the_baseline_knows_the_weekday() -> None:
    shift = LevelShift(window_buckets=1, bucket_seconds=3600.0, history_days=28)
    shift.add(0, 40, 100.0, complete=False)  # a first weekend priced as a weekday is the baseline's own learning
    shift.add(1, 100, None, complete=True)  # no seasonal expectation yet
    assert list(shift.samples) == []
    shift.add(2, 100, 100.0, complete=True)
    assert list(shift.samples) == [0.0]


def test_a_shift_fires_once_until_the_level_comes_back_and_not_when_already_paged() -> None:
    shift = LevelShift(window_buckets=1, bucket_seconds=3600.0, history_days=28)
    assert shift.fires(5.0, passes=True, threshold=4.0, paged=False)
    assert not shift.fires(6.0, passes=True, threshold=4.0, paged=False)  # the same shift, still there
    assert not shift.fires(2.5, passes=True, threshold=4.0, paged=False)  # above half the threshold: not re-armed
    assert not shift.fires(1.0, passes=True, threshold=4.0, paged=False)  # back: re-armed
    assert shift.fires(4.5, passes=True, threshold=4.0, paged=False)
    assert not shift.fires(0.0, passes=True, threshold=4.0, paged=False)
    assert not shift.fires(4.5, passes=True, threshold=4.0, paged=True)  # consumed by the episode that paged it
    assert not shift.fires(4.5, passes=True, threshold=4.0, paged=False)
    assert not shift.fires(None, passes=False, threshold=4.0, paged=False)
    assert not shift.fires(9.0, passes=False, threshold=4.0, paged=False)  # fails the count rules: stays armed
    assert shift.fires(9.0, passes=True, threshold=4.0, paged=False)


def test_shift_state_survives_a_snapshot() -> None:
    rng = random.Random(2)
    shift = shift_with_samples([rng.gauss(0.0, 0.3) for _ in range(MIN_SAMPLE_DAYS * 24 + 5)])
    shift.armed = False
    copy = LevelShift(window_buckets=1, bucket_seconds=3600.0, history_days=28)
    copy.load(shift.dump())
    assert (copy.count_sum, copy.expect_sum, copy.deviation(), copy.armed) == (
        shift.count_sum, shift.expect_sum, shift.deviation(), shift.armed)


def test_baseline_is_complete_once_two_same_weekdays_and_a_week_are_known() -> None:
    baseline = SeasonalBaseline(history_days=28, min_days=1)
    start = T0.timestamp()
    for day in range(15):
        for hour in range(24):
            baseline.add(start + day * 86400 + hour * 3600, 10.0)
        assert baseline.complete(start + (day + 1) * 86400) == (day + 1 >= 14)


def test_normal_surprise_is_minus_log10_of_the_upper_tail() -> None:
    assert normal_surprise(0.0) == pytest.approx(math.log10(2.0))
    assert normal_surprise(4.0) == pytest.approx(-math.log10(3.167e-5), abs=1e-3)


def test_parse_settings_reads_the_shift_options() -> None:
    settings = parse_settings({"shift_window": "3h", "shift_z": 4.5})
    assert (settings.shift_window, settings.shift_z) == (10800.0, 4.5)
