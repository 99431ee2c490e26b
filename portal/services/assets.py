"""Assets and their versions: add, modify, submit, delete, find, list.

Uploads go straight to object storage in parts (memory stays bounded); the
stored object's first bytes are checked before anything is recorded, and a
refused upload leaves nothing behind.
"""

from __future__ import annotations

import math
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from flask import current_app
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from portal import storage
from portal.extensions import db
from portal.models import Asset, AssetKind, AssetVersion, User, VersionStatus
from portal.services import access, scans, state
from portal.services.audit import record_event
from portal.services.errors import Forbidden, ValidationError
from portal.timeutil import utcnow

NAME_RE = re.compile(r"[A-Za-z0-9_()\-]+")
LABEL_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+\-]*")
MAX_NAME, MAX_LABEL, MAX_DESCRIPTION = 128, 64, 10_000
EXTENSIONS = (".tar.gz", ".tgz", ".zip", ".tar")
#: How much of a stored package is read back to check its format.
HEAD_BYTES = 64 * 1024
SORTS = {
    "name": Asset.name, "-name": Asset.name.desc(),
    "updated": Asset.updated_at, "-updated": Asset.updated_at.desc(),
    "created": Asset.created_at, "-created": Asset.created_at.desc(),
}


@dataclass(frozen=True)
class Package:
    key: str
    name: str
    size: int
    sha256: str | None  # None until a worker has read a directly uploaded package


@dataclass(frozen=True)
class Page:
    """One page of a listing."""

    items: list
    total: int
    page: int
    pages: int
    per_page: int

    @property
    def has_prev(self) -> bool:
        return self.page > 1

    @property
    def has_next(self) -> bool:
        return self.page < self.pages


# --- add, modify, submit ---------------------------------------------------------

def create_asset(owner: User, *, name: str, kind: str, description: str, version_label: str,
                 stream: BinaryIO, filename: str, submit: bool,
                 address: str | None = None) -> AssetVersion:
    """Add an asset with its first version and package; draft, or submitted for scanning."""
    name, kind = check_name(name), _check_kind(kind)
    label, description = check_label(version_label), _check_description(description)
    _check_filename(filename)
    if _owner_has_name(owner.id, name):
        raise ValidationError(f"You already have an asset named {name}.", "name")
    version = _reserve(owner, name, kind, description, label)
    asset = version.asset
    try:
        package = _store_package(owner.id, asset.id, version.id, stream, filename)
    except BaseException:
        db.session.rollback()
        db.session.delete(asset)
        db.session.commit()
        raise
    _attach(version, package)
    record_event(owner, "asset.create", asset, after={"name": name, "kind": kind.value,
                                                      "version": label}, address=address)
    return _finish(owner, version, package, submit, address, undo=(Asset, asset.id))


def modify_version(actor: User, version_id: int, *, stream: BinaryIO, filename: str,
                   address: str | None = None) -> AssetVersion:
    """Replace a version's package and submit it again (a new scan).

    Allowed for a draft, a rejected or an approved version (not one in a
    published product); the old package is removed after the commit.
    """
    version = check_modifiable(actor, version_id, filename)
    asset = version.asset
    db.session.commit()  # no transaction stays open while the upload streams
    package = _store_package(asset.owner_id, asset.id, version.id, stream, filename)
    return attach_to_version(actor, version_id, package, address=address)


def add_version(actor: User, asset_id: int, *, version_label: str, stream: BinaryIO,
                filename: str, submit: bool, address: str | None = None) -> AssetVersion:
    """Add a version to one of the actor's assets, with its package; draft or submitted.

    Labels are unique within an asset. If storing the package fails, the version goes too.
    """
    asset, label = check_new_version(actor, asset_id, version_label, filename)
    version = _reserve_version(asset, label)
    try:
        package = _store_package(asset.owner_id, asset.id, version.id, stream, filename)
    except BaseException:
        db.session.rollback()
        db.session.delete(db.session.get(AssetVersion, version.id))
        db.session.commit()
        raise
    return _new_version(actor, version, package, submit, address)


def check_new_version(actor: User, asset_id: int, version_label: str | None,
                      filename: str) -> tuple[Asset, str]:
    """The actor's asset and the cleaned label, if a version so labelled may be added."""
    asset = access.changeable_asset(actor, asset_id)
    label = check_label(version_label)
    check_package_name(filename)
    if any(v.label == label for v in asset.versions):
        raise ValidationError(f"{asset.name} already has a version {label}; choose another "
                              "label, or Modify that version.", "version")
    return asset, label


