"""Remembered acceptances: in force, revoked by an operator, expired; what the seller and
the operator see of them."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from portal.extensions import db
from portal.models import AcceptedFalsePositive, AuditEvent, Role, VersionStatus
from portal.services import false_positives
from portal.services.errors import Forbidden, ValidationError
from portal.timeutil import utcnow
from tests.portal.test_appeals import (
    BLOCKING, VULN_ID, _rescan, all_yes, complete, decide_all, make_rejected, report_of, submit,
)
from tests.scanner.report_fixtures import scan_result


@pytest.fixture
def accepted(factories):
    """A version whose three blocking findings were accepted on appeal (now approved)."""
    version = make_rejected(factories)
    decide_all(factories.user(Role.reviewer, name="Rita Reviewer"),
               submit(version, all_yes(report_of(version))))
    return version


def _acceptance(version, fingerprint) -> AcceptedFalsePositive:
    return db.session.scalars(select(AcceptedFalsePositive).where(
        AcceptedFalsePositive.asset_id == version.asset_id,
        AcceptedFalsePositive.fingerprint == fingerprint)).one()


def test_a_revoked_acceptance_blocks_the_next_scan_again(factories, accepted):
    operator = factories.user(Role.operator, name="Olga Operator")
    row = _acceptance(accepted, VULN_ID)
    with pytest.raises(ValidationError, match="Give the reason"):
        false_positives.revoke_acceptance(operator, row.id, "  ")
    with pytest.raises(Forbidden):
        false_positives.revoke_acceptance(factories.user(Role.reviewer), row.id, "no")
    false_positives.revoke_acceptance(operator, row.id, "The component is reachable after all.",
                                      address="192.0.2.9")
    assert row.revoked_by_name == "Olga Operator" and row.revoked_at is not None
    event = db.session.scalars(select(AuditEvent).where(
        AuditEvent.action == "acceptance.revoke")).one()
    assert event.actor_id == operator.id and event.after["reason"].startswith("The component")
    with pytest.raises(ValidationError, match="already revoked"):
        false_positives.revoke_acceptance(operator, row.id, "again")

    scan = complete(_rescan(accepted), scan_result())
    db.session.refresh(accepted)
    assert scan.verdict == "rejected" and accepted.status is VersionStatus.rejected
    assert [f.fingerprint for f in scan.findings if f.blocking] == [VULN_ID]
    dropped = false_positives.dropped_acceptances(accepted.asset.owner, accepted.asset_id)
    assert [(r.acceptance.fingerprint, r.state) for r in dropped] == [(VULN_ID, "revoked")]


def test_accepting_again_puts_a_revoked_acceptance_back_in_force(factories, accepted):
    operator = factories.user(Role.operator)
    false_positives.revoke_acceptance(operator, _acceptance(accepted, VULN_ID).id, "check again")
    complete(_rescan(accepted), scan_result())
    again = submit(accepted, all_yes(report_of(accepted), ids=(VULN_ID,)))
    decide_all(factories.user(Role.reviewer), again)
    row = _acceptance(accepted, VULN_ID)
    assert row.revoked_at is None and row.revoked_reason is None and row.appeal_id == again.id
    db.session.refresh(accepted)
    assert accepted.status is VersionStatus.approved


def test_acceptances_expire_after_the_set_number_of_days(app, factories):
    app.config["ACCEPTANCE_EXPIRY_DAYS"] = 30
    version = make_rejected(factories)
    decide_all(factories.user(Role.reviewer), submit(version, all_yes(report_of(version))))
    rows = db.session.scalars(select(AcceptedFalsePositive)).all()
    assert {r.expires_at - r.accepted_at for r in rows} == {timedelta(days=30)}
    assert complete(_rescan(version), scan_result()).verdict == "approved"
    for row in rows:
        row.expires_at = utcnow() - timedelta(minutes=1)
    db.session.commit()
    scan = complete(_rescan(version), scan_result())
    assert scan.verdict == "rejected" and scan.counts["blocking"] == len(BLOCKING)
    states = {r.state for r in false_positives.dropped_acceptances(version.asset.owner,
                                                                  version.asset_id)}
    assert states == {"expired"}


def test_by_default_acceptances_never_expire(accepted):
    assert {r.expires_at for r in db.session.scalars(select(AcceptedFalsePositive))} == {None}


# --- pages ------------------------------------------------------------------------------------

def test_operators_list_and_revoke_acceptances_from_the_asset_page(client, auth, factories,
                                                                   accepted):
    operator = factories.user(Role.operator)
    auth.login_as(operator)
    detail = client.get(f"/assets/{accepted.asset_id}").get_data(as_text=True)
    url = f"/admin/assets/{accepted.asset_id}/acceptances"
    assert f'href="{url}"' in detail
    page = client.get(url).get_data(as_text=True)
    assert page.count("in force</span>") == 3 and "Rita Reviewer" in page
    row = _acceptance(accepted, VULN_ID)
    refused = client.post(f"/admin/acceptances/{row.id}/revoke", data={"reason": ""})
    assert refused.status_code == 422 and "Give the reason" in refused.get_data(as_text=True)
    done = client.post(f"/admin/acceptances/{row.id}/revoke",
                       data={"reason": "Reachable after all"})
    assert done.status_code == 302 and done.headers["Location"].endswith(url)
    page = client.get(url).get_data(as_text=True)
    assert page.count("in force</span>") == 2 and "Reachable after all" in page


@pytest.mark.parametrize("role", [Role.seller, Role.reviewer])
def test_only_operators_open_the_acceptances_page(client, auth, factories, accepted, role):
    user = accepted.asset.owner if role is Role.seller else factories.user(role)
    auth.login_as(user)
    row = _acceptance(accepted, VULN_ID)
    assert client.get(f"/admin/assets/{accepted.asset_id}/acceptances").status_code == 403
    assert client.post(f"/admin/acceptances/{row.id}/revoke",
                       data={"reason": "x"}).status_code == 403
    db.session.refresh(row)
    assert row.revoked_at is None


def test_the_seller_sees_which_acceptances_were_dropped_and_why(client, auth, factories,
                                                               accepted):
    auth.login_as(accepted.asset.owner)
    page = client.get(f"/assets/{accepted.asset_id}").get_data(as_text=True)
    assert "no longer applied" not in page and "/acceptances" not in page
    false_positives.revoke_acceptance(factories.user(Role.operator),
                                      _acceptance(accepted, VULN_ID).id, "Reachable after all")
    page = client.get(f"/assets/{accepted.asset_id}").get_data(as_text=True)
    assert "Accepted false positives no longer applied" in page
    assert "Reachable after all" in page and "appeal again" in page
    assert "GHSA-6757-jp84-gxfx" in page or "CVE-2020-1747" in page
