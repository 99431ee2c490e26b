"""The appeal pages in the browser's terms: the seller's appeal page, the reviewers' queue and
appeal page, notifications and the operators' calendar; who may open what; fragments."""

from __future__ import annotations

import io
import re
from dataclasses import dataclass

import pytest

from portal.extensions import db
from portal.models import Appeal, Role, VersionStatus
from portal.services import reviews, sla
from tests.portal.test_appeals import (
    BLOCKING, REASON, VULN_ID, all_yes, filled, make_rejected, report_of, submit,
)
from tests.portal.test_views_security import assert_csp_safe

HX = {"HX-Request": "true"}


@dataclass
class World:
    seller: object
    other: object
    reviewer: object
    operator: object
    version: object
    appeal: Appeal


@pytest.fixture
def world(factories) -> World:
    """Seller A's version under appeal (with an evidence file); seller B; staff."""
    seller, other = factories.user(), factories.user()
    reviewer = factories.user(Role.reviewer, name="Rita Reviewer")
    operator = factories.user(Role.operator)
    version = make_rejected(factories, seller, name="acme-agent")
    appeal = submit(version, all_yes(report_of(version)), evidence=[("trace.log", b"trace")])
    return World(seller, other, reviewer, operator, version, appeal)


def routes(w: World) -> dict[str, tuple[str, str]]:
    a, c = w.appeal.id, w.appeal.disputed[0].id
    return {
        "queue": ("GET", "/reviews/"),
        "appeal": ("GET", f"/reviews/{a}"),
        "claim": ("POST", f"/reviews/{a}/claim"),
        "decide_claim": ("POST", f"/reviews/{a}/claims/{c}"),
        "decide": ("POST", f"/reviews/{a}/decide"),
        "notifications": ("GET", "/reviews/notifications"),
        "notifications_read": ("POST", "/reviews/notifications/read"),
    }


def call(client, method: str, url: str, **kwargs):
    return client.get(url, **kwargs) if method == "GET" else client.post(url, **kwargs)


@pytest.mark.parametrize("route", ["queue", "appeal", "claim", "decide_claim", "decide",
                                   "notifications", "notifications_read"])
@pytest.mark.parametrize("who, expected", [
    (None, 302), ("seller", 403), ("other", 403), ("reviewer", (200, 302)),
    ("operator", (200, 302))])
def test_reviewer_pages_by_role(client, auth, world, route, who, expected):
    if who:
        auth.login_as(getattr(world, who))
    method, url = routes(world)[route]
    response = call(client, method, url, data={"verdict": "accepted"})
    assert response.status_code in (expected if isinstance(expected, tuple) else (expected,))
    if who is None:
        assert "/auth/login" in response.headers["Location"]


def seller_routes(w: World) -> dict[str, tuple[str, str]]:
    v, a = w.version.id, w.appeal.id
    return {
        "page": ("GET", f"/appeals/versions/{v}"),
        "upload": ("POST", f"/appeals/versions/{v}/report"),
        "claims": ("POST", f"/appeals/versions/{v}/claims"),
        "withdraw": ("POST", f"/appeals/{a}/withdraw"),
        "evidence": ("GET", f"/appeals/evidence/{w.appeal.evidence[0].id}"),
        "proof": ("GET", f"/appeals/{a}/report"),
    }


@pytest.mark.parametrize("route", ["page", "upload", "claims", "withdraw", "evidence", "proof"])
def test_another_seller_gets_404_on_every_appeal_route(client, auth, world, route):
    auth.login_as(world.other)
    method, url = seller_routes(world)[route]
    assert call(client, method, url).status_code == 404
    db.session.refresh(world.appeal)
    assert world.appeal.is_open


@pytest.mark.parametrize("route, status", [("page", 404), ("evidence", 200), ("proof", 200)])
def test_reviewers_read_the_evidence_but_not_the_sellers_page(client, auth, world, route, status):
    auth.login_as(world.reviewer)
    method, url = seller_routes(world)[route]
    response = call(client, method, url)
    assert response.status_code == status
    if route == "evidence":
        assert response.get_data() == b"trace"
        assert response.headers["Content-Disposition"] == "attachment; filename=trace.log"


