"""firewall tables: firewall_decisions, firewall_decision_counts

Revision ID: firewall_0001
Revises: 0001_core
"""
from alembic import op
import sqlalchemy as sa


revision = 'firewall_0001'
down_revision = '0001_core'
branch_labels = ('firewall',)
depends_on = None


def upgrade() -> None:
    op.create_table('firewall_decisions',
    sa.Column('decision_id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('decided_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('action', sa.String(length=8), nullable=False),
    sa.Column('source', sa.String(length=64), nullable=False),
    sa.Column('target', sa.String(length=32), nullable=False),
    sa.Column('region', sa.String(length=80), nullable=False),
    sa.Column('reasons', sa.JSON(), nullable=False),
    sa.Column('score', sa.Float(), nullable=False),
    sa.Column('language', sa.String(length=16), nullable=True),
    sa.PrimaryKeyConstraint('decision_id', name=op.f('pk_firewall_decisions'))
    )
    with op.batch_alter_table('firewall_decisions', schema=None) as batch_op:
        batch_op.create_index('ix_firewall_decisions_decided_at', ['decided_at'], unique=False)
        batch_op.create_index('ix_firewall_decisions_action', ['action', 'kind', 'decided_at'], unique=False)
    op.create_table('firewall_decision_counts',
    sa.Column('minute', sa.DateTime(timezone=True), nullable=False),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('action', sa.String(length=8), nullable=False),
    sa.Column('count', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('minute', 'kind', 'action', name=op.f('pk_firewall_decision_counts'))
    )


def downgrade() -> None:
    op.drop_table('firewall_decision_counts')
    with op.batch_alter_table('firewall_decisions', schema=None) as batch_op:
        batch_op.drop_index('ix_firewall_decisions_action')
        batch_op.drop_index('ix_firewall_decisions_decided_at')
    op.drop_table('firewall_decisions')
