"""Direct uploads: packages go from the browser to storage in parts, never through the portal.

The portal starts an S3 multipart upload, signs a URL per part on demand and,
when the browser says it is done, lists the stored parts itself (whatever the
browser claims about parts or ETags is ignored), checks them against the size
declared at the start, joins them and reads the first bytes back to check the
format. Only then is the package recorded, exactly as a form upload would be.

Completing is safe to repeat: a storage error leaves the upload open (complete
it again; nothing is lost), and completing a finished upload answers its version.

A presigned PUT cannot cap what it stores, so the portal measures what storage
holds for each open upload (every part it lists, on each part URL it signs and
every minute from a scheduled job) and aborts an upload that holds more than it
declared. A seller may have UPLOAD_MAX_OPEN uploads open at once, together
declaring at most UPLOAD_MAX_OPEN_BYTES.

An upload nobody touches for UPLOAD_ABANDONED_AFTER seconds is aborted by a
scheduled job, which also aborts multipart uploads no session knows about.
"""

from __future__ import annotations

import posixpath
from datetime import timedelta
from pathlib import Path

from flask import current_app
from minio.error import MinioException, S3Error
from sqlalchemy import select, update
from urllib3.exceptions import HTTPError

from portal import storage
from portal.extensions import db
from portal.models import AssetVersion, Role, Scan, UploadSession, UploadState, User
from portal.services import assets
from portal.services.audit import record_event
from portal.services.errors import Forbidden, NotFound, ServiceError, ValidationError
from portal.timeutil import utcnow

MIN_PART = 5 * 1024**2  # S3 refuses smaller parts, except the last
MAX_PARTS = 10_000
MIB = 1024**2
#: A completion not over after this long is taken for one that crashed: another may start.
COMPLETION_LEASE = timedelta(minutes=15)
#: What storage failing looks like through ``minio`` (refusals, 5xx, no connection).
STORAGE_ERRORS = (MinioException, HTTPError, OSError)


class StorageBusy(ServiceError):
    """Storage failed while the portal worked on an upload; the upload is kept: try again."""


# --- start ------------------------------------------------------------------------

def start_upload(actor: User, *, context: dict, filename: str, size,
                 address: str | None = None) -> UploadSession:
    """Check what can be checked before any byte is sent and open a multipart upload.

    ``context`` is ``{"version_id": id}`` (Modify), ``{"asset_id": id, "version_label":
    ..., "submit": ...}`` (a new version) or the Add Asset fields ``name``, ``kind``,
    ``description``, ``version_label`` and ``submit``.
    """
    size = _check_size(size)
    _check_room(actor, size)
    session = UploadSession(owner_id=actor.id, filename=Path(filename or "").name, size=size,
                            part_size=part_size_for(size), state=UploadState.open)
    token = storage.new_upload_id()
    if context.get("version_id") is not None:
        version = assets.check_modifiable(actor, _int(context["version_id"]), filename)
        session.version_id = version.id
        session.key = storage.package_key(actor.id, version.asset_id, version.id, token)
    elif context.get("asset_id") is not None:
        asset, label = assets.check_new_version(actor, _int(context["asset_id"]),
                                                context.get("version_label"), filename)
        session.asset_id, session.version_label = asset.id, label
        session.submit = bool(context.get("submit"))
        session.key = storage.package_upload_key(actor.id, token)
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


def _check_room(actor: User, size: int) -> None:
    """Refuse a new upload past the seller's limits on open uploads and the bytes they hold."""
    cfg = current_app.config
    held = db.session.execute(select(UploadSession.size, UploadSession.stored_bytes).where(
        UploadSession.owner_id == actor.id, UploadSession.state == UploadState.open)).all()
    later = (f"Finish or cancel one of them first (an upload nobody touches for "
             f"{_hours(int(cfg['UPLOAD_ABANDONED_AFTER']))} is cancelled by itself).")
    most = int(cfg["UPLOAD_MAX_OPEN"])
    if len(held) >= most:
        raise ValidationError(
            f"You already have {len(held)} unfinished uploads, the most a seller may have at "
            f"once. {later}", "package")
    taken, limit = sum(max(declared, stored) for declared, stored in held), int(
        cfg["UPLOAD_MAX_OPEN_BYTES"])
    if taken + size > limit:
        raise ValidationError(
            f"Your unfinished uploads already take {_human(taken)}; with this package of "
            f"{_human(size)} they would pass {_human(limit)}, the most a seller's unfinished "
            f"uploads may hold. {later}", "package")


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
    try:
        measured = measure_upload(session)
    except STORAGE_ERRORS as exc:
        db.session.rollback()
        raise StorageBusy("Storage does not answer just now; the parts already sent are kept: "
                          "resume the upload in a moment.") from exc
    if measured.state is not UploadState.open:
        raise ValidationError(f"{session.ended_reason} Start the upload again.")
    expires = timedelta(seconds=int(current_app.config["UPLOAD_URL_EXPIRY"]))
    url = storage.presign_part(session.key, session.s3_upload_id, number, expires)
    session.updated_at = utcnow()  # an upload in progress is not abandoned
    db.session.commit()
    return {"number": number, "url": url, "size": session.part_length(number)}


