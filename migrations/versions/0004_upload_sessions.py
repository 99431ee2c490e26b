"""upload_sessions: packages uploaded from the browser straight to storage in parts

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28 12:00:00

"""
from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('upload_sessions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('owner_id', sa.Integer(), nullable=False),
    sa.Column('version_id', sa.Integer(), nullable=True),
    sa.Column('asset_name', sa.String(length=128), nullable=True),
    sa.Column('asset_kind', sa.Enum('binary', 'docker', name='assetkind', native_enum=False, length=16), nullable=True),
    sa.Column('asset_description', sa.Text(), nullable=True),
    sa.Column('version_label', sa.String(length=64), nullable=True),
    sa.Column('submit', sa.Boolean(), nullable=False),
    sa.Column('key', sa.String(length=512), nullable=False),
    sa.Column('s3_upload_id', sa.String(length=255), nullable=False),
    sa.Column('filename', sa.String(length=255), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('part_size', sa.BigInteger(), nullable=False),
    sa.Column('state', sa.Enum('open', 'completed', 'aborted', name='uploadstate', native_enum=False, length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['owner_id'], ['users.id'], name=op.f('fk_upload_sessions_owner_id_users'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['version_id'], ['asset_versions.id'], name=op.f('fk_upload_sessions_version_id_asset_versions'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_upload_sessions'))
    )
    with op.batch_alter_table('upload_sessions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_upload_sessions_owner_id'), ['owner_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_upload_sessions_state'), ['state'], unique=False)
        batch_op.create_index(batch_op.f('ix_upload_sessions_updated_at'), ['updated_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_upload_sessions_version_id'), ['version_id'], unique=False)


def downgrade():
    with op.batch_alter_table('upload_sessions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_upload_sessions_version_id'))
        batch_op.drop_index(batch_op.f('ix_upload_sessions_updated_at'))
        batch_op.drop_index(batch_op.f('ix_upload_sessions_state'))
        batch_op.drop_index(batch_op.f('ix_upload_sessions_owner_id'))

    op.drop_table('upload_sessions')
