"""every window of an incident's SLA policy, with who switched it on and off

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-22 18:40:00
"""

import json

import sqlalchemy as sa
import sqlmodel
from alembic import op

import carebox.models

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

_T = carebox.models.UTCDateTime
_INCIDENT = sa.table("incident", sa.column("id", sa.Integer()), sa.column("policy", sa.String()),
                     sa.column("policy_at", _T()), sa.column("policy_until", _T()))
_AUDIT = sa.table("auditevent", sa.column("at", _T()), sa.column("user_id", sa.Integer()),
                  sa.column("action", sa.String()), sa.column("detail", sa.String()))


def upgrade() -> None:
    windows = op.create_table(
        "incidentpolicywindow",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("incident_id", sa.Integer(), nullable=False),
        sa.Column("policy", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("started_at", _T(timezone=True), nullable=False),
        sa.Column("ended_at", _T(timezone=True), nullable=True),
        sa.Column("on_user_id", sa.Integer(), nullable=True),
        sa.Column("off_user_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["incident_id"], ["incident.id"]),
        sa.ForeignKeyConstraint(["on_user_id"], ["user.id"]),
        sa.ForeignKeyConstraint(["off_user_id"], ["user.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_incidentpolicywindow_incident_id", "incidentpolicywindow", ["incident_id"], unique=False)
    rows = _existing_windows(op.get_bind())
    if rows:
        op.bulk_insert(windows, rows)


def _existing_windows(bind: sa.Connection) -> list[dict[str, object]]:
    """One window per incident that has a policy (its last one: earlier ones were overwritten), with who switched
    it on and off when the audit log says so (an audit event of the same incident at the same instant)."""
    who: dict[tuple[str, int, object], int | None] = {}
    audit = sa.select(_AUDIT).where(_AUDIT.c.action.in_(("incident.policy_on", "incident.policy_off")))
    for event in bind.execute(audit):
        try:
            incident_id = json.loads(event.detail or "{}").get("incident_id")
        except ValueError:
            continue
        if isinstance(incident_id, int):
            who[(event.action, incident_id, event.at)] = event.user_id
    return [{"incident_id": r.id, "policy": r.policy, "started_at": r.policy_at, "ended_at": r.policy_until,
             "on_user_id": who.get(("incident.policy_on", r.id, r.policy_at)),
             "off_user_id": who.get(("incident.policy_off", r.id, r.policy_until))}
            for r in bind.execute(sa.select(_INCIDENT).where(_INCIDENT.c.policy.is_not(None),
                                                            _INCIDENT.c.policy_at.is_not(None)))]


def downgrade() -> None:
    op.drop_index("ix_incidentpolicywindow_incident_id", "incidentpolicywindow")
    op.drop_table("incidentpolicywindow")
