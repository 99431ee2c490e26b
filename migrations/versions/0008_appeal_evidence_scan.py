"""appeal evidence: scanned on upload

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 09:45:00

Each evidence file is examined before it is stored (ClamAV, YARA, executables and
macro documents refused); ``scanned_with`` records the engine and rule versions
that passed it and ``scanned_at`` when. Files stored before this revision have
neither: they are examined when first downloaded.
"""
from alembic import op
import sqlalchemy as sa

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('appeal_evidence', schema=None) as batch_op:
        batch_op.add_column(sa.Column('scanned_with', sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column('scanned_at', sa.DateTime(), nullable=True))


def downgrade():
    with op.batch_alter_table('appeal_evidence', schema=None) as batch_op:
        batch_op.drop_column('scanned_at')
        batch_op.drop_column('scanned_with')
