"""The /api/v1 OpenAPI document, exercised with schemathesis against the whole app on a local port: no 5xx."""

from __future__ import annotations

import asyncio
import json
import threading
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
import schemathesis
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode

from carebox.ports import InboundMention, IngestBatch, OutboundReply, SentReply
from carebox.store import actions, incidents
from tests.security import add_users, build, security_settings
from web import auth
from web.keys import connectors_key, engine_key, pipeline_key

CASES_PER_OPERATION = 60  # x 17 operations x 2 modes (valid and invalid input) = 2,040 requests


class RecordingConnector:
    """A connector double that accepts every reply, like the simulator."""

    name, network, account = "sim", "x", "acme"

    def __init__(self) -> None:
        self.posted: list[OutboundReply] = []

    async def run(self, sink: Any, cursor: Any) -> None:  # pragma: no cover - not started here
        return None

    async def send_reply(self, reply: OutboundReply) -> SentReply:
        self.posted.append(reply)
        return SentReply(external_id=f"reply-{len(self.posted)}", created_at=datetime.now(UTC))


class Served:
    """The whole app on a real local port, run by its own event loop in a thread; seeded with users and mentions."""

    def __init__(self, tmp: Path) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.token = auth.new_token()
        self.base = self._run(self._start(tmp))

    def _run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=60)

    async def _start(self, tmp: Path) -> str:
        app = await build(security_settings(tmp))
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        app[connectors_key]["sim"] = RecordingConnector()
        ids = await add_users(app)
        now = datetime.now(UTC)
        await actions.add_token(app[engine_key], ids["manager"], "contract", auth.token_hash(self.token), now)
        mentions = tuple(InboundMention(network="x", account="acme", external_id=f"m{i}", author_id=f"u{i % 3}",
                                        author_handle=f"u{i % 3}", text=f"my line is down {i}",
                                        created_at=now - timedelta(minutes=30 - i)) for i in range(6))
        await app[pipeline_key].ingest([IngestBatch("sim", mentions)], now)
        await incidents.open_by_hand(app[engine_key], "acme", None, "line down", now)  # incident 1 links them
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return f"http://127.0.0.1:{port}"

    def close(self) -> None:
        self._run(self.runner.cleanup())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> Any:
    server = Served(tmp_path_factory.mktemp("contract"))
    yield server
    server.close()


def _document(served: Served) -> dict[str, Any]:
    request = urllib.request.Request(served.base + "/api/v1/openapi.json", headers={"Authorization": f"Bearer {served.token}"})
    with urllib.request.urlopen(request, timeout=10) as resp:
        return orjson.loads(resp.read())


def test_the_openapi_document_is_served_and_valid(served):
    schema = schemathesis.openapi.from_dict(_document(served))
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {f"{op.method.upper()} {op.path}" for op in operations} == {
        "GET /api/v1/conversations", "GET /api/v1/conversations/{id}", "GET /api/v1/conversations/{id}/mentions",
        "POST /api/v1/conversations/{id}/replies", "PUT /api/v1/conversations/{id}/assignment",
        "GET /api/v1/incidents", "POST /api/v1/incidents", "GET /api/v1/incidents/{id}",
        "POST /api/v1/incidents/{id}/acknowledge", "POST /api/v1/incidents/{id}/resolve", "PUT /api/v1/incidents/{id}/policy",
        "POST /api/v1/incidents/{id}/merge", "POST /api/v1/incidents/{id}/split",
        "PUT /api/v1/incidents/{id}/conversations/{conversation_id}",
        "DELETE /api/v1/incidents/{id}/conversations/{conversation_id}",
        "GET /api/v1/incidents/{id}/acknowledgement", "POST /api/v1/incidents/{id}/acknowledgement"}


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_generated_request_gets_a_server_error(served, mode):
    schema = schemathesis.openapi.from_dict(_document(served))
    headers = {"Authorization": f"Bearer {served.token}"}
    errors: list[str] = []
    statuses: dict[int, int] = {}
    for result in schema.get_all_operations():
        op = result.ok()

        @settings(max_examples=CASES_PER_OPERATION, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(case=op.as_strategy(generation_mode=mode))
        def exercise(case: Any) -> None:
            response = case.call(base_url=served.base, headers=headers, timeout=10)
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
            if response.status_code >= 500:
                errors.append(f"{case.method} {case.formatted_path} {case.query} {case.body!r} -> "
                              f"{response.status_code} {response.text[:200]}")

        exercise()
    print(f"{mode.value}: statuses {sorted(statuses.items())}")
    assert sum(statuses.values()) >= 100
    assert errors == []


def _call(served: Served, method: str, path: str, body: dict[str, Any] | None = None) -> int:
    data = json.dumps(body).encode() if body is not None else None  # orjson refuses integers over 64 bits
    request = urllib.request.Request(served.base + path, data=data, method=method,
                                     headers={"Authorization": f"Bearer {served.token}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return resp.status
    except urllib.error.HTTPError as err:
        return err.code


@pytest.mark.parametrize(("method", "path", "body", "status"), [
    ("GET", f"/api/v1/conversations/{2**64}", None, 404),
    ("GET", f"/api/v1/conversations/{2**64}/mentions", None, 404),
    ("GET", "/api/v1/conversations/%C2%B2", None, 400),  # "²": isdigit() but not int()
    ("PUT", "/api/v1/conversations/1/assignment", {"assignee_id": 2**63}, 404),  # fits JSON parsing, not BIGINT
    ("PUT", "/api/v1/conversations/1/assignment", {"assignee_id": 2**64}, 400),  # beyond what orjson parses
    ("POST", "/api/v1/conversations/1/replies", {"text": "hi", "seen_mention_id": 2**63}, 400),
])
def test_ids_beyond_the_store_integer_are_refused_not_a_server_error(served, method, path, body, status):
    assert _call(served, method, path, body) == status
