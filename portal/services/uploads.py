"""Direct uploads: packages go from the browser to storage in parts, never through the portal.

The portal starts an S3 multipart upload, signs a URL per part on demand and,
when the browser says it is done, lists the stored parts itself (whatever the
browser claims about parts or ETags is ignored), checks them against the size
declared at the start, joins them and reads the first bytes back to check the
format. Only then is the package recorded, exactly as a form upload would be.

An upload nobody touches for UPLOAD_ABANDONED_AFTER seconds is aborted by a
scheduled job, which also aborts multipart uploads no session knows about.
"""

from __future__ import annotations

import posixpath
from datetime import timedelta
from pathlib import Path

from flask import current_app
from minio.error import S3Error
from sqlalchemy import select, update

from portal import storage
from portal.extensions import db
from portal.models import AssetVersion, Role, Scan, UploadSession, UploadState, User
from portal.services import assets
from portal.services.audit import record_event
from portal.services.errors import Forbidden, NotFound, ValidationError
from portal.timeutil import utcnow

MIN_PART = 5 * 1024**2  # S3 refuses smaller parts, except the last
MAX_PARTS = 10_000
MIB = 1024**2


# --- start ------------------------------------------------------------------------

def start_upload(actor: User, *, context: dict, filename: str, size,
                 address: str | None = None) -> UploadSession:
    """Check what can be checked before any byte is sent and open a multipart upload.

    ``context`` is either ``{"version_id": id}`` (Modify) or the Add Asset fields
    ``name``, ``kind``, ``description``, ``version_label`` and ``submit``.
    """
    size = _check_size(size)
    session = UploadSession(owner_id=actor.id, filename=Path(filename or "").name, size=size,
                            part_size=part_size_for(size), state=UploadState.open)
    token = storage.new_upload_id()
    if context.get("version_id") is not None:
        version = assets.check_modifiable(actor, _int(context["version_id"]), filename)
        session.version_id = version.id
        session.key = storage.package_key(actor.id, version.asset_id, version.id, token)
    else:
        fields = assets.check_new_asset(
            actor, name=context.get("name"), kind=context.get("kind"),
            description=context.get("description") or "",
            version_label=context.get("version_label"), filename=filename)
        session.asset_name, session.asset_kind = fields["name"], fields["kind"]
        session.asset_description = fields["description"]
        session.version_label, session.submit = fields["version_label"], bool(context.get("submit"))
        session.key = storage.package_upload_key(actor.id, token)
    db.session.commit()  # nothing stays locked while storage answers
    session.s3_upload_id = storage.create_multipart(session.key)
    db.session.add(session)
    record_event(actor, "upload.start", session,
                 after={"file": session.filename, "size": size, "key": session.key},
                 address=address)
    db.session.commit()
    return session


