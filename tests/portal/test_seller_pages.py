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


# --- 2. a decided appeal shows every claim with the reviewer's note ------------------------

def _decided(factories, verdicts: dict[str, str]):
    version = make_rejected(factories)
    reviewer = factories.user("reviewer", name="Rita Reviewer")
    appeal = appeals.submit_claims_form(version.asset.owner, version.id, [
        ClaimInput(fid, "Yes", REASON, f"evidence for {fid}") for fid in BLOCKING])
    for claim in appeal.disputed:
        verdict = verdicts.get(claim.finding_fingerprint, "accepted")
        reviews.decide_claim(reviewer, appeal.id, claim.id, verdict,
                             f"note on {claim.finding_fingerprint}")
    reviews.decide_appeal(reviewer, appeal.id, "done")
    db.session.refresh(version)
    return version


def test_a_denied_appeal_shows_every_claim_with_the_reviewers_note(client, auth, factories):
    version = _decided(factories, {VULN_ID: "rejected"})
    assert version.status.value == "rejected"
    auth.login_as(version.asset.owner)
    html = _page(client, f"/appeals/versions/{version.id}")
    assert "Appeal rejected" in html
    assert "Your claims and the reviewer's notes" in html
    for fid in BLOCKING:
        assert f"note on {fid}" in html
        assert f"evidence for {fid}" in html
    claims = html.split('id="claims-title"')[1].split('id="upload-title"')[0]
    assert claims.count("pill-bad\">rejected") == 1 and claims.count("pill-ok\">accepted<") == 2
    # and the seller may appeal again below the notes
    assert "Appeal again with the security scan report" in html


def test_an_accepted_appeal_still_shows_its_notes(client, auth, factories):
    version = _decided(factories, {})
    assert version.status.value == "approved"
    auth.login_as(version.asset.owner)
    html = _page(client, f"/appeals/versions/{version.id}")
    assert "Appeal accepted" in html and f"note on {VIRUS_ID}" in html
    assert 'id="upload-title"' not in html