def attach_new_version(actor: User, asset_id: int, package: Package, *, version_label: str,
                       submit: bool, address: str | None = None) -> AssetVersion:
    """Add a version whose package is already stored (a direct upload); draft or submitted."""
    asset, label = check_new_version(actor, asset_id, version_label, package.name)
    version = _reserve_version(asset, label)
    return _new_version(actor, version, package, submit, address)


def _reserve_version(asset: Asset, label: str) -> AssetVersion:
    """Commit the version row first (its id names the package's key), in a short transaction."""
    version = AssetVersion(asset=asset, label=label, status=VersionStatus.draft)
    db.session.add(version)
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        raise ValidationError(f"{asset.name} already has a version {label}; choose another "
                              "label.", "version") from None
    return version


def _new_version(actor: User, version: AssetVersion, package: Package, submit: bool,
                 address: str | None) -> AssetVersion:
    _attach(version, package)
    record_event(actor, "version.create", version,
                 after={"asset": version.asset_id, "label": version.label,
                        "package": package.key}, address=address)
    return _finish(actor, version, package, submit, address, undo=(AssetVersion, version.id))


def _finish(actor: User, version: AssetVersion, package: Package, submit: bool,
            address: str | None, *, undo: tuple[type, int]) -> AssetVersion:
    """Submit the new version if asked and commit. If the database refuses, the stored
    object goes, and so does ``undo`` (model, id): the row reserved for it beforehand."""
    scan = _submit(version, actor, address) if submit else None
    try:
        _commit_or_remove(package.key)
    except BaseException:
        db.session.delete(db.session.get(*undo))
        db.session.commit()
        raise
    return _dispatched(version, scan)


# --- packages already in storage (direct uploads, registered objects) --------------

def check_new_asset(owner: User, *, name: str, kind: str, description: str,
                    version_label: str, filename: str) -> dict:
    """Validate the Add Asset fields before a package is stored; the cleaned values."""
    fields = {"name": check_name(name), "kind": _check_kind(kind),
              "description": _check_description(description),
              "version_label": check_label(version_label)}
    check_package_name(filename)
    if _owner_has_name(owner.id, fields["name"]):
        raise ValidationError(f"You already have an asset named {fields['name']}.", "name")
    return fields


def check_modifiable(actor: User, version_id: int, filename: str) -> AssetVersion:
    """The actor's version, if it may get a new package named ``filename`` now."""
    version = access.changeable_version(actor, version_id)
    reason = state.refusal(version, "submit")
    if reason is not None:
        raise ValidationError(reason, "package")
    check_package_name(filename)
    return version


def check_package_name(filename: str | None) -> None:
    """ValidationError unless the file is named like an accepted package."""
    _check_filename(filename)


def check_stored_format(key: str, filename: str, size: int) -> None:
    """ValidationError unless the stored object's first bytes are an accepted format."""
    _check_format(key, filename, size)


def attach_new_asset(owner: User, package: Package, *, name: str, kind: str, description: str,
                     version_label: str, submit: bool, actor: User | None = None,
                     address: str | None = None) -> AssetVersion:
    """Add an asset whose first package is already stored; draft, or submitted for scanning.

    ``actor`` (the owner by default) is who the audit log names, e.g. an operator
    registering a package for a seller. If the database refuses, nothing is kept.
    """
    actor = actor or owner
    fields = check_new_asset(owner, name=name, kind=kind, description=description,
                             version_label=version_label, filename=package.name)
    version = _reserve(owner, fields["name"], fields["kind"], fields["description"],
                       fields["version_label"])
    asset = version.asset
    _attach(version, package)
    record_event(actor, "asset.create", asset,
                 after={"name": asset.name, "kind": asset.kind.value, "version": version.label,
                        "package": package.key}, address=address)
    return _finish(actor, version, package, submit, address, undo=(Asset, asset.id))


def attach_to_version(actor: User, version_id: int, package: Package, *,
                      address: str | None = None) -> AssetVersion:
    """Give a version a package that is already stored and submit it again (Modify)."""
    version = check_modifiable(actor, version_id, package.name)
    old_key = version.package_key
    _attach(version, package)
    record_event(actor, "version.modify", version, before={"package": old_key},
                 after={"package": package.key, "sha256": package.sha256}, address=address)
    scan = _submit(version, actor, address)
    _commit_or_remove(package.key)
    if old_key and old_key != package.key:
        _delete_objects([old_key])
    return _dispatched(version, scan)


def _reserve(owner: User, name: str, kind: AssetKind, description: str,
             label: str) -> AssetVersion:
    """Commit the rows first, in a short transaction: the object key needs their ids,
    and no database lock may be held while an upload streams (SQLite locks it whole)."""
    asset = Asset(owner_id=owner.id, name=name, kind=kind, description=description)
    version = AssetVersion(asset=asset, label=label, status=VersionStatus.draft)
    db.session.add_all([asset, version])
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        raise ValidationError(f"You already have an asset named {name}.", "name") from None
    return version


