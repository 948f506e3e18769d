"""Operations endpoints: health and Prometheus metrics."""

from __future__ import annotations

import logging

import sqlalchemy as sa
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from web.keys import engine_key

log = logging.getLogger(__name__)


async def healthz(request: web.Request) -> web.Response:
    """200 {"status": "ok"} when the store answers, 503 otherwise."""
    try:
        async with request.app[engine_key].connect() as conn:
            await conn.execute(sa.text("SELECT 1"))
    except Exception as err:  # noqa: BLE001 - any store failure means not healthy
        log.warning("health check failed: %s", err)
        return web.json_response({"status": "error", "store": "unavailable"}, status=503)
    return web.json_response({"status": "ok"})


async def metrics(request: web.Request) -> web.Response:
    """Prometheus text exposition."""
    return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})
