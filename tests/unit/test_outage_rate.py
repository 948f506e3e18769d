"""The outage detector's rate signal: a Poisson CUSUM per cluster that decides at each complaint."""

from __future__ import annotations

import json
import math
import random
from datetime import UTC, datetime, timedelta

import pytest

from carebox.errors import ConfigError
from carebox.outage import Detector, EpisodeEvent, parse_settings
from carebox.outage_rate import LOG_STEP, STEP, Cusum, threshold
from tests.unit.test_outage import poisson

T0 = datetime(2026, 3, 2, 0, 0, tzinfo=UTC)  # a Monday
RATES = {"4g": 2.0, "tv": 1.0}  # mean complaints per minute


def shape(minute: int) -> float:
    """A daily rhythm: quiet nights, busy afternoons (x0.2 to x1.8)."""
    return 1.0 + 0.8 * math.sin(2 * math.pi * ((minute % 1440) / 60.0 - 9.0) / 24.0)


class Traffic:
    """Complaints at random instants, in time order, each from a new author; ticks at every minute's end."""

    def __init__(self, detector: Detector | None = None, seed: int = 3) -> None:
        self.detector = detector or Detector()
        self.rng = random.Random(seed)
        self.minute = 0
        self.author = 0
        self.events: list[EpisodeEvent] = []
        self.fired: list[datetime] = []  # instants at which observe() said the rate signal fired
        self.reverse = False  # each minute's complaints arrive latest first (batches out of order)

    def run(self, minutes: int, rates: dict[str, float], factor: dict[str, float] | None = None) -> None:
        """`minutes` minutes of Poisson traffic at `rates` x the daily rhythm (x `factor` per key)."""
        for _ in range(minutes):
            start = T0 + timedelta(minutes=self.minute)
            instants = []
            for key, rate in rates.items():
                mean = rate * shape(self.minute) * (factor or {}).get(key, 1.0)
                instants += [(self.rng.random() * 60.0, key) for _ in range(poisson(self.rng, mean))]
            for second, key in sorted(instants, reverse=self.reverse):
                self.complaint(key, start + timedelta(seconds=second))
            self.minute += 1
            self.events += self.detector.tick(T0 + timedelta(minutes=self.minute))

    def complaint(self, key: str, at: datetime) -> None:
        """One complaint; a tick right away when the rate signal fired on it (as the watcher does)."""
        self.author += 1
        if self.detector.observe(account="telco", cluster_key=key, author=f"u{self.author}", text=f"down #{self.author}",
                                 at=at, category="outage"):
            self.fired.append(at)
            self.events += self.detector.tick(at)

    def opened(self, since: int = 0) -> list[EpisodeEvent]:
        """Episodes opened from minute `since` on."""
        return [e for e in self.events if e.kind == "opened" and e.at >= T0 + timedelta(minutes=since)]


def fork(traffic: Traffic, seed: int) -> Traffic:
    """An independent copy through snapshot and restore (JSON), with its own random draws."""
    detector = Detector(traffic.detector.settings)
    detector.restore(json.loads(json.dumps(traffic.detector.snapshot())))
    copy = Traffic(detector, seed)
    copy.minute, copy.author = traffic.minute, traffic.author
    return copy


@pytest.fixture(scope="module")
def calm_days() -> Traffic:
    """Two days and a half of calm traffic with a daily rhythm: a seasonal baseline exists after the first day."""
    traffic = Traffic()
    traffic.run(int(2.5 * 1440), RATES)
    return traffic


def test_calm_traffic_with_a_daily_rhythm_never_fires(calm_days: Traffic) -> None:
    assert calm_days.fired == []
    assert calm_days.opened(since=1440) == []


def test_a_5x_step_at_2_a_minute_alerts_at_a_complaint_within_two_minutes(calm_days: Traffic) -> None:
    delays = []
    for seed in range(5):
        traffic = fork(calm_days, seed)
        start = traffic.minute
        traffic.run(10, RATES, {"4g": 5.0})
        [first, *_] = [e for e in traffic.opened(start) if e.key == "4g"]
        assert first.at in traffic.fired  # decided at a complaint, not at a minute's end
        assert "rate signal" in first.reason
        delays.append((first.at - (T0 + timedelta(minutes=start))).total_seconds() / 60)
    assert sorted(delays)[2] <= 2.0, delays


def test_a_rise_on_one_cluster_does_not_fire_the_others(calm_days: Traffic) -> None:
    traffic = fork(calm_days, 11)
    start = traffic.minute
    traffic.run(10, RATES, {"4g": 10.0})
    assert {e.key for e in traffic.opened(start) if "rate signal" in e.reason} == {"4g"}


