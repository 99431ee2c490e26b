"""Accounts: registration, sign-in, sessions, roles, password changes and resets.

Passwords are argon2 hashes. Every session and remember cookie carries the user's
session version; logout, a password change or reset and deactivation raise it,
which ends every session of that user on every device.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from email_validator import EmailNotValidError, validate_email
from flask import current_app
from sqlalchemy import func, select, update

from portal.extensions import db
from portal.models import Role, User
from portal.models.user import PasswordReset
from portal.services.audit import record_event
from portal.services.errors import Forbidden, NotFound, ValidationError
from portal.services.mail import mail_configured, send_mail, send_mail_later
from portal.timeutil import utcnow

MIN_PASSWORD = 10
MAX_PASSWORD = 256
_hasher = PasswordHasher()


def hash_password(password: str) -> str:
    """An argon2id hash of ``password``."""
    return _hasher.hash(password)


def register_seller(email: str, name: str, password: str, *, address: str | None = None) -> User:
    """Create a seller account from the sign-up form."""
    return create_user(email, name, password, Role.seller, address=address)


def create_user(email: str, name: str, password: str, role: Role | str, *,
                actor: User | None = None, address: str | None = None) -> User:
    """Create an account with ``role``; raises ValidationError with a field name."""
    email = _normalise_email(email)
    name = (name or "").strip() or email.split("@")[0]
    if len(name) > 120:
        raise ValidationError("Name must be at most 120 characters.", "name")
    _check_password(password, email)
    role = _role(role)
    if _by_email(email) is not None:
        raise ValidationError("An account with this email address already exists.", "email")
    user = User(email=email, name=name, password_hash=hash_password(password), role=role)
    db.session.add(user)
    db.session.flush()
    record_event(actor, "user.create", user, after={"email": email, "role": role.value},
                 address=address)
    db.session.commit()
    return user


def authenticate(email: str, password: str) -> User | None:
    """The active user with this email and password, or None. Upgrades old hashes."""
    user = _by_email((email or "").strip().lower())
    if user is None or not user.active:
        _hasher.hash(password or "x")  # spend the same time whether or not the account exists
        return None
    try:
        _hasher.verify(user.password_hash, password or "")
    except (VerificationError, InvalidHashError):
        return None
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
        db.session.commit()
    return user


def ensure_admin(email: str | None = None, password: str | None = None) -> tuple[User, str | None]:
    """Make sure an active operator exists.

    Returns (operator, generated password) when one was created with a generated
    password, (operator, None) when one existed or the password was given.
    """
    existing = db.session.scalars(
        select(User).where(User.role == Role.operator, User.active.is_(True)).order_by(User.id)
    ).first()
    if existing is not None:
        return existing, None
    email = email or current_app.config.get("ADMIN_EMAIL") or "admin@assay.example"
    generated = None if password else secrets.token_urlsafe(12)
    user = create_user(email, "Administrator", password or generated, Role.operator)
    return user, generated


def list_users(*, q: str = "", role: Role | str | None = None) -> list[User]:
    """Every account, optionally filtered by email/name text and role, oldest first."""
    stmt = select(User).order_by(User.id)
    if q:
        like = f"%{q.strip().lower()}%"
        stmt = stmt.where(func.lower(User.email).like(like) | func.lower(User.name).like(like))
    if role:
        stmt = stmt.where(User.role == _role(role))
    return list(db.session.scalars(stmt))


def user_for_session(session_id: str) -> User | None:
    """The active user a session or remember cookie names, if it is still current.

    The cookie holds ``<id>:<session version>``; a version raised since (logout,
    password change or reset, deactivation) or a deactivated account ends the session.
    """
    user_id, _, version = (session_id or "").partition(":")
    if not (user_id.isdigit() and version.isdigit()):
        return None
    user = db.session.get(User, int(user_id))
    if user is None or not user.active or user.session_version != int(version):
        return None
    return user


def get_user(user_id: int) -> User:
    """The user with this id, or NotFound."""
    user = db.session.get(User, user_id)
    if user is None:
        raise NotFound("No such user.")
    return user


def set_role(actor: User, user_id: int, role: Role | str, *, address: str | None = None) -> User:
    """An operator changes someone's role (never their own: the last operator stays one)."""
    _require_operator(actor)
    user, role = get_user(user_id), _role(role)
    if user.id == actor.id and role is not Role.operator:
        raise Forbidden("You cannot remove your own operator role.")
    before = {"role": user.role.value}
    user.role = role
    record_event(actor, "user.role", user, before=before, after={"role": role.value}, address=address)
    db.session.commit()
    return user


