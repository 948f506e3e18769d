"""Operations endpoints: health and Prometheus metrics."""

from __future__ import annotations

import logging

import sqlalchemy as sa
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from carebox.metrics import CONNECTOR_UP
from web.keys import connectors_key, engine_key

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
    """Prometheus text exposition; connector health is read from the connectors at scrape time."""
    for name, connector in request.app.get(connectors_key, {}).items():
        CONNECTOR_UP.labels(connector=name).set(0 if getattr(connector, "last_error", None) else 1)
    return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})