def part_size_for(size: int) -> int:
    """The configured part size, grown (in whole MiB) when the file needs more than 10,000 parts."""
    wanted = max(int(current_app.config["UPLOAD_PART_SIZE"]), MIN_PART)
    needed = -(-size // MAX_PARTS)
    return max(wanted, -(-needed // MIB) * MIB)


def _check_size(size) -> int:
    limit = int(current_app.config["MAX_PACKAGE_SIZE"])
    try:
        size = int(size)
    except (TypeError, ValueError):
        raise ValidationError("The file size is missing.", "package") from None
    if size <= 0:
        raise ValidationError("The package file is empty.", "package")
    if size > limit:
        raise ValidationError(
            f"The package is larger than {_human(limit)}, the largest package accepted.",
            "package")
    return size


# --- during the upload --------------------------------------------------------------

def get_upload(actor: User, session_id: int) -> UploadSession:
    """The actor's own upload; anyone else's is NotFound, like one that does not exist."""
    session = db.session.get(UploadSession, session_id)
    if session is None or actor is None or session.owner_id != actor.id:
        raise NotFound("No such upload.")
    return session


def sign_part(actor: User, session_id: int, part_number) -> dict:
    """A presigned URL for one part, and how many bytes that part must have."""
    session = _open(actor, session_id)
    number = int(part_number) if str(part_number).isdigit() else 0
    if not 1 <= number <= session.part_count:
        raise ValidationError(f"This upload has parts 1 to {session.part_count}.")
    expires = timedelta(seconds=int(current_app.config["UPLOAD_URL_EXPIRY"]))
    url = storage.presign_part(session.key, session.s3_upload_id, number, expires)
    session.updated_at = utcnow()  # an upload in progress is not abandoned
    db.session.commit()
    return {"number": number, "url": url, "size": session.part_length(number)}


def list_uploaded_parts(actor: User, session_id: int) -> list[dict]:
    """The parts storage already holds with the right size (what a resumed upload skips)."""
    session = _open(actor, session_id)
    return [{"number": p.number, "size": p.size} for p in _stored_parts(session)
            if p.number <= session.part_count and p.size == session.part_length(p.number)]


def resume_info(actor: User, session_id: int) -> dict:
    """The upload as :func:`describe` gives it, with ``parts`` already stored (while open)."""
    session = get_upload(actor, session_id)
    info = describe(session)
    open_ = session.state is UploadState.open
    info["parts"] = list_uploaded_parts(actor, session_id) if open_ else []
    return info


def describe(session: UploadSession) -> dict:
    """What the browser needs to drive (or resume) the upload."""
    return {"id": session.id, "state": session.state.value, "filename": session.filename,
            "size": session.size, "part_size": session.part_size,
            "part_count": session.part_count}


# --- finish ---------------------------------------------------------------------------

def complete_upload(actor: User, session_id: int, *, address: str | None = None) -> AssetVersion:
    """Join the stored parts, check the package and record it (then scan it, or keep a draft).

    The part list comes from storage, never from the browser. A missing or
    wrongly sized part is reported and the upload stays open to fix it; a wrong
    format removes the object and ends the upload.
    """
    session = _open(actor, session_id)
    parts = _stored_parts(session)
    _check_parts(session, parts)
    if not _move(session.id, UploadState.open, UploadState.completed):
        raise ValidationError("This upload has already finished.")
    storage.complete_multipart(session.key, session.s3_upload_id, parts)
    try:
        stored = storage.head(session.key)
        if stored is None or stored.size != session.size:
            raise ValidationError("Storage did not keep the whole package; upload it again.",
                                  "package")
        assets.check_stored_format(session.key, session.filename, session.size)
        version = _record(actor, session, address)
    except BaseException:
        db.session.rollback()
        storage.delete(session.key)
        _move(session.id, UploadState.completed, UploadState.aborted)
        raise
    return version


def _check_parts(session: UploadSession, parts: list[storage.StoredPart]) -> None:
    have = {p.number: p for p in parts}
    extra = sorted(n for n in have if n > session.part_count)
    if extra:
        raise ValidationError(
            f"Storage holds part {extra[0]}, but a file of {_human(session.size)} has only "
            f"{session.part_count} parts.", "package")
    missing = [n for n in range(1, session.part_count + 1) if n not in have]
    if missing:
        raise ValidationError(
            f"{len(missing)} of {session.part_count} parts have not been uploaded yet "
            f"(first missing: part {missing[0]}). Resume the upload to send them.", "package")
    for number, part in sorted(have.items()):
        if part.size != session.part_length(number):
            raise ValidationError(
                f"Part {number} holds {part.size} bytes instead of "
                f"{session.part_length(number)}; resume the upload to send it again.", "package")
    total = sum(p.size for p in parts)
    if total != session.size:
        raise ValidationError(
            f"The parts hold {total} bytes, not the {session.size} declared.", "package")


def _record(actor: User, session: UploadSession, address: str | None) -> AssetVersion:
    package = assets.Package(session.key, session.filename, session.size, None)
    if session.version_id is not None:
        return assets.attach_to_version(actor, session.version_id, package, address=address)
    return assets.attach_new_asset(
        actor, package, name=session.asset_name, kind=session.asset_kind.value,
        description=session.asset_description or "", version_label=session.version_label,
        submit=session.submit, address=address)


def cancel_upload(actor: User, session_id: int, *, address: str | None = None) -> None:
    """Stop the upload: storage drops the parts already sent."""
    session = _open(actor, session_id)
    _abort(session)
    record_event(actor, "upload.cancel", session, before={"key": session.key}, address=address)
    db.session.commit()


def abort_abandoned(older_than: timedelta | None = None) -> int:
    """Abort uploads untouched for ``older_than`` (UPLOAD_ABANDONED_AFTER by default), and
    multipart uploads that old under ``packages/`` that no open session knows about.
    Returns how many were aborted."""
    if older_than is None:
        older_than = timedelta(seconds=int(current_app.config["UPLOAD_ABANDONED_AFTER"]))
    cutoff = utcnow() - older_than
    stale = db.session.scalars(select(UploadSession).where(
        UploadSession.state == UploadState.open, UploadSession.updated_at < cutoff)).all()
    for session in stale:
        _abort(session)
        db.session.commit()
    known = set(db.session.scalars(select(UploadSession.s3_upload_id).where(
        UploadSession.state == UploadState.open)))
    db.session.commit()
    strays = [u for u in storage.list_multipart_uploads("packages/")
              if u.upload_id not in known and u.initiated is not None and u.initiated < cutoff]
    for upload in strays:
        storage.abort_multipart(upload.key, upload.upload_id)
    if stale or strays:
        current_app.logger.info("aborted %d abandoned uploads", len(stale) + len(strays))
    return len(stale) + len(strays)


# --- operators: a package already in the bucket -----------------------------------------

def register_existing_object(operator: User, *, seller_id, key: str, name: str, kind: str,
                             version_label: str, description: str = "",
                             filename: str | None = None, submit: bool = True,
                             address: str | None = None) -> AssetVersion:
    """Record an object uploaded with ``mc`` or ``aws s3 cp`` as a seller's new asset.

    The key must lie under that seller's prefix (``packages/<seller id>/``) and
    belong to no other version; the object must exist, fit the size limit and be
    an accepted format by its first bytes.
    """
    if operator is None or not operator.is_operator:
        raise Forbidden("Only operators can register stored packages.")
    seller = db.session.get(User, _int(seller_id))
    if seller is None or seller.role is not Role.seller:
        raise ValidationError("No seller has that id.", "seller_id")
    key = _check_key(seller, key)
    filename = (filename or "").strip() or posixpath.basename(key)
    assets.check_package_name(filename)
    stored = storage.head(key)
    if stored is None:
        raise ValidationError(f"There is no object at {key} in the bucket.", "key")
    _check_size(stored.size)
    assets.check_stored_format(key, filename, stored.size)
    package = assets.Package(key, Path(filename).name, stored.size, None)
    return assets.attach_new_asset(
        seller, package, name=name, kind=kind, description=description,
        version_label=version_label, submit=submit, actor=operator, address=address)


def _check_key(seller: User, key: str) -> str:
    key = (key or "").strip()
    prefix = storage.seller_prefix(seller.id)
    parts = key.split("/")
    if not key.startswith(prefix) or any(p in ("", ".", "..") for p in parts):
        raise ValidationError(f"The object key must lie under {prefix} (this seller's folder).",
                              "key")
    used = db.session.scalar(select(AssetVersion.id).where(AssetVersion.package_key == key))
    if used is not None:
        raise ValidationError("Another version already uses this object.", "key")
    return key


# --- the worker -------------------------------------------------------------------------

def record_sha256(version_id: int, key: str, sha256: str) -> None:
    """Fill in the hash of a directly uploaded package once a worker has read it all."""
    db.session.execute(
        update(AssetVersion)
        .where(AssetVersion.id == version_id, AssetVersion.package_key == key,
               AssetVersion.package_sha256.is_(None))
        .values(package_sha256=sha256))
    db.session.execute(
        update(Scan).where(Scan.version_id == version_id, Scan.package_key == key,
                           Scan.package_sha256.is_(None))
        .values(package_sha256=sha256))
    db.session.commit()


# --- helpers ------------------------------------------------------------------------------

def _open(actor: User, session_id: int) -> UploadSession:
    session = get_upload(actor, session_id)
    if session.state is not UploadState.open:
        raise ValidationError(
            "This upload was cancelled or abandoned; start it again." if
            session.state is UploadState.aborted else "This upload has already finished.")
    return session


def _stored_parts(session: UploadSession) -> list[storage.StoredPart]:
    """One part per number: where storage lists a number twice (a part sent again), the
    newest of the right size, else the newest."""
    try:
        listed = storage.list_parts(session.key, session.s3_upload_id)
    except S3Error as exc:
        if exc.code != "NoSuchUpload":
            raise
    else:
        chosen: dict[int, storage.StoredPart] = {}
        for part in listed:  # oldest first
            held = chosen.get(part.number)
            right = part.size == session.part_length(part.number)
            if held is None or right or held.size != session.part_length(part.number):
                chosen[part.number] = part
        return [chosen[n] for n in sorted(chosen)]
    _move(session.id, UploadState.open, UploadState.aborted)
    raise ValidationError("Storage no longer holds this upload (it was abandoned); start again.")


def _abort(session: UploadSession) -> None:
    storage.abort_multipart(session.key, session.s3_upload_id)
    session.state = UploadState.aborted


def _move(session_id: int, before: UploadState, after: UploadState) -> bool:
    """Change the state only if it still is ``before`` (two requests never both finish)."""
    result = db.session.execute(
        update(UploadSession).where(UploadSession.id == session_id, UploadSession.state == before)
        .values(state=after, updated_at=utcnow()))
    db.session.commit()
    return result.rowcount == 1


def _int(value) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise NotFound() from None


def _human(size: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size} bytes" if unit == "bytes" else f"{size:.1f}".removesuffix(".0") + f" {unit}"
        size /= 1024
    return str(size)