def set_active(actor: User, user_id: int, active: bool, *, address: str | None = None) -> User:
    """An operator enables or disables an account (never their own)."""
    _require_operator(actor)
    user = get_user(user_id)
    if user.id == actor.id and not active:
        raise Forbidden("You cannot disable your own account.")
    before = {"active": user.active}
    user.active = bool(active)
    if not user.active:
        user.end_sessions()
        _void_resets(user)
    record_event(actor, "user.active", user, before=before, after={"active": user.active},
                 address=address)
    db.session.commit()
    return user


# --- sessions and passwords ------------------------------------------------------------


def end_sessions(user: User, *, address: str | None = None) -> None:
    """Log ``user`` out everywhere: every session and remember cookie stops working."""
    user.end_sessions()
    record_event(user, "user.logout", user, after={"session_version": user.session_version},
                 address=address)
    db.session.commit()


def change_password(user: User, current: str, new: str, *, address: str | None = None) -> User:
    """The signed-in user sets a new password; every other session of theirs ends.

    The caller signs the current browser in again with the new session version.
    """
    if not _password_matches(user, current):
        raise ValidationError("Your current password is not correct.", "current")
    _check_password(new, user.email)
    if _password_matches(user, new):
        raise ValidationError("Choose a password different from the current one.", "password")
    _set_password(user, new)
    record_event(user, "user.password", user, after={"session_version": user.session_version},
                 address=address)
    db.session.commit()
    return user


@dataclass(frozen=True)
class IssuedReset:
    """A reset link just made: ``link`` is shown once and never stored."""

    user: User
    link: str
    expires_at: datetime
    mailed: bool


def issue_reset(actor: User, user_id: int, link_for: Callable[[str], str], *,
                address: str | None = None) -> IssuedReset:
    """An operator gives ``user_id`` a one-time link to set a new password.

    Earlier unused links of that user stop working. The link is mailed to the user
    when SMTP is configured; the operator sees it once either way.
    """
    _require_operator(actor)
    user = get_user(user_id)
    if not user.active:
        raise ValidationError("Reactivate the account before resetting its password.")
    reset, token = _new_reset(user, created_by=actor)
    record_event(actor, "user.reset_issue", user,
                 after={"expires_at": reset.expires_at.isoformat()}, address=address)
    db.session.commit()
    link = link_for(token)
    mailed = send_mail(user.email, "Set a new password", _reset_text(user, link, reset))
    return IssuedReset(user=user, link=link, expires_at=reset.expires_at, mailed=mailed)


def request_reset(email: str, link_for: Callable[[str], str], *,
                  address: str | None = None) -> None:
    """Self-service: mail a reset link to ``email`` if an active account has it.

    Says nothing about whether the account exists: the caller shows the same answer
    either way. Does nothing without SMTP.
    """
    if not mail_configured():
        return
    user = _by_email((email or "").strip().lower())
    if user is None or not user.active:
        return
    reset, token = _new_reset(user, created_by=None)
    record_event(None, "user.reset_request", user,
                 after={"expires_at": reset.expires_at.isoformat()}, address=address)
    db.session.commit()
    link = link_for(token)
    send_mail_later(user.email, "Set a new password", _reset_text(user, link, reset))


def reset_for_token(token: str) -> PasswordReset:
    """The usable reset this token opens, or NotFound (unknown, used or expired)."""
    reset = db.session.scalars(
        select(PasswordReset).where(PasswordReset.token_hash == _token_hash(token))).first()
    if reset is None or not reset.usable(utcnow()) or not reset.user.active:
        raise NotFound("This password reset link is not valid: it has expired or was "
                       "already used.")
    return reset


