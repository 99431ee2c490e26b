"""The orphan sweeper: stored objects that no database row refers to are removed.

Deleting an asset removes its objects after the commit; when that fails (storage
down, a crash in between) the objects stay behind and this finds them. Objects
younger than ORPHAN_MIN_AGE are left alone: an upload stores its object a moment
before the row that refers to it is committed.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import select

from portal import storage
from portal.extensions import db
from portal.models import Appeal, AppealEvidence, AssetVersion, Scan
from portal.timeutil import utcnow

PREFIXES = ("packages/", "scans/", "appeals/")


def known_keys() -> set[str]:
    """Every object key a row refers to."""
    keys: set[str] = set(db.session.scalars(select(AssetVersion.package_key)))
    for row in db.session.execute(
        select(Scan.package_key, Scan.report_key, Scan.sbom_key, Scan.summary_key)
    ):
        keys.update(row)
    keys.update(db.session.scalars(select(Appeal.proof_key)))
    keys.update(db.session.scalars(select(AppealEvidence.key)))
    keys.discard(None)
    return keys


def find_orphans(now: datetime | None = None) -> list[str]:
    """Keys under the portal's prefixes that no row refers to and that are old enough."""
    cutoff = (now or utcnow()) - timedelta(seconds=current_app.config["ORPHAN_MIN_AGE"])
    known = known_keys()
    db.session.commit()
    return [
        obj.key for prefix in PREFIXES for obj in storage.list_keys(prefix)
        if obj.key not in known and obj.last_modified is not None and obj.last_modified < cutoff
    ]


def sweep_orphans(now: datetime | None = None) -> int:
    """Remove the orphans; returns how many were removed."""
    orphans = find_orphans(now)
    for key in orphans:
        storage.delete(key)
    if orphans:
        current_app.logger.info("swept %d orphaned objects", len(orphans))
    return len(orphans)
