"""appeals: appeals with their claims and evidence, accepted false positives,
calendar overrides and notifications

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28 10:00:00

"""
from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('calendar_days',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('working', sa.Boolean(), nullable=False),
    sa.Column('note', sa.String(length=200), nullable=False),
    sa.Column('created_by_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['created_by_id'], ['users.id'], name=op.f('fk_calendar_days_created_by_id_users'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_calendar_days')),
    sa.UniqueConstraint('day', name=op.f('uq_calendar_days_day'))
    )
    op.create_table('appeals',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('version_id', sa.Integer(), nullable=False),
    sa.Column('scan_id', sa.Integer(), nullable=False),
    sa.Column('seller_id', sa.Integer(), nullable=False),
    sa.Column('proof_key', sa.String(length=512), nullable=True),
    sa.Column('proof_name', sa.String(length=255), nullable=True),
    sa.Column('submitted_at', sa.DateTime(), nullable=False),
    sa.Column('due_at', sa.DateTime(), nullable=False),
    sa.Column('reviewer_id', sa.Integer(), nullable=True),
    sa.Column('assigned_at', sa.DateTime(), nullable=True),
    sa.Column('decided_at', sa.DateTime(), nullable=True),
    sa.Column('decision', sa.Enum('accepted', 'denied', 'withdrawn', name='appealdecision', native_enum=False, length=16), nullable=True),
    sa.Column('comment', sa.Text(), nullable=False),
    sa.Column('reminded_due_soon_at', sa.DateTime(), nullable=True),
    sa.Column('reminded_overdue_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['reviewer_id'], ['users.id'], name=op.f('fk_appeals_reviewer_id_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['scan_id'], ['scans.id'], name=op.f('fk_appeals_scan_id_scans'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['seller_id'], ['users.id'], name=op.f('fk_appeals_seller_id_users')),
    sa.ForeignKeyConstraint(['version_id'], ['asset_versions.id'], name=op.f('fk_appeals_version_id_asset_versions'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_appeals'))
    )
    with op.batch_alter_table('appeals', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_appeals_decided_at'), ['decided_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_appeals_decision'), ['decision'], unique=False)
        batch_op.create_index(batch_op.f('ix_appeals_due_at'), ['due_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_appeals_reviewer_id'), ['reviewer_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_appeals_scan_id'), ['scan_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_appeals_seller_id'), ['seller_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_appeals_version_id'), ['version_id'], unique=False)

    op.create_table('accepted_false_positives',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('asset_id', sa.Integer(), nullable=False),
    sa.Column('fingerprint', sa.String(length=64), nullable=False),
    sa.Column('accepted_by_id', sa.Integer(), nullable=True),
    sa.Column('accepted_by_name', sa.String(length=120), nullable=False),
    sa.Column('accepted_at', sa.DateTime(), nullable=False),
    sa.Column('appeal_id', sa.Integer(), nullable=True),
    sa.Column('note', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['accepted_by_id'], ['users.id'], name=op.f('fk_accepted_false_positives_accepted_by_id_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['appeal_id'], ['appeals.id'], name=op.f('fk_accepted_false_positives_appeal_id_appeals'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['asset_id'], ['assets.id'], name=op.f('fk_accepted_false_positives_asset_id_assets'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_accepted_false_positives')),
    sa.UniqueConstraint('asset_id', 'fingerprint', name='uq_accepted_false_positives_asset_fingerprint')
    )
    with op.batch_alter_table('accepted_false_positives', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_accepted_false_positives_asset_id'), ['asset_id'], unique=False)

    op.create_table('appeal_claims',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('appeal_id', sa.Integer(), nullable=False),
    sa.Column('finding_fingerprint', sa.String(length=64), nullable=False),
    sa.Column('scan_finding_id', sa.Integer(), nullable=True),
    sa.Column('false_positive', sa.Boolean(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('evidence', sa.Text(), nullable=False),
    sa.Column('verdict', sa.Enum('accepted', 'rejected', name='claimverdict', native_enum=False, length=16), nullable=True),
    sa.Column('note', sa.Text(), nullable=False),
    sa.Column('decided_by_id', sa.Integer(), nullable=True),
    sa.Column('decided_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['appeal_id'], ['appeals.id'], name=op.f('fk_appeal_claims_appeal_id_appeals'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['decided_by_id'], ['users.id'], name=op.f('fk_appeal_claims_decided_by_id_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['scan_finding_id'], ['scan_findings.id'], name=op.f('fk_appeal_claims_scan_finding_id_scan_findings'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_appeal_claims')),
    sa.UniqueConstraint('appeal_id', 'finding_fingerprint', name='uq_appeal_claims_appeal_fingerprint')
    )
    with op.batch_alter_table('appeal_claims', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_appeal_claims_appeal_id'), ['appeal_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_appeal_claims_finding_fingerprint'), ['finding_fingerprint'], unique=False)
        batch_op.create_index(batch_op.f('ix_appeal_claims_scan_finding_id'), ['scan_finding_id'], unique=False)

    op.create_table('appeal_evidence',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('appeal_id', sa.Integer(), nullable=False),
    sa.Column('key', sa.String(length=512), nullable=False),
    sa.Column('filename', sa.String(length=255), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['appeal_id'], ['appeals.id'], name=op.f('fk_appeal_evidence_appeal_id_appeals'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_appeal_evidence'))
    )
    with op.batch_alter_table('appeal_evidence', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_appeal_evidence_appeal_id'), ['appeal_id'], unique=False)

    op.create_table('notifications',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('link', sa.String(length=512), nullable=False),
    sa.Column('appeal_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('read_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['appeal_id'], ['appeals.id'], name=op.f('fk_notifications_appeal_id_appeals'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_notifications_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_notifications'))
    )
    with op.batch_alter_table('notifications', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_notifications_appeal_id'), ['appeal_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_notifications_created_at'), ['created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_notifications_user_id'), ['user_id'], unique=False)



def downgrade():
    with op.batch_alter_table('notifications', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_notifications_user_id'))
        batch_op.drop_index(batch_op.f('ix_notifications_created_at'))
        batch_op.drop_index(batch_op.f('ix_notifications_appeal_id'))

    op.drop_table('notifications')
    with op.batch_alter_table('appeal_evidence', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_appeal_evidence_appeal_id'))

    op.drop_table('appeal_evidence')
    with op.batch_alter_table('appeal_claims', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_appeal_claims_scan_finding_id'))
        batch_op.drop_index(batch_op.f('ix_appeal_claims_finding_fingerprint'))
        batch_op.drop_index(batch_op.f('ix_appeal_claims_appeal_id'))

    op.drop_table('appeal_claims')
    with op.batch_alter_table('accepted_false_positives', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_accepted_false_positives_asset_id'))

    op.drop_table('accepted_false_positives')
    with op.batch_alter_table('appeals', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_appeals_version_id'))
        batch_op.drop_index(batch_op.f('ix_appeals_seller_id'))
        batch_op.drop_index(batch_op.f('ix_appeals_scan_id'))
        batch_op.drop_index(batch_op.f('ix_appeals_reviewer_id'))
        batch_op.drop_index(batch_op.f('ix_appeals_due_at'))
        batch_op.drop_index(batch_op.f('ix_appeals_decision'))
        batch_op.drop_index(batch_op.f('ix_appeals_decided_at'))

    op.drop_table('appeals')
    op.drop_table('calendar_days')