def complete_reset(token: str, new: str, *, address: str | None = None) -> User:
    """Set a new password with a reset link; the link, every other pending link and
    every session of the user stop working."""
    reset = reset_for_token(token)
    user = reset.user
    _check_password(new, user.email)
    now = utcnow()
    claimed = db.session.execute(
        update(PasswordReset).where(PasswordReset.id == reset.id, PasswordReset.used_at.is_(None))
        .values(used_at=now).execution_options(synchronize_session=False))
    if claimed.rowcount != 1:  # another request used it first
        db.session.rollback()
        raise NotFound("This password reset link was already used.")
    _set_password(user, new)
    record_event(None, "user.password_reset", user,
                 after={"reset_id": reset.id, "session_version": user.session_version},
                 address=address)
    db.session.commit()
    return user


def pending_resets() -> dict[int, datetime]:
    """For each user with a usable reset link: when it expires (the users page shows it)."""
    rows = db.session.execute(
        select(PasswordReset.user_id, func.max(PasswordReset.expires_at))
        .where(PasswordReset.used_at.is_(None), PasswordReset.expires_at > utcnow())
        .group_by(PasswordReset.user_id))
    return {user_id: expires for user_id, expires in rows}


def reset_lifetime() -> timedelta:
    return timedelta(hours=int(current_app.config.get("PASSWORD_RESET_HOURS", 24)))


def _new_reset(user: User, *, created_by: User | None) -> tuple[PasswordReset, str]:
    _void_resets(user)
    token = secrets.token_urlsafe(32)
    now = utcnow()
    reset = PasswordReset(user_id=user.id, token_hash=_token_hash(token), created_at=now,
                          expires_at=now + reset_lifetime(),
                          created_by_id=created_by.id if created_by else None)
    db.session.add(reset)
    db.session.flush()
    return reset, token


def _void_resets(user: User) -> None:
    db.session.execute(
        update(PasswordReset).where(PasswordReset.user_id == user.id,
                                    PasswordReset.used_at.is_(None))
        .values(used_at=utcnow()).execution_options(synchronize_session=False))


def _set_password(user: User, password: str) -> None:
    user.password_hash = hash_password(password)
    user.end_sessions()
    _void_resets(user)


def _password_matches(user: User, password: str) -> bool:
    try:
        return _hasher.verify(user.password_hash, password or "")
    except (VerificationError, InvalidHashError):
        return False


def _token_hash(token: str) -> str:
    return hashlib.sha256((token or "").encode()).hexdigest()


def _reset_text(user: User, link: str, reset: PasswordReset) -> str:
    hours = round((reset.expires_at - reset.created_at).total_seconds() / 3600)
    return (f"Hello {user.name},\n\nset a new password for your Assay account ({user.email}) "
            f"here:\n\n{link}\n\nThe link works once, for {hours} hours. If you did not "
            "ask for it, ignore this message: your password stays as it is.\n")


def _require_operator(actor: User) -> None:
    if actor is None or not actor.is_operator:
        raise Forbidden("Only operators manage accounts.")


def _by_email(email: str) -> User | None:
    return db.session.scalars(select(User).where(func.lower(User.email) == email)).first()


def _normalise_email(email: str) -> str:
    try:
        checked = validate_email((email or "").strip(), check_deliverability=False)
    except EmailNotValidError as exc:
        raise ValidationError(f"Enter a valid email address ({exc}).", "email") from None
    return checked.normalized.lower()


def _check_password(password: str, email: str) -> None:
    if not password or len(password) < MIN_PASSWORD:
        raise ValidationError(f"Password must be at least {MIN_PASSWORD} characters.", "password")
    if len(password) > MAX_PASSWORD:
        raise ValidationError(f"Password must be at most {MAX_PASSWORD} characters.", "password")
    if password.lower() == email or len(set(password)) < 4:
        raise ValidationError("Password is too easy to guess; choose a longer, varied one.",
                              "password")


def _role(role: Role | str) -> Role:
    try:
        return Role(role)
    except ValueError:
        raise ValidationError(f"Unknown role {role!r}: use seller, reviewer or operator.",
                              "role") from None
