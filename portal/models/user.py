from __future__ import annotations

import enum
from datetime import datetime

from flask_login import UserMixin
from sqlalchemy import Enum, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.extensions import db
from portal.timeutil import utcnow


class Role(str, enum.Enum):
    seller = "seller"
    reviewer = "reviewer"
    operator = "operator"


class User(UserMixin, db.Model):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True, index=True)
    name: Mapped[str] = mapped_column(String(120))
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[Role] = mapped_column(Enum(Role, native_enum=False, length=16), default=Role.seller)
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    #: Part of every session and remember cookie (see ``get_id``): raising it ends them all.
    session_version: Mapped[int] = mapped_column(default=0, server_default="0")

    def get_id(self) -> str:
        """The identity Flask-Login stores in the session and the remember cookie."""
        return f"{self.id}:{self.session_version}"

    def end_sessions(self) -> None:
        """Invalidate every session and remember cookie issued so far, on every device."""
        self.session_version = (self.session_version or 0) + 1

    @property
    def is_active(self) -> bool:  # Flask-Login refuses inactive accounts
        return self.active

    @property
    def is_reviewer(self) -> bool:
        return self.role in (Role.reviewer, Role.operator)

    @property
    def is_operator(self) -> bool:
        return self.role is Role.operator

    def __repr__(self) -> str:
        return f"<User {self.id} {self.email} {self.role.value}>"


class PasswordReset(db.Model):
    """A one-time link to set a new password; only the SHA-256 of its token is kept."""

    __tablename__ = "password_resets"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    #: The operator who issued it; None when the user asked for it by email.
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]

    user = relationship(User, foreign_keys=[user_id])

    def usable(self, now: datetime) -> bool:
        """Not used yet and not expired."""
        return self.used_at is None and now < self.expires_at
