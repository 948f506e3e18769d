"""Notifiers: where ops and managers are told about incidents and SLA escalations."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

from carebox.errors import CareboxError
from carebox.ports import Notification, Notifier
from connectors.notify import email, pagerduty, slack, webhook

log = logging.getLogger(__name__)

# type -> from_config(options, session, environ=None); `options` is one `[[notifiers]]` table.
NOTIFIERS: dict[str, Callable[..., Notifier]] = {
    "webhook": webhook.from_config,
    "slack": slack.from_config,
    "pagerduty": pagerduty.from_config,
    "email": email.from_config,
}


class _Delivery(Protocol):
    receiver: str
    notification: Notification


async def send_all(
    notifiers: Mapping[str, Notifier], deliveries: Iterable[Any]
) -> list[tuple[Any, BaseException | None]]:
    """Send deliveries concurrently; return each with None or the error it raised (for Router.delivered)."""
    items = list(deliveries)

    async def one(d: _Delivery) -> BaseException | None:
        notifier = notifiers.get(d.receiver)
        if notifier is None:
            return KeyError(f"no notifier named {d.receiver!r}")
        try:
            await notifier.send(d.notification)
        except Exception as err:
            if not isinstance(err, CareboxError):
                log.exception("notifier %s crashed", d.receiver)
            return err
        return None

    results = await asyncio.gather(*(one(d) for d in items))
    return list(zip(items, results, strict=True))
