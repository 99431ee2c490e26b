"""assets, asset_versions, scans: ids are never handed out again on SQLite

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28 18:00:00

Without AUTOINCREMENT, SQLite gives a new row the highest id in use plus one, so
deleting the newest asset gives its asset, version and scan ids to the next one.
Those ids name queue jobs (``scan-<id>-<attempt>``) and stored objects, and a work
horse still scanning the deleted package would write its verdict onto the new
scan. PostgreSQL sequences never go back: nothing to do there.
"""
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

TABLES = ('assets', 'asset_versions', 'scans')


def upgrade():
    _recreate(autoincrement=True)


def downgrade():
    _recreate(autoincrement=False)


def _recreate(autoincrement: bool) -> None:
    bind = op.get_bind()
    if bind.dialect.name != 'sqlite':
        return
    # A rebuild drops each table: with foreign keys enforced, that would cascade to its children.
    enforced = bool(bind.exec_driver_sql('PRAGMA foreign_keys').scalar())
    if enforced:
        _foreign_keys('OFF')
    for table in TABLES:
        with op.batch_alter_table(table, recreate='always',
                                  table_kwargs={'sqlite_autoincrement': autoincrement}):
            pass
    if enforced:
        _foreign_keys('ON')


def _foreign_keys(state: str) -> None:
    with op.get_context().autocommit_block():  # SQLite ignores the pragma inside a transaction
        op.execute(f'PRAGMA foreign_keys={state}')
