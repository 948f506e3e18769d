"""A webhook receiver that verifies carebox's signature before accepting anything."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import orjson
from aiohttp import web

from connectors.notify.webhook import SIGNATURE_HEADER, signature_problem

PATH = "/hooks/carebox"


class WebhookReceiver:
    """The aiohttp app: 401 with the reason on a bad or stale signature, 204 otherwise."""

    def __init__(self, secret: str, clock: Callable[[], float] = time.time, tolerance_s: float = 300.0) -> None:
        self.secret = secret
        self.clock = clock
        self.tolerance_s = tolerance_s
        self.fail_status: int | None = None
        self.received: list[dict[str, Any]] = []
        self.refused: list[str] = []
        self.app = web.Application()
        self.app.router.add_post(PATH, self.post)

    async def post(self, request: web.Request) -> web.Response:
        """POST a notification."""
        if self.fail_status:
            return web.Response(status=self.fail_status)
        body = await request.read()
        problem = signature_problem(self.secret, request.headers.get(SIGNATURE_HEADER), body, self.clock(),
                                    self.tolerance_s)
        if problem:
            self.refused.append(problem)
            return web.Response(status=401, text=problem)
        self.received.append(orjson.loads(body))
        return web.Response(status=204)