def test_the_signal_is_quiet_while_the_episode_is_open_and_fires_again_after_it_resolves(calm_days: Traffic) -> None:
    traffic = fork(calm_days, 5)
    traffic.run(30, RATES, {"4g": 5.0})
    assert len(traffic.fired) == 1  # one alert: then the episode is open, and the CUSUM stays at zero
    assert traffic.detector._rate.cusums[("telco", "4g")].value == 0.0
    traffic.run(150, RATES)
    assert [e.kind for e in traffic.events if e.key == "4g"][-1] == "resolved"
    traffic.run(10, RATES, {"4g": 5.0})
    assert len(traffic.fired) == 2


def test_a_young_baseline_keeps_the_signal_quiet() -> None:
    traffic = Traffic(seed=8)
    traffic.run(180, RATES)  # three hours: past the warm-up, but no seasonal baseline yet
    traffic.run(10, RATES, {"4g": 10.0})
    assert traffic.fired == []


def test_snapshot_and_restore_in_the_middle_of_a_run_continue_identically(calm_days: Traffic) -> None:
    traffic = fork(calm_days, 2)
    traffic.run(1, RATES, {"4g": 2.0})
    assert traffic.fired == [] and traffic.detector._rate.cusums[("telco", "4g")].value > 0.0  # a run in progress
    restored = fork(traffic, 2)
    traffic.rng = random.Random(2)
    traffic.events, traffic.fired = [], []
    for t in (traffic, restored):
        t.run(10, RATES, {"4g": 5.0})
    assert traffic.fired == restored.fired != []
    assert traffic.events == restored.events


def test_a_decision_not_yet_ticked_survives_a_restart(calm_days: Traffic) -> None:
    traffic = fork(calm_days, 4)
    minute = T0 + timedelta(minutes=traffic.minute)
    fired = [at for i in range(40) if traffic.detector.observe(
        account="telco", cluster_key="4g", author=f"late{i}", text=f"4g down {i}", at=(at := minute + timedelta(seconds=i)),
        category="outage")]
    assert fired
    restored = Detector(traffic.detector.settings)
    restored.restore(json.loads(json.dumps(traffic.detector.snapshot())))
    [event] = [e for e in restored.tick(minute + timedelta(seconds=45)) if e.key == "4g"]
    assert (event.kind, event.at) == ("opened", fired[0])


def test_complaints_out_of_order_give_the_same_cusum_as_in_order() -> None:
    rng = random.Random(1)
    instants = sorted(rng.uniform(0.0, 120.0) for _ in range(12))
    shuffled = instants[:]
    rng.shuffle(shuffled)
    ordered, scrambled = Cusum(), Cusum()
    for a, b in zip(instants, shuffled, strict=True):
        ordered.add(a, 2.0 / 60)
        scrambled.add(b, 2.0 / 60)
    assert scrambled.value == pytest.approx(ordered.value)
    assert (scrambled.count, scrambled.start) == (ordered.count, ordered.start)


def test_calm_traffic_arriving_out_of_order_does_not_fire(calm_days: Traffic) -> None:
    traffic = fork(calm_days, 9)
    traffic.reverse = True
    traffic.run(6 * 60, RATES)
    assert traffic.fired == []


def test_false_alarms_per_complaint_on_calm_poisson_traffic_are_about_exp_minus_h() -> None:
    rng, cusum, h, alarms, complaints, at = random.Random(5), Cusum(), 6.0, 0, 200_000, 0.0
    for _ in range(complaints):
        at += rng.expovariate(1.0)
        cusum.add(at, 1.0)
        if cusum.value >= h:
            alarms += 1
            cusum.clear(at)
    assert 0.7 < alarms / complaints / math.exp(-h) < 1.2


def test_the_threshold_grows_with_the_accounts_traffic_and_a_smaller_budget() -> None:
    assert threshold(10080.0, 0.25) == pytest.approx(math.log(40320.0))
    assert threshold(100800.0, 0.25) == pytest.approx(threshold(10080.0, 0.25) + math.log(10))
    assert threshold(10080.0, 0.025) > threshold(10080.0, 0.25)
    assert LOG_STEP == pytest.approx(math.log(STEP))


@pytest.mark.parametrize("value", [0, -1, "x", True])
def test_a_bad_rate_budget_names_the_key(value: object) -> None:
    with pytest.raises(ConfigError, match="outage.rate_budget"):
        parse_settings({"rate_budget": value})
