"""core: index quarantine by origin and row number, so a rerun file's bad rows are found, not stored twice

Revision ID: 0002_core
Revises: 0001_core
"""
from alembic import op


revision = '0002_core'
down_revision = '0001_core'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('quarantine', schema=None) as batch_op:
        batch_op.create_index('ix_quarantine_origin_row', ['origin', 'row_number'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('quarantine', schema=None) as batch_op:
        batch_op.drop_index('ix_quarantine_origin_row')
