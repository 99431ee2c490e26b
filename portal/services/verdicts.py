"""What a version's scans say, for its pages: why it was rejected, what changed since the scan
before.

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


@dataclass(frozen=True)
class Comparison:
    """What changed between a version's latest scan and the one before it: the previous scan
    of the same version (after Modify), else the latest scan of the version before."""

    scan: Scan
    previous: Scan
    same_version: bool
    fixed: list[ScanFinding]  # in the previous scan, gone now
    new: list[ScanFinding]
    still: list[ScanFinding]
    added: list[tuple[str, str, str]]  # (ecosystem, name, version)
    removed: list[tuple[str, str, str]]
    upgraded: list[tuple[str, str, str, str]]  # (ecosystem, name, old versions, new versions)

    @property
    def unchanged(self) -> bool:
        return not (self.fixed or self.new or self.added or self.removed or self.upgraded)


def comparison(version: AssetVersion) -> Comparison | None:
    """The comparison of ``version``'s latest completed scan with the one before it, or
    None when either is missing."""
    done = [s for s in version.scans if s.state is ScanState.done]
    if not done:
        return None
    scan, previous, same = done[-1], (done[-2] if len(done) > 1 else None), True
    if previous is None:
        earlier = [v for v in version.asset.versions if v.id < version.id]
        scans = [s for v in reversed(earlier) for s in reversed(v.scans)
                 if s.state is ScanState.done]
        previous, same = (scans[0] if scans else None), False
    if previous is None:
        return None
    now, before = _by_fingerprint(scan), _by_fingerprint(previous)
    added, removed, upgraded = _component_changes(_components(previous), _components(scan))
    return Comparison(
        scan, previous, same,
        fixed=[f for k, f in before.items() if k not in now],
        new=[f for k, f in now.items() if k not in before],
        still=[f for k, f in now.items() if k in before],
        added=added, removed=removed, upgraded=upgraded)


def _by_fingerprint(scan: Scan) -> dict[str, ScanFinding]:
    found: dict[str, ScanFinding] = {}
    for finding in sorted(scan.findings, key=lambda f: (_KIND_ORDER.get(f.type, 3),
                                                        -(f.cvss_score or 0), f.id)):
        found.setdefault(finding.fingerprint, finding)
    return found


def _components(scan: Scan) -> dict[tuple[str, str], set[str]]:
    versions: dict[tuple[str, str], set[str]] = {}
    for c in scan.components:
        versions.setdefault((c.ecosystem, c.name), set()).add(c.version)
    return versions


def _component_changes(before: dict, after: dict):
    def joined(versions: set[str]) -> str:
        return ", ".join(sorted(versions))

    added = [(eco, name, joined(after[eco, name]))
             for eco, name in sorted(after.keys() - before.keys())]
    removed = [(eco, name, joined(before[eco, name]))
               for eco, name in sorted(before.keys() - after.keys())]
    upgraded = [(eco, name, joined(before[eco, name]), joined(after[eco, name]))
                for eco, name in sorted(before.keys() & after.keys())
                if before[eco, name] != after[eco, name]]
    return added, removed, upgraded
