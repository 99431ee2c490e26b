"""advisory_flags: Approved versions matched by advisories an OSV import added or changed

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-02 11:00:00
"""
from alembic import op
import sqlalchemy as sa

revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'advisory_flags',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('version_id', sa.Integer(), nullable=False),
        sa.Column('scan_id', sa.Integer(), nullable=True),
        sa.Column('snapshot', sa.String(length=64), nullable=False),
        sa.Column('advisories', sa.JSON(), nullable=False),
        sa.Column('blocking', sa.Boolean(), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['version_id'], ['asset_versions.id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['scan_id'], ['scans.id'], ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id'),
    )
    with op.batch_alter_table('advisory_flags') as batch:
        batch.create_index('ix_advisory_flags_version_id', ['version_id'])
        batch.create_index('ix_advisory_flags_created_at', ['created_at'])


def downgrade():
    op.drop_table('advisory_flags')
