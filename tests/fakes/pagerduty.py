"""A fake PagerDuty Events API v2: validates events, keeps one open incident per dedup_key."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

SEVERITIES = {"critical", "error", "warning", "info"}
ACTIONS = {"trigger", "acknowledge", "resolve"}


@dataclass
class Incident:
    """One PagerDuty alert: opened by a trigger, closed by a resolve."""

    dedup_key: str
    routing_key: str
    summary: str
    severity: str
    triggers: int = 1
    status: str = "triggered"
    events: list[dict[str, Any]] = field(default_factory=list)


def validate(event: Any) -> list[str]:
    """The schema errors of one event, as PagerDuty would list them."""
    if not isinstance(event, dict):
        return ["Event object is invalid"]
    errors = []
    key = event.get("routing_key")
    if not isinstance(key, str) or len(key) != 32:
        errors.append("'routing_key' must be a 32 character string")
    action = event.get("event_action")
    if action not in ACTIONS:
        errors.append("'event_action' is invalid (must be one of trigger, acknowledge, resolve)")
    dedup = event.get("dedup_key")
    if dedup is not None and (not isinstance(dedup, str) or not dedup or len(dedup) > 255):
        errors.append("'dedup_key' must be a string of at most 255 characters")
    if action in ("acknowledge", "resolve") and dedup is None:
        errors.append("'dedup_key' is required for acknowledge and resolve")
    if action == "trigger":
        errors += _validate_payload(event.get("payload"))
        links = event.get("links", [])
        if not isinstance(links, list) or not all(isinstance(x, dict) and isinstance(x.get("href"), str)
                                                  for x in links):
            errors.append("'links' must be a list of objects with an 'href'")
    return errors


def _validate_payload(payload: Any) -> list[str]:
    if not isinstance(payload, dict):
        return ["'payload' is missing or not an object"]
    errors = []
    summary = payload.get("summary")
    if not isinstance(summary, str) or not summary or len(summary) > 1024:
        errors.append("'payload.summary' is required (1 to 1024 characters)")
    if not isinstance(payload.get("source"), str) or not payload["source"]:
        errors.append("'payload.source' is required")
    if payload.get("severity") not in SEVERITIES:
        errors.append("'payload.severity' must be one of critical, error, warning, info")
    if "custom_details" in payload and not isinstance(payload["custom_details"], dict):
        errors.append("'payload.custom_details' must be an object")
    return errors


class FakePagerDuty:
    """The aiohttp app; switches: `down` (drop connections), `fail_status` (e.g. 500), `throttle` (429)."""

    def __init__(self) -> None:
        self.down = False
        self.fail_status: int | None = None
        self.throttle = False
        self.retry_after = "7"
        self.events: list[dict[str, Any]] = []  # accepted events, in order
        self.requests = 0
        self.incidents: list[Incident] = []
        self.app = web.Application()
        self.app.router.add_post("/v2/enqueue", self.enqueue)

    def open_incident(self, dedup_key: str) -> Incident | None:
        """The open (triggered or acknowledged) incident for a dedup_key, if any."""
        for incident in reversed(self.incidents):
            if incident.dedup_key == dedup_key and incident.status != "resolved":
                return incident
        return None

    async def enqueue(self, request: web.Request) -> web.StreamResponse:
        """POST /v2/enqueue."""
        self.requests += 1
        if self.down:
            assert request.transport is not None
            request.transport.close()  # the client sees a dropped connection
            return web.Response(status=503)
        if self.throttle:
            answer = {"status": "throttle exceeded", "message": "Requests are arriving too quickly."}
            return web.json_response(answer, status=429, headers={"Retry-After": self.retry_after})
        if self.fail_status:
            return web.json_response({"status": "error"}, status=self.fail_status)
        try:
            event = await request.json()
        except ValueError:
            return _invalid(["Malformed JSON"])
        errors = validate(event)
        if errors:
            return _invalid(errors)
        self.events.append(event)
        dedup = event.get("dedup_key") or uuid.uuid4().hex
        self._apply(event, dedup)
        return web.json_response({"status": "success", "message": "Event processed", "dedup_key": dedup},
                                 status=202)

    def _apply(self, event: dict[str, Any], dedup: str) -> None:
        incident = self.open_incident(dedup)
        if incident is not None and incident.routing_key != event["routing_key"]:
            incident = None
        action = event["event_action"]
        if action == "trigger":
            payload = event["payload"]
            if incident is None:
                incident = Incident(dedup, event["routing_key"], payload["summary"], payload["severity"], 0)
                self.incidents.append(incident)
            incident.triggers += 1
            incident.summary, incident.severity = payload["summary"], payload["severity"]
        elif incident is not None:  # ack/resolve of an unknown key is dropped, as PagerDuty does
            incident.status = "acknowledged" if action == "acknowledge" else "resolved"
        if incident is not None:
            incident.events.append(event)


def _invalid(errors: list[str]) -> web.Response:
    return web.json_response({"status": "invalid event", "message": "Event object is invalid",
                              "errors": errors}, status=400)
