"""failed logins shared by every web process (login throttling)

Revision ID: 0009
Revises: 0008_report_facts
Create Date: 2026-11-22 17:05:00
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

import carebox.models

revision = "0009"
down_revision = "0008_report_facts"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "loginfailure",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("at", carebox.models.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_loginfailure_key", "loginfailure", ["key"])
    op.create_index("ix_loginfailure_at", "loginfailure", ["at"])


def downgrade() -> None:
    op.drop_index("ix_loginfailure_at", "loginfailure")
    op.drop_index("ix_loginfailure_key", "loginfailure")
    op.drop_table("loginfailure")
