"""A fake Slack incoming webhook: checks the message shape and answers "ok" as Slack does."""

from __future__ import annotations

from typing import Any

from aiohttp import web

BLOCK_TYPES = {"header", "section", "actions", "context", "divider", "image"}
PATH = "/services/T000/B000/XXXX"


def problems(message: Any) -> str | None:
    """Slack's error code for a bad message ("no_text", "invalid_blocks"), or None."""
    if not isinstance(message, dict):
        return "invalid_payload"
    if not isinstance(message.get("text"), str) or not message["text"]:
        return "no_text"
    blocks = message.get("blocks", [])
    if not isinstance(blocks, list) or len(blocks) > 50:
        return "invalid_blocks"
    for block in blocks:
        if not isinstance(block, dict) or block.get("type") not in BLOCK_TYPES:
            return "invalid_blocks"
        if block["type"] == "header":
            text = block.get("text", {})
            if text.get("type") != "plain_text" or not 0 < len(text.get("text", "")) <= 150:
                return "invalid_blocks"
        if block["type"] == "section":
            fields = block.get("fields", [])
            if "text" not in block and not fields or len(fields) > 10:
                return "invalid_blocks"
            if any(len(f.get("text", "")) > 2000 for f in fields):
                return "invalid_blocks"
        if block["type"] == "actions":
            for element in block.get("elements", []):
                if element.get("type") == "button" and not str(element.get("url", "")).startswith("http"):
                    return "invalid_blocks"
    return None


class FakeSlack:
    """The aiohttp app; switches: `down`, `fail_status`, `throttle`; accepted messages in `posted`."""

    def __init__(self) -> None:
        self.down = False
        self.fail_status: int | None = None
        self.throttle = False
        self.posted: list[dict[str, Any]] = []
        self.app = web.Application()
        self.app.router.add_post(PATH, self.post)

    async def post(self, request: web.Request) -> web.StreamResponse:
        """POST to the webhook path."""
        if self.down:
            assert request.transport is not None
            request.transport.close()
            return web.Response(status=503)
        if self.throttle:
            return web.Response(status=429, text="rate_limited", headers={"Retry-After": "30"})
        if self.fail_status:
            return web.Response(status=self.fail_status, text="internal_error")
        try:
            message = await request.json()
        except ValueError:
            return web.Response(status=400, text="invalid_payload")
        problem = problems(message)
        if problem:
            return web.Response(status=400, text=problem)
        self.posted.append(message)
        return web.Response(text="ok")
