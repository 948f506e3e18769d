"""incident SLA policy, split incidents, clocks moved to another target

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22 13:20:00
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

import carebox.models

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_T = carebox.models.UTCDateTime


def upgrade() -> None:
    op.add_column("slaclock", sa.Column("rebased_at", _T(timezone=True), nullable=True))
    op.add_column("slaclock", sa.Column("carried_s", sa.Float(), nullable=True))
    op.add_column("incident", sa.Column("policy", sqlmodel.sql.sqltypes.AutoString(), nullable=True))
    op.add_column("incident", sa.Column("policy_at", _T(timezone=True), nullable=True))
    op.add_column("incident", sa.Column("policy_until", _T(timezone=True), nullable=True))
    op.add_column("incident", sa.Column("split_from_id", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("incident") as batch:
        for name in ("split_from_id", "policy_until", "policy_at", "policy"):
            batch.drop_column(name)
    with op.batch_alter_table("slaclock") as batch:
        batch.drop_column("carried_s")
        batch.drop_column("rebased_at")
