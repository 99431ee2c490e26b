from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import Column, ForeignKey, String, Table, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.extensions import db
from portal.models.asset import AssetVersion
from portal.timeutil import utcnow

if TYPE_CHECKING:
    from portal.models.user import User

#: The only license a product is released under (the marketplace's rules).
LICENSE = "Commercial license"

product_versions = Table(
    "product_versions",
    db.metadata,
    Column("product_id", ForeignKey("products.id", ondelete="CASCADE"), primary_key=True),
    Column("version_id", ForeignKey("asset_versions.id", ondelete="CASCADE"), primary_key=True),
)


class Product(db.Model):
    """A commercial-license listing that associates approved asset versions."""

    __tablename__ = "products"

    id: Mapped[int] = mapped_column(primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    name: Mapped[str] = mapped_column(String(128))
    description: Mapped[str] = mapped_column(Text, default="")  # the summary buyers read
    license_type: Mapped[str] = mapped_column(String(64), default=LICENSE,
                                              server_default=LICENSE)
    price_note: Mapped[str] = mapped_column(String(200), default="", server_default="")
    published: Mapped[bool] = mapped_column(default=False)
    published_at: Mapped[datetime | None]
    #: Why an operator took it down (the seller sees it); cleared when published again.
    unpublished_note: Mapped[str | None] = mapped_column(Text)
    unpublished_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    owner: Mapped["User"] = relationship()
    versions: Mapped[list[AssetVersion]] = relationship(secondary=product_versions,
                                                        order_by=AssetVersion.id)
