"""What a version's scans say, for its page: why a version was rejected.

Presentation reads over the stored findings of a completed scan; nothing here writes.
"""

from __future__ import annotations

from dataclasses import dataclass

from portal.models import Asset, AssetVersion, Scan, ScanFinding, ScanState, VersionStatus

#: How many findings the summary names; the appeal page and the report hold the rest.
TOP_FINDINGS = 5
_KIND_ORDER = {"virus": 0, "unscanned": 1, "vulnerability": 2}


@dataclass(frozen=True)
class Rejection:
    """Why a Rejected version's latest scan blocked it."""

    version: AssetVersion
    scan: Scan
    viruses: int
    vulnerabilities: int  # blocking ones: CVSS at or over the threshold
    unscanned: int
    top: list[ScanFinding]

    @property
    def blocking(self) -> int:
        return self.viruses + self.vulnerabilities + self.unscanned

    @property
    def more(self) -> int:
        return self.blocking - len(self.top)


def rejection(version: AssetVersion) -> Rejection | None:
    """Why ``version`` is Rejected, from its latest completed scan's blocking findings;
    None unless it is Rejected and that scan is stored."""
    if version.status is not VersionStatus.rejected:
        return None
    done = [s for s in version.scans if s.state is ScanState.done]
    if not done:
        return None
    scan = done[-1]
    blocking = [f for f in scan.findings if f.blocking and not f.accepted_note]
    count = {kind: sum(f.type == kind for f in blocking) for kind in _KIND_ORDER}
    top = sorted(blocking, key=lambda f: (_KIND_ORDER.get(f.type, 3), -(f.cvss_score or 0), f.id))
    return Rejection(version, scan, count["virus"], count["vulnerability"], count["unscanned"],
                     top[:TOP_FINDINGS])


def rejections(asset: Asset) -> list[Rejection]:
    """A summary for every Rejected version of ``asset``, newest version first."""
    found = (rejection(v) for v in reversed(asset.versions))
    return [r for r in found if r is not None]
