"""The CycloneDX SBOM (scanner.sbom)."""

import json

from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator

from scanner.model import Component, Cvss, Finding, PackageInfo, ScanInfo, ScanResult
from scanner.sbom import write_sbom

REQUESTS = Component(
    "PyPI",
    "requests",
    "2.19.1",
    "pkg:pypi/requests@2.19.1",
    "app.tar.gz!/venv/requests-2.19.1.dist-info/METADATA",
)
LODASH = Component(
    "npm",
    "lodash",
    "4.17.15",
    "pkg:npm/lodash@4.17.15",
    "app.tar.gz!/node_modules/lodash/package.json",
)
SCOPED = Component(
    "npm",
    "@babel/core",
    "7.0.0",
    "pkg:npm/%40babel/core@7.0.0",
    "app.tar.gz!/node_modules/@babel/core/package.json",
)


def result():
    findings = (
        Finding(
            id="a" * 32,
            type="vulnerability",
            location=REQUESTS.location,
            blocking=True,
            ids=("GHSA-x84v-xcm2-53pg", "PYSEC-2018-28"),
            aliases=("CVE-2018-18074",),
            component=REQUESTS,
            severity="HIGH",
            summary="Header leak",
            cvss=Cvss(7.5, "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N", "PYSEC-2018-28"),
            fixed_versions=("2.20.0",),
        ),
        Finding(
            id="b" * 32,
            type="vulnerability",
            location=LODASH.location,
            blocking=False,
            ids=("GHSA-nv",),
            component=LODASH,
            severity="MODERATE",
        ),
        Finding(
            id="c" * 32,
            type="virus",
            location="app.tar.gz!/x.com",
            blocking=True,
            signature="Eicar-Test-Signature",
            engine="clamav",
        ),
    )
    return ScanResult(
        verdict="rejected",
        package=PackageInfo("app.tar.gz", 10, "0" * 64, "tar.gz"),
        components=(REQUESTS, LODASH, SCOPED),
        findings=findings,
        scan=ScanInfo("assay-2026.1", 7.0, {"osv": "osv:sha256:0/1"}, 1, "t0", "t1"),
    )


def test_sbom_is_valid_cyclonedx_1_6():
    text = write_sbom(result())
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(text) is None
    assert json.loads(text)["specVersion"] == "1.6"


def test_sbom_lists_every_component_with_its_purl():
    bom = json.loads(write_sbom(result()))
    assert sorted(c["purl"] for c in bom["components"]) == sorted(
        c.purl for c in (REQUESTS, LODASH, SCOPED)
    )
    assert bom["metadata"]["component"]["hashes"][0]["content"] == "0" * 64


def test_sbom_vulnerabilities_carry_ratings_and_affects():
    bom = json.loads(write_sbom(result()))
    by_id = {v["id"]: v for v in bom["vulnerabilities"]}
    assert set(by_id) == {"GHSA-x84v-xcm2-53pg", "GHSA-nv"}  # viruses are not vulnerabilities
    rated = by_id["GHSA-x84v-xcm2-53pg"]
    [rating] = rated["ratings"]
    assert (rating["score"], rating["method"], rating["source"]["name"]) == (
        7.5,
        "CVSSv31",
        "PYSEC-2018-28",
    )
    assert {r["id"] for r in rated["references"]} == {"PYSEC-2018-28", "CVE-2018-18074"}
    refs = {c["bom-ref"]: c["purl"] for c in bom["components"]}
    assert refs[rated["affects"][0]["ref"]] == REQUESTS.purl
    assert by_id["GHSA-nv"]["ratings"] == [{"severity": "medium"}]
