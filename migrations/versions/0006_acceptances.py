"""remembered acceptances: content-bound fingerprints, revocation and expiry

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 09:45:00

Virus and unscanned fingerprints used to name a signature or reason and a location,
not the content: an acceptance stored under one covered any other bytes at the same
path. Such acceptances cannot be trusted, so they are revoked here (kept, with the
reason, so the seller's page can say which were dropped and why); vulnerability
acceptances stay in force. Acceptances also gain an optional expiry.
"""
from datetime import datetime, timezone

from alembic import op
import sqlalchemy as sa

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

DROPPED = ('Dropped: the finding ID of this accepted virus or unscanned finding did not '
           "include the file's content, so it could cover other bytes at the same path. "
           'A new scan may block on it again; you may appeal it again.')

# Remembered acceptances whose finding (reached through the claims of the asset's
# appeals, or any scan of the asset when a claim lost its finding) is a virus or
# unscanned finding.
_OLD_CONTENT_FREE = sa.text("""
UPDATE accepted_false_positives SET revoked_at = :now, revoked_reason = :reason
WHERE revoked_at IS NULL AND (
  EXISTS (
    SELECT 1 FROM appeal_claims c
    JOIN scan_findings f ON f.id = c.scan_finding_id
    JOIN appeals a ON a.id = c.appeal_id
    JOIN asset_versions v ON v.id = a.version_id
    WHERE c.finding_fingerprint = accepted_false_positives.fingerprint
      AND v.asset_id = accepted_false_positives.asset_id
      AND f.type IN ('virus', 'unscanned'))
  OR EXISTS (
    SELECT 1 FROM scan_findings f
    JOIN scans s ON s.id = f.scan_id
    JOIN asset_versions v ON v.id = s.version_id
    WHERE f.fingerprint = accepted_false_positives.fingerprint
      AND v.asset_id = accepted_false_positives.asset_id
      AND f.type IN ('virus', 'unscanned')))
""")


def upgrade():
    with op.batch_alter_table('accepted_false_positives', schema=None) as batch_op:
        batch_op.add_column(sa.Column('expires_at', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('revoked_at', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('revoked_by_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('revoked_by_name', sa.String(length=120), nullable=True))
        batch_op.add_column(sa.Column('revoked_reason', sa.Text(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f('fk_accepted_false_positives_revoked_by_id_users'), 'users',
            ['revoked_by_id'], ['id'], ondelete='SET NULL')
    # Naive UTC, as the portal writes its times.
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    op.get_bind().execute(_OLD_CONTENT_FREE, {'now': now, 'reason': DROPPED})


def downgrade():
    with op.batch_alter_table('accepted_false_positives', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_accepted_false_positives_revoked_by_id_users'),
                                 type_='foreignkey')
        batch_op.drop_column('revoked_reason')
        batch_op.drop_column('revoked_by_name')
        batch_op.drop_column('revoked_by_id')
        batch_op.drop_column('revoked_at')
        batch_op.drop_column('expires_at')
