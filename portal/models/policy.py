from __future__ import annotations

from datetime import datetime

from sqlalchemy import Float, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from portal.extensions import db
from portal.timeutil import utcnow


class PolicyVersion(db.Model):
    """One version of the scan policy an operator saved; the newest is in force.

    Every scan records the version it ran under (``Scan.policy``), so a verdict can
    always be explained by the rules that made it.
    """

    __tablename__ = "policy_versions"

    id: Mapped[int] = mapped_column(primary_key=True)  # the policy version number
    threshold: Mapped[float] = mapped_column(Float)
    dev_blocks: Mapped[bool]
    note: Mapped[str] = mapped_column(Text, default="")
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_by_name: Mapped[str] = mapped_column(String(120), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
