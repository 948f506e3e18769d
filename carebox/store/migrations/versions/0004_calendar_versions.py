"""calendar versions

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22 12:00:00
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

import carebox.models

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "calendarversion",
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("definition", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("created_at", carebox.models.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", "version"),
    )


def downgrade() -> None:
    op.drop_table("calendarversion")
