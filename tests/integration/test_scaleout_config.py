"""The [scaleout] table: defaults, accepted values, and errors naming the key (pure, no services)."""

from __future__ import annotations

import pytest

from carebox.errors import ConfigError
from carebox.scaleout import ScaleoutSettings, parse


def test_a_document_without_scaleout_gets_the_defaults():
    assert parse({}) == ScaleoutSettings()


@pytest.mark.parametrize(("table", "field", "expected"), [
    ({"lease_s": "30s"}, "lease_s", 30.0),
    ({"lease_s": 5}, "lease_s", 5.0),
    ({"visibility_s": "2m"}, "visibility_s", 120.0),
    ({"max_deliveries": 3}, "max_deliveries", 3),
    ({"max_stream_len": 50}, "max_stream_len", 50),
    ({"stream": "acme:ingest"}, "stream", "acme:ingest"),
    ({"fanout_url": "redis://10.0.0.2:6379/1"}, "fanout_url", "redis://10.0.0.2:6379/1"),
])
def test_values_are_read(table, field, expected):
    assert getattr(parse({"scaleout": table}), field) == expected


@pytest.mark.parametrize(("table", "key"), [
    ({"lease_s": "0s"}, "scaleout.lease_s"),
    ({"lease_s": "soon"}, "scaleout.lease_s"),
    ({"visibility_s": "3d"}, "scaleout.visibility_s"),
    ({"max_deliveries": 0}, "scaleout.max_deliveries"),
    ({"max_deliveries": True}, "scaleout.max_deliveries"),
    ({"max_stream_len": "many"}, "scaleout.max_stream_len"),
    ({"stream": ""}, "scaleout.stream"),
    ({"fanout_url": "http://x"}, "scaleout.fanout_url"),
    ({"leader": "me"}, "scaleout.leader"),
])
def test_bad_values_name_the_key(table, key):
    with pytest.raises(ConfigError) as err:
        parse({"scaleout": table})
    assert err.value.key == key


def test_scaleout_must_be_a_table():
    with pytest.raises(ConfigError) as err:
        parse({"scaleout": "yes"})
    assert err.value.key == "scaleout"
