"""uploads and scans: stored bytes per upload, stalled scans

Upload sessions remember the bytes storage held for them when last measured (an upload
storing more than it declared is aborted, with the reason kept for the seller), and when
a completion started (a second completion waits for the first instead of joining twice).
Stalled scans need no column: they are failed scans whose error says so.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 09:45:00
"""
from alembic import op
import sqlalchemy as sa

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('upload_sessions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('stored_bytes', sa.BigInteger(), nullable=False,
                                      server_default='0'))
        batch_op.add_column(sa.Column('checked_at', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('completing_since', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('ended_reason', sa.String(length=255), nullable=True))


def downgrade():
    with op.batch_alter_table('upload_sessions', schema=None) as batch_op:
        batch_op.drop_column('ended_reason')
        batch_op.drop_column('completing_since')
        batch_op.drop_column('checked_at')
        batch_op.drop_column('stored_bytes')
