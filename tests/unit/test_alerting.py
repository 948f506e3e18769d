"""Routing, grouping, repeat, resolve, silences, inhibition and retries, as timelines with explicit times."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from carebox.alerting import (
    Alert,
    AlertingSettings,
    Matcher,
    ReceiverSettings,
    Route,
    Router,
    Silence,
    Timing,
    parse_matcher,
    parse_settings,
)
from carebox.errors import ConfigError, ConnectorUnavailable, RateLimited, ReplyRejected

DAY = "2026-11-20"


def at(clock: str) -> datetime:
    """An explicit instant on the test day, e.g. at("09:00:30")."""
    return datetime.fromisoformat(f"{DAY}T{clock}+00:00")


def receivers(*names: str, send_resolved: bool = True) -> dict[str, ReceiverSettings]:
    return {n: ReceiverSettings(n, "webhook", {"name": n}, send_resolved) for n in names}


DEFAULT_TIMING = Timing()


def settings(*routes: Route, default: tuple[str, ...] = ("ops",), timing: Timing = DEFAULT_TIMING,
             **kw) -> AlertingSettings:
    names = {r for route in routes for r in route.receivers} | set(default)
    return AlertingSettings(receivers(*sorted(names), send_resolved=kw.pop("send_resolved", True)), default,
                            routes, timing, **kw)


def alert(key: str = "inc-1", account: str = "acme", severity: str = "error", cluster: str | None = "4g",
          **kw) -> Alert:
    return Alert(key=key, account=account, title=f"{key} outage", severity=severity, cluster=cluster, **kw)


def resolved(a: Alert) -> Alert:
    return Alert(a.key, a.account, a.title, a.severity, "resolved", a.cluster)


def simulate(router: Router, events: list[tuple], until: str, failures: dict | None = None) -> list[tuple]:
    """Tick every 10 s: apply events, deliver what is due; a receiver in `failures` fails with that error
    between the given times. Returns the successful sends as (time, receiver, action, key, attempt)."""
    failures = failures or {}
    sent, now, end = [], at("09:00:00"), at(until)
    pending = sorted(events, key=lambda e: e[0])
    while now <= end:
        while pending and at(pending[0][0]) <= now:
            _, op, arg = pending.pop(0)
            if op == "silence":
                router.add_silence(arg)
            else:
                router.submit(arg, now)
        for d in router.due(now):
            start, stop, error = failures.get(d.receiver, (None, None, None))
            if error is not None and at(start) <= now < at(stop):
                router.delivered(d, False, now, error)
            else:
                router.delivered(d, True, now)
                sent.append((now.strftime("%H:%M:%S"), d.receiver, d.notification.action, d.notification.key,
                             d.attempt))
        now += timedelta(seconds=10)
    return sent


A = alert()


@pytest.mark.parametrize(
    ("events", "until", "expected"),
    [
        pytest.param([("09:00:00", "fire", A)], "09:20:00", [("09:00:30", "ops", "trigger", "inc-1", 1)],
                     id="first-notice-waits-group_wait-then-is-sent-once"),
        pytest.param([("09:00:00", "fire", A), ("09:07:00", "fire", resolved(A))], "09:30:00",
                     [("09:00:30", "ops", "trigger", "inc-1", 1), ("09:10:30", "ops", "resolve", "inc-1", 1)],
                     id="resolved-notice-at-next-group_interval"),
        pytest.param([("09:00:00", "fire", A), ("09:00:20", "fire", resolved(A))], "09:30:00", [],
                     id="flap-resolved-within-group_wait-sends-nothing"),
        pytest.param([("09:00:00", "fire", A), ("09:01:00", "fire", A), ("09:06:00", "fire", A)], "09:30:00",
                     [("09:00:30", "ops", "trigger", "inc-1", 1)],
                     id="resubmitting-an-unchanged-alert-sends-nothing-new"),
        pytest.param([("09:00:00", "fire", A)], "13:10:00",
                     [("09:00:30", "ops", "trigger", "inc-1", 1), ("13:00:30", "ops", "trigger", "inc-1", 1)],
                     id="repeat_interval-resends-a-still-firing-alert"),
        pytest.param([("09:00:00", "fire", alert(severity="warning")),
                      ("09:02:00", "fire", alert(severity="critical", escalation=1))], "09:20:00",
                     [("09:00:30", "ops", "trigger", "inc-1", 1), ("09:05:30", "ops", "trigger", "inc-1", 1)],
                     id="escalation-triggers-again-at-next-group_interval-same-key"),
    ],
)
def test_grouping_timeline(events, until, expected):
    assert simulate(Router(settings()), events, until) == expected


def test_alerts_grouped_by_account_share_one_notification_and_key():
    router = Router(settings(timing=Timing(group_by=("account",))))
    events = [("09:00:00", "fire", alert("inc-1")), ("09:00:20", "fire", alert("inc-2", cluster="fibre")),
              ("09:03:00", "fire", alert("inc-3", cluster="sms")), ("09:01:00", "fire", alert("x", account="other"))]
    sent = simulate(router, events, "09:20:00")
    assert sent == [("09:00:30", "ops", "trigger", "group:account=acme", 1),
                    ("09:01:30", "ops", "trigger", "group:account=other", 1),
                    ("09:05:30", "ops", "trigger", "group:account=acme", 1)]
    assert router.attempts_for("inc-3")[0].alert_keys == ("inc-1", "inc-2", "inc-3")


def test_group_resolves_only_when_its_last_alert_resolves_and_lists_both():
    router = Router(settings(timing=Timing(group_by=("account",))))
    a, b = alert("inc-1"), alert("inc-2", cluster="sms")
    deliveries = []
    router.submit(a, at("09:00:00"))
    router.submit(b, at("09:00:00"))
    for d in router.due(at("09:00:30")):
        router.delivered(d, True, at("09:00:30"))
    router.submit(resolved(a), at("09:01:00"))
    deliveries = router.due(at("09:05:30"))
    assert [d.notification.action for d in deliveries] == ["trigger"]
    assert deliveries[0].notification.details["resolved"] == ["inc-1"]
    assert deliveries[0].notification.details["firing"] == ["inc-2"]


def test_silence_mutes_matching_alert_until_it_ends():
    silence = Silence("s1", (Matcher("cluster", "=", "4g"),), at("09:00:00"), at("09:20:00"), "maintenance")
    events = [("09:00:00", "silence", silence), ("09:01:00", "fire", A),
              ("09:01:00", "fire", alert("k2", cluster="sms"))]
    sent = simulate(Router(settings()), events, "09:30:00")
    assert sent == [("09:01:30", "ops", "trigger", "k2", 1), ("09:21:30", "ops", "trigger", "inc-1", 1)]


def test_expired_silence_no_longer_mutes():
    router = Router(settings())
    router.add_silence(Silence("s1", (Matcher("account", "=", "acme"),), at("09:00:00"), at("12:00:00")))
    router.expire_silence("s1", at("09:00:10"))
    router.submit(A, at("09:00:00"))
    assert router.muted_by(A, at("09:00:30")) is None
    assert [d.notification.key for d in router.due(at("09:00:30"))] == ["inc-1"]


def test_brand_wide_incident_inhibits_its_own_cluster_incidents_only():
    brand = alert("brand", cluster=None, severity="critical")
    other = alert("other-4g", account="other")
    events = [("09:00:00", "fire", A), ("09:00:00", "fire", other), ("09:00:10", "fire", brand),
              ("09:30:00", "fire", resolved(brand))]
    sent = simulate(Router(settings()), events, "09:31:00")
    assert sent == [("09:00:30", "ops", "trigger", "other-4g", 1), ("09:00:40", "ops", "trigger", "brand", 1),
                    ("09:30:30", "ops", "trigger", "inc-1", 1), ("09:30:40", "ops", "resolve", "brand", 1)]


def test_inhibition_can_be_switched_off():
    router = Router(settings(inhibit_rules=()))
    router.submit(alert("brand", cluster=None), at("09:00:00"))
    assert router.muted_by(A, at("09:00:00")) is None


PD_ROUTE = Route(("pagerduty",), severities=frozenset({"critical"}), continue_=True)
FR_ROUTE = Route(("fr-team",), accounts=frozenset({"acme_fr"}))


@pytest.mark.parametrize(
    ("routed", "expected"),
    [
        (alert(severity="critical"), ["pagerduty", "ops"]),
        (alert(severity="warning"), ["ops"]),
        (alert(account="acme_fr", severity="warning"), ["fr-team"]),
        (alert(account="acme_fr", severity="critical"), ["pagerduty", "fr-team"]),
    ],
)
def test_routing_by_severity_and_account(routed, expected):
    router = Router(settings(PD_ROUTE, FR_ROUTE, Route(("ops",))))
    assert [r for r, _ in router.routes_for(routed)] == expected


def test_resolve_reaches_every_receiver_that_got_the_trigger_even_after_a_severity_change():
    router = Router(settings(PD_ROUTE, Route(("ops",))))
    critical = alert(severity="critical")
    events = [("09:00:00", "fire", critical), ("09:02:00", "fire", Alert("inc-1", "acme", "x", "warning", "resolved"))]
    sent = simulate(router, events, "09:10:00")
    assert sorted(s[1:3] for s in sent) == [("ops", "resolve"), ("ops", "trigger"), ("pagerduty", "resolve"),
                                             ("pagerduty", "trigger")]


def test_receiver_down_ten_minutes_gets_the_alert_after_with_backoff_and_one_key():
    router = Router(settings(PD_ROUTE, Route(("ops",))))
    down = {"pagerduty": ("09:00:00", "09:10:00", ConnectorUnavailable("pagerduty", "HTTP 503"))}
    sent = simulate(router, [("09:00:00", "fire", alert(severity="critical"))], "09:30:00", down)
    assert [s for s in sent if s[1] == "pagerduty"] == [("09:13:00", "pagerduty", "trigger", "inc-1", 6)]
    attempts = [(a.at.strftime("%H:%M:%S"), a.outcome) for a in router.log if a.receiver == "pagerduty"]
    assert attempts == [("09:00:30", "failed"), ("09:01:00", "failed"), ("09:02:00", "failed"),
                        ("09:04:00", "failed"), ("09:08:00", "failed"), ("09:13:00", "ok")]
    assert ("09:00:30", "ops", "trigger", "inc-1", 1) in sent  # the other receiver was not held back


def test_rate_limited_delivery_waits_retry_after():
    router = Router(settings())
    limited = {"ops": ("09:00:00", "09:00:40", RateLimited("ops", 120))}
    sent = simulate(router, [("09:00:00", "fire", A)], "09:10:00", limited)
    assert sent == [("09:02:30", "ops", "trigger", "inc-1", 2)]


def test_refused_delivery_is_logged_and_not_retried():
    router = Router(settings())
    refused = {"ops": ("09:00:00", "10:00:00", ReplyRejected("ops", "HTTP 400: invalid event"))}
    simulate(router, [("09:00:00", "fire", A)], "09:20:00", refused)
    assert [(a.outcome, a.error) for a in router.log] == [("rejected", "ops: HTTP 400: invalid event")]


def test_alert_resolved_while_receiver_down_and_never_delivered_sends_nothing():
    router = Router(settings())
    down = {"ops": ("09:00:00", "09:30:00", ConnectorUnavailable("ops"))}
    sent = simulate(router, [("09:00:00", "fire", A), ("09:03:00", "fire", resolved(A))], "09:40:00", down)
    assert sent == []
    assert router.next_wakeup() is None


def test_send_resolved_false_skips_resolved_notices():
    router = Router(settings(send_resolved=False))
    sent = simulate(router, [("09:00:00", "fire", A), ("09:02:00", "fire", resolved(A))], "09:20:00")
    assert [s[2] for s in sent] == ["trigger"]


def test_late_report_of_an_old_delivery_is_logged_but_changes_nothing():
    router = Router(settings())
    router.submit(A, at("09:00:00"))
    (first,) = router.due(at("09:00:30"))
    router.delivered(first, True, at("09:00:31"))
    router.delivered(first, True, at("09:00:32"))
    assert len(router.log) == 2
    assert router.due(at("09:05:31")) == []


def test_next_wakeup_tells_the_scheduler_when_to_call_due():
    router = Router(settings())
    assert router.next_wakeup() is None
    router.submit(A, at("09:00:00"))
    assert router.next_wakeup() == at("09:00:30")


def test_single_alert_notification_carries_title_url_and_severity():
    router = Router(settings())
    router.submit(alert(severity="critical", url="https://carebox.example/incidents/1", body="12 complaints"),
                  at("09:00:00"))
    (d,) = router.due(at("09:00:30"))
    n = d.notification
    assert (n.key, n.title, n.severity, n.action, n.url, n.body) == (
        "inc-1", "inc-1 outage", "critical", "trigger", "https://carebox.example/incidents/1", "12 complaints")


@pytest.mark.parametrize(
    ("text", "labels", "hit"),
    [('account="acme"', {"account": "acme"}, True), ("account=acme", {"account": "acme2"}, False),
     ('cluster!=""', {"cluster": "4g"}, True), ('cluster!=""', {}, False),
     ('severity=~"critical|error"', {"severity": "error"}, True), ('severity=~"crit"', {"severity": "critical"}, False),
     ('cluster!~"4g|5g"', {"cluster": "fibre"}, True)],
)
def test_matchers_compare_whole_label_values(text, labels, hit):
    assert parse_matcher(text, "k").matches(labels) is hit


@pytest.mark.parametrize("text", ["account", "=x", 'severity=~"("', 3])
def test_bad_matcher_names_its_key(text):
    with pytest.raises(ConfigError, match=r"alerting\.silences\[0\]\.matchers\[0\]"):
        parse_matcher(text, "alerting.silences[0].matchers[0]")


GOOD = {
    "alerting": {
        "receivers": ["ops-slack"],
        "group_wait": "10s", "group_interval": "2m", "repeat_interval": "1h",
        "routes": [{"severities": ["critical"], "receivers": ["ops-pd"], "continue": True, "group_wait": "0s"}],
        "silences": [{"matchers": ['account="acme"'], "starts_at": at("22:00:00"), "ends_at": at("23:00:00"),
                      "comment": "maintenance"}],
    },
    "notifiers": [
        {"name": "ops-slack", "type": "slack", "webhook_url_env": "SLACK_URL"},
        {"name": "ops-pd", "type": "pagerduty", "routing_key_env": "PD_ROUTING_KEY", "send_resolved": True},
    ],
}


def test_parse_settings_reads_routes_timings_silences_and_env_names():
    parsed = parse_settings(GOOD)
    assert parsed.default_receivers == ("ops-slack",)
    assert parsed.timing == Timing(("key",), 10.0, 120.0, 3600.0)
    assert parsed.routes[0].timing == Timing(("key",), 0.0, 120.0, 3600.0)
    assert parsed.receivers["ops-pd"].options["routing_key_env"] == "PD_ROUTING_KEY"
    assert parsed.silences[0].comment == "maintenance"
    assert len(parsed.inhibit_rules) == 1


def test_parse_settings_defaults_to_every_notifier_when_no_receivers_given():
    parsed = parse_settings({"notifiers": GOOD["notifiers"]})
    assert parsed.default_receivers == ("ops-slack", "ops-pd")
    assert parsed.timing == Timing()


def _with(path: str, value) -> dict:
    import copy

    raw = copy.deepcopy(GOOD)
    node = raw
    *parents, last = path.split(".")
    for part in parents:
        node = node[int(part)] if part.isdigit() else node[part]
    node[int(last) if last.isdigit() else last] = value
    return raw


@pytest.mark.parametrize(
    ("path", "value", "key"),
    [
        ("alerting.group_wait", "soon", "alerting.group_wait"),
        ("alerting.repeat_interval", "1m", "alerting.repeat_interval"),
        ("alerting.receivers", ["nobody"], "alerting.receivers"),
        ("alerting.routes.0.severities", ["fatal"], "alerting.routes[0].severities"),
        ("alerting.routes.0.receivers", [], "alerting.routes[0].receivers"),
        ("alerting.silences.0.ends_at", at("21:00:00"), "alerting.silences[0].ends_at"),
        ("alerting.silences.0.starts_at", "tonight", "alerting.silences[0].starts_at"),
        ("alerting.grup_wait", "1m", "alerting.grup_wait"),
        ("notifiers.0.type", "pager", "notifiers[0].type"),
        ("notifiers.1.routing_key_env", "not a var!", "notifiers[1].routing_key_env"),
        ("notifiers.1.name", "ops-slack", "notifiers[1].name"),
        ("notifiers.0.webhook_url_env", None, "notifiers[0].webhook_url_env"),
        ("notifiers.1.send_resolved", "yes", "notifiers[1].send_resolved"),
    ],
)
def test_parse_settings_rejects_bad_values_naming_the_key(path, value, key):
    with pytest.raises(ConfigError) as info:
        parse_settings(_with(path, value))
    assert info.value.key == key


def test_alert_refuses_unknown_severity():
    with pytest.raises(ValueError, match="severity"):
        alert(severity="urgent")


def test_delivery_never_reported_back_is_counted_failed_and_retried():
    router = Router(settings())
    router.submit(A, at("09:00:00"))
    (first,) = router.due(at("09:00:30"))
    assert router.due(at("09:05:00")) == []  # still in flight
    assert router.due(at("09:10:30")) == []  # lost: counted as failed, retry in 30 s
    (retry,) = router.due(at("09:11:00"))
    assert (retry.attempt, retry.notification.key) == (2, first.notification.key)
    assert [a.outcome for a in router.log] == ["failed"]


def test_delivery_log_is_bounded():
    router = Router(settings(), log_limit=2)
    router.submit(A, at("09:00:00"))
    for second in range(30, 400, 30):
        for d in router.due(at("09:00:00") + timedelta(seconds=second)):
            router.delivered(d, False, at("09:00:00") + timedelta(seconds=second), "down")
    assert len(router.log) == 2


def test_documented_config_fragment_parses_as_is_and_with_every_example_uncommented():
    import re
    import tomllib
    from pathlib import Path

    text = (Path(__file__).parents[2] / "docs" / "config-fragments" / "notify.toml").read_text()
    assert parse_settings(tomllib.loads(text)).timing == Timing()
    example = re.compile(r"^# (\[\[[a-z_.]+\]\]|[a-z_]+ = .*)$")
    uncommented = "\n".join(m.group(1) if (m := example.match(line)) else line for line in text.splitlines())
    parsed = parse_settings(tomllib.loads(uncommented))
    assert (len(parsed.routes), len(parsed.silences), len(parsed.receivers)) == (2, 1, 4)
