"""The scan policy: operators set it, every change is a new audited version, and scans run
under (and record) the version in force."""

from __future__ import annotations


import pytest

from portal.models import AuditEvent, PolicyVersion, Role
from portal.services import policy
from portal.services.errors import NotFound, ValidationError
from tests.portal.test_views_security import assert_csp_safe


@pytest.fixture
def operator(client, auth, factories):
    user = factories.user(Role.operator, name="Olga Operator")
    auth.login_as(user)
    return user


def test_defaults_come_from_the_environment(app):
    app.config.update(CVSS_THRESHOLD=8.5, DEV_BLOCKS=True)
    current = policy.current_policy()
    assert (current.threshold, current.dev_blocks, current.version) == (8.5, True, None)
    assert current.label == f"{policy.RULES}/defaults"


def test_each_change_is_a_new_audited_version(app, factories):
    olga = factories.user(Role.operator, name="Olga")
    first = policy.update_policy(olga, "9.0", False, "fewer false alarms", address="10.0.0.5")
    second = policy.update_policy(olga, 9.0, True)
    assert second.version > first.version
    assert policy.current_policy().label == f"{policy.RULES}/{second.version}"
    assert [row.id for row in policy.history()] == [second.version, first.version]
    events = AuditEvent.query.filter_by(action="policy.update").order_by(AuditEvent.id).all()
    assert [(e.before["threshold"], e.after["threshold"], e.after["dev_blocks"]) for e in events] \
        == [(7.0, 9.0, False), (9.0, 9.0, True)]
    assert events[0].address == "10.0.0.5" and events[0].after["note"] == "fewer false alarms"


@pytest.mark.parametrize("value", ["", "high", "0", "10.1", "-1", "nan", "inf"])
def test_a_threshold_out_of_range_is_refused_and_nothing_saved(app, factories, value):
    with pytest.raises(ValidationError, match="threshold"):
        policy.update_policy(factories.user(Role.operator), value, False)
    assert PolicyVersion.query.count() == 0


def test_saving_what_is_in_force_is_refused(app, factories):
    with pytest.raises(ValidationError, match="Nothing changed"):
        policy.update_policy(factories.user(Role.operator), "7.0", False)


@pytest.mark.parametrize("role", [Role.seller, Role.reviewer])
def test_only_operators_change_it(app, factories, role):
    with pytest.raises(NotFound):
        policy.update_policy(factories.user(role), "9.0", False)


def test_the_page_shows_and_changes_it(client, operator):
    html = client.get("/admin/policy/").get_data(as_text=True)
    assert_csp_safe(html)
    assert "7.0 or more" in html and "don&#39;t block" in html and "defaults" in html
    response = client.post("/admin/policy/", data={"threshold": "abc", "note": ""})
    assert response.status_code == 422 and "CVSS threshold" in response.get_data(as_text=True)
    response = client.post("/admin/policy/", data={"threshold": "9.5", "dev_blocks": "1",
                                                   "note": "audit 2026"}, follow_redirects=True)
    html = response.get_data(as_text=True)
    saved = policy.current_policy().version  # ids are not reused on PostgreSQL
    assert f"Policy version {saved} is in force" in html and "9.5 or more" in html
    assert "audit 2026" in html and "Olga Operator" in html