def submit_version(actor: User, version_id: int, *, address: str | None = None) -> AssetVersion:
    """Send a draft version (with a package) for scanning."""
    version = access.changeable_version(actor, version_id)
    if not version.package_key:
        raise ValidationError("Upload a package before submitting.", "package")
    scan = _submit(version, actor, address)
    db.session.commit()
    return _dispatched(version, scan)


def _submit(version: AssetVersion, actor: User, address: str | None):
    state.move(version, "submit", actor=actor, address=address)
    return scans.enqueue_scan(version)


def _dispatched(version: AssetVersion, scan) -> AssetVersion:
    if scan is not None:
        scans.dispatch_scan(scan.id)
    return version


def _attach(version: AssetVersion, package: Package) -> None:
    version.package_key, version.package_name = package.key, package.name
    version.package_size, version.package_sha256 = package.size, package.sha256
    version.asset.updated_at = utcnow()


def _commit_or_remove(key: str) -> None:
    """Commit; if the database refuses, the just-stored object goes too."""
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        _delete_objects([key])
        raise ValidationError("That name or version already exists; choose another.") from None
    except Exception:
        db.session.rollback()
        _delete_objects([key])
        raise


# --- the package upload ------------------------------------------------------------

def _store_package(owner_id: int, asset_id: int, version_id: int, stream: BinaryIO,
                   filename: str) -> Package:
    """Stream the upload to storage, then check its format; on refusal nothing stays."""
    key = storage.package_key(owner_id, asset_id, version_id, storage.new_upload_id())
    limit = current_app.config["MAX_FORM_UPLOAD"]
    try:
        size, sha256 = storage.put_stream(key, stream, max_bytes=limit)
    except storage.TooLarge:
        raise ValidationError(
            f"The package is larger than {_human(limit)}, the most a form upload takes.",
            "package") from None
    try:
        _check_format(key, filename, size)
    except BaseException:
        storage.delete(key)
        raise
    return Package(key, Path(filename).name, size, sha256)


def _check_format(key: str, filename: str, size: int) -> None:
    from scanner.identify import identify
    from scanner.model import ScanError

    if size == 0:
        raise ValidationError("The package file is empty.", "package")
    with tempfile.TemporaryDirectory(prefix="assay-head-") as tmp:
        head = Path(tmp) / "head"
        head.write_bytes(storage.get_bytes(key, HEAD_BYTES))
        try:
            identify(head, scanner_file_name(filename))
        except ScanError as exc:
            raise ValidationError(f"{str(exc)[:1].upper()}{str(exc)[1:]}.", "package") from None


def scanner_file_name(filename: str) -> str:
    """The scanner knows .tar.gz; a .tgz is the same thing under a short name."""
    name = Path(filename).name
    return name[:-4] + ".tar.gz" if name.lower().endswith(".tgz") else name


def _check_filename(filename: str | None) -> None:
    name = Path(filename or "").name
    if not name:
        raise ValidationError("Choose a package file to upload.", "package")
    lowered = name.lower()
    ext = next((e for e in EXTENSIONS if lowered.endswith(e)), None)
    if ext is None:
        raise ValidationError("The package must be a .zip, .tar or .tar.gz (.tgz) file.",
                              "package")
    base = name[: -len(ext)]
    if not NAME_RE.fullmatch(base) or len(name) > 255:
        raise ValidationError(
            f'The package file name "{base}" may contain only letters, digits, "-", "_", '
            f'"(" and ")" before {ext}.', "package")


# --- validation ------------------------------------------------------------------

def check_name(name: str | None) -> str:
    """The asset name, or ValidationError saying what is wrong with it."""
    name = (name or "").strip()
    if not name:
        raise ValidationError("Enter a name.", "name")
    if len(name) > MAX_NAME:
        raise ValidationError(f"The name must be at most {MAX_NAME} characters.", "name")
    if not NAME_RE.fullmatch(name):
        bad = " ".join(sorted({repr(c) for c in name if not NAME_RE.fullmatch(c)}))
        raise ValidationError(
            f'The name may contain only letters, digits, "-", "_", "(" and ")" (not {bad}).',
            "name")
    return name


def check_label(label: str | None) -> str:
    """The version label (e.g. 1.4.2-rc1), or ValidationError."""
    label = (label or "").strip()
    if not label:
        raise ValidationError("Enter a version.", "version")
    if len(label) > MAX_LABEL or not LABEL_RE.fullmatch(label):
        raise ValidationError(
            f"The version must start with a letter or digit and hold only letters, digits, "
            f'".", "-", "_" and "+" (at most {MAX_LABEL} characters).', "version")
    return label


