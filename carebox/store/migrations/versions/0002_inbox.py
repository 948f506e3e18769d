"""inbox: canned responses, agent profiles, API tokens, dead-letter handling, view indexes

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 10:40:00
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

import carebox.models

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_S = sqlmodel.sql.sqltypes.AutoString
_T = carebox.models.UTCDateTime


def upgrade() -> None:
    op.create_table(
        "cannedresponse",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("title", _S(), nullable=False),
        sa.Column("language", _S(), nullable=False),
        sa.Column("body", _S(), nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.Column("created_at", _T(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["created_by"], ["user.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_cannedresponse_language", "cannedresponse", ["language"])
    op.create_table(
        "agentprofile",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("available", sa.Boolean(), nullable=False),
        sa.Column("capacity", sa.Integer(), nullable=False),
        sa.Column("languages", _S(), nullable=False),
        sa.Column("skills", _S(), nullable=False),
        sa.Column("last_seen_at", _T(timezone=True), nullable=True),
        sa.Column("last_assigned_at", _T(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["user.id"]),
        sa.PrimaryKeyConstraint("user_id"),
    )
    op.create_table(
        "apitoken",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("name", _S(), nullable=False),
        sa.Column("token_hash", _S(), nullable=False),
        sa.Column("created_at", _T(timezone=True), nullable=False),
        sa.Column("last_used_at", _T(timezone=True), nullable=True),
        sa.Column("revoked_at", _T(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["user.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_hash"),
    )
    op.create_index("ix_apitoken_user_id", "apitoken", ["user_id"])
    op.create_table(
        "deadletterhandling",
        sa.Column("dead_letter_id", sa.Integer(), nullable=False),
        sa.Column("outcome", _S(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("at", _T(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["dead_letter_id"], ["deadletter.id"]),
        sa.ForeignKeyConstraint(["user_id"], ["user.id"]),
        sa.PrimaryKeyConstraint("dead_letter_id"),
    )
    op.create_index("ix_conversation_status_assignee_due", "conversation", ["status", "assignee_id", "due_business"])
    op.create_index("ix_conversation_status_resolved", "conversation", ["status", "resolved_at"])
    op.create_index("ix_conversation_incident", "conversation", ["incident_id", "status"])


def downgrade() -> None:
    op.drop_index("ix_conversation_incident", "conversation")
    op.drop_index("ix_conversation_status_resolved", "conversation")
    op.drop_index("ix_conversation_status_assignee_due", "conversation")
    op.drop_table("deadletterhandling")
    op.drop_index("ix_apitoken_user_id", "apitoken")
    op.drop_table("apitoken")
    op.drop_table("agentprofile")
    op.drop_index("ix_cannedresponse_language", "cannedresponse")
    op.drop_table("cannedresponse")
