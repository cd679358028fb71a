"""firewall: firewall_decision_days, the daily roll-up of pruned marks and blocks

The retention prune deleted decisions and with them the interception statistics of every day
older than the retention period. The prune now adds each deleted batch to this table, per
(UTC day, region, kind, action), in the same transaction. Decisions pruned before this revision
are gone; nothing to backfill (the kept log stays where it is and is counted from there).

Revision ID: firewall_0002
Revises: firewall_0001
Create Date: 2026-11-28
"""
import sqlalchemy as sa
from alembic import op

revision = 'firewall_0002'
down_revision = 'firewall_0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('firewall_decision_days',
    sa.Column('day', sa.DateTime(timezone=True), nullable=False),
    sa.Column('region', sa.String(length=80), nullable=False),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('action', sa.String(length=8), nullable=False),
    sa.Column('count', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('day', 'region', 'kind', 'action', name=op.f('pk_firewall_decision_days'))
    )


def downgrade() -> None:
    op.drop_table('firewall_decision_days')