@pytest.mark.parametrize("who, status", [("seller", 403), ("reviewer", 403), ("operator", 200)])
def test_the_calendar_is_for_operators(client, auth, world, who, status):
    auth.login_as(getattr(world, who))
    assert client.get("/admin/calendar/").status_code == status


# --- the seller ------------------------------------------------------------------------------

def test_a_rejected_version_offers_the_appeal(client, auth, factories):
    version = make_rejected(factories)
    auth.login_as(version.asset.owner)
    detail = client.get(f"/assets/{version.asset_id}").get_data(as_text=True)
    assert f'href="/appeals/versions/{version.id}">Appeal</a>' in detail
    page = client.get(f"/appeals/versions/{version.id}").get_data(as_text=True)
    assert f'href="/assets/versions/{version.id}/report"' in page
    assert 'name="report"' in page and 'name="evidence"' in page and "multiple" in page
    for fid in BLOCKING:
        assert f'name="answer-{fid}"' in page and f'name="reason-{fid}"' in page
        assert f'name="reason_text-{fid}"' in page and f'name="evidence-{fid}"' in page
    assert f"<option>{REASON}</option>" in page
    assert_csp_safe(page)


def test_uploading_the_filled_report_shows_reviewing_and_the_due_date(client, auth, factories):
    version = make_rejected(factories)
    auth.login_as(version.asset.owner)
    data = all_yes(report_of(version))
    response = client.post(f"/appeals/versions/{version.id}/report", data={
        "report": (io.BytesIO(data), "report.xlsx"),
        "evidence": [(io.BytesIO(b"a"), "a.txt"), (io.BytesIO(b"bb"), "b.txt")],
    }, content_type="multipart/form-data")
    assert response.status_code == 302
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    appeal = db.session.query(Appeal).one()
    assert "<h2 id=\"status-title\">Reviewing</h2>" in page
    assert re.search(r"due in [123] working days?|due today", page)
    assert appeal.due_at.isoformat() in page and "GMT+08:00" in page
    assert "Withdraw the appeal" in page
    assert [e.filename for e in appeal.evidence] == ["a.txt", "b.txt"]
    # The badge of a version under review polls slowly; the panel refreshes when it finishes.
    assert re.search(r'id="status-\d+"[^>]*hx-trigger="every 5s"', page)
    assert 'hx-trigger="scan-finished from:body"' in page


def test_a_refused_report_is_explained_on_the_page(client, auth, factories):
    version = make_rejected(factories)
    auth.login_as(version.asset.owner)
    data = filled(report_of(version), F3="Yes")
    response = client.post(f"/appeals/versions/{version.id}/report",
                           data={"report": (io.BytesIO(data), "report.xlsx")},
                           content_type="multipart/form-data")
    assert response.status_code == 422
    assert "Row 3, column G: give a reason for each finding marked Yes." in response.get_data(
        as_text=True)
    db.session.refresh(version)
    assert version.status is VersionStatus.rejected and db.session.query(Appeal).count() == 0


def test_the_web_form_files_the_same_claims(client, auth, factories):
    version = make_rejected(factories)
    auth.login_as(version.asset.owner)
    form = {f"answer-{VULN_ID}": "Yes", f"reason-{VULN_ID}": REASON,
            f"evidence-{VULN_ID}": "never imported", f"answer-{BLOCKING[0]}": "",
            f"answer-{BLOCKING[2]}": "Yes", f"reason-{BLOCKING[2]}": "",
            f"reason_text-{BLOCKING[2]}": "  The blob is test data ", f"evidence-{BLOCKING[2]}": "",
            "confirm_unclaimed": "yes"}  # the virus is left undisputed, knowingly
    response = client.post(f"/appeals/versions/{version.id}/claims", data=form)
    assert response.status_code == 302
    appeal = db.session.query(Appeal).one()
    assert sorted((c.finding_fingerprint, c.reason, c.evidence) for c in appeal.claims) == sorted(
        [(VULN_ID, REASON, "never imported"), (BLOCKING[2], "The blob is test data", "")])


