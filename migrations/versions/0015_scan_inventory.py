"""scans.inventory_key: the inventory of what a scan examined, stored beside its report

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-02 12:00:00
"""
from alembic import op
import sqlalchemy as sa

revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None

# SQLite rebuilds the table for this change: it must keep never reusing ids (0005).
KEEP_IDS = {'sqlite_autoincrement': True}


def upgrade():
    with op.batch_alter_table('scans', table_kwargs=KEEP_IDS) as batch:
        batch.add_column(sa.Column('inventory_key', sa.String(length=512), nullable=True))


def downgrade():
    with op.batch_alter_table('scans', table_kwargs=KEEP_IDS) as batch:
        batch.drop_column('inventory_key')
