"""Automatic assignment glue: read agents and waiting work, plan with carebox.assignment, apply, announce."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import orjson
from aiohttp import web

from carebox import assignment
from carebox.store import actions, queries
from web.keys import engine_key, inbox_settings_key, now_key
from web.views import scope_of

log = logging.getLogger(__name__)
BATCH = 200


def to_agent(row: Mapping[str, Any], settings: assignment.AssignmentSettings, now: datetime) -> assignment.Agent:
    """An assignment.Agent from a queries.agent_profiles row."""
    return assignment.Agent(
        id=row["id"],
        online=assignment.is_online(bool(row["available"]), row["last_seen_at"], now, settings.presence_ttl_s),
        capacity=row["capacity"] if row["capacity"] is not None else settings.default_capacity,
        load=row["load"],
        languages=frozenset(orjson.loads(row["languages"] or "[]")),
        skills=frozenset(orjson.loads(row["skills"] or "[]")),
        last_assigned_at=row["last_assigned_at"],
        accounts=scope_of(row),
    )


async def auto_assign(app: web.Application, *, force: bool = False, by_user_id: int | None = None) -> int:
    """Give waiting conversations to online agents when automatic assignment is on (or forced); returns how many."""
    settings = app[inbox_settings_key].assignment
    if not (settings.auto or force):
        return 0
    from web.live import LiveEvent, announce

    engine, now = app[engine_key], app[now_key]()
    agents = [to_agent(r, settings, now) for r in await queries.agent_profiles(engine)]
    if settings.reassign_when_offline:
        offline = [a.id for a in agents if not a.online]
        orphans = assignment.orphaned(await queries.open_assignments(engine, offline), agents) if offline else []
        if orphans:
            await actions.release(engine, orphans, now, "assignee offline")
            agents = [to_agent(r, settings, now) for r in await queries.agent_profiles(engine)]
    if not any(a.online for a in agents):
        return 0
    work = [assignment.Work(r["id"], r["language"], assignment.skills_for(r["category"], orjson.loads(r["tags"] or "[]")),
                            (r["network"], r["account"]))
            for r in await queries.waiting_work(engine, BATCH)]
    plan = assignment.plan(settings.strategy, agents, work, now)
    done = await actions.apply_assignments(engine, plan, now, by_user_id)
    for cid, agent_id in plan.items():
        announce(app, LiveEvent("assign", cid, {"assignee_id": agent_id}))
    if done:
        log.info("assigned %d conversations automatically (%s)", done, settings.strategy.value)
    return done
