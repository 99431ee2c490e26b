from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import BigInteger, Enum, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from portal.extensions import db
from portal.models.asset import AssetKind
from portal.timeutil import utcnow


class UploadState(str, enum.Enum):
    open = "open"
    completed = "completed"
    aborted = "aborted"


class UploadSession(db.Model):
    """A package going from the browser straight to storage in parts (S3 multipart).

    Either ``version_id`` is set (Modify: a new package for that version), or
    ``asset_id`` (a new version of that asset, created when the upload completes), or the
    ``asset_*`` fields hold the Add Asset form, whose asset is created when the
    upload completes. ``key`` is built by the portal from ids and a random token.
    """

    __tablename__ = "upload_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    version_id: Mapped[int | None] = mapped_column(
        ForeignKey("asset_versions.id", ondelete="CASCADE"), index=True)
    #: Set for a new version of an existing asset (``version_label`` and ``submit`` with it).
    asset_id: Mapped[int | None] = mapped_column(
        ForeignKey("assets.id", ondelete="CASCADE"), index=True)
    asset_name: Mapped[str | None] = mapped_column(String(128))
    asset_kind: Mapped[AssetKind | None] = mapped_column(
        Enum(AssetKind, native_enum=False, length=16))
    asset_description: Mapped[str | None] = mapped_column(Text)
    version_label: Mapped[str | None] = mapped_column(String(64))
    submit: Mapped[bool] = mapped_column(default=True)
    key: Mapped[str] = mapped_column(String(512))
    s3_upload_id: Mapped[str] = mapped_column(String(255))
    filename: Mapped[str] = mapped_column(String(255))
    size: Mapped[int] = mapped_column(BigInteger)
    part_size: Mapped[int] = mapped_column(BigInteger)
    state: Mapped[UploadState] = mapped_column(
        Enum(UploadState, native_enum=False, length=16), default=UploadState.open, index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow, index=True)
    #: Bytes storage held for the upload when last measured (every part listed, resent ones too).
    stored_bytes: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    checked_at: Mapped[datetime | None]
    #: When a completion started joining the parts; another one waits until it is over.
    completing_since: Mapped[datetime | None]
    #: Why the portal ended the upload (shown to the seller), when it was not the seller.
    ended_reason: Mapped[str | None] = mapped_column(String(255))

    @property
    def part_count(self) -> int:
        """How many parts the declared size makes (at least one)."""
        return max(-(-self.size // self.part_size), 1)

    def part_length(self, number: int) -> int:
        """The size part ``number`` (1-based) must have; the last one holds the rest."""
        if number < self.part_count:
            return self.part_size
        return self.size - self.part_size * (self.part_count - 1)
