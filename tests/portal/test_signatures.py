"""Operators see what the verdicts rest on: the signatures the real clamd has loaded (a
warning on every operator page while no official database is), the vulnerability data and
the engines the newest scan ran with."""

from __future__ import annotations

import pytest

from portal.models import Role, ScanState, VersionStatus
from portal.services import signatures
from portal.timeutil import utcnow
from tests.portal.test_views_security import assert_csp_safe


@pytest.fixture(autouse=True)
def _no_cached_answer():
    signatures._cache.clear()
    yield
    signatures._cache.clear()


@pytest.fixture
def operator(client, auth, factories):
    user = factories.user(Role.operator, name="Olga Operator")
    auth.login_as(user)
    return user


def test_the_real_clamd_without_official_databases(app):
    """This clamd runs on Assay's own signature set: VERSION names the engine alone."""
    status = signatures.clamav_status(fresh=True)
    assert status.reachable and status.engine.startswith("1.") and not status.official
    assert signatures.warning() == signatures.NO_OFFICIAL


def test_a_version_answer_with_the_daily_database_is_official():
    status = signatures.parse_version("ClamAV 1.4.6/27480/Mon Dec  1 09:00:00 2026")
    assert (status.engine, status.daily, status.daily_date) == (
        "1.4.6", "27480", "Mon Dec 1 09:00:00 2026")
    assert status.official


def test_an_unreachable_clamd_is_said_plainly(app):
    app.config["CLAMD_ADDRESS"] = "tcp://127.0.0.1:9"  # nothing listens on the discard port
    status = signatures.clamav_status(fresh=True)
    assert not status.reachable and "did not answer" in status.error
    assert signatures.warning().startswith("Virus scanning cannot run")


def test_operators_see_the_banner_and_the_page(client, operator, factories):
    version = factories.version(factories.asset(), status=VersionStatus.approved)
    factories.scan(version, state=ScanState.done, finished_at=utcnow(), policy="assay-2026.1/3",
                   engines={"clamav": "ClamAV 1.4.6", "osv": "sha256:abc/364"})
    page = client.get("/admin/data").get_data(as_text=True)
    assert_csp_safe(page)
    assert "Virus scanning uses Assay&#39;s test signatures only" in page
    assert "none loaded" in page and "sha256:abc/364" in page and "assay-2026.1/3" in page
    assert "PyPI" in page  # the corpus data the tests seed
    assert "test signatures only" in client.get("/assets/").get_data(as_text=True)


def test_sellers_see_no_banner(client, auth, factories):
    auth.login_as(factories.user())
    assert "test signatures only" not in client.get("/assets/").get_data(as_text=True)
