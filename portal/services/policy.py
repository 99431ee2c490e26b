"""The scan policy: what blocks a package, set by operators, versioned and audited.

The environment gives the defaults (``ASSAY_CVSS_THRESHOLD``, ``ASSAY_DEV_BLOCKS``);
once an operator saves a policy, the newest saved version is in force. Every scan
records the policy it ran under as ``<rules>/<version>`` (``assay-2026.1/3``;
``assay-2026.1/defaults`` before any was saved), and its report shows it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from flask import current_app
from sqlalchemy import select

from portal.extensions import db
from portal.models import PolicyVersion, User
from portal.services.audit import record_event
from portal.services.errors import NotFound, ValidationError
from scanner.model import Settings

#: The scanner's own rules (what is a virus, a vulnerability, unscanned content).
RULES = Settings.policy
MAX_NOTE = 500


@dataclass(frozen=True)
class Policy:
    threshold: float
    dev_blocks: bool
    version: int | None  # None: the defaults from the environment
    row: PolicyVersion | None = None

    @property
    def label(self) -> str:
        """What a scan records: the rules and the policy version."""
        return f"{RULES}/{self.version if self.version is not None else 'defaults'}"


def current_policy() -> Policy:
    """The policy in force now."""
    row = db.session.scalars(select(PolicyVersion).order_by(PolicyVersion.id.desc())
                             .limit(1)).first()
    if row is None:
        cfg = current_app.config
        return Policy(float(cfg["CVSS_THRESHOLD"]), bool(cfg.get("DEV_BLOCKS", False)), None)
    return Policy(row.threshold, row.dev_blocks, row.id, row)


def history(limit: int = 50) -> list[PolicyVersion]:
    """The saved versions, newest first."""
    return list(db.session.scalars(select(PolicyVersion).order_by(PolicyVersion.id.desc())
                                   .limit(limit)))


def update_policy(actor: User, threshold: str | float, dev_blocks: bool, note: str = "", *,
                  address: str | None = None) -> Policy:
    """Save a new policy version (operators only); later scans run under it."""
    if actor is None or not actor.is_operator:
        raise NotFound()
    value = _threshold(threshold)
    note = (note or "").strip()
    if len(note) > MAX_NOTE:
        raise ValidationError(f"Keep the note under {MAX_NOTE} characters.", "note")
    before = current_policy()
    if (value, bool(dev_blocks)) == (before.threshold, before.dev_blocks):
        raise ValidationError("Nothing changed: the policy in force already says this.")
    row = PolicyVersion(threshold=value, dev_blocks=bool(dev_blocks), note=note,
                        created_by_id=actor.id, created_by_name=actor.name)
    db.session.add(row)
    db.session.flush()
    record_event(actor, "policy.update", row,
                 before={"threshold": before.threshold, "dev_blocks": before.dev_blocks,
                         "version": before.version},
                 after={"threshold": value, "dev_blocks": bool(dev_blocks), "version": row.id,
                        "note": note},
                 address=address)
    db.session.commit()
    return Policy(row.threshold, row.dev_blocks, row.id, row)


def _threshold(raw: str | float) -> float:
    try:
        value = float(str(raw).strip())
    except ValueError:
        raise ValidationError("Give the CVSS threshold as a number from 0.1 to 10.0, e.g. 7.0.",
                              "threshold") from None
    if not math.isfinite(value) or not 0.1 <= value <= 10.0:
        raise ValidationError("The CVSS threshold must be from 0.1 to 10.0 (CVSS base scores "
                              "run from 0.0 to 10.0; 7.0 blocks High and Critical).", "threshold")
    return round(value, 1)
