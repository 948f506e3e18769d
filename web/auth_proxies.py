"""The client's address behind trusted reverse proxies ([web] trusted_proxies and X-Forwarded-For)."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

from aiohttp import web

from web.keys import settings_key

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def _address(text: str | None) -> IPAddress | None:
    try:
        address = ipaddress.ip_address((text or "").strip())
    except ValueError:
        return None
    mapped = getattr(address, "ipv4_mapped", None)  # a dual-stack listener sees 127.0.0.1 as ::ffff:127.0.0.1
    return mapped or address


def _trusted(address: IPAddress | None, proxies: Sequence[IPNetwork]) -> bool:
    return address is not None and any(address in network for network in proxies)


def client_address(peer: str | None, forwarded_for: Iterable[str], proxies: Sequence[IPNetwork]) -> str | None:
    """The client's address: the peer, unless it is a trusted proxy; then the right-most X-Forwarded-For hop
    that is not itself a trusted proxy."""
    # Only the right-most hops were written by our proxies: anything to their left came from the client, who can
    # put any address there. So walk from the right and stop at the first hop no trusted proxy vouches for.
    if not _trusted(_address(peer), proxies):
        return peer
    hops = [hop for header in forwarded_for for hop in header.split(",")]
    client = peer
    for hop in reversed(hops):
        address = _address(hop)
        if address is None:
            return client  # not an address: the last proxy that passed it is all we know
        client = str(address)
        if not _trusted(address, proxies):
            return client
    return client  # every hop is a trusted proxy: the left-most one is the client


def request_client(request: web.Request) -> str | None:
    """The address of whoever sent `request`, with [web] trusted_proxies applied."""
    proxies = request.config_dict[settings_key].web.trusted_proxies
    return client_address(request.remote, request.headers.getall("X-Forwarded-For", []), proxies)
