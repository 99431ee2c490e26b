"""audit trail: indexes for the operator's page

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 09:45:00
"""
from alembic import op  # noqa: F401
import sqlalchemy as sa  # noqa: F401

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade():
    # The audit page filters by object (type and id together) and by source address.
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.create_index('ix_audit_events_subject', ['subject_type', 'subject_id'],
                              unique=False)
        batch_op.create_index(batch_op.f('ix_audit_events_address'), ['address'], unique=False)


def downgrade():
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_audit_events_address'))
        batch_op.drop_index('ix_audit_events_subject')
