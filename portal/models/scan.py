from __future__ import annotations

import enum
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import JSON, Enum, Float, ForeignKey, String, Text
from sqlalchemy import false as sa_false
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.extensions import db
from portal.timeutil import utcnow

if TYPE_CHECKING:
    from portal.models.asset import AssetVersion


class ScanState(str, enum.Enum):
    queued = "queued"
    running = "running"
    done = "done"
    failed = "failed"


class Scan(db.Model):
    """One attempt to scan one package. ``enqueued_at`` is None while the job
    waits in the outbox (Redis was unreachable at submit time)."""

    __tablename__ = "scans"
    # A scan's id names its queue jobs (scan-<id>-<attempt>) and its stored outputs; a work
    # horse still running for a deleted scan must never find a new scan under the same id.
    __table_args__ = ({"sqlite_autoincrement": True},)

    id: Mapped[int] = mapped_column(primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("asset_versions.id", ondelete="CASCADE"), index=True)
    state: Mapped[ScanState] = mapped_column(
        Enum(ScanState, native_enum=False, length=16), default=ScanState.queued, index=True
    )
    stage: Mapped[str | None] = mapped_column(String(32))
    progress: Mapped[int] = mapped_column(default=0)  # percent, 0..100
    attempts: Mapped[int] = mapped_column(default=0)
    package_key: Mapped[str] = mapped_column(String(512))
    package_sha256: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    enqueued_at: Mapped[datetime | None]
    started_at: Mapped[datetime | None]
    heartbeat_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    worker: Mapped[str | None] = mapped_column(String(255))
    #: The queue job that runs (or last ran) this scan; a retry of the same job may take over.
    job_id: Mapped[str | None] = mapped_column(String(64))
    error: Mapped[str | None] = mapped_column(Text)
    verdict: Mapped[str | None] = mapped_column(String(16))
    #: A re-scan of an Approved version: the version stays Approved while it runs and is
    #: Rejected only by a blocking verdict.
    rescan: Mapped[bool] = mapped_column(default=False, server_default=sa_false())
    policy: Mapped[str | None] = mapped_column(String(64))
    threshold: Mapped[float | None] = mapped_column(Float)
    engines: Mapped[dict | None] = mapped_column(JSON)
    osv_records: Mapped[int | None]
    counts: Mapped[dict | None] = mapped_column(JSON)  # {"virus": n, "vulnerability": n, "unscanned": n, "blocking": n}
    max_cvss: Mapped[float | None] = mapped_column(Float)
    report_key: Mapped[str | None] = mapped_column(String(512))
    sbom_key: Mapped[str | None] = mapped_column(String(512))
    summary_key: Mapped[str | None] = mapped_column(String(512))
    #: The inventory of what the scan examined (gzip-compressed JSON lines), when stored.
    inventory_key: Mapped[str | None] = mapped_column(String(512))

    version: Mapped["AssetVersion"] = relationship(back_populates="scans")
    findings: Mapped[list["ScanFinding"]] = relationship(
        back_populates="scan", cascade="all, delete-orphan", order_by="ScanFinding.id"
    )
    components: Mapped[list["ScanComponent"]] = relationship(
        back_populates="scan", cascade="all, delete-orphan", order_by="ScanComponent.id"
    )

    @property
    def finished(self) -> bool:
        return self.state in (ScanState.done, ScanState.failed)


class ScanFinding(db.Model):
    __tablename__ = "scan_findings"

    id: Mapped[int] = mapped_column(primary_key=True)
    scan_id: Mapped[int] = mapped_column(ForeignKey("scans.id", ondelete="CASCADE"), index=True)
    fingerprint: Mapped[str] = mapped_column(String(64), index=True)
    type: Mapped[str] = mapped_column(String(16))  # virus | vulnerability | unscanned
    location: Mapped[str] = mapped_column(Text)
    blocking: Mapped[bool] = mapped_column(default=True)
    ids: Mapped[list] = mapped_column(JSON, default=list)
    aliases: Mapped[list] = mapped_column(JSON, default=list)
    ecosystem: Mapped[str | None] = mapped_column(String(64))
    component_name: Mapped[str | None] = mapped_column(String(255))
    component_version: Mapped[str | None] = mapped_column(String(128))
    purl: Mapped[str | None] = mapped_column(Text)
    cvss_score: Mapped[float | None] = mapped_column(Float)
    cvss_vector: Mapped[str | None] = mapped_column(String(255))
    cvss_source: Mapped[str | None] = mapped_column(String(128))
    severity: Mapped[str | None] = mapped_column(String(32))
    signature: Mapped[str | None] = mapped_column(String(255))
    engine: Mapped[str | None] = mapped_column(String(64))
    summary: Mapped[str] = mapped_column(Text, default="")
    fixed_versions: Mapped[list] = mapped_column(JSON, default=list)
    references: Mapped[list] = mapped_column(JSON, default=list)
    #: Set when an earlier appeal accepted this fingerprint as a false positive.
    accepted_note: Mapped[str | None] = mapped_column(Text)

    scan: Mapped[Scan] = relationship(back_populates="findings")


class ScanComponent(db.Model):
    __tablename__ = "scan_components"

    id: Mapped[int] = mapped_column(primary_key=True)
    scan_id: Mapped[int] = mapped_column(ForeignKey("scans.id", ondelete="CASCADE"), index=True)
    ecosystem: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(255))
    version: Mapped[str] = mapped_column(String(128))
    purl: Mapped[str] = mapped_column(Text)
    location: Mapped[str] = mapped_column(Text)

    scan: Mapped[Scan] = relationship(back_populates="components")