def test_the_web_form_keeps_what_was_typed_when_refused(client, auth, factories):
    version = make_rejected(factories)
    auth.login_as(version.asset.owner)
    response = client.post(f"/appeals/versions/{version.id}/claims", data={
        f"answer-{VULN_ID}": "Yes", f"evidence-{VULN_ID}": "kept text"})
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "give a reason for each finding marked Yes" in html and "kept text</textarea>" in html


def test_withdraw_from_the_page(client, auth, world):
    auth.login_as(world.seller)
    response = client.post(f"/appeals/{world.appeal.id}/withdraw")
    assert response.status_code == 302
    db.session.refresh(world.version)
    assert world.version.status is VersionStatus.rejected


# --- the reviewer ----------------------------------------------------------------------------

def test_the_queue_fragment_refreshes_itself(client, auth, world):
    auth.login_as(world.reviewer)
    page = client.get("/reviews/")
    html = page.get_data(as_text=True)
    assert "<html" in html and "HX-Request" in page.headers["Vary"]
    assert re.search(r'id="queue-table"[^>]*hx-trigger="every 30s"', html)
    assert f"#{world.appeal.id} acme-agent" in html and "Claim" in html
    assert re.search(r'Appeals <span class="nav-count"[^>]*>1</span>', html)
    assert_csp_safe(html)
    fragment = client.get("/reviews/?filter=unassigned", headers=HX).get_data(as_text=True)
    assert fragment.lstrip().startswith('<div id="queue-table"') and "<html" not in fragment
    assert f"#{world.appeal.id} acme-agent" in fragment
    mine = client.get("/reviews/?filter=mine", headers=HX).get_data(as_text=True)
    assert "No open appeals are assigned to you." in mine


def test_claim_then_decide_every_claim_row_by_row_then_the_appeal(client, auth, world):
    auth.login_as(world.reviewer)
    assert client.post(f"/reviews/{world.appeal.id}/claim").status_code == 302
    page = client.get(f"/reviews/{world.appeal.id}").get_data(as_text=True)
    assert "<dt>Reviewer</dt><dd>\n        you" in page
    assert "trace.log" in page and "Components of the package" in page
    assert "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H" in page and "GHSA-6757-jp84-gxfx" in page
    assert "ClamAV 1.4.3/27000" in page and "disabled>Decide the appeal" in page
    assert_csp_safe(page)

    for claim in world.appeal.disputed:
        url = f"/reviews/{world.appeal.id}/claims/{claim.id}"
        refused = client.post(url, data={"verdict": "rejected", "note": ""}, headers=HX)
        assert refused.status_code == 200 and "HX-Trigger" not in refused.headers
        assert "Say why the claim is rejected" in refused.get_data(as_text=True)
        row = client.post(url, data={"verdict": "accepted", "note": "checked"}, headers=HX)
        html = row.get_data(as_text=True)
        assert row.headers["HX-Trigger"] == "claims-changed"
        assert html.lstrip().startswith("<tr") and "pill-ok\">accepted" in html
    panel = client.get(f"/reviews/{world.appeal.id}", headers=HX).get_data(as_text=True)
    assert panel.lstrip().startswith("<section") and "approves" in panel and "disabled" not in panel

    response = client.post(f"/reviews/{world.appeal.id}/decide", data={"comment": "Fine."})
    assert response.status_code == 302
    db.session.refresh(world.version)
    assert world.version.status is VersionStatus.approved


