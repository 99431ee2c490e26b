"""upload_sessions.asset_id: a direct upload can bring a new version of an existing asset

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02 10:40:00
"""
from alembic import op
import sqlalchemy as sa

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('upload_sessions') as batch:
        batch.add_column(sa.Column('asset_id', sa.Integer(), nullable=True))
        batch.create_index(batch.f('ix_upload_sessions_asset_id'), ['asset_id'])
        batch.create_foreign_key(batch.f('fk_upload_sessions_asset_id_assets'), 'assets',
                                 ['asset_id'], ['id'], ondelete='CASCADE')


def downgrade():
    with op.batch_alter_table('upload_sessions') as batch:
        batch.drop_constraint(batch.f('fk_upload_sessions_asset_id_assets'), type_='foreignkey')
        batch.drop_index(batch.f('ix_upload_sessions_asset_id'))
        batch.drop_column('asset_id')
