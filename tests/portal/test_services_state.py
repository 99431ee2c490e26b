"""The state machine: every transition, every refusal, every audit event."""

import pytest

from portal.models import AuditEvent, VersionStatus as S
from portal.services import state
from portal.services.errors import InvalidTransition

ALLOWED = [
    (S.draft, "submit", S.scanning),
    (S.rejected, "submit", S.scanning),
    (S.approved, "submit", S.scanning),
    (S.scanning, "approved", S.approved),
    (S.scanning, "rejected", S.rejected),
    (S.rejected, "appeal", S.reviewing),
    (S.reviewing, "accept", S.approved),
    (S.reviewing, "deny", S.rejected),
    (S.reviewing, "withdraw", S.rejected),
    (S.approved, "rescan", S.approved),
    (S.approved, "rescan_rejected", S.rejected),
]


@pytest.mark.parametrize(("before", "event", "after"), ALLOWED)
def test_allowed_moves_are_audited(app, factories, before, event, after):
    seller = factories.user()
    version = factories.version(factories.asset(seller), status=before)
    assert state.move(version, event, actor=seller, address="10.0.0.1") is after
    assert version.status is after
    event_row = AuditEvent.query.one()
    assert (event_row.action, event_row.actor_id, event_row.subject_id) == (
        f"version.{event}", seller.id, version.id)
    assert (event_row.before, event_row.after) == ({"status": before.value}, {"status": after.value})
    assert event_row.address == "10.0.0.1"


@pytest.mark.parametrize(
    ("before", "event"),
    [(b, e) for b in S for e in state.TRANSITIONS
     if (b, e) not in {(a, ev) for a, ev, _ in ALLOWED}],
)
def test_every_other_move_is_refused_and_changes_nothing(app, factories, before, event):
    version = factories.version(status=before)
    with pytest.raises(InvalidTransition):
        state.move(version, event, actor=None)
    assert version.status is before and AuditEvent.query.count() == 0


def test_approved_version_in_a_published_product_cannot_be_resubmitted(app, factories):
    seller = factories.user()
    version = factories.version(factories.asset(seller), status=S.approved)
    product = factories.product(seller, [version], published=False)
    assert state.can(version, "submit")
    product.published = True
    assert "published product" in state.refusal(version, "submit")
    with pytest.raises(InvalidTransition, match="published product"):
        state.move(version, "submit", actor=seller)


def test_a_version_whose_scan_failed_for_good_can_get_another_package(app, factories):
    """A scan that failed (a stalled one, say) decides nothing; the seller need not wait
    for an operator to retry it."""
    seller = factories.user()
    version = factories.version(factories.asset(seller), status=S.scanning)
    scan = factories.scan(version, state="running")
    assert "being scanned" in state.refusal(version, "submit")
    scan.state = "failed"
    assert state.can(version, "submit")
    assert state.move(version, "submit", actor=seller) is S.scanning


def test_unknown_event_is_a_programming_error(app, factories):
    with pytest.raises(ValueError):
        state.move(factories.version(), "explode", actor=None)


def test_only_the_state_module_assigns_a_version_status():
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "portal"
    assignment = re.compile(r"\b(version|v|row|asset_version)\.status\s*=(?!=)")
    offenders = [str(p) for p in root.rglob("*.py")
                 if p.name != "state.py" and assignment.search(p.read_text())]
    assert offenders == []
