"""The seller's pages: why a version was rejected, the reviewer's notes on a decided appeal,
the unclaimed-findings warning, flash messages that end with the scan, re-choosing a package
after a form error."""

from __future__ import annotations

from portal.extensions import db
from portal.services import appeals, reviews
from portal.services.appeals import ClaimInput
from tests.portal.test_appeals import (
    BLOCKING, REASON, UNSCANNED_ID, VIRUS_ID, VULN_ID, make_rejected,
)


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


# --- 3b. an appeal that leaves blocking findings undisputed --------------------------------

def _claims_form(**rows):
    data = {}
    for fid, answer in rows.items():
        data |= {f"answer-{fid}": answer, f"reason-{fid}": REASON if answer == "Yes" else "",
                 f"evidence-{fid}": "why"}
    return data


def test_the_appeal_page_warns_before_submitting(client, auth, factories):
    version = make_rejected(factories)
    auth.login_as(version.asset.owner)
    html = _page(client, f"/appeals/versions/{version.id}")
    assert html.count("This scan has 3 blocking findings.") == 2  # by both forms
    assert "cannot approve the version" in html
    assert 'name="confirm_unclaimed"' not in html  # asked only once it applies


def test_an_appeal_leaving_blocking_findings_is_refused_until_confirmed(client, auth, factories):
    version = make_rejected(factories)
    auth.login_as(version.asset.owner)
    url = f"/appeals/versions/{version.id}/claims"
    response = client.post(url, data=_claims_form(**{VIRUS_ID: "Yes"}))
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert "2 blocking findings are not disputed" in html
    assert "GHSA-6757-jp84-gxfx" in html.split('class="form-errors"')[1].split("</div>")[0]
    assert html.count('name="confirm_unclaimed"') == 1  # by the form that was sent
    assert 'id="form-confirm-unclaimed"' in html and "Choose the report and any" not in html
    assert '<option value="Yes" selected>' in html  # the seller's answers are kept
    assert not version.appeals
    response = client.post(url, data=_claims_form(**{VIRUS_ID: "Yes"}) | {
        "confirm_unclaimed": "yes"})
    assert response.status_code == 302
    db.session.refresh(version)
    assert version.status.value == "reviewing" and len(version.appeals) == 1


def test_disputing_every_blocking_finding_needs_no_confirmation(client, auth, factories):
    version = make_rejected(factories)
    auth.login_as(version.asset.owner)
    response = client.post(f"/appeals/versions/{version.id}/claims",
                           data=_claims_form(**{fid: "Yes" for fid in BLOCKING}))
    assert response.status_code == 302


def test_the_report_upload_is_checked_the_same_way(client, auth, factories):
    import io

    from tests.portal.test_appeals import all_yes, report_of
    version = make_rejected(factories)
    auth.login_as(version.asset.owner)
    data = all_yes(report_of(version), ids=(VIRUS_ID,))
    url = f"/appeals/versions/{version.id}/report"
    response = client.post(url, data={"report": (io.BytesIO(data), "r.xlsx")},
                           content_type="multipart/form-data")
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert "2 blocking findings are not disputed" in html
    assert "Choose the report and any evidence files again" in html
    assert 'id="report-confirm-unclaimed"' in html and 'id="form-confirm-unclaimed"' not in html
    response = client.post(url, data={"report": (io.BytesIO(data), "r.xlsx"),
                                      "confirm_unclaimed": "yes"},
                           content_type="multipart/form-data")
    assert response.status_code == 302


def test_the_service_refuses_unless_allowed(factories):
    import pytest

    from portal.services.errors import ValidationError
    version = make_rejected(factories)
    with pytest.raises(ValidationError) as refused:
        appeals.submit_claims_form(version.asset.owner, version.id, [
            ClaimInput(VIRUS_ID, "Yes", REASON, "x"), ClaimInput(UNSCANNED_ID, "Yes", REASON, "x"),
            ClaimInput(VULN_ID, "No")],
            allow_unclaimed=False)
    assert refused.value.field == "unclaimed" and "1 blocking finding is not disputed" in str(
        refused.value)
    assert [f.signature for f in appeals.unclaimed_blocking(version.latest_scan, [])] == [
        "Win.Test.EICAR_HDB-1", None, "Heuristics.Limits.Exceeded.MaxFileSize"]


# --- 3a. a message about a submission lasts until the verdict -------------------------------

def test_a_submission_message_goes_when_the_badge_reaches_a_verdict(client, auth, factories):
    seller = factories.user()
    version = factories.version(factories.asset(seller), package="pkg-c-clean.tar.gz")
    auth.login_as(seller)
    html = client.post(f"/assets/versions/{version.id}/submit", follow_redirects=True).get_data(
        as_text=True)
    assert ('class="flash flash-success" role="status" data-until="scan-finished">'
            "Submitted for review: the scan is queued.") in html
    script = client.get("/static/app.js").get_data(as_text=True)
    assert 'addEventListener("scan-finished"' in script
    assert '.flash[data-until="scan-finished"]' in script


