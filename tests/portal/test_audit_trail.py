"""The operator's audit trail: filters, pages newest first, and the CSV export."""

from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta

import pytest

from portal.extensions import db
from portal.models import AuditEvent, Role
from portal.services import audit_trail
from portal.services.errors import Forbidden
from tests.portal.test_views_security import assert_csp_safe

PAGES = ["/admin/audit", "/admin/audit.csv"]


def event(actor=None, action="asset.create", subject_type="assets", subject_id=1, *,
          at: datetime | None = None, address: str | None = "198.51.100.1",
          before=None, after=None) -> AuditEvent:
    row = AuditEvent(actor_id=actor.id if actor else None, action=action,
                     subject_type=subject_type, subject_id=subject_id, before=before,
                     after=after, address=address)
    if at is not None:
        row.created_at = at
    db.session.add(row)
    db.session.commit()
    return row


def rows_of(response) -> list[dict]:
    return list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))


@pytest.fixture
def operator(client, auth, factories):
    user = factories.user(Role.operator, name="Olga Operator", email="olga@example.com")
    auth.login_as(user)
    return user


# --- who may read it ----------------------------------------------------------------------

@pytest.mark.parametrize("path", PAGES)
@pytest.mark.parametrize("role", [Role.seller, Role.reviewer])
def test_only_operators_read_the_audit_trail(client, auth, factories, path, role):
    event(address="192.0.2.99")
    auth.login_as(factories.user(role))
    response = client.get(path)
    assert response.status_code == 403
    assert "192.0.2.99" not in response.get_data(as_text=True)


@pytest.mark.parametrize("path", PAGES)
def test_anonymous_visitors_go_to_login(client, path):
    response = client.get(path)
    assert response.status_code == 302 and "/auth/login" in response.headers["Location"]


def test_the_service_refuses_everyone_but_operators(app, factories):
    with pytest.raises(Forbidden):
        audit_trail.list_events(factories.user(Role.reviewer), audit_trail.AuditQuery())
    with pytest.raises(Forbidden):
        audit_trail.export_csv(factories.user(Role.seller), audit_trail.AuditQuery())


def test_nav_links_the_page_for_operators(client, operator):
    assert 'href="/admin/audit"' in client.get("/assets/").get_data(as_text=True)


def test_nav_hides_the_page_from_reviewers(client, auth, factories):
    auth.login_as(factories.user(Role.reviewer))
    assert 'href="/admin/audit"' not in client.get("/assets/").get_data(as_text=True)


# --- the page -----------------------------------------------------------------------------

def test_an_action_taken_in_the_portal_shows_who_what_which_and_from_where(
        client, factories, operator):
    """A role change through the users page is on the audit page with its source address."""
    sam = factories.user(email="sam@example.com")
    response = client.post(f"/admin/users/{sam.id}/role", data={"role": "reviewer"},
                           environ_base={"REMOTE_ADDR": "203.0.113.7"})
    assert response.status_code == 302
    html = client.get("/admin/audit").get_data(as_text=True)
    assert_csp_safe(html)
    assert "olga@example.com" in html
    assert "<code>user.role</code>" in html
    assert f"User #{sam.id}" in html
    assert "seller → reviewer" in html
    assert "203.0.113.7" in html


def test_newest_first_in_pages_of_fifty(client, operator):
    start = datetime(2026, 11, 1, 8, 0)
    for n in range(60):
        event(operator, subject_id=n + 1, at=start + timedelta(minutes=n))
    first = audit_trail.list_events(operator, audit_trail.AuditQuery(), page=1)
    assert first.total == 60 and first.pages == 2
    assert [r.event.subject_id for r in first.items] == list(range(60, 10, -1))
    second = audit_trail.list_events(operator, audit_trail.AuditQuery(), page=2)
    assert [r.event.subject_id for r in second.items] == list(range(10, 0, -1))
    html = client.get("/admin/audit?page=2").get_data(as_text=True)
    assert "51–60 of 60" in html and 'href="/admin/audit?page=1"' in html
    assert "‹ Newer" in html and "Older ›" not in html and "Export all 60 events as CSV" in html


