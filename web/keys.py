"""Typed application keys: every resource the web app reads, in one place."""

from __future__ import annotations

from collections.abc import Callable, MutableMapping
from datetime import datetime

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from carebox.clocks import ClockBook
from carebox.config import Settings
from carebox.pipeline import Pipeline
from carebox.ports import Connector

settings_key = web.AppKey("settings", Settings)
engine_key = web.AppKey("engine", AsyncEngine)
pipeline_key = web.AppKey("pipeline", Pipeline)
clocks_key = web.AppKey("clocks", ClockBook)
connectors_key = web.AppKey("connectors", MutableMapping[str, Connector])
now_key = web.AppKey("now", Callable[[], datetime])
session_secret_key = web.AppKey("session_secret", bytes)
throttle_key = web.AppKey("throttle", dict)
user_key = web.RequestKey("user", dict)
