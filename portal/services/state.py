"""The version state machine: the only code that assigns ``AssetVersion.status``.

::

    draft --submit--> scanning --approved--> approved
                         ^    \\--rejected--> rejected --appeal--> reviewing --accept--> approved
                         |                      |                       \\--deny / withdraw--> rejected
                         +-------submit---------+ (modify; also from approved unless a
                                                   published product uses the version, and
                                                   from scanning once its scan failed for good)

An Approved version can be re-scanned (``rescan``, Approved to Approved): it stays
Approved while the scan runs and moves to Rejected only on a blocking verdict
(``rescan_rejected``).

Every move writes an audit event with the status before and after. ``move``
adds to the caller's transaction; the calling service commits.
"""

from __future__ import annotations

from sqlalchemy import exists, select

from portal.extensions import db
from portal.models import AssetVersion, Product, User, VersionStatus, product_versions
from portal.services.audit import record_event
from portal.services.errors import InvalidTransition
from portal.timeutil import utcnow

S = VersionStatus

#: event -> (statuses it may leave, status it enters)
TRANSITIONS: dict[str, tuple[frozenset[VersionStatus], VersionStatus]] = {
    "submit": (frozenset({S.draft, S.rejected, S.approved, S.scanning}), S.scanning),
    "approved": (frozenset({S.scanning}), S.approved),
    "rejected": (frozenset({S.scanning}), S.rejected),
    "appeal": (frozenset({S.rejected}), S.reviewing),
    "accept": (frozenset({S.reviewing}), S.approved),
    "deny": (frozenset({S.reviewing}), S.rejected),
    "withdraw": (frozenset({S.reviewing}), S.rejected),
    # a re-scan on new knowledge: Approved stays Approved while it runs...
    "rescan": (frozenset({S.approved}), S.approved),
    # ...and only a blocking verdict takes it back
    "rescan_rejected": (frozenset({S.approved}), S.rejected),
}

_REFUSALS = {
    "submit": "Only a draft, a rejected or an approved version can be submitted.",
    "approved": "Only a version being scanned can get a verdict.",
    "rejected": "Only a version being scanned can get a verdict.",
    "appeal": "Only a rejected version can be appealed.",
    "accept": "Only a version under review can be accepted.",
    "deny": "Only a version under review can be denied.",
    "withdraw": "Only an appeal under review can be withdrawn.",
    "rescan": "Only an Approved version is re-scanned; others are scanned when submitted.",
    "rescan_rejected": "Only an Approved version can be rejected by a re-scan.",
}


def can(version: AssetVersion, event: str) -> bool:
    """Whether ``event`` is allowed from the version's current status."""
    return refusal(version, event) is None


def refusal(version: AssetVersion, event: str) -> str | None:
    """Why ``event`` is not allowed now, or None when it is."""
    if event not in TRANSITIONS:
        raise ValueError(f"unknown event {event!r}")
    sources, _ = TRANSITIONS[event]
    if version.status not in sources:
        return _REFUSALS[event]
    if event == "submit" and version.status is S.approved and in_published_product(version):
        return ("This version is part of a published product and cannot be changed: add a "
                "new version with the fixed package instead.")
    if event == "submit" and version.status is S.scanning and not _scan_failed(version):
        return "This version is being scanned; wait for the verdict before changing it."
    return None


def _scan_failed(version: AssetVersion) -> bool:
    """Whether the version's scan ended without a verdict (failed for good, or stalled):
    the seller may then upload another package instead of waiting for an operator."""
    from portal.models import ScanState

    scan = version.latest_scan
    return scan is not None and scan.state == ScanState.failed


def move(version: AssetVersion, event: str, *, actor: User | None,
         address: str | None = None) -> VersionStatus:
    """Apply ``event`` to ``version`` and record it; raises InvalidTransition.

    ``actor`` None is the system (a scan verdict). The caller commits.
    """
    reason = refusal(version, event)
    if reason is not None:
        raise InvalidTransition(reason)
    before, after = version.status, TRANSITIONS[event][1]
    version.status = after
    if event == "submit":
        version.submitted_at = utcnow()
    record_event(actor, f"version.{event}", version, before={"status": before.value},
                 after={"status": after.value}, address=address)
    return after


def in_published_product(version: AssetVersion) -> bool:
    """Whether a published product lists this version."""
    return _in_product(version.id, published_only=True)


def in_any_product(version_id: int) -> bool:
    """Whether any product (published or not) lists this version."""
    return _in_product(version_id, published_only=False)


def _in_product(version_id: int, *, published_only: bool) -> bool:
    cond = (product_versions.c.version_id == version_id) & (
        product_versions.c.product_id == Product.id)
    if published_only:
        cond &= Product.published.is_(True)
    return bool(db.session.scalar(select(exists().where(cond))))
