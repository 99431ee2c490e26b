"""Fixtures for portal tests: an app on the test database (real migrations), real
Redis and S3 from the session fixtures, factories for rows and an auth helper.

Each test gets a fresh app; the tables are emptied after it, so tests may commit
(services do) and other processes (a worker) see the same rows.
"""

from __future__ import annotations

import pytest
from flask_migrate import upgrade

from portal import create_app, storage
from portal.extensions import db
from tests.conftest import S3_BUCKET
from tests.portal.factories import PASSWORD, Factories

_BUCKET = S3_BUCKET  # made by the s3_service fixture


def _config(database_url: str, redis_service, s3_service, var_dir) -> dict:
    return {
        "TESTING": True,
        "SECRET_KEY": "test-secret",
        "WTF_CSRF_ENABLED": False,
        "RATELIMIT_ENABLED": False,
        "SQLALCHEMY_DATABASE_URI": database_url,
        "REDIS_URL": redis_service.address,
        "S3_ENDPOINT": s3_service.address,
        "S3_ACCESS_KEY": s3_service.extra["access_key"],
        "S3_SECRET_KEY": s3_service.extra["secret_key"],
        "S3_BUCKET": _BUCKET,
        "ASSAY_VAR": str(var_dir),
        "OSV_DIR": str(var_dir / "osv"),
        "SCRATCH_DIR": str(var_dir / "scratch"),
    }


@pytest.fixture(scope="session")
def migrated_db(database_url, redis_service, s3_service, var_dir):
    """The test database upgraded to the newest revision, and the bucket made (once)."""
    app = create_app(_config(database_url, redis_service, s3_service, var_dir))
    with app.app_context():
        upgrade()
        storage.ensure_bucket()
        db.engine.dispose()
    return database_url


@pytest.fixture
def app_config(migrated_db, redis_service, s3_service, clamd_service, var_dir) -> dict:
    """The config the ``app`` fixture is built from; a test may change it first.

    Evidence files are examined by the real clamd, as in production.
    """
    return {**_config(migrated_db, redis_service, s3_service, var_dir),
            "CLAMD_ADDRESS": clamd_service.address}


@pytest.fixture
def app(app_config):
    """A fresh app per test; its rows and stored objects are removed afterwards."""
    app = create_app(app_config)
    yield app
    with app.app_context():
        db.session.remove()
        _empty_tables()
        db.engine.dispose()
        for prefix in ("packages/", "scans/", "appeals/"):
            for obj in storage.list_keys(prefix):
                storage.delete(obj.key)


def _empty_tables() -> None:
    with db.engine.begin() as conn:
        for table in reversed(db.metadata.sorted_tables):
            conn.execute(table.delete())


@pytest.fixture
def factories(app) -> Factories:
    """Make users, assets, versions, scans and products (committed)."""
    return Factories()


class AuthActions:
    """Sign in and out through the real login form (or straight into the session)."""

    def __init__(self, client):
        self._client = client

    def login(self, email: str, password: str = PASSWORD, **kwargs):
        return self._client.post("/auth/login", data={"email": email, "password": password},
                                 **kwargs)

    def logout(self, **kwargs):
        return self._client.post("/auth/logout", **kwargs)

    def login_as(self, user) -> None:
        """Skip the form: put ``user`` in the session as Flask-Login does."""
        with self._client.session_transaction() as session:
            session["_user_id"] = user.get_id()
            session["_fresh"] = True


@pytest.fixture
def auth(client) -> AuthActions:
    return AuthActions(client)
