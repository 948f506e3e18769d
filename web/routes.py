"""Every route of the web app, in one table."""

from __future__ import annotations

from aiohttp import web

from web import (
    admin,
    admin_sla,
    api,
    auth,
    compose,
    display_names,
    incidents,
    live,
    me,
    ops,
    views,
)


def add_routes(app: web.Application) -> None:
    """Register pages, actions, live updates, admin pages and the JSON API."""
    display_names.setup(app)
    r = app.router
    r.add_get("/login", auth.login_form)
    r.add_post("/login", auth.login)
    r.add_post("/logout", auth.logout)
    r.add_get("/healthz", ops.healthz)
    r.add_get("/metrics", ops.metrics)
    r.add_get("/", views.inbox)
    r.add_get("/events", live.events)
    r.add_get("/conversations/{id}", views.conversation)
    # actions on a conversation answer 404 outside the user's accounts (the page itself reads through its scope)
    r.add_post("/conversations/{id}/reply", views.visible_only(compose.reply))
    r.add_post("/conversations/{id}/assign", views.visible_only(views.assign))
    r.add_post("/conversations/{id}/status", views.visible_only(views.status))
    r.add_post("/conversations/{id}/notes", views.visible_only(views.note))
    r.add_post("/conversations/{id}/tags", views.visible_only(views.tags))
    r.add_post("/conversations/{id}/presence", views.visible_only(live.presence))
    r.add_get("/me", me.page)
    r.add_post("/me", me.save)
    r.add_post("/me/tokens", me.create_token)
    r.add_post("/me/tokens/{id}/revoke", me.revoke_token)
    incidents.add_routes(app)
    admin.add_routes(app)
    admin_sla.add_routes(app)
    api.add_routes(app)
