"""Login throttling behind a reverse proxy: X-Forwarded-For is believed only from [web] trusted_proxies."""

from __future__ import annotations

import ipaddress
import logging
from typing import Any

import aiohttp
import pytest

from carebox import config
from carebox.errors import ConfigError
from tests.security import add_users, build, login, security_settings
from web.auth_proxies import client_address

PROXIES = tuple(ipaddress.ip_network(n) for n in ("127.0.0.1", "10.0.0.0/8", "::1"))
ATTACKER, USER = "203.0.113.9", "198.51.100.7"


@pytest.mark.parametrize(("peer", "forwarded_for", "expected"), [
    ("198.51.100.7", [], "198.51.100.7"),  # no proxy
    ("198.51.100.7", ["1.2.3.4"], "198.51.100.7"),  # an untrusted peer's header is ignored
    ("127.0.0.1", [], "127.0.0.1"),  # a trusted proxy that sent no header is the client
    ("127.0.0.1", ["198.51.100.7"], "198.51.100.7"),
    ("127.0.0.1", ["1.2.3.4, 198.51.100.7"], "198.51.100.7"),  # the client's own (forged) hops are on the left
    ("127.0.0.1", ["1.2.3.4, 198.51.100.7, 10.1.2.3"], "198.51.100.7"),  # a chain of trusted proxies is skipped
    ("127.0.0.1", ["1.2.3.4", "198.51.100.7"], "198.51.100.7"),  # repeated headers are one list
    ("127.0.0.1", ["10.0.0.5, 10.0.0.6"], "10.0.0.5"),  # every hop trusted: the left-most
    ("127.0.0.1", ["198.51.100.7, junk"], "127.0.0.1"),  # a hop that is not an address: the proxy that passed it
    ("127.0.0.1", ["198.51.100.7, junk, 10.1.2.3"], "10.1.2.3"),
    ("::ffff:127.0.0.1", [" 2001:db8::1 "], "2001:db8::1"),  # dual-stack peer; IPv6 client
    ("::1", ["::ffff:198.51.100.7"], "198.51.100.7"),
    (None, ["1.2.3.4"], None),  # no peer address (a Unix socket): nothing to trust
])
def test_the_client_is_the_right_most_hop_that_is_not_a_trusted_proxy(peer, forwarded_for, expected):
    assert client_address(peer, forwarded_for, PROXIES) == expected


def test_no_trusted_proxy_means_the_header_is_never_believed():
    assert client_address("127.0.0.1", ["198.51.100.7"], ()) == "127.0.0.1"


def test_trusted_proxies_parse_addresses_and_networks_and_default_to_none():
    assert config.parse({}).web.trusted_proxies == ()
    parsed = config.parse({"web": {"trusted_proxies": ["127.0.0.1", "10.0.0.0/8", " ::1 "]}}).web.trusted_proxies
    assert parsed == PROXIES


@pytest.mark.parametrize("value", ["127.0.0.1", ["nginx"], ["10.0.0.1/8"], ["1.2.3.4/33"], [127], [""]])
def test_a_bad_trusted_proxies_value_names_the_file_the_key_and_the_expected_form(value):
    with pytest.raises(ConfigError) as err:
        config.parse({"web": {"trusted_proxies": value}}, file="/etc/carebox/carebox.toml")
    assert str(err.value).startswith("/etc/carebox/carebox.toml: web.trusted_proxies: expected a list of addresses")


def browser_at(client: Any, forwarded_for: str) -> aiohttp.ClientSession:
    """A browser whose requests reach carebox through a proxy that sets X-Forwarded-For; use with `async with`."""
    return aiohttp.ClientSession(base_url=str(client.make_url("")), cookie_jar=aiohttp.CookieJar(unsafe=True),
                                 headers={"X-Forwarded-For": forwarded_for})


async def client_for(aiohttp_client: Any, tmp_path: Any, **web_options: Any) -> Any:
    """A test client on a whole app with users (the test server is on 127.0.0.1, playing the proxy)."""
    app = await build(security_settings(tmp_path, **web_options))
    client = await aiohttp_client(app)  # starts the app: its store is open from here
    await add_users(app)
    return client


async def test_behind_a_trusted_proxy_an_attacker_cannot_lock_a_user_out_from_another_address(aiohttp_client, tmp_path):
    client = await client_for(aiohttp_client, tmp_path, trusted_proxies=["127.0.0.1"])
    async with browser_at(client, ATTACKER) as attacker, browser_at(client, USER) as user:
        for _ in range(5):
            assert (await login(attacker, "agent", "wrong-password")).status == 401
        assert (await login(attacker, "agent")).status == 429
        assert (await login(user, "agent")).status == 303


async def test_behind_a_trusted_proxy_a_forged_forwarded_for_does_not_escape_the_lock(aiohttp_client, tmp_path):
    client = await client_for(aiohttp_client, tmp_path, trusted_proxies=["127.0.0.1"])
    for n in range(5):  # nginx appends the real address to whatever the attacker sent
        async with browser_at(client, f"192.0.2.{n}, {ATTACKER}") as attacker:
            assert (await login(attacker, "agent", "wrong-password")).status == 401
    async with browser_at(client, f"{USER}, {ATTACKER}") as attacker:
        assert (await login(attacker, "agent")).status == 429


async def test_without_trusted_proxies_forwarded_for_is_ignored(aiohttp_client, tmp_path):
    client = await client_for(aiohttp_client, tmp_path)
    for n in range(5):
        async with browser_at(client, f"192.0.2.{n}") as attacker:
            assert (await login(attacker, "agent", "wrong-password")).status == 401
    async with browser_at(client, USER) as other:
        assert (await login(other, "agent")).status == 429  # every request is from 127.0.0.1, the peer


async def test_the_failed_login_log_line_records_the_client_address(aiohttp_client, tmp_path, caplog):
    client = await client_for(aiohttp_client, tmp_path, trusted_proxies=["127.0.0.1"])
    with caplog.at_level(logging.INFO, logger="web.auth"):
        async with browser_at(client, f"192.0.2.1, {ATTACKER}") as attacker:
            await login(attacker, "agent", "wrong-password")
    assert [r.getMessage() for r in caplog.records if r.name == "web.auth"] == [f"failed login for 'agent' from {ATTACKER}"]
