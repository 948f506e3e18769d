"""Rate-limit headers: how long a connector waits when a server says 429."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from carebox.errors import (
    AuthenticationFailed,
    ConnectorUnavailable,
    RateLimited,
    ReplyRejected,
)
from connectors._http import (
    DEFAULT_RETRY_AFTER,
    error_for_status,
    parse_rate_reset,
    parse_retry_after,
)

NOW = datetime(2024, 1, 15, 10, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "expected"),
    [("120", 120.0), (" 7 ", 7.0), ("-5", 0.0), ("Mon, 15 Jan 2024 10:31:00 GMT", 60.0), ("Mon, 15 Jan 2024 10:29:00 GMT", 0.0),
     (None, None), ("", None), ("soon", None), ("inf", None), ("1e400", None), ("nan", None)],
)
def test_retry_after_is_seconds_or_an_http_date_and_never_endless(value, expected):
    assert parse_retry_after(value, now=NOW) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [("1705318200", 3600.0), ("1705310000", 0.0), ("2024-01-15T11:30:00Z", 3600.0), ("2024-01-15T11:30:00", None),
     ("2024-01-15Z", None), ("soon", None), ("inf", None), ("nan", None), (None, None)],
)
def test_rate_limit_reset_is_an_epoch_or_a_zoned_iso_time_and_anything_else_is_unknown(value, expected):
    assert parse_rate_reset(value, now=NOW) == expected


def test_a_429_with_an_unusable_wait_waits_the_default_instead_of_forever():
    err = error_for_status("x1", 429, {"Retry-After": "inf", "x-rate-limit-reset": "2024-01-15T11:30:00"})
    assert isinstance(err, RateLimited) and err.retry_after == DEFAULT_RETRY_AFTER


@pytest.mark.parametrize(
    ("status", "error"),
    [(401, AuthenticationFailed), (403, AuthenticationFailed), (408, ConnectorUnavailable), (500, ConnectorUnavailable),
     (503, ConnectorUnavailable), (400, ReplyRejected), (404, ReplyRejected)],
)
def test_each_status_maps_to_its_carebox_error(status, error):
    assert type(error_for_status("x1", status, {})) is error