def test_the_reviewing_badge_polls_until_the_decision(client, auth, world):
    auth.login_as(world.seller)
    url = f"/assets/versions/{world.version.id}/status"
    reviewing = client.get(url, headers=HX)
    assert 'hx-trigger="every 5s"' in reviewing.get_data(as_text=True)
    assert "HX-Trigger" not in reviewing.headers  # no completion event on every poll
    for claim in world.appeal.disputed:
        reviews.decide_claim(world.reviewer, claim.appeal_id, claim.id, "accepted")
    reviews.decide_appeal(world.reviewer, world.appeal.id)
    decided = client.get(url, headers=HX)
    html = decided.get_data(as_text=True)
    assert "Approved" in html and "hx-trigger" not in html
    assert decided.headers["HX-Trigger"] == "scan-finished"
    panel = client.get(f"/appeals/versions/{world.version.id}", headers=HX).get_data(as_text=True)
    assert "Appeal accepted" in panel and "<html" not in panel


@pytest.mark.parametrize("headers", [{}, HX], ids=["form", "htmx"])
def test_a_claim_of_another_appeal_is_404_and_left_undecided(client, auth, factories, world,
                                                             headers):
    version = make_rejected(factories)
    other = submit(version, all_yes(report_of(version)))
    claim = world.appeal.disputed[0]
    auth.login_as(world.reviewer)
    response = client.post(f"/reviews/{other.id}/claims/{claim.id}",
                           data={"verdict": "accepted", "note": "ok"}, headers=headers)
    assert response.status_code == 404
    db.session.refresh(claim)
    assert claim.verdict is None and claim.decided_by_id is None
    row = client.post(f"/reviews/{world.appeal.id}/claims/{claim.id}",
                      data={"verdict": "accepted", "note": "ok"}, headers=headers)
    assert row.status_code == (200 if headers else 302)
    db.session.refresh(claim)
    assert claim.verdict.value == "accepted"


def test_a_reviewer_cannot_decide_on_their_own_asset(client, auth, factories, world):
    own = make_rejected(factories, world.reviewer)
    appeal = submit(own, all_yes(report_of(own)))
    auth.login_as(world.reviewer)
    page = client.get(f"/reviews/{appeal.id}").get_data(as_text=True)
    assert "You own this asset" in page and "Decide the appeal" not in page
    assert 'name="verdict"' not in page
    claim = appeal.disputed[0]
    assert client.post(f"/reviews/{appeal.id}/claims/{claim.id}",
                       data={"verdict": "accepted"}).status_code == 403
    assert client.post(f"/reviews/{appeal.id}/decide").status_code == 403
    queue = client.get("/reviews/").get_data(as_text=True)
    assert "your asset" in queue


def test_notifications_are_listed_and_marked_read(client, auth, world):
    sla.send_reminders(now=world.appeal.due_at)
    auth.login_as(world.reviewer)
    html = client.get("/reviews/notifications").get_data(as_text=True)
    assert f"Appeal #{world.appeal.id} on acme-agent" in html and "is-unread" in html
    assert re.search(r'Notifications <span class="nav-count nav-count-bad"[^>]*>1</span>', html)
    assert client.post("/reviews/notifications/read").status_code == 302
    assert "is-unread" not in client.get("/reviews/notifications").get_data(as_text=True)


# --- the operator -------------------------------------------------------------------------------

def test_operators_add_and_remove_calendar_overrides(client, auth, world):
    auth.login_as(world.operator)
    page = client.get("/admin/calendar/").get_data(as_text=True)
    assert "Median time to decision" in page and "The next four weeks" in page
    assert_csp_safe(page)
    bad = client.post("/admin/calendar/", data={"day": "tomorrow", "working": "0"})
    assert bad.status_code == 422 and "Enter the day as YYYY-MM-DD." in bad.get_data(as_text=True)
    before = world.appeal.due_at
    response = client.post("/admin/calendar/", data={"day": "2031-05-06", "working": "1",
                                                     "note": "Make-up day"})
    assert response.status_code == 302
    [day] = sla.list_calendar_days()
    assert day.working and day.note == "Make-up day"
    assert "2031-05-06" in client.get("/admin/calendar/").get_data(as_text=True)
    assert client.post(f"/admin/calendar/{day.id}/delete").status_code == 302
    assert sla.list_calendar_days() == []
    db.session.refresh(world.appeal)
    assert world.appeal.due_at == before
