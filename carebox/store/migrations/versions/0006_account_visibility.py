"""account visibility: the accounts an agent may see (empty: all)

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22 13:10:00
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("user") as batch:
        batch.add_column(sa.Column("accounts", sqlmodel.sql.sqltypes.AutoString(), nullable=False, server_default="[]"))


def downgrade() -> None:
    with op.batch_alter_table("user") as batch:
        batch.drop_column("accounts")
