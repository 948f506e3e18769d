"""report facts: per-conversation report values, additive cells per local day, refresh watermarks

Revision ID: 0008_report_facts
Revises: 0007
Create Date: 2026-11-22 16:00:00
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

import carebox.models

revision = "0008_report_facts"
down_revision = "0007"
branch_labels = None
depends_on = None

ROWID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # a BIGINT key on SQLite would not be the rowid
# (group column or "" for all, walked column): index (group, column, day, inc), partial on a nullable column
# (but for the day walk of wall_s, which also finds the rows of a day), as carebox.models declares
WALKS = {
    "": ("wall_s", "business_s", "resolution_s", "res_business_s", "customer_id"),
    **{d: ("wall_s", "business_s", "resolution_s", "res_business_s", "customer_id")
       for d in ("account", "network", "agent", "priority", "category", "language")},
    "day": ("wall_s", "business_s"), "week": ("wall_s", "business_s"), "how": ("wall_s",),
}


def upgrade() -> None:
    op.create_table('conversation_facts',
    sa.Column('conversation_id', ROWID, autoincrement=False, nullable=False),
    sa.Column('first_at', carebox.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('day', sa.Integer(), nullable=False),
    sa.Column('week', sa.Integer(), nullable=False),
    sa.Column('how', sa.Integer(), nullable=False),
    sa.Column('off', sa.Integer(), nullable=False),
    sa.Column('account', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('network', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('agent', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('priority', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('category', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('language', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('customer_id', sa.BigInteger(), nullable=False),
    sa.Column('incident_id', sa.BigInteger(), nullable=True),
    sa.Column('inc', sa.Integer(), nullable=False),
    sa.Column('answered', sa.Integer(), nullable=False),
    sa.Column('met', sa.Integer(), nullable=False),
    sa.Column('late', sa.Integer(), nullable=False),
    sa.Column('open_contract', sa.Integer(), nullable=False),
    sa.Column('within', sa.Integer(), nullable=False),
    sa.Column('wall_s', sa.Float(), nullable=True),
    sa.Column('business_s', sa.Float(), nullable=True),
    sa.Column('pending_due', carebox.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('unanswered_at', carebox.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('sentiment_open', sa.Float(), nullable=True),
    sa.Column('sentiment_last', sa.Float(), nullable=True),
    sa.Column('resolution_s', sa.Float(), nullable=True),
    sa.Column('res_business_s', sa.Float(), nullable=True),
    sa.Column('nrt_n', sa.Integer(), nullable=False),
    sa.Column('nrt_wall_sum', sa.Float(), nullable=True),
    sa.Column('nrt_business_sum', sa.Float(), nullable=True),
    sa.PrimaryKeyConstraint('conversation_id')
    )
    op.create_table('report_cells',
    sa.Column('dim', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('value', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('day', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('inc', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('conversations', sa.Integer(), nullable=False),
    sa.Column('answered', sa.Integer(), nullable=False),
    sa.Column('n_wall', sa.Integer(), nullable=False),
    sa.Column('wall_sum', sa.Float(), nullable=True),
    sa.Column('n_business', sa.Integer(), nullable=False),
    sa.Column('business_sum', sa.Float(), nullable=True),
    sa.Column('met', sa.Integer(), nullable=False),
    sa.Column('late', sa.Integer(), nullable=False),
    sa.Column('open_contract', sa.Integer(), nullable=False),
    sa.Column('within', sa.Integer(), nullable=False),
    sa.Column('off', sa.Integer(), nullable=False),
    sa.Column('off_answered', sa.Integer(), nullable=False),
    sa.Column('off_wait', sa.Float(), nullable=True),
    sa.Column('wait_outside', sa.Float(), nullable=True),
    sa.Column('sent_open_n', sa.Integer(), nullable=False),
    sa.Column('sent_open_sum', sa.Float(), nullable=True),
    sa.Column('sent_last_n', sa.Integer(), nullable=False),
    sa.Column('sent_last_sum', sa.Float(), nullable=True),
    sa.Column('resolved', sa.Integer(), nullable=False),
    sa.Column('resolution_sum', sa.Float(), nullable=True),
    sa.Column('res_business_n', sa.Integer(), nullable=False),
    sa.Column('res_business_sum', sa.Float(), nullable=True),
    sa.Column('nrt_n', sa.Integer(), nullable=False),
    sa.Column('nrt_wall_sum', sa.Float(), nullable=True),
    sa.Column('nrt_business_sum', sa.Float(), nullable=True),
    sa.Column('net_min', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('net_max', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.PrimaryKeyConstraint('dim', 'value', 'day', 'inc')
    )
    op.create_table('report_facts_state',
    sa.Column('id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('fingerprint', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('conversation_wm', sa.BigInteger(), nullable=False),
    sa.Column('mention_wm', sa.BigInteger(), nullable=False),
    sa.Column('slaevent_wm', sa.BigInteger(), nullable=False),
    sa.Column('auditevent_wm', sa.BigInteger(), nullable=False),
    sa.Column('conversations', sa.BigInteger(), nullable=False),
    sa.Column('refreshed_at', carebox.models.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('report_next_responses',
    sa.Column('clock_id', ROWID, autoincrement=False, nullable=False),
    sa.Column('conversation_id', sa.BigInteger(), nullable=False),
    sa.Column('wall_s', sa.Float(), nullable=True),
    sa.Column('business_s', sa.Float(), nullable=True),
    sa.PrimaryKeyConstraint('clock_id')
    )
    op.create_index('ix_report_next_responses_conversation_id', 'report_next_responses', ['conversation_id'], unique=False)
    for dim, cols in WALKS.items():
        for col in cols:
            op.create_index(f"ix_cf_{dim or 'all'}_{col}", "conversation_facts",
                            [c for c in dict.fromkeys((dim, col, "day", "inc")) if c], unique=False,
                            sqlite_where=None if col == "customer_id" or (dim, col) == ("day", "wall_s")
                            else sa.text(f"{col} IS NOT NULL"))
    for col in ("pending_due", "unanswered_at"):
        op.create_index(f"ix_cf_{col}", "conversation_facts", [col], unique=False, sqlite_where=sa.text(f"{col} IS NOT NULL"))
    op.create_index("ix_cf_incident", "conversation_facts", ["incident_id"], unique=False,
                    sqlite_where=sa.text("incident_id IS NOT NULL"))


def downgrade() -> None:
    op.drop_table("report_next_responses")
    op.drop_table("report_facts_state")
    op.drop_table("report_cells")
    op.drop_table("conversation_facts")
