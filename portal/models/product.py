from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, ForeignKey, String, Table, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.extensions import db
from portal.models.asset import AssetVersion
from portal.timeutil import utcnow

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
    description: Mapped[str] = mapped_column(Text, default="")
    published: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    versions: Mapped[list[AssetVersion]] = relationship(secondary=product_versions)
