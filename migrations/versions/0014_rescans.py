"""scans.rescan: a re-scan of an Approved version keeps it Approved while it runs

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-02 11:00:00
"""
from alembic import op
import sqlalchemy as sa

revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None

# SQLite rebuilds the table for this change: it must keep never reusing ids (0005).
KEEP_IDS = {'sqlite_autoincrement': True}


def upgrade():
    with op.batch_alter_table('scans', table_kwargs=KEEP_IDS) as batch:
        batch.add_column(sa.Column('rescan', sa.Boolean(), nullable=False,
                                   server_default=sa.false()))


def downgrade():
    with op.batch_alter_table('scans', table_kwargs=KEEP_IDS) as batch:
        batch.drop_column('rescan')
