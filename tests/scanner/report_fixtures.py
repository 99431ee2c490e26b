"""A realistic rejected ScanResult, built by hand, for the report tests."""

from scanner.model import Component, Cvss, Finding, PackageInfo, ScanInfo, ScanResult

VIRUS_ID = "3f1c2a9e8b7d6c5e"
VULN_ID = "9a8b7c6d5e4f3a2b"
NO_VECTOR_ID = "1122334455667788"
UNSCANNED_ID = "0f0e0d0c0b0a0908"

PYYAML = Component(
    ecosystem="PyPI",
    name="PyYAML",
    version="5.3",
    purl="pkg:pypi/pyyaml@5.3",
    location="app.tar.gz!/venv/lib/python3.11/site-packages/PyYAML-5.3.dist-info/METADATA",
)
LODASH = Component(
    ecosystem="npm",
    name="lodash",
    version="4.17.11",
    purl="pkg:npm/lodash@4.17.11",
    location="app.tar.gz!/web/node_modules/lodash/package.json",
)


def scan_result(extra: tuple[Finding, ...] = ()) -> ScanResult:
    findings = (
        Finding(
            id=VIRUS_ID,
            type="virus",
            location="app.tar.gz!/bin/tools.zip!/helper.exe",
            blocking=True,
            signature="Win.Test.EICAR_HDB-1",
            engine="clamav",
            summary="ClamAV matched a signature.",
        ),
        Finding(
            id=VULN_ID,
            type="vulnerability",
            location=PYYAML.location,
            blocking=True,
            ids=("GHSA-6757-jp84-gxfx", "PYSEC-2020-96"),
            aliases=("CVE-2020-1747",),
            component=PYYAML,
            cvss=Cvss(
                score=9.8,
                vector="CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
                source="GHSA-6757-jp84-gxfx",
            ),
            severity="CRITICAL",
            summary="Improper Input Validation in PyYAML: full_load allows arbitrary code.",
            fixed_versions=("5.3.1",),
            references=(
                "https://nvd.nist.gov/vuln/detail/CVE-2020-1747",
                "https://github.com/yaml/pyyaml/pull/386",
            ),
        ),
        Finding(
            id=NO_VECTOR_ID,
            type="vulnerability",
            location=LODASH.location,
            blocking=False,
            ids=("GHSA-x5rq-j2xg-h7qm",),
            component=LODASH,
            severity="MODERATE",
            summary="Regular expression denial of service in lodash.",
            fixed_versions=("4.17.12",),
        ),
        Finding(
            id=UNSCANNED_ID,
            type="unscanned",
            location="app.tar.gz!/data/blob.7z",
            blocking=True,
            signature="Heuristics.Limits.Exceeded.MaxFileSize",
            engine="unpack",
            summary="The file is larger than the per-file limit and was not examined.",
        ),
        *extra,
    )
    return ScanResult(
        verdict="rejected",
        package=PackageInfo(
            name="shop-backend(2)",
            size=48_213_771,
            sha256="5d41402abc4b2a76b9719d911017c592" * 2,
            format="tar.gz",
        ),
        components=(PYYAML, LODASH),
        findings=findings,
        scan=ScanInfo(
            policy="assay-2026.1",
            threshold=7.0,
            engines={"clamav": "ClamAV 1.4.3/27000", "yara": "4.5.4", "osv": "sha256:abc123"},
            osv_records=412_337,
            started="2026-03-02T08:00:00Z",
            finished="2026-03-02T08:03:41Z",
        ),
    )
