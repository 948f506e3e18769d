"""Typed application keys: every resource the web app reads, in one place."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, MutableMapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from carebox.clocks import ClockBook
from carebox.config import Settings
from carebox.escalation import EditFollower
from carebox.pipeline import Pipeline
from carebox.ports import Connector

if TYPE_CHECKING:
    from web.live import Broadcaster, CountsCache, Presence
    from web.settings import InboxSettings

settings_key = web.AppKey("settings", Settings)
engine_key = web.AppKey("engine", AsyncEngine)
pipeline_key = web.AppKey("pipeline", Pipeline)
clocks_key = web.AppKey("clocks", ClockBook)
connectors_key = web.AppKey("connectors", MutableMapping[str, Connector])
now_key = web.AppKey("now", Callable[[], datetime])
session_secret_key = web.AppKey("session_secret", bytes)
broadcaster_key: web.AppKey[Broadcaster] = web.AppKey("broadcaster")
presence_key: web.AppKey[Presence] = web.AppKey("presence")
counts_cache_key: web.AppKey[CountsCache] = web.AppKey("counts_cache")
inbox_settings_key: web.AppKey[InboxSettings] = web.AppKey("inbox_settings")
tasks_key = web.AppKey("tasks", set[asyncio.Task[Any]])
user_key = web.RequestKey("user", dict)
# callables told about SLA warnings, breaches and escalations as they fire (set by the composition root)
sla_listeners_key = web.AppKey("sla_listeners", list)
# applies calendars and policies saved from the web in this process and tells the others (composition root)
sla_edits_key = web.AppKey("sla_edits", EditFollower)
