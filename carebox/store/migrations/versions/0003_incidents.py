"""incidents and their delivery log

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 10:45:00
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

import carebox.models

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_S = sqlmodel.sql.sqltypes.AutoString
_T = carebox.models.UTCDateTime


def upgrade() -> None:
    op.create_table(
        "incident",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account", _S(), nullable=False),
        sa.Column("cluster_key", _S(), nullable=True),
        sa.Column("title", _S(), nullable=False),
        sa.Column("state", _S(), nullable=False),
        sa.Column("severity", _S(), nullable=False),
        sa.Column("source", _S(), nullable=False),
        sa.Column("dedup_key", _S(), nullable=False),
        sa.Column("started_at", _T(timezone=True), nullable=False),
        sa.Column("detected_at", _T(timezone=True), nullable=False),
        sa.Column("acknowledged_at", _T(timezone=True), nullable=True),
        sa.Column("resolved_at", _T(timezone=True), nullable=True),
        sa.Column("peak_count", sa.Integer(), nullable=False),
        sa.Column("baseline", sa.Float(), nullable=False),
        sa.Column("reason", _S(), nullable=False),
        sa.Column("series", _S(), nullable=False),
        sa.Column("merged_into_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["merged_into_id"], ["incident.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("dedup_key"),
    )
    op.create_index("ix_incident_account_state", "incident", ["account", "state"], unique=False)
    op.create_table(
        "incidentdelivery",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("incident_id", sa.Integer(), nullable=True),
        sa.Column("at", _T(timezone=True), nullable=False),
        sa.Column("receiver", _S(), nullable=False),
        sa.Column("action", _S(), nullable=False),
        sa.Column("dedup_key", _S(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("outcome", _S(), nullable=False),
        sa.Column("error", _S(), nullable=False),
        sa.ForeignKeyConstraint(["incident_id"], ["incident.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_incidentdelivery_incident_id", "incidentdelivery", ["incident_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_incidentdelivery_incident_id", table_name="incidentdelivery")
    op.drop_table("incidentdelivery")
    op.drop_index("ix_incident_account_state", table_name="incident")
    op.drop_table("incident")
