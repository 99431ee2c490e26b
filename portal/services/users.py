"""Accounts: registration, sign-in, roles. Passwords are argon2 hashes."""

from __future__ import annotations

import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from email_validator import EmailNotValidError, validate_email
from flask import current_app
from sqlalchemy import func, select

from portal.extensions import db
from portal.models import Role, User
from portal.services.audit import record_event
from portal.services.errors import Forbidden, NotFound, ValidationError

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
    record_event(actor, "user.active", user, before=before, after={"active": user.active},
                 address=address)
    db.session.commit()
    return user


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