def test_filters_by_actor_action_object_days_and_address(client, factories, operator):
    sam = factories.user(email="sam@example.com", name="Sam Seller")
    event(sam, "asset.create", "assets", 7, address="203.0.113.5",
          at=datetime(2026, 11, 30, 15, 59))
    event(sam, "version.submit", "asset_versions", 7, address="203.0.113.50")
    event(operator, "user.role", "users", sam.id, address="10.0.0.1")
    event(None, "scan.failed", "scans", 3, address=None)

    def matches(**args):
        query, errors = audit_trail.parse_query(args)
        assert errors == []
        return [(r.event.action, r.event.subject_id)
                for r in audit_trail.list_events(operator, query).items]

    assert matches(actor="SAM@example.com") == [("version.submit", 7), ("asset.create", 7)]
    assert matches(actor="sam sel") == [("version.submit", 7), ("asset.create", 7)]
    assert matches(actor="system") == [("scan.failed", 3)]
    assert matches(action="version.*") == [("version.submit", 7)]
    assert matches(action="user.role") == [("user.role", sam.id)]
    assert matches(object_type="assets", object_id="7") == [("asset.create", 7)]
    assert matches(address="203.0.113.5") == [("asset.create", 7)]
    assert matches(address="203.0.113.*") == [("version.submit", 7), ("asset.create", 7)]
    # LIKE wildcards typed by the operator are literal characters.
    assert matches(actor="%") == []
    response = client.get("/admin/audit?actor=system&object_type=scans")
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "<code>scan.failed</code>" in html and "<code>user.role</code>" not in html


@pytest.fixture
def app_config(app_config):
    return {**app_config, "TIMEZONE": "Asia/Shanghai"}


def test_days_are_the_marketplace_time_zone_and_both_ends_count(app, operator):
    def utc(y, m, d, hh, mm):  # a time in Shanghai (GMT+08:00) as stored: naive UTC
        return datetime(y, m, d, hh, mm) - timedelta(hours=8)

    event(operator, subject_id=1, at=utc(2026, 11, 30, 23, 59))
    event(operator, subject_id=2, at=utc(2026, 12, 1, 0, 0))
    event(operator, subject_id=3, at=utc(2026, 12, 2, 23, 59))
    event(operator, subject_id=4, at=utc(2026, 12, 3, 0, 0))
    query, errors = audit_trail.parse_query({"since": "2026-12-01", "until": "2026-12-02"})
    assert errors == []
    items = audit_trail.list_events(operator, query).items
    assert [r.event.subject_id for r in items] == [3, 2]


@pytest.mark.parametrize("args, message", [
    ({"since": "yesterday"}, "From: a day as YYYY-MM-DD"),
    ({"until": "2026-13-01"}, "To: a day as YYYY-MM-DD"),
    ({"since": "2026-12-02", "until": "2026-12-01"}, "The From day is after the To day."),
    ({"object_id": "-3"}, "Object id: a whole number above 0."),
    ({"object_id": "x"}, "Object id: a whole number above 0."),
    ({"action": "a'; drop"}, "Action: use letters"),
    ({"object_type": "Assets!"}, "Object type: choose one from the list."),
    ({"address": "<script>"}, "Address: an IPv4 or IPv6 address"),
])
@pytest.mark.parametrize("path", PAGES)
def test_a_bad_filter_is_explained_and_lists_nothing(client, operator, args, message, path):
    event(operator, address="192.0.2.44")
    response = client.get(path, query_string=args)
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert response.mimetype == "text/html"
    assert message in html
    assert "192.0.2.44" not in html


def test_an_htmx_request_gets_the_table_only(client, operator):
    event(operator, address="192.0.2.10")
    response = client.get("/admin/audit", headers={"HX-Request": "true"})
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert html.lstrip().startswith('<div id="audit-table"')
    assert "192.0.2.10" in html and "<h1>" not in html


