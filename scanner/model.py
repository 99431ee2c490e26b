"""The scanner's public types: frozen dataclasses that cross every boundary.

The portal stores them, the CLI prints them, the report writer lays them out.
Nothing here imports anything outside the standard library.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Literal

Verdict = Literal["approved", "rejected"]
FindingType = Literal["virus", "vulnerability", "unscanned"]

#: Progress callback: (stage, done, total). Stages, in order:
#: "fetch", "identify", "unpack", "catalog", "match", "virus", "verdict", "report".
Progress = Callable[[str, int, int], None]

STAGES = ("fetch", "identify", "unpack", "catalog", "match", "virus", "verdict", "report")

#: Separator between nested containers in a location path:
#: ``app.tar.gz!/lib/x.jar!/META-INF/maven/g/a/pom.properties``.
NEST = "!/"


class ScanError(Exception):
    """The package cannot be scanned at all (bad name, wrong format, unreadable).

    The message is one line, meant for the seller.
    """


@dataclass(frozen=True)
class Limits:
    """Unpacking limits. Hitting any of them is an ``unscanned`` finding."""

    max_depth: int = 8
    max_members: int = 200_000
    #: Bytes of data written to the scratch disk; runs of zeros are holes and cost nothing.
    max_total_bytes: int = 64 * 1024**3
    #: Bytes produced by decompression, zeros included: the work a package may cause.
    max_inflated_bytes: int = 256 * 1024**3
    #: Data (zeros aside) an archive may expand to, relative to its own size.
    max_ratio: float = 200.0
    max_file_bytes: int = 20 * 1024**3
    #: ClamAV never scans one file over 2 GiB.
    max_scan_file_bytes: int = 2 * 1024**3 - 1
    #: Wall-clock time for unpacking the whole package, external tools included.
    max_unpack_seconds: float = 2 * 3600
    #: Wall-clock time for reading the package managers' metadata (the catalog stage).
    max_catalog_seconds: float = 30 * 60
    #: Address space of an external tool (RLIMIT_AS): past it, its allocations fail.
    max_tool_memory_bytes: int = 4 * 1024**3
    #: Bytes of output (stdout and stderr each) kept from an external tool; past it, it is stopped.
    max_tool_output_bytes: int = 64 * 1024**2


#: Where a scan's small files go by default (see ``Settings.memory_dir``).
MEMORY_DIR = Path("/dev/shm")


@dataclass(frozen=True)
class Settings:
    osv_paths: tuple[Path, ...] = ()
    threshold: float = 7.0
    #: "tcp://host:port" or "unix:///path/clamd.ctl"; None means use clamscan.
    clamd: str | None = None
    #: Extra signature/rule directories; Assay's own directory is always used.
    signature_dirs: tuple[Path, ...] = ()
    limits: Limits = field(default_factory=Limits)
    #: Where scratch directories are made; None means the system temp dir.
    scratch_dir: Path | None = None
    #: A memory file system (tmpfs) for the small files of a scan, used while it
    #: has room and when the virus engine can read it; None: everything on disk.
    memory_dir: Path | None = MEMORY_DIR
    policy: str = "assay-2026.1"
    #: The asset's kind: "binary", or "docker" for a package of container images.
    kind: str = "binary"
    #: Whether a vulnerability of a dev-only dependency (a lockfile's dev scope: not
    #: shipped) blocks; by default it is reported and does not.
    dev_blocks: bool = False
    #: Where to write the inventory of what was examined (JSON lines, one per file, see
    #: :mod:`scanner.inventory`) as the scan goes; None: only its counts are kept.
    inventory: Path | None = None


@dataclass(frozen=True)
class Component:
    ecosystem: str  # OSV ecosystem name: PyPI, npm, Maven, Go, crates.io, Packagist, NuGet, SwiftURL, Debian, Alpine, ...
    name: str
    version: str
    purl: str
    location: str  # path inside the package, containers joined with NEST
    #: "runtime", "dev", "optional" or "unknown": what the lockfile says the component is
    #: for; whatever is read from an installed tree (dist-info, node_modules, jars, OS
    #: package databases, binaries) is shipped, so runtime.
    scope: str = "runtime"


@dataclass(frozen=True)
class Cvss:
    score: float
    vector: str
    source: str  # the advisory ID whose vector decided the score


@dataclass(frozen=True)
class Finding:
    id: str  # stable fingerprint (hex), same for the same finding on a rescan
    type: FindingType
    location: str
    blocking: bool
    ids: tuple[str, ...] = ()  # every advisory ID merged into this finding
    aliases: tuple[str, ...] = ()  # CVE and other aliases not in ids
    component: Component | None = None
    cvss: Cvss | None = None
    severity: str | None = None  # label (CRITICAL/HIGH/MODERATE/LOW) when known
    signature: str | None = None  # virus: the engine's signature name
    engine: str | None = None  # virus/unscanned: which engine or stage said so
    summary: str = ""
    fixed_versions: tuple[str, ...] = ()
    references: tuple[str, ...] = ()


@dataclass(frozen=True)
class PackageInfo:
    name: str
    size: int
    sha256: str
    format: str  # "zip" | "tar" | "tar.gz"


@dataclass(frozen=True)
class ScanInfo:
    policy: str
    threshold: float
    engines: dict[str, str]  # e.g. {"clamav": "ClamAV 1.4.3/27000", "yara": "4.5.4", "osv": "sha256:..."}
    osv_records: int
    started: str  # ISO 8601 UTC
    finished: str


@dataclass(frozen=True)
class Coverage:
    """What the scan examined, counted (the inventory lists it, one line per file)."""

    files: int = 0  # files written out and examined, the package and copies included
    containers_opened: int = 0  # files opened by a back end (archives, images, carving)
    #: Files recognised as containers that were not opened (too deep, out of time,
    #: unsupported, unpacking stopped); a copy of a container opened elsewhere is not one.
    containers_not_opened: int = 0
    #: Entries never written out (encrypted, devices, refused names, over a limit).
    entries_not_extracted: int = 0


@dataclass(frozen=True)
class ScanResult:
    verdict: Verdict
    package: PackageInfo
    components: tuple[Component, ...]
    findings: tuple[Finding, ...]
    scan: ScanInfo
    #: Container images found: location, name, tag, os (PRETTY_NAME), os_id, os_version, layers.
    images: tuple[dict, ...] = ()
    coverage: Coverage = field(default_factory=Coverage)

    def to_dict(self) -> dict:
        """The JSON contract of ``python -m scanner scan --json``."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "ScanResult":
        def comp(d):
            return Component(**d) if d else None

        findings = tuple(
            Finding(
                **{
                    **f,
                    "ids": tuple(f.get("ids", ())),
                    "aliases": tuple(f.get("aliases", ())),
                    "fixed_versions": tuple(f.get("fixed_versions", ())),
                    "references": tuple(f.get("references", ())),
                    "component": comp(f.get("component")),
                    "cvss": Cvss(**f["cvss"]) if f.get("cvss") else None,
                }
            )
            for f in data["findings"]
        )
        return cls(
            verdict=data["verdict"],
            package=PackageInfo(**data["package"]),
            components=tuple(Component(**c) for c in data["components"]),
            findings=findings,
            scan=ScanInfo(**data["scan"]),
            images=tuple(data.get("images", ())),
            coverage=Coverage(**data.get("coverage", {})),
        )


@dataclass(frozen=True)
class Claim:
    """A seller's claim on one finding, read back from columns F, G and H of the report."""

    finding_id: str
    false_positive: bool  # column F: Yes / No
    reason: str  # column G
    evidence: str  # column H
    row: int  # the sheet row it came from, for messages
