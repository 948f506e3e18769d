"""Connector health: the last error and the last success, "unavailable" and "back" each logged once."""

from __future__ import annotations

import logging

import pytest

from carebox.errors import AuthenticationFailed, ConnectorUnavailable, RateLimited
from connectors._health import Health
from connectors._http import Backoff
from connectors.social import bluesky, email, facebook, mastodon, webhook, x

LOG = logging.getLogger("connectors.social.fake")


class FakeConnector(Health):
    health_log = LOG

    def __init__(self, name: str) -> None:
        self.name = name
        self.health_subject = f"connector {name} is"


def test_a_new_connector_has_no_error_and_no_success_yet():
    conn = FakeConnector("f1")
    assert conn.last_error is None and conn.last_ok_at is None


def test_unavailable_is_logged_once_while_it_lasts_and_back_once_when_it_ends(caplog):
    caplog.set_level(logging.INFO, logger=LOG.name)
    conn = FakeConnector("f1")
    conn._failed(ConnectorUnavailable("f1", "HTTP 503"))
    conn._failed(ConnectorUnavailable("f1", "HTTP 502"))
    assert conn.last_error == "f1: HTTP 502"
    conn._ok()
    conn._ok()
    assert conn.last_error is None and conn.last_ok_at is not None
    assert [(r.name, r.levelname, r.getMessage()) for r in caplog.records] == [
        (LOG.name, "WARNING", "connector f1 is unavailable: f1: HTTP 503"),
        (LOG.name, "INFO", "connector f1 is back"),
    ]


def test_an_error_without_text_is_shown_by_its_type_so_health_never_reads_as_fine():
    conn = FakeConnector("f1")
    conn._failed(TimeoutError())
    assert conn.last_error == "TimeoutError"


async def test_steps_wait_out_trouble_as_told_and_refused_credentials_end_the_run(caplog):
    caplog.set_level(logging.INFO, logger=LOG.name)
    conn = FakeConnector("f1")
    outcomes = [ConnectorUnavailable("f1", "HTTP 503"), None, RateLimited("f1", 42.0), AuthenticationFailed("f1", "HTTP 401")]
    slept: list[float] = []

    async def step() -> None:
        outcome = outcomes.pop(0)
        if outcome is not None:
            raise outcome
        conn._ok()

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    with pytest.raises(AuthenticationFailed):
        await conn._run_steps(step, Backoff(base=0.001, cap=0.001), sleep)
    assert outcomes == [] and len(slept) == 2 and slept[1] == 42.0
    assert conn.last_error == "f1: HTTP 401"
    assert [r.getMessage() for r in caplog.records] == [
        "connector f1 is unavailable: f1: HTTP 503", "connector f1 is back",
        "connector f1 is unavailable: f1: rate limited, retry after 42s", "connector f1 needs new credentials: f1: HTTP 401",
    ]


async def test_a_poll_waits_its_interval_after_each_success_and_starts_backing_off_afresh():
    conn = FakeConnector("f1")
    outcomes = [None, ConnectorUnavailable("f1", "HTTP 503"), None, AuthenticationFailed("f1", "HTTP 401")]
    backoff = Backoff(base=0.001, cap=0.001)
    slept: list[float] = []
    attempts: list[int] = []

    async def step() -> None:
        attempts.append(backoff.attempt)
        outcome = outcomes.pop(0)
        if outcome is not None:
            raise outcome

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    with pytest.raises(AuthenticationFailed):
        await conn._run_steps(step, backoff, sleep, every=30.0)
    assert len(slept) == 3 and slept[0] == slept[2] == 30.0 and slept[1] <= 0.001  # the backoff, not the interval
    assert attempts == [0, 0, 1, 0]


@pytest.mark.parametrize(
    "cls", [x.XConnector, mastodon.MastodonConnector, bluesky.BlueskyConnector, facebook.GraphConnector,
            webhook.WebhookConnector, email.EmailConnector],
)
def test_every_network_connector_keeps_health_through_the_mixin_and_logs_as_its_module(cls):
    assert issubclass(cls, Health)
    assert cls.health_log.name == cls.__module__
