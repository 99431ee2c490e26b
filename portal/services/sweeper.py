"""The orphan sweeper: stored objects that no database row refers to are removed.

Deleting an asset removes its objects after the commit; when that fails (storage
down, a crash in between) the objects stay behind and this finds them. Only keys
the portal itself makes are candidates: what people put in the bucket (the
register page has operators stage packages under ``packages/<seller id>/incoming/``)
is never touched. Nothing is removed that is younger than ORPHAN_MIN_AGE before
the oldest open upload started: an upload stores its object a moment before the
row that refers to it is committed, and a multipart upload's object can carry the
time its upload started, however long ago that was.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import func, select

from portal import storage
from portal.extensions import db
from portal.models import Appeal, AppealEvidence, AssetVersion, Scan, UploadSession, UploadState
from portal.timeutil import utcnow

PREFIXES = ("packages/", "scans/", "appeals/")
#: The keys :mod:`portal.storage` makes, and only those, may be swept.
PORTAL_KEYS = re.compile(
    r"(packages/\d+/(\d+/\d+/[^/]+|uploads/[^/]+)/package"
    r"|scans/\d+/\d+/\d+/\d+/[^/]+"
    r"|appeals/\d+/\d+/\d+/[^/]+/.+)\Z")


def known_keys() -> set[str]:
    """Every object key a row refers to, open uploads' included."""
    keys: set[str] = set(db.session.scalars(select(AssetVersion.package_key)))
    for row in db.session.execute(
        select(Scan.package_key, Scan.report_key, Scan.sbom_key, Scan.summary_key,
               Scan.inventory_key)
    ):
        keys.update(row)
    keys.update(db.session.scalars(select(Appeal.proof_key)))
    keys.update(db.session.scalars(select(AppealEvidence.key)))
    keys.update(db.session.scalars(select(UploadSession.key).where(
        UploadSession.state == UploadState.open)))
    keys.discard(None)
    return keys


def sweep_cutoff(now: datetime | None = None) -> datetime:
    """Objects modified before this may be swept: ORPHAN_MIN_AGE before now, or before the
    oldest open upload started if that is earlier."""
    now = now or utcnow()
    oldest = db.session.scalar(select(func.min(UploadSession.created_at)).where(
        UploadSession.state == UploadState.open))
    start = min(now, oldest) if oldest is not None else now
    return start - timedelta(seconds=current_app.config["ORPHAN_MIN_AGE"])


def find_orphans(now: datetime | None = None) -> list[str]:
    """Keys the portal made that no row refers to and that are old enough."""
    cutoff = sweep_cutoff(now)  # read with the keys, before listing: see the module's doc
    known = known_keys()
    db.session.commit()
    return [
        obj.key for prefix in PREFIXES for obj in storage.list_keys(prefix)
        if obj.key not in known and PORTAL_KEYS.match(obj.key)
        and obj.last_modified is not None and obj.last_modified < cutoff
    ]


def sweep_orphans(now: datetime | None = None) -> int:
    """Remove the orphans; returns how many were removed."""
    orphans = find_orphans(now)
    for key in orphans:
        storage.delete(key)
    if orphans:
        current_app.logger.info("swept %d orphaned objects", len(orphans))
    return len(orphans)