def test_object_and_actor_link_to_their_own_filters(client, factories, operator):
    event(operator, "asset.delete", "assets", 42)
    html = client.get("/admin/audit?action=asset.*").get_data(as_text=True)
    assert 'href="/admin/audit?action=asset.*&amp;object_type=assets&amp;object_id=42"' in html
    assert 'href="/admin/audit?action=asset.*&amp;actor=olga@example.com"' in html


# --- the CSV export -----------------------------------------------------------------------

def test_export_has_every_matching_event_newest_first(client, factories, operator):
    sam = factories.user(email="sam@example.com")
    event(sam, "asset.create", "assets", 5, at=datetime(2026, 11, 1, 1, 0),
          after={"name": "tool"}, address="203.0.113.9")
    event(sam, "version.submit", "asset_versions", 6, at=datetime(2026, 11, 2, 1, 0),
          before={"status": "draft"}, after={"status": "scanning"})
    event(None, "scan.failed", "scans", 8, at=datetime(2026, 11, 3, 1, 0), address=None)
    response = client.get("/admin/audit.csv?actor=sam@example.com")
    assert response.status_code == 200
    assert response.is_streamed
    assert response.mimetype == "text/csv"
    assert response.headers["Content-Disposition"].startswith("attachment; filename=assay-audit-")
    rows = rows_of(response)
    assert list(rows[0]) == list(audit_trail.CSV_COLUMNS)
    assert [(r["action"], r["object_type"], r["object_id"]) for r in rows] == [
        ("version.submit", "asset_versions", "6"), ("asset.create", "assets", "5")]
    assert rows[0]["before"] == '{"status": "draft"}'
    assert rows[0]["after"] == '{"status": "scanning"}'
    assert rows[1]["time_utc"] == "2026-11-01T01:00:00Z"
    assert rows[1]["actor_email"] == "sam@example.com" and rows[1]["address"] == "203.0.113.9"
    system = rows_of(client.get("/admin/audit.csv?actor=system"))
    assert [(r["action"], r["actor_name"], r["actor_id"]) for r in system] == [
        ("scan.failed", "system", "")]


def test_export_reads_in_batches_without_repeating_or_skipping(client, operator, monkeypatch):
    """Events sharing one timestamp across a batch boundary come out once each."""
    monkeypatch.setattr(audit_trail, "EXPORT_BATCH", 3)
    moment = datetime(2026, 11, 5, 12, 0)
    ids = [event(operator, subject_id=n, at=moment).id for n in range(7)]
    ids.append(event(operator, subject_id=99, at=moment - timedelta(seconds=1)).id)
    response = client.get("/admin/audit.csv")
    chunks = list(response.response)
    assert len(chunks) == 1 + 3  # the header, then batches of 3, 3 and 2
    rows = csv.DictReader(io.StringIO(b"".join(chunks).decode()))
    exported = [int(r["id"]) for r in rows]
    assert exported == sorted(ids[:7], reverse=True) + [ids[7]]


@pytest.mark.parametrize("text", ["=HYPERLINK(\"http://x\")", "+1+1", "-2+3", "@SUM(A1)",
                                  "\tcmd", "\rcmd"])
def test_export_defuses_cells_a_spreadsheet_would_run(client, factories, operator, text):
    mallory = factories.user(name=text, email="mallory@example.com")
    event(mallory, "asset.create", "assets", 1, after={"name": "x"})
    (row,) = rows_of(client.get("/admin/audit.csv?actor=mallory@example.com"))
    assert row["actor_name"] == "'" + text
    assert row["after"] == '{"name": "x"}'


def test_csv_cell():
    assert audit_trail.csv_cell("=1+1") == "'=1+1"
    assert audit_trail.csv_cell("plain") == "plain"
    assert audit_trail.csv_cell(None) == ""
    assert audit_trail.csv_cell(12) == "12"


def test_a_change_from_nothing_reads_as_a_dash(client, operator):
    event(operator, "appeal.decide", "appeals", 3, before={"decision": None},
          after={"decision": "accepted", "note": None})
    html = client.get("/admin/audit").get_data(as_text=True)
    assert "decision:</span> — → accepted" in html
    assert "note:</span> —" in html
    assert "null" not in html