def test_other_messages_stay(client, auth, factories):
    seller = factories.user()
    asset = factories.asset(seller)
    auth.login_as(seller)
    html = client.post(f"/assets/{asset.id}/delete", follow_redirects=True).get_data(as_text=True)
    assert "The asset was deleted." in html and "data-until" not in html


# --- 4. after a form error, the package must be chosen again --------------------------------

def _package(name="pkg-c-clean.tar.gz"):
    import io

    from tests.portal.test_views_assets import package_file
    return package_file(name) if name else (io.BytesIO(b""), "")


def test_add_asset_says_to_choose_the_package_again(client, auth, factories):
    auth.login_as(factories.user())
    first = client.get("/assets/new").get_data(as_text=True)
    assert 'id="package-again"' not in first
    response = client.post("/assets/new", data={
        "category": "Application", "kind": "binary", "name": "bad name!", "version": "1.0",
        "package": _package(), "submit_review": "1"}, content_type="multipart/form-data")
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert "Choose the package again (pkg-c-clean.tar.gz) before you submit" in html
    assert html.index('id="package-again"') < html.index('id="package"')


def test_add_version_and_modify_say_it_too(client, auth, factories):
    seller = factories.user()
    asset = factories.asset(seller)
    version = factories.version(asset, label="1.0", status="rejected",
                                package="pkg-c-clean.tar.gz")
    auth.login_as(seller)
    response = client.post(f"/assets/{asset.id}/versions/new", data={
        "version": "1.0", "package": _package(), "submit_review": "1"},
        content_type="multipart/form-data")  # the label is taken
    assert response.status_code == 422
    assert 'id="package-again"' in response.get_data(as_text=True)
    response = client.post(f"/assets/versions/{version.id}/modify",
                           data={"package": _package("notes.txt")},
                           content_type="multipart/form-data")
    assert response.status_code == 422
    assert "Choose the package again (notes.txt)" in response.get_data(as_text=True)


# --- 5. My Assets' Requests tab ------------------------------------------------------------

def _requests_world(factories):
    """A seller with a rejected version (its scan, an appeal denied), an approved version
    (one scan, then a re-scan running), and a draft; and another seller's scan."""
    from datetime import timedelta

    from portal.timeutil import utcnow
    seller = factories.user()
    rejected = make_rejected(factories, seller, name="rejected-tool")
    reviewer = factories.user("reviewer")
    appeal = appeals.submit_claims_form(seller, rejected.id, [
        ClaimInput(fid, "Yes", REASON, "e") for fid in BLOCKING])
    for claim in appeal.disputed:
        reviews.decide_claim(reviewer, appeal.id, claim.id, "rejected", "no")
    reviews.decide_appeal(reviewer, appeal.id, "done")
    good = factories.version(factories.asset(seller, name="good-tool"), label="2.0",
                             status="approved")
    start = utcnow() + timedelta(minutes=1)
    factories.scan(good, state="done", verdict="approved", created_at=start,
                   finished_at=start + timedelta(minutes=2))
    factories.scan(good, state="running", rescan=True, created_at=start + timedelta(minutes=5))
    factories.version(factories.asset(seller, name="draft-tool"))  # no request at all
    other = factories.version(factories.asset(factories.user(), name="not-mine"),
                              status="scanning")
    factories.scan(other, state="queued")
    return seller, rejected, appeal, good


def test_the_requests_tab_lists_scans_and_appeals_newest_first(client, auth, factories):
    seller, rejected, appeal, good = _requests_world(factories)
    auth.login_as(seller)
    html = _page(client, "/assets/requests")
    assert 'aria-current="page">Requests</a>' in html
    table = html.split('id="requests-table"')[1]
    rows = table.split("<tr class=\"request-")[1:]
    assert [r.split('"')[0] for r in rows] == ["rescan", "scan", "appeal", "scan"]
    assert "Re-scan" in rows[0] and "Scanning" in rows[0] and "Live status" in rows[0]
    assert "good-tool" in rows[1] and "Approved" in rows[1]
    assert "Appeal <span" in rows[2] and f"#{appeal.id}" in rows[2]
    assert "Rejected" in rows[2] and f"/appeals/versions/{rejected.id}" in rows[2]
    assert "rejected-tool" in rows[3] and f"/assets/versions/{rejected.id}/report" in rows[3]
    assert "not-mine" not in html and "draft-tool" not in html
    assert "1–4 of 4" in html


