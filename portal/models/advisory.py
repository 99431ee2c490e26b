from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, String
from sqlalchemy.orm import Mapped, backref, mapped_column, relationship

from portal.extensions import db
from portal.timeutil import utcnow


class AdvisoryFlag(db.Model):
    """An Approved version whose stored components match advisories that a data import
    added or changed. Open until the version is scanned again after ``created_at``."""

    __tablename__ = "advisory_flags"

    id: Mapped[int] = mapped_column(primary_key=True)
    version_id: Mapped[int] = mapped_column(
        ForeignKey("asset_versions.id", ondelete="CASCADE"), index=True)
    scan_id: Mapped[int | None] = mapped_column(ForeignKey("scans.id", ondelete="SET NULL"))
    snapshot: Mapped[str] = mapped_column(String(64))  # the import's snapshot (osv:sha256:…/n)
    advisories: Mapped[list] = mapped_column(JSON, default=list)  # record IDs that matched
    blocking: Mapped[bool] = mapped_column(default=False)  # would block under the policy now
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)

    version = relationship("AssetVersion", backref=backref(
        "advisory_flags", cascade="all, delete-orphan", order_by="AdvisoryFlag.id"))
