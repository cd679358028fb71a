"""federation: indexes for the inbox retention pass that runs after every pull

The pass listed the (partner, retention marking) pairs and deleted each pair's expired rows by
reading the whole inbox, and probed (type, value) then read each row for its partner to find
orphaned partner indicators. (partner, retention_days, received_at) answers the first two from an
index range; (type, value, partner) replaces (type, value) and answers the probe from the index.

Revision ID: federation_0002
Revises: federation_0001
Create Date: 2026-11-28
"""
from alembic import op

revision = 'federation_0002'
down_revision = 'federation_0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('federation_inbox', schema=None) as batch_op:
        batch_op.create_index('ix_federation_inbox_asserted', ['type', 'value', 'partner'], unique=False)
        batch_op.drop_index('ix_federation_inbox_value')
        batch_op.create_index('ix_federation_inbox_retention', ['partner', 'retention_days', 'received_at'],
                              unique=False)


def downgrade() -> None:
    with op.batch_alter_table('federation_inbox', schema=None) as batch_op:
        batch_op.drop_index('ix_federation_inbox_retention')
        batch_op.create_index('ix_federation_inbox_value', ['type', 'value'], unique=False)
        batch_op.drop_index('ix_federation_inbox_asserted')
