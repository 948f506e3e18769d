"""HMAC-SHA256 signatures for webhooks, in and out: `t=<unix seconds>,v1=<hex>` over `t + "." + body`."""

from __future__ import annotations

import hashlib
import hmac

SIGNATURE_HEADER = "X-Carebox-Signature"


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """The signature header value for `body` sent at `timestamp`."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify(secret: str, header: str | None, body: bytes, now: float, tolerance_s: float = 300.0) -> str | None:
    """None when `header` is a valid, fresh signature of `body`; otherwise the reason it is not."""
    if not header:
        return "missing signature"
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    raw = parts.get("t", "")
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 12):
        return "malformed signature header"
    timestamp = int(raw)
    if abs(now - timestamp) > tolerance_s:
        return "signature timestamp outside tolerance (replay?)"
    expected = sign(secret, body, timestamp).split("v1=", 1)[1]
    if not any(hmac.compare_digest(expected, v) for k, v in parts.items() if k == "v1"):
        return "signature does not match"
    return None
