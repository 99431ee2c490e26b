"""The seller's pages: why a version was rejected, the reviewer's notes on a decided appeal,
the unclaimed-findings warning, flash messages that end with the scan, re-choosing a package
after a form error."""

from __future__ import annotations

from portal.extensions import db
from portal.services import appeals, reviews
from portal.services.appeals import ClaimInput
from tests.portal.test_appeals import BLOCKING, REASON, VIRUS_ID, VULN_ID, make_rejected


def _page(client, url) -> str:
    response = client.get(url)
    assert response.status_code == 200
    return response.get_data(as_text=True)


# --- 1. a Rejected version says why --------------------------------------------------------

def test_a_rejected_version_says_why_on_the_asset_page(client, auth, factories):
    version = make_rejected(factories)
    auth.login_as(version.asset.owner)
    html = _page(client, f"/assets/{version.asset_id}")
    assert f'id="rejection-{version.id}"' in html
    assert f"Why version {version.label} was rejected" in html
    assert "1 virus, 1 blocking vulnerability (CVSS 7.0 or more), 1 part that could not be " \
           "scanned" in html
    # the top findings, worst kind first: the virus, the unscanned part, the vulnerability
    table = html.split(f'id="rejection-{version.id}"')[1]
    assert table.index("Win.Test.EICAR_HDB-1") < table.index("Heuristics.Limits.Exceeded") \
        < table.index("GHSA-6757-jp84-gxfx")
    assert "PyYAML" in table and "9.8" in table and "5.3.1" in table
    assert "app.tar.gz!/bin/tools.zip!/helper.exe" in table
    assert "lodash" not in table  # not blocking: not a reason
    assert f"/appeals/versions/{version.id}" in table


def test_the_summary_is_part_of_the_refreshed_version_table(client, auth, factories):
    version = make_rejected(factories)
    auth.login_as(version.asset.owner)
    html = client.get(f"/assets/{version.asset_id}", headers={"HX-Request": "true"}).get_data(
        as_text=True)
    assert html.lstrip().startswith('<section class="card" id="versions"')
    assert f"Why version {version.label} was rejected" in html


def test_approved_and_accepted_versions_have_no_summary(client, auth, factories):
    version = make_rejected(factories)
    reviewer = factories.user("reviewer")
    appeal = appeals.submit_claims_form(version.asset.owner, version.id, [
        ClaimInput(fid, "Yes", REASON, "evidence") for fid in BLOCKING])
    for claim in appeal.disputed:
        reviews.decide_claim(reviewer, appeal.id, claim.id, "accepted", "fine")
    reviews.decide_appeal(reviewer, appeal.id, "done")
    db.session.refresh(version)
    assert version.status.value == "approved"
    auth.login_as(version.asset.owner)
    html = _page(client, f"/assets/{version.asset_id}")
    assert "was rejected" not in html
