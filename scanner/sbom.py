"""CycloneDX 1.6 JSON SBOM of a scan: the package, its components and their vulnerabilities."""

from __future__ import annotations

from decimal import Decimal

from cyclonedx.model import HashAlgorithm, HashType, Property
from cyclonedx.model.bom import Bom
from cyclonedx.model.component import Component as CdxComponent
from cyclonedx.model.component import ComponentScope, ComponentType
from cyclonedx.model.vulnerability import (
    BomTarget,
    Vulnerability,
    VulnerabilityRating,
    VulnerabilityReference,
    VulnerabilityScoreSource,
    VulnerabilitySeverity,
    VulnerabilitySource,
)
from cyclonedx.output.json import JsonV1Dot6
from packageurl import PackageURL

from scanner import cvss_score
from scanner.model import Component, Finding, ScanResult

OSV_URL = "https://osv.dev/vulnerability/"

_SEVERITIES = {
    "CRITICAL": VulnerabilitySeverity.CRITICAL,
    "HIGH": VulnerabilitySeverity.HIGH,
    "MODERATE": VulnerabilitySeverity.MEDIUM,
    "MEDIUM": VulnerabilitySeverity.MEDIUM,
    "LOW": VulnerabilitySeverity.LOW,
    "NONE": VulnerabilitySeverity.NONE,
}


def write_sbom(result: ScanResult) -> str:
    """The SBOM as CycloneDX 1.6 JSON: one component per (purl, location), vulnerabilities rated."""
    bom = Bom()
    root = bom.metadata.component = CdxComponent(
        name=result.package.name,
        type=ComponentType.APPLICATION,
        bom_ref="package",
        hashes=[HashType(alg=HashAlgorithm.SHA_256, content=result.package.sha256)],
        properties=[
            Property(name="assay:verdict", value=result.verdict),
            Property(name="assay:format", value=result.package.format),
        ],
    )
    refs: dict[tuple[str, str], str] = {}
    parts = []
    for index, component in enumerate(result.components, 1):
        ref = f"component-{index}"
        refs[(component.purl, component.location)] = ref
        parts.append(_component(component, ref))
        bom.components.add(parts[-1])
    # Everything found sits inside the package: a flat dependency graph under it.
    bom.register_dependency(root, parts)
    for finding in result.findings:
        if finding.type == "vulnerability" and finding.component is not None:
            ref = refs.get((finding.component.purl, finding.component.location))
            bom.vulnerabilities.add(_vulnerability(finding, ref))
    return JsonV1Dot6(bom).output_as_string(indent=2)


def _component(component: Component, ref: str) -> CdxComponent:
    try:
        purl = PackageURL.from_string(component.purl) if component.purl else None
    except ValueError:
        purl = None
    return CdxComponent(
        name=component.name,
        version=component.version,
        type=ComponentType.LIBRARY,
        bom_ref=ref,
        purl=purl,
        scope=_SCOPES.get(component.scope),
        properties=[
            Property(name="assay:ecosystem", value=component.ecosystem),
            Property(name="assay:location", value=component.location),
            Property(name="assay:scope", value=component.scope),
        ],
    )


#: CycloneDX's scope of a component: shipped and needed, optional, or not shipped at all.
_SCOPES = {
    "runtime": ComponentScope.REQUIRED,
    "optional": ComponentScope.OPTIONAL,
    "dev": ComponentScope.EXCLUDED,
}


def _vulnerability(finding: Finding, ref: str | None) -> Vulnerability:
    primary = finding.ids[0] if finding.ids else finding.id
    ratings = []
    if finding.cvss is not None:
        ratings.append(
            VulnerabilityRating(
                source=VulnerabilitySource(
                    name=finding.cvss.source, url=OSV_URL + finding.cvss.source
                ),
                score=Decimal(str(finding.cvss.score)),
                severity=_SEVERITIES[cvss_score.label(finding.cvss.score)],
                method=_method(finding.cvss.vector),
                vector=finding.cvss.vector,
            )
        )
    elif finding.severity:
        ratings.append(
            VulnerabilityRating(
                severity=_SEVERITIES.get(finding.severity.upper(), VulnerabilitySeverity.UNKNOWN)
            )
        )
    others = [*finding.ids[1:], *finding.aliases]
    return Vulnerability(
        bom_ref=f"finding-{finding.id}",
        id=primary,
        source=VulnerabilitySource(name="OSV", url=OSV_URL + primary),
        references=[
            VulnerabilityReference(
                id=other, source=VulnerabilitySource(name="OSV", url=OSV_URL + other)
            )
            for other in others
        ],
        ratings=ratings,
        description=finding.summary or None,
        recommendation=(
            f"Upgrade to {', '.join(finding.fixed_versions)}" if finding.fixed_versions else None
        ),
        affects=[BomTarget(ref=ref)] if ref else None,
        properties=[
            Property(name="assay:finding-id", value=finding.id),
            Property(name="assay:blocking", value=str(finding.blocking).lower()),
            Property(name="assay:location", value=finding.location),
        ],
    )


def _method(vector: str) -> VulnerabilityScoreSource:
    if vector.startswith("CVSS:4"):
        return VulnerabilityScoreSource.CVSS_V4
    if vector.startswith("CVSS:3.1"):
        return VulnerabilityScoreSource.CVSS_V3_1
    if vector.startswith("CVSS:3"):
        return VulnerabilityScoreSource.CVSS_V3
    return VulnerabilityScoreSource.CVSS_V2