def test_the_requests_tab_filters_by_status(client, auth, factories):
    seller, rejected, appeal, good = _requests_world(factories)
    auth.login_as(seller)
    for status, kinds in {"open": ["rescan"], "rejected": ["scan"], "denied": ["appeal"],
                          "approved": ["scan"], "reviewing": [], "bogus": None}.items():
        html = _page(client, f"/assets/requests?status={status}")
        rows = html.split('id="requests-table"')[1].split("<tr class=\"request-")[1:]
        if kinds is None:  # an unknown status lists everything
            assert len(rows) == 4
        else:
            assert [r.split('"')[0] for r in rows] == kinds, status
    assert "No requests with this status." in _page(client, "/assets/requests?status=reviewing")
    fragment = client.get("/assets/requests?status=denied", headers={"HX-Request": "true"})
    assert fragment.get_data(as_text=True).lstrip().startswith('<div id="requests-table"')


def test_the_requests_tab_pages(app, factories):
    from portal.services.requests import list_requests
    seller, *_ = _requests_world(factories)
    pages = [list_requests(seller, page=n, per_page=3) for n in (1, 2)]
    assert [p.total for p in pages] == [4, 4] and [p.pages for p in pages] == [2, 2]
    kinds = [r.kind for p in pages for r in p.items]
    assert kinds == ["rescan", "scan", "appeal", "scan"]


def test_no_requests_yet(client, auth, factories):
    auth.login_as(factories.user())
    assert "No requests yet." in _page(client, "/assets/requests")


# --- 6. what changed since the scan before ---------------------------------------------------

def rescanned_after_a_fix(factories, seller=None):
    """A rejected version, then a Modify whose package drops the virus and lodash and upgrades
    PyYAML past its advisory: the new scan still has the unscanned part."""
    from dataclasses import replace

    from portal.models import VersionStatus
    from scanner.model import Component
    from tests.portal.test_appeals import complete
    from tests.scanner.report_fixtures import PYYAML, scan_result
    version = make_rejected(factories, seller, name="fixed-agent" if seller else None)
    first = scan_result()
    fixed = replace(PYYAML, version="5.4", purl="pkg:pypi/pyyaml@5.4")
    requests_lib = Component(ecosystem="PyPI", name="requests", version="2.32.3",
                             purl="pkg:pypi/requests@2.32.3", location="app.tar.gz!/venv/x")
    second = replace(first, components=(fixed, requests_lib),
                     findings=tuple(f for f in first.findings if f.id == UNSCANNED_ID))
    version.status = VersionStatus.scanning
    db.session.commit()
    complete(factories.scan(version, state="running"), second)
    db.session.refresh(version)
    return version


def test_the_version_page_compares_with_the_scan_before(client, auth, factories):
    version = rescanned_after_a_fix(factories)
    auth.login_as(version.asset.owner)
    html = _page(client, f"/assets/versions/{version.id}/status")
    changes = html.split('id="changes"')[1]
    assert "What changed since the scan before" in changes
    fixed = changes.split('id="changes-fixed"')[1].split('id="changes-new"')[0]
    assert "Win.Test.EICAR_HDB-1" in fixed and "GHSA-6757-jp84-gxfx" in fixed
    assert "GHSA-x5rq-j2xg-h7qm" in fixed and "Fixed <span class=\"muted\">(3)" in fixed
    new = changes.split('id="changes-new"')[1].split('id="changes-still"')[0]
    assert "None." in new
    still = changes.split('id="changes-still"')[1].split('id="changes-components"')[0]
    assert "Heuristics.Limits.Exceeded.MaxFileSize" in still and "<li>" in still
    assert still.count("<li>") == 1
    components = changes.split('id="changes-components"')[1]
    assert "added</span> requests" in components
    assert "removed</span> lodash" in components
    assert "PyYAML <span class=\"muted\">5.3 → 5.4 (PyPI)" in components


def test_a_version_is_compared_with_the_version_before(app, factories):
    from portal.services import verdicts
    from tests.portal.test_appeals import complete
    from tests.scanner.report_fixtures import scan_result
    old = make_rejected(factories)
    newer = factories.version(old.asset, label="2.0", status="scanning",
                              package=b"PK\x05\x06" + bytes(18))
    complete(factories.scan(newer, state="running"), scan_result())
    db.session.refresh(newer)
    changes = verdicts.comparison(newer)
    assert changes.previous.version_id == old.id and not changes.same_version
    assert changes.unchanged and len(changes.still) == 4
    assert verdicts.comparison(old) is None  # its first scan, the asset's first version


def test_a_poll_of_the_badge_does_not_compare(client, auth, factories):
    version = rescanned_after_a_fix(factories)
    auth.login_as(version.asset.owner)
    html = client.get(f"/assets/versions/{version.id}/status",
                      headers={"HX-Request": "true"}).get_data(as_text=True)
    assert "What changed" not in html
