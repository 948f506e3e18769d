"""A connector's health as /healthz, /metrics and the admin page read it, each change logged once."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import ClassVar, NoReturn

from carebox.errors import AuthenticationFailed, ConnectorUnavailable, RateLimited
from connectors._http import Backoff


class Health:
    """Mixin: `last_error` and `last_ok_at`, kept by `_ok()` and `_failed(err)`; "unavailable" and "back" logged once."""

    health_log: ClassVar[logging.Logger]  # the connector module's logger, so that its level settings apply
    health_subject: str  # the words naming the instance in the log lines: "connector x1 is", "mail:"
    name: str
    last_error: str | None = None
    last_ok_at: datetime | None = None

    def _ok(self) -> None:
        if self.last_error is not None:
            self.health_log.info("%s back", self.health_subject)
        self.last_error = None
        self.last_ok_at = datetime.now(UTC)

    def _failed(self, err: BaseException) -> None:
        if self.last_error is None:
            self.health_log.warning("%s unavailable: %s", self.health_subject, err)
        self.last_error = str(err) or type(err).__name__

    async def _run_steps(
        self,
        step: Callable[[], Awaitable[None]],
        backoff: Backoff,
        sleep: Callable[[float], Awaitable[None]],
        every: float | None = None,
    ) -> NoReturn:
        """Run `step` until cancelled: unavailability and rate limits wait and retry, refused credentials end it."""
        while True:
            try:
                await step()
                if every is not None:  # a poll: the next one comes `every` seconds after a success
                    backoff.reset()
                    await sleep(every)
            except AuthenticationFailed as err:
                self._failed(err)
                self.health_log.error("connector %s needs new credentials: %s", self.name, err)
                raise
            except (ConnectorUnavailable, RateLimited) as err:
                self._failed(err)
                await sleep(backoff.delay(err))
