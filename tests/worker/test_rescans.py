"""Re-scans of Approved versions (real Redis, S3, clamd and worker): the version stays
Approved while the scan runs; a blocking verdict rejects it and tells its seller."""

from __future__ import annotations

import pytest
from rq import Queue, SimpleWorker

from portal import queue
from portal.extensions import db
from portal.models import AssetVersion, AuditEvent, Notification, Role, VersionStatus
from portal.services import scans
from portal.services.errors import Forbidden, ValidationError


def work(redis_conn) -> None:
    SimpleWorker([Queue(queue.QUEUE_NAME, connection=redis_conn)],
                 connection=redis_conn).work(burst=True)


def approved(factories, package: str) -> AssetVersion:
    return factories.version(factories.asset(), status=VersionStatus.approved, package=package)


def test_a_clean_rescan_keeps_the_version_approved(app, factories, redis_conn):
    version = approved(factories, "pkg-c-clean.tar.gz")
    operator = factories.user(Role.operator)
    scan = scans.rescan_version(operator, version.id, address="10.0.0.9")
    assert scan.rescan and version.status is VersionStatus.approved
    badge = scans.badge(version)
    assert (badge.label, badge.stage, badge.polling) == ("Approved", "re-scanning", True)
    with pytest.raises(ValidationError, match="already"):
        scans.rescan_version(operator, version.id)
    work(redis_conn)
    db.session.refresh(version)
    assert version.status is VersionStatus.approved
    assert version.latest_scan.verdict == "approved" and not scans.badge(version).polling
    moves = [e.action for e in AuditEvent.query.filter_by(subject_type="asset_versions")]
    assert moves == ["version.rescan"]


def test_a_blocking_rescan_rejects_and_tells_the_seller(app, factories, redis_conn):
    """EICAR in a version approved before the signature that finds it existed, say."""
    version = approved(factories, "pkg-d-eicar-nested.zip")
    scans.rescan_version(factories.user(Role.operator), version.id)
    work(redis_conn)
    db.session.refresh(version)
    assert version.status is VersionStatus.rejected
    assert version.latest_scan.counts["virus"] >= 1
    note = Notification.query.filter_by(user_id=version.asset.owner_id).one()
    assert note.kind == "rescan_rejected" and "is Rejected now" in note.text
    moves = [(e.action, e.actor_id) for e in
             AuditEvent.query.filter_by(subject_type="asset_versions").order_by(AuditEvent.id)]
    assert [m[0] for m in moves] == ["version.rescan", "version.rescan_rejected"]
    assert moves[1][1] is None  # the verdict, not a person


def test_all_approved_versions_at_once(app, factories, redis_conn):
    one, two = approved(factories, "pkg-c-clean.tar.gz"), approved(factories, "pkg-c-clean.tar.gz")
    factories.version(factories.asset(), status=VersionStatus.rejected, package="pkg-c-clean.tar.gz")
    operator = factories.user(Role.operator)
    assert scans.rescan_approved(operator) == 2
    assert scans.rescan_approved(operator) == 0  # they are being re-scanned already
    work(redis_conn)
    db.session.expire_all()
    assert {db.session.get(AssetVersion, v.id).status for v in (one, two)} == {
        VersionStatus.approved}


@pytest.mark.parametrize("role", [Role.seller, Role.reviewer])
def test_only_operators_rescan(app, factories, role):
    version = approved(factories, "pkg-c-clean.tar.gz")
    with pytest.raises(Forbidden):
        scans.rescan_version(factories.user(role), version.id)
    with pytest.raises(Forbidden):
        scans.rescan_approved(factories.user(role))


def test_a_version_that_is_not_approved_is_not_rescanned(app, factories):
    version = factories.version(factories.asset(), status=VersionStatus.rejected,
                                package="pkg-c-clean.tar.gz")
    from portal.services.errors import InvalidTransition

    with pytest.raises(InvalidTransition, match="Only an Approved version"):
        scans.rescan_version(factories.user(Role.operator), version.id)
