"""Which connector answers a conversation, and whether its reply can be public or private."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from carebox.ports import Connector


def connector_for(connectors: Mapping[str, Connector], conv: Mapping[str, Any]) -> Connector | None:
    """The connector that answers a conversation: the one it came from, else one on its network and account."""
    return connectors.get(conv["source"]) or next(
        (c for c in connectors.values() if c.network == conv["network"] and c.account == conv["account"]), None)


def reply_kinds(connectors: Mapping[str, Connector], conv: Mapping[str, Any]) -> dict[str, bool]:
    """What the composer offers: `choice` between a public reply and a private message when the network allows
    both and the customer wrote in public (a private message is only answered privately), and the default,
    `public`, which is the kind of the customer's last message."""
    last = next((m for m in reversed(conv.get("mentions") or []) if m.get("direction") == "in"), None)
    public = bool(last["public"]) if last is not None else bool(conv.get("public", True))
    connector = connector_for(connectors, conv)
    both = public and bool(getattr(connector, "private_replies", False))
    return {"choice": both, "public": public}


def chosen_kind(value: object) -> bool | None:
    """The `kind` a form or a request asks for: True (public), False (private) or None (the default)."""
    return {"public": True, "private": False}.get(str(value)) if value not in (None, "") else None