def _check_kind(kind) -> AssetKind:
    try:
        return AssetKind(kind)
    except ValueError:
        raise ValidationError("Choose the kind: binary package or Docker image package.",
                              "kind") from None


def _check_description(description: str | None) -> str:
    description = (description or "").strip()
    if len(description) > MAX_DESCRIPTION:
        raise ValidationError(f"The description must be at most {MAX_DESCRIPTION} characters.",
                              "description")
    return description


def _owner_has_name(owner_id: int, name: str) -> bool:
    return db.session.scalar(
        select(func.count()).select_from(Asset)
        .where(Asset.owner_id == owner_id, func.lower(Asset.name) == name.lower())
    ) > 0


def _human(size: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:g} {unit}" if unit == "bytes" else f"{size:.0f} {unit}"
        size /= 1024
    return str(size)


# --- delete ----------------------------------------------------------------------

def deletion_blocker(asset: Asset) -> str | None:
    """Why ``asset`` cannot be deleted (shown on the disabled button), or None."""
    if asset.in_draft_box:
        return None
    from portal.services.products import products_of  # products build on assets

    used = {p.name: p for ps in products_of([v.id for v in asset.versions]).values() for p in ps}
    if used:
        names = ", ".join(f"{name} ({'published' if p.published else 'not published'})"
                          for name, p in sorted(used.items()))
        return (f"Released in the product {names}: remove its versions from the product "
                "before deleting the asset.")
    return None


def delete_asset(actor: User, asset_id: int, *, address: str | None = None) -> None:
    """Delete an asset with its versions and scans; its objects go after the commit.

    Objects that cannot be removed now are left to the orphan sweeper.
    """
    asset = access.get_asset(actor, asset_id)
    if asset.owner_id != actor.id:
        raise Forbidden("Only the owner can delete an asset.")
    reason = deletion_blocker(asset)
    if reason is not None:
        raise ValidationError(reason)
    keys = _object_keys(asset)
    record_event(actor, "asset.delete", asset, before={"name": asset.name, "owner": asset.owner_id,
                                                       "versions": len(asset.versions)},
                 address=address)
    db.session.delete(asset)
    db.session.commit()
    _delete_objects(keys)


def _object_keys(asset: Asset) -> list[str]:
    keys = []
    for version in asset.versions:
        keys.append(version.package_key)
        for scan in version.scans:
            keys += [scan.package_key, scan.report_key, scan.sbom_key, scan.summary_key,
                     scan.inventory_key]
    return sorted({k for k in keys if k})


def _delete_objects(keys: list[str]) -> None:
    for key in keys:
        try:
            storage.delete(key)
        except Exception:  # noqa: BLE001 - the sweeper removes what is left
            current_app.logger.warning("could not delete %s now; the sweeper will", key)


# --- find and list ---------------------------------------------------------------

def list_assets(actor: User, *, q: str = "", status: str | None = None, kind: str | None = None,
                sort: str = "-updated", page: int = 1, per_page: int = 20) -> Page:
    """The actor's assets (everyone's for reviewers and operators), searched by name,
    filtered by the latest version's status and by kind, sorted and paginated in SQL."""
    stmt = select(Asset)
    if not actor.is_reviewer:
        stmt = stmt.where(Asset.owner_id == actor.id)
    if q and q.strip():
        stmt = stmt.where(func.lower(Asset.name).like(f"%{_escape_like(q.strip().lower())}%",
                                                      escape="\\"))
    if status:
        stmt = stmt.where(Asset.versions.any(
            (AssetVersion.status == _status(status)) & (AssetVersion.id == _latest_version_id())))
    if kind:
        stmt = stmt.where(Asset.kind == _check_kind(kind))
    return _paginate(stmt.order_by(SORTS.get(sort, SORTS["-updated"]), Asset.id.desc()),
                     page, per_page)


def _latest_version_id():
    return (select(func.max(AssetVersion.id)).where(AssetVersion.asset_id == Asset.id)
            .correlate(Asset).scalar_subquery())


def _paginate(stmt, page: int, per_page: int) -> Page:
    per_page = min(max(int(per_page or 20), 1), 100)
    total = db.session.scalar(select(func.count()).select_from(stmt.order_by(None).subquery()))
    pages = max(math.ceil(total / per_page), 1)
    page = min(max(int(page or 1), 1), pages)
    items = list(db.session.scalars(stmt.limit(per_page).offset((page - 1) * per_page)))
    return Page(items, total, page, pages, per_page)


def _status(status: str) -> VersionStatus:
    try:
        return VersionStatus(status)
    except ValueError:
        raise ValidationError("Unknown status.", "status") from None


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
