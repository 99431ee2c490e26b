"""Worker tests use the portal fixtures, with clamd and a flushed Redis."""

import pytest
from redis import Redis

from tests.portal.conftest import app, auth, factories, migrated_db  # noqa: F401


@pytest.fixture
def app_config(migrated_db, redis_service, s3_service, clamd_service, var_dir):  # noqa: F811
    from tests.portal.conftest import _config

    return {
        **_config(migrated_db, redis_service, s3_service, var_dir),
        "CLAMD_ADDRESS": clamd_service.address,
        "SCAN_HEARTBEAT": 1,
        "SCAN_RETRY_BACKOFF": (0,),
    }


@pytest.fixture
def redis_conn(redis_service):
    """The test Redis, emptied before the test."""
    conn = Redis.from_url(redis_service.address)
    conn.flushdb()
    yield conn
    conn.close()
