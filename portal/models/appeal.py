from __future__ import annotations

import enum
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import BigInteger, Enum, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, backref, mapped_column, relationship

from portal.extensions import db
from portal.timeutil import utcnow

if TYPE_CHECKING:
    from portal.models.asset import Asset, AssetVersion
    from portal.models.scan import Scan, ScanFinding
    from portal.models.user import User


class AppealDecision(str, enum.Enum):
    accepted = "accepted"
    denied = "denied"
    withdrawn = "withdrawn"


class ClaimVerdict(str, enum.Enum):
    accepted = "accepted"
    rejected = "rejected"


class Appeal(db.Model):
    """A seller's appeal of a rejected version's latest scan; open while ``decision`` is None.

    ``proof_key`` holds the filled-in report when the appeal came as a file (None for the
    web form). The reminder timestamps make each kind of reminder go out once.
    """

    __tablename__ = "appeals"

    id: Mapped[int] = mapped_column(primary_key=True)
    version_id: Mapped[int] = mapped_column(
        ForeignKey("asset_versions.id", ondelete="CASCADE"), index=True)
    scan_id: Mapped[int] = mapped_column(ForeignKey("scans.id", ondelete="CASCADE"), index=True)
    seller_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    proof_key: Mapped[str | None] = mapped_column(String(512))
    proof_name: Mapped[str | None] = mapped_column(String(255))
    submitted_at: Mapped[datetime] = mapped_column(default=utcnow)
    due_at: Mapped[datetime] = mapped_column(index=True)
    reviewer_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), index=True)
    assigned_at: Mapped[datetime | None]
    decided_at: Mapped[datetime | None] = mapped_column(index=True)
    decision: Mapped[AppealDecision | None] = mapped_column(
        Enum(AppealDecision, native_enum=False, length=16), index=True)
    comment: Mapped[str] = mapped_column(Text, default="")
    reminded_due_soon_at: Mapped[datetime | None]
    reminded_overdue_at: Mapped[datetime | None]

    # Backrefs: deleting a version (or its asset) takes its appeals along.
    version: Mapped["AssetVersion"] = relationship(backref=backref(
        "appeals", cascade="all, delete-orphan", order_by="Appeal.id"))
    scan: Mapped["Scan"] = relationship()
    seller: Mapped["User"] = relationship(foreign_keys=[seller_id])
    reviewer: Mapped["User | None"] = relationship(foreign_keys=[reviewer_id])
    claims: Mapped[list["AppealClaim"]] = relationship(
        back_populates="appeal", cascade="all, delete-orphan", order_by="AppealClaim.id")
    evidence: Mapped[list["AppealEvidence"]] = relationship(
        back_populates="appeal", cascade="all, delete-orphan", order_by="AppealEvidence.id")

    @property
    def is_open(self) -> bool:
        return self.decision is None

    @property
    def disputed(self) -> list["AppealClaim"]:
        """The claims that say "false positive" (the ones a reviewer decides)."""
        return [c for c in self.claims if c.false_positive]

    @property
    def object_keys(self) -> list[str]:
        return [k for k in [self.proof_key, *(e.key for e in self.evidence)] if k]


class AppealClaim(db.Model):
    """The seller's columns F, G and H for one finding, and the reviewer's verdict on it."""

    __tablename__ = "appeal_claims"
    __table_args__ = (UniqueConstraint("appeal_id", "finding_fingerprint",
                                       name="uq_appeal_claims_appeal_fingerprint"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    appeal_id: Mapped[int] = mapped_column(ForeignKey("appeals.id", ondelete="CASCADE"), index=True)
    finding_fingerprint: Mapped[str] = mapped_column(String(64), index=True)
    scan_finding_id: Mapped[int | None] = mapped_column(
        ForeignKey("scan_findings.id", ondelete="SET NULL"), index=True)
    false_positive: Mapped[bool] = mapped_column(default=True)
    reason: Mapped[str] = mapped_column(Text, default="")
    evidence: Mapped[str] = mapped_column(Text, default="")
    verdict: Mapped[ClaimVerdict | None] = mapped_column(
        Enum(ClaimVerdict, native_enum=False, length=16))
    note: Mapped[str] = mapped_column(Text, default="")
    decided_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    decided_at: Mapped[datetime | None]

    appeal: Mapped[Appeal] = relationship(back_populates="claims")
    finding: Mapped["ScanFinding | None"] = relationship()
    decided_by: Mapped["User | None"] = relationship()


class AppealEvidence(db.Model):
    """A supporting file the seller attached to an appeal (stored in object storage)."""

    __tablename__ = "appeal_evidence"

    id: Mapped[int] = mapped_column(primary_key=True)
    appeal_id: Mapped[int] = mapped_column(ForeignKey("appeals.id", ondelete="CASCADE"), index=True)
    key: Mapped[str] = mapped_column(String(512))
    filename: Mapped[str] = mapped_column(String(255))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    #: The engines and rules that examined the file; None: stored before files were
    #: examined, so it is examined on its first download.
    scanned_with: Mapped[str | None] = mapped_column(String(255))
    scanned_at: Mapped[datetime | None]

    appeal: Mapped[Appeal] = relationship(back_populates="evidence")


class AcceptedFalsePositive(db.Model):
    """A finding a reviewer accepted as a false positive, remembered per asset.

    A later scan of any package of the same asset that yields the same fingerprint
    (same component, version and advisory; same signature, location and content) does
    not block, as long as the acceptance is in force: not revoked (by an operator, or
    dropped because its fingerprint did not bind the content) and not expired.
    """

    __tablename__ = "accepted_false_positives"
    __table_args__ = (UniqueConstraint("asset_id", "fingerprint",
                                       name="uq_accepted_false_positives_asset_fingerprint"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    asset_id: Mapped[int] = mapped_column(ForeignKey("assets.id", ondelete="CASCADE"), index=True)
    fingerprint: Mapped[str] = mapped_column(String(64))
    accepted_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    accepted_by_name: Mapped[str] = mapped_column(String(120))
    accepted_at: Mapped[datetime] = mapped_column(default=utcnow)
    appeal_id: Mapped[int | None] = mapped_column(ForeignKey("appeals.id", ondelete="SET NULL"))
    note: Mapped[str] = mapped_column(Text, default="")
    expires_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    revoked_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    revoked_by_name: Mapped[str | None] = mapped_column(String(120))
    revoked_reason: Mapped[str | None] = mapped_column(Text)

    asset: Mapped["Asset"] = relationship(backref=backref(
        "accepted_false_positives", cascade="all, delete-orphan"))
    accepted_by: Mapped["User | None"] = relationship(foreign_keys=[accepted_by_id])
    revoked_by: Mapped["User | None"] = relationship(foreign_keys=[revoked_by_id])
    appeal: Mapped["Appeal | None"] = relationship()

    def in_force(self, now: datetime) -> bool:
        """Whether the acceptance still settles findings at ``now``."""
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)

    def state(self, now: datetime) -> str:
        """in force, revoked or expired."""
        if self.revoked_at is not None:
            return "revoked"
        return "in force" if self.in_force(now) else "expired"
