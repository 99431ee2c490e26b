"""Migrations build the schema from nothing, and agree with the models."""

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import downgrade, upgrade
from sqlalchemy import inspect

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
