"""Migrations build the schema from nothing, and agree with the models."""

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import downgrade, upgrade
from sqlalchemy import inspect, text

from portal import create_app
from portal.extensions import db


def _app(url, app_config):
    return create_app({**app_config, "SQLALCHEMY_DATABASE_URI": url})


def test_upgrade_from_empty_then_models_and_migrations_agree(empty_database_url, app_config):
    app = _app(empty_database_url, app_config)
    with app.app_context():
        upgrade()
        assert {"users", "assets", "asset_versions", "scans", "audit_events"} <= set(
            inspect(db.engine).get_table_names())
        with db.engine.connect() as conn:
            context = MigrationContext.configure(
                conn, opts={"compare_type": True, "render_as_batch": True})
            diff = compare_metadata(context, db.metadata)
        db.engine.dispose()
    assert diff == [], f"models and migrations differ: {diff}"


def test_downgrade_to_base_and_up_again(empty_database_url, app_config):
    app = _app(empty_database_url, app_config)
    with app.app_context():
        upgrade()
        downgrade(revision="base")
        assert set(inspect(db.engine).get_table_names()) <= {"alembic_version"}
        upgrade()
        db.engine.dispose()


def test_0006_drops_acceptances_of_virus_and_unscanned_findings(empty_database_url, app_config):
    """Acceptances stored under the old, content-free virus/unscanned fingerprints are
    revoked with the reason; a vulnerability acceptance stays in force."""
    app = _app(empty_database_url, app_config)
    with app.app_context():
        upgrade(revision="0005")
        now = "2026-11-30 08:00:00"
        statements = [
            "INSERT INTO users (id, email, name, password_hash, role, active, created_at) "
            "VALUES (1, 's@example.com', 'Sam', 'x', 'seller', true, :now)",
            "INSERT INTO users (id, email, name, password_hash, role, active, created_at) "
            "VALUES (2, 'r@example.com', 'Rita', 'x', 'reviewer', true, :now)",
            "INSERT INTO assets (id, owner_id, name, category, kind, description, created_at, "
            "updated_at) VALUES (1, 1, 'app', 'Application', 'binary', '', :now, :now)",
            "INSERT INTO asset_versions (id, asset_id, label, status, created_at, updated_at) "
            "VALUES (1, 1, '1.0', 'approved', :now, :now)",
            "INSERT INTO scans (id, version_id, state, progress, attempts, package_key, created_at) "
            "VALUES (1, 1, 'done', 100, 1, 'k', :now)",
        ]
        findings = [(1, "virusfp", "virus"), (2, "unscannedfp", "unscanned"),
                    (3, "vulnfp", "vulnerability")]
        for fid, fingerprint, kind in findings:
            statements.append(
                "INSERT INTO scan_findings (id, scan_id, fingerprint, type, location, blocking, "
                f"ids, aliases, fixed_versions, \"references\", summary) VALUES ({fid}, 1, "
                f"'{fingerprint}', '{kind}', 'app.zip!/payload.bin', false, '[]', '[]', '[]', "
                "'[]', '')")
        statements.append(
            "INSERT INTO appeals (id, version_id, scan_id, seller_id, submitted_at, due_at, "
            "comment) VALUES (1, 1, 1, 1, :now, :now, '')")
        for fid, fingerprint, _ in findings:
            statements.append(
                "INSERT INTO appeal_claims (id, appeal_id, finding_fingerprint, scan_finding_id, "
                f"false_positive, reason, evidence, note) VALUES ({fid}, 1, '{fingerprint}', "
                f"{fid}, true, 'r', '', '')")
            statements.append(
                "INSERT INTO accepted_false_positives (id, asset_id, fingerprint, accepted_by_id, "
                f"accepted_by_name, accepted_at, appeal_id, note) VALUES ({fid}, 1, "
                f"'{fingerprint}', 2, 'Rita', :now, 1, '')")
        with db.engine.begin() as conn:
            for statement in statements:
                conn.execute(text(statement), {"now": now})
        upgrade(revision="0006")
        with db.engine.connect() as conn:
            rows = conn.execute(text(
                "SELECT fingerprint, revoked_at, revoked_reason, revoked_by_id, expires_at "
                "FROM accepted_false_positives ORDER BY id")).all()
        db.engine.dispose()
    by_fingerprint = {row[0]: row[1:] for row in rows}
    for fingerprint in ("virusfp", "unscannedfp"):
        revoked_at, reason, revoked_by, expires_at = by_fingerprint[fingerprint]
        assert revoked_at is not None and revoked_by is None and expires_at is None
        assert "did not include the file's content" in reason
    assert by_fingerprint["vulnfp"] == (None, None, None, None)


def test_ids_are_never_reused_after_every_migration(empty_database_url, app_config):
    """A later migration that makes SQLite rebuild one of these tables must keep 0005's
    AUTOINCREMENT (ids name queue jobs and stored objects)."""
    app = _app(empty_database_url, app_config)
    with app.app_context():
        upgrade()
        if db.engine.dialect.name != "sqlite":
            db.engine.dispose()
            return  # PostgreSQL sequences never go back
        with db.engine.connect() as conn:
            for table in ("assets", "asset_versions", "scans"):
                sql = conn.exec_driver_sql(
                    "SELECT sql FROM sqlite_master WHERE name = ?", (table,)).scalar_one()
                assert "AUTOINCREMENT" in sql.upper(), table
        db.engine.dispose()
