from __future__ import annotations

import enum
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import BigInteger, Enum, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.extensions import db
from portal.timeutil import utcnow

if TYPE_CHECKING:
    from portal.models.scan import Scan
    from portal.models.user import User


class AssetKind(str, enum.Enum):
    binary = "binary"
    docker = "docker"


class VersionStatus(str, enum.Enum):
    draft = "draft"
    scanning = "scanning"
    approved = "approved"
    rejected = "rejected"
    reviewing = "reviewing"


class Asset(db.Model):
    __tablename__ = "assets"
    # Ids end up in storage keys: SQLite must never hand out a deleted one again.
    __table_args__ = (UniqueConstraint("owner_id", "name", name="uq_assets_owner_name"),
                      {"sqlite_autoincrement": True})

    id: Mapped[int] = mapped_column(primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    name: Mapped[str] = mapped_column(String(128), index=True)
    category: Mapped[str] = mapped_column(String(32), default="Application")
    kind: Mapped[AssetKind] = mapped_column(Enum(AssetKind, native_enum=False, length=16))
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    owner: Mapped["User"] = relationship()
    versions: Mapped[list["AssetVersion"]] = relationship(
        back_populates="asset", cascade="all, delete-orphan", order_by="AssetVersion.id"
    )

    @property
    def latest_version(self) -> "AssetVersion | None":
        return self.versions[-1] if self.versions else None

    @property
    def in_draft_box(self) -> bool:
        return all(v.status is VersionStatus.draft for v in self.versions)


class AssetVersion(db.Model):
    __tablename__ = "asset_versions"
    __table_args__ = (UniqueConstraint("asset_id", "label", name="uq_asset_versions_asset_label"),
                      {"sqlite_autoincrement": True})

    id: Mapped[int] = mapped_column(primary_key=True)
    asset_id: Mapped[int] = mapped_column(ForeignKey("assets.id", ondelete="CASCADE"), index=True)
    label: Mapped[str] = mapped_column(String(64))
    status: Mapped[VersionStatus] = mapped_column(
        Enum(VersionStatus, native_enum=False, length=16), default=VersionStatus.draft, index=True
    )
    package_key: Mapped[str | None] = mapped_column(String(512))
    package_name: Mapped[str | None] = mapped_column(String(255))
    package_size: Mapped[int | None] = mapped_column(BigInteger)
    package_sha256: Mapped[str | None] = mapped_column(String(64))
    submitted_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    asset: Mapped[Asset] = relationship(back_populates="versions")
    scans: Mapped[list["Scan"]] = relationship(
        back_populates="version", cascade="all, delete-orphan", order_by="Scan.id"
    )

    @property
    def latest_scan(self) -> "Scan | None":
        return self.scans[-1] if self.scans else None