def list_uploaded_parts(actor: User, session_id: int) -> list[dict]:
    """The parts storage already holds with the right size (what a resumed upload skips)."""
    session = _open(actor, session_id)
    parts = _stored_parts(session)
    if parts is None:  # an earlier completion joined them: only completing is left to do
        return [{"number": n, "size": session.part_length(n)}
                for n in range(1, session.part_count + 1)]
    return [{"number": p.number, "size": p.size} for p in parts
            if p.number <= session.part_count and p.size == session.part_length(p.number)]


def measure_upload(session: UploadSession) -> UploadSession:
    """Record the bytes storage holds for the open upload; abort it when they pass its
    declared size (a part sent again may count twice: one part in a hundred is allowed)."""
    listed = _listed_parts(session)
    stored = session.size if listed is None else sum(p.size for p in listed)
    session.stored_bytes, session.checked_at = stored, utcnow()
    allowed = session.size + session.part_size * max(1, session.part_count // 100)
    if stored > allowed:
        _abort(session, f"Storage held {_human(stored)} for this upload of {_human(session.size)}"
                        ", more than the file declared, so the upload was stopped.")
        record_event(None, "upload.overflow", session,
                     after={"stored": stored, "declared": session.size, "key": session.key})
    db.session.commit()
    return session


def watch_open_uploads() -> int:
    """Measure every open upload (see :func:`measure_upload`); returns how many were aborted."""
    ids = db.session.scalars(select(UploadSession.id).where(
        UploadSession.state == UploadState.open).order_by(UploadSession.id)).all()
    db.session.commit()
    aborted = 0
    for session_id in ids:
        session = db.session.get(UploadSession, session_id)
        if session is None or session.state is not UploadState.open:
            continue
        try:
            aborted += measure_upload(session).state is UploadState.aborted
        except (ValidationError, *STORAGE_ERRORS) as exc:  # gone, or storage down: next round
            db.session.rollback()
            current_app.logger.warning("could not measure upload %s: %s", session_id, exc)
    return aborted


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
    format removes the object and ends the upload. A storage error (StorageBusy)
    leaves the upload open: completing again picks up where this one stopped.
    Completing a finished upload answers the version it made.
    """
    session = get_upload(actor, session_id)
    if session.state is UploadState.completed:
        return _recorded(session)
    session = _open(actor, session_id)
    if not _claim_completion(session.id):
        raise ValidationError("This upload is being completed already: wait a moment, then "
                              "look for it among your assets.", "package")
    try:
        version = _complete(actor, session, address)
    except STORAGE_ERRORS as exc:
        db.session.rollback()
        _release(session.id)
        current_app.logger.warning("completing upload %s failed: %s", session.id, exc)
        raise StorageBusy("Storage did not answer while the upload was being completed. "
                          "Nothing is lost: complete the upload again in a moment.") from exc
    except BaseException:
        db.session.rollback()
        _release(session.id)
        raise
    return version


def _complete(actor: User, session: UploadSession, address: str | None) -> AssetVersion:
    version = _version_at(session.key)  # recorded by a completion that stopped right after
    if version is None:
        parts = _stored_parts(session)
        if parts is not None:  # None: an earlier completion joined them already
            _check_parts(session, parts)
            _join(session, parts)
        try:
            stored = storage.head(session.key)
            if stored is None or stored.size != session.size:
                raise ValidationError("Storage did not keep the whole package; upload it again.",
                                      "package")
            assets.check_stored_format(session.key, session.filename, session.size)
            version = _record(actor, session, address)
        except ValidationError as refusal:
            db.session.rollback()
            storage.delete(session.key)
            _move(session.id, UploadState.open, UploadState.aborted, reason=str(refusal))
            raise
    _move(session.id, UploadState.open, UploadState.completed)
    return version


def _join(session: UploadSession, parts: list[storage.StoredPart]) -> None:
    """Complete the multipart upload; one completed meanwhile (by a lost answer) is fine."""
    try:
        storage.complete_multipart(session.key, session.s3_upload_id, parts)
    except S3Error as exc:
        if exc.code != "NoSuchUpload" or storage.head(session.key) is None:
            raise


def _claim_completion(session_id: int) -> bool:
    """Take the upload's completion, unless another one started less than a lease ago."""
    now = utcnow()
    result = db.session.execute(
        update(UploadSession).where(
            UploadSession.id == session_id, UploadSession.state == UploadState.open,
            UploadSession.completing_since.is_(None)
            | (UploadSession.completing_since < now - COMPLETION_LEASE))
        .values(completing_since=now, updated_at=now))
    db.session.commit()
    return result.rowcount == 1


def _release(session_id: int) -> None:
    db.session.execute(update(UploadSession).where(UploadSession.id == session_id)
                       .values(completing_since=None))
    db.session.commit()


def _version_at(key: str) -> AssetVersion | None:
    return db.session.scalar(select(AssetVersion).where(AssetVersion.package_key == key))


def _recorded(session: UploadSession) -> AssetVersion:
    """The version a completed upload made (asking twice is answered twice)."""
    version = _version_at(session.key)
    if version is None:  # modified again since, or deleted
        raise ValidationError("This upload has already finished.")
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
    if session.asset_id is not None:
        return assets.attach_new_version(actor, session.asset_id, package,
                                         version_label=session.version_label,
                                         submit=session.submit, address=address)
    return assets.attach_new_asset(
        actor, package, name=session.asset_name, kind=session.asset_kind.value,
        description=session.asset_description or "", version_label=session.version_label,
        submit=session.submit, address=address)


def cancel_upload(actor: User, session_id: int, *, address: str | None = None) -> None:
    """Stop the upload: storage drops the parts already sent."""
    session = _open(actor, session_id)
    since = session.completing_since
    if since is not None and since > utcnow() - COMPLETION_LEASE:
        raise ValidationError("This upload is being completed and can no longer be cancelled.")
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
        _abort(session, f"Nobody touched this upload for {_hours(int(older_than.total_seconds()))}"
                        ", so it was cancelled.")
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
    if session.state is UploadState.aborted:
        raise ValidationError(f"{session.ended_reason} Start it again." if session.ended_reason
                              else "This upload was cancelled or abandoned; start it again.")
    if session.state is not UploadState.open:
        raise ValidationError("This upload has already finished.")
    return session


def _listed_parts(session: UploadSession) -> list[storage.StoredPart] | None:
    """Every part storage lists for the upload (a part sent again may be listed twice);
    None when an earlier completion already joined them into the package. An upload
    storage no longer knows is ended with a ValidationError."""
    try:
        return storage.list_parts(session.key, session.s3_upload_id)
    except S3Error as exc:
        if exc.code != "NoSuchUpload":
            raise
    if storage.head(session.key) is not None:
        return None
    reason = "Storage no longer holds this upload (it was abandoned)."
    _move(session.id, UploadState.open, UploadState.aborted, reason=reason)
    raise ValidationError(f"{reason} Start again.")


def _stored_parts(session: UploadSession) -> list[storage.StoredPart] | None:
    """One part per number: where storage lists a number twice (a part sent again), the
    newest of the right size, else the newest. None when the parts are joined already."""
    listed = _listed_parts(session)
    if listed is None:
        return None
    chosen: dict[int, storage.StoredPart] = {}
    for part in listed:  # oldest first
        held = chosen.get(part.number)
        right = part.size == session.part_length(part.number)
        if held is None or right or held.size != session.part_length(part.number):
            chosen[part.number] = part
    return [chosen[n] for n in sorted(chosen)]


def _abort(session: UploadSession, reason: str | None = None) -> None:
    storage.abort_multipart(session.key, session.s3_upload_id)
    session.state = UploadState.aborted
    session.ended_reason = reason[:255] if reason else None


def _move(session_id: int, before: UploadState, after: UploadState, *,
          reason: str | None = None) -> bool:
    """Change the state only if it still is ``before`` (two requests never both finish)."""
    values = {"state": after, "updated_at": utcnow(), "completing_since": None}
    if reason:
        values["ended_reason"] = reason[:255]
    result = db.session.execute(
        update(UploadSession).where(UploadSession.id == session_id, UploadSession.state == before)
        .values(**values))
    db.session.commit()
    return result.rowcount == 1


def _hours(seconds: int) -> str:
    hours = max(round(seconds / 3600), 1)
    return "an hour" if hours == 1 else f"{hours} hours"


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
