"""products: license type, price note, publication and an operator's unpublishing

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-02 10:50:00
"""
from alembic import op
import sqlalchemy as sa

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('products') as batch:
        batch.add_column(sa.Column('license_type', sa.String(length=64), nullable=False,
                                   server_default='Commercial license'))
        batch.add_column(sa.Column('price_note', sa.String(length=200), nullable=False,
                                   server_default=''))
        batch.add_column(sa.Column('published_at', sa.DateTime(), nullable=True))
        batch.add_column(sa.Column('unpublished_note', sa.Text(), nullable=True))
        batch.add_column(sa.Column('unpublished_at', sa.DateTime(), nullable=True))


def downgrade():
    with op.batch_alter_table('products') as batch:
        for column in ('unpublished_at', 'unpublished_note', 'published_at', 'price_note',
                       'license_type'):
            batch.drop_column(column)
