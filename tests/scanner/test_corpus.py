"""The real corpus through the real command line: results equal manifest.json.

Each package is scanned once with ``python -m scanner scan ... --json -`` in a
subprocess; the assertions below compare that JSON with the expectations in
``tests/data/corpus/packages/manifest.json``.
"""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from scanner.model import NEST

ROOT = Path(__file__).parents[2]
CORPUS = ROOT / "tests" / "data" / "corpus"
MANIFEST = json.loads((CORPUS / "packages" / "manifest.json").read_text())
PACKAGES = {Path(p["file"]).name: p for p in MANIFEST["packages"]}
WITHDRAWN = "GHSA-7fhm-mqm4-2wp7"

_results: dict[str, tuple[int, dict]] = {}


def scan(file_name: str) -> tuple[int, dict]:
    if file_name not in _results:
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "scanner",
                "scan",
                str(CORPUS / "packages" / file_name),
                "--osv",
                str(CORPUS / "osv"),
                "--json",
                "-",
            ],
            check=False,
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=600,
        )
        assert proc.returncode in (0, 1), proc.stderr
        _results[file_name] = (proc.returncode, json.loads(proc.stdout))
    return _results[file_name]


#: Libraries known by the version string compiled into a binary: the manifest predates
#: their advisories (scanner/data/native), so they are checked on their own below.
NATIVE = "Assay-native"
#: Components a lock file of the package states besides its installed metadata (the
#: manifest lists the installed ones): the same releases, so no other advisory.
LOCKED = {
    "pkg-a-python-app.tar.gz": {
        ("PyPI", name, version, "acme-python-app-1.0/requirements.txt")
        for name, version in [
            ("requests", "2.19.1"), ("urllib3", "1.24.1"), ("PyYAML", "5.3"),
            ("Jinja2", "2.10"), ("lxml", "4.6.2"), ("six", "1.17.0"),
        ]
    }
}
#: zlib 1.2.11 is compiled into lxml's extension modules in pkg-a (the first one found
#: names the finding): CVE-2018-25032 (7.5) and CVE-2022-37434 (9.8).
NATIVE_FINDINGS = {
    "pkg-a-python-app.tar.gz": {
        ("zlib", "1.2.11", "CVE-2018-25032", 7.5, "etree.cpython-38-x86_64-linux-gnu.so"),
        ("zlib", "1.2.11", "CVE-2022-37434", 9.8, "etree.cpython-38-x86_64-linux-gnu.so"),
    }
}


def vulnerabilities(result: dict) -> list[dict]:
    """Findings from package-manager metadata, the ones the manifest lists."""
    return [
        f
        for f in result["findings"]
        if f["type"] == "vulnerability" and f["component"]["ecosystem"] != NATIVE
    ]


def native_vulnerabilities(result: dict) -> list[dict]:
    return [
        f
        for f in result["findings"]
        if f["type"] == "vulnerability" and f["component"]["ecosystem"] == NATIVE
    ]


def expected_vulnerabilities(package: dict):
    for component in package["components"]:
        for vuln in component["vulnerabilities"]:
            yield component, vuln


@pytest.mark.parametrize("file_name", sorted(PACKAGES))
def test_verdict_and_exit_status(file_name):
    status, result = scan(file_name)
    expected = PACKAGES[file_name]["expected_verdict"].lower()
    assert result["verdict"] == expected
    assert status == (0 if expected == "approved" else 1)


@pytest.mark.parametrize("file_name", sorted(PACKAGES))
def test_package_facts(file_name):
    _, result = scan(file_name)
    package = PACKAGES[file_name]
    assert result["package"] == {
        "name": file_name,
        "size": package["size"],
        "sha256": package["sha256"],
        "format": "zip" if file_name.endswith(".zip") else "tar.gz",
    }


@pytest.mark.parametrize("file_name", sorted(PACKAGES))
def test_components_equal_the_manifest(file_name):
    _, result = scan(file_name)
    # Libraries compiled into executables are not package-manager metadata:
    # the manifest does not list them (tests/scanner/test_catalog.py checks them).
    found = sorted(
        (c["ecosystem"], c["name"], c["version"], c["location"])
        for c in result["components"]
        if c["ecosystem"] != NATIVE
    )
    listed = [
        (c["ecosystem"], c["name"], c["version"], c["location_in_package"])
        for c in PACKAGES[file_name]["components"]
    ]
    expected = sorted(
        (e, n, v, f"{file_name}{NEST}{where}")
        for e, n, v, where in [*listed, *LOCKED.get(file_name, ())]
    )
    assert found == expected
    assert all(c["purl"].startswith("pkg:") for c in result["components"])


@pytest.mark.parametrize("file_name", sorted(PACKAGES))
def test_matched_and_blocking_advisories_equal_the_manifest(file_name):
    _, result = scan(file_name)
    package = PACKAGES[file_name]
    found = sorted((f["component"]["name"], tuple(f["ids"])) for f in vulnerabilities(result))
    expected = sorted((c["name"], tuple(v["ids"])) for c, v in expected_vulnerabilities(package))
    assert found == expected
    assert len(found) == package["matched_vulnerabilities"]

    blocking = sorted(tuple(f["ids"]) for f in vulnerabilities(result) if f["blocking"])
    assert blocking == sorted(
        tuple(v["ids"]) for _, v in expected_vulnerabilities(package) if v["ge_7"]
    )


@pytest.mark.parametrize("file_name", sorted(PACKAGES))
def test_embedded_libraries_are_flagged_by_their_version_string(file_name):
    _, result = scan(file_name)
    found = native_vulnerabilities(result)
    assert {
        (
            f["component"]["name"],
            f["component"]["version"],
            *f["ids"],
            f["cvss"]["score"],
            f["location"].rsplit("/", 1)[-1],
        )
        for f in found
    } == NATIVE_FINDINGS.get(file_name, set())
    assert len(found) == len(NATIVE_FINDINGS.get(file_name, ()))
    for finding in found:
        assert finding["blocking"] is True
        assert finding["summary"].startswith("Identified from the version string embedded")
        assert finding["component"]["purl"] == "pkg:generic/zlib@1.2.11"
    if found:
        assert result["scan"]["engines"]["native"].startswith("osv:sha256:")


@pytest.mark.parametrize("file_name", sorted(PACKAGES))
def test_scores_equal_the_manifest(file_name):
    _, result = scan(file_name)
    package = PACKAGES[file_name]
    scores = {tuple(f["ids"]): f["cvss"] for f in vulnerabilities(result)}
    for _, vuln in expected_vulnerabilities(package):
        cvss = scores[tuple(vuln["ids"])]
        if vuln["max_cvss_any"] is None:
            assert cvss is None
            continue
        assert cvss["score"] == vuln["max_cvss_any"]
        decided = [c for c in vuln["cvss"] if c["base_score"] == cvss["score"]]
        assert (cvss["source"], cvss["vector"]) in {(c["source"], c["vector"]) for c in decided}
    found_max = max(
        (f["cvss"]["score"] for f in vulnerabilities(result) if f["cvss"]), default=None
    )
    assert found_max == package["max_cvss"]
    unscored = [f for f in vulnerabilities(result) if f["cvss"] is None]
    assert len(unscored) == package["unscored_vulnerabilities"]
    assert not any(f["blocking"] for f in unscored)


@pytest.mark.parametrize("file_name", sorted(PACKAGES))
def test_withdrawn_and_near_misses_are_not_reported(file_name):
    _, result = scan(file_name)
    reported = {i for f in vulnerabilities(result) for i in f["ids"]}
    assert WITHDRAWN not in reported
    for component in PACKAGES[file_name]["components"]:
        assert not reported & set(component["near_misses"]), component["name"]
        assert not reported & set(component["withdrawn_matches"])


def test_the_withdrawn_record_would_otherwise_match():
    record = json.loads((CORPUS / "osv" / "npm" / f"{WITHDRAWN}.json").read_text())
    assert record["withdrawn"]
    assert {a["package"]["name"] for a in record["affected"]} >= {"minimist"}
    assert any(
        WITHDRAWN in c["withdrawn_matches"] for p in PACKAGES.values() for c in p["components"]
    )


def test_nested_eicar_is_found_at_its_full_location():
    _, result = scan("pkg-d-eicar-nested.zip")
    malware = PACKAGES["pkg-d-eicar-nested.zip"]["malware"]
    viruses = [f for f in result["findings"] if f["type"] == "virus"]
    assert len(viruses) == 1, result["findings"]
    [virus] = viruses
    assert virus["blocking"] is True
    assert "eicar" in virus["signature"].lower()
    assert virus["location"].startswith(f"pkg-d-eicar-nested.zip{NEST}")
    assert virus["location"].endswith(malware["path"])
    assert result["findings"][0] == virus  # blocking findings come first


@pytest.mark.parametrize("file_name", sorted(PACKAGES))
def test_no_virus_or_unscanned_where_none_expected(file_name):
    _, result = scan(file_name)
    kinds = {f["type"] for f in result["findings"]}
    if "malware" not in PACKAGES[file_name]:
        assert "virus" not in kinds
    assert "unscanned" not in kinds, [f for f in result["findings"] if f["type"] == "unscanned"]


@pytest.mark.parametrize("file_name", sorted(PACKAGES))
def test_scan_info(file_name):
    _, result = scan(file_name)
    info = result["scan"]
    assert info["policy"] and info["threshold"] == 7.0
    assert info["osv_records"] == 364
    assert info["engines"]["osv"].startswith("osv:sha256:")
    assert info["started"] <= info["finished"]
    findings = result["findings"]
    order = [(not f["blocking"], -(f["cvss"]["score"] if f["cvss"] else -1)) for f in findings]
    assert order == sorted(order)


# The library entry point, in process -----------------------------------------------------


def test_scan_package_reports_every_stage_in_order_and_cleans_up(tmp_path):
    from scanner import OsvDatabase, Settings, scan_package
    from scanner.model import STAGES

    seen = []
    settings = Settings(scratch_dir=tmp_path)
    result = scan_package(
        CORPUS / "packages" / "pkg-c-clean.tar.gz",
        settings,
        lambda stage, done, total: seen.append((stage, done, total)),
        osv=OsvDatabase.load([CORPUS / "osv"]),
    )
    assert result.verdict == "approved"
    stages = list(dict.fromkeys(stage for stage, _, _ in seen))
    assert stages == list(STAGES[:-1])  # "report" belongs to the caller
    assert all(0 <= done <= total or total == 0 for _, done, total in seen)
    assert list(tmp_path.iterdir()) == []


def test_scan_package_uses_the_sellers_file_name(tmp_path):
    from scanner import Settings, scan_package

    download = tmp_path / "tmpa1b2c3"
    shutil.copy(CORPUS / "packages" / "pkg-c-clean.tar.gz", download)
    settings = Settings(osv_paths=(CORPUS / "osv",), scratch_dir=tmp_path / "scratch")
    (tmp_path / "scratch").mkdir()
    result = scan_package(download, settings, name="acme-clean(1)_v2.tar.gz")
    assert result.package.name == "acme-clean(1)_v2.tar.gz"
    assert all(c.location.startswith(f"acme-clean(1)_v2.tar.gz{NEST}") for c in result.components)
    assert list((tmp_path / "scratch").iterdir()) == []


def test_scratch_is_removed_when_a_stage_fails(tmp_path, monkeypatch):
    import scanner.pipeline
    from scanner import OsvDatabase, Settings

    def broken(_unpacked, _limits=None):
        raise RuntimeError("catalog exploded")

    monkeypatch.setattr(scanner.pipeline, "catalog", broken)
    with pytest.raises(RuntimeError, match="exploded"):
        scanner.pipeline.scan_package(
            CORPUS / "packages" / "pkg-a-python-app.tar.gz",
            Settings(scratch_dir=tmp_path),
            osv=OsvDatabase.load([CORPUS / "osv"]),
        )
    assert list(tmp_path.iterdir()) == []


def test_scan_package_without_vulnerability_data_refuses(tmp_path):
    from scanner import ScanError, Settings, scan_package

    with pytest.raises(ScanError, match="vulnerability data"):
        scan_package(CORPUS / "packages" / "pkg-c-clean.tar.gz", Settings(scratch_dir=tmp_path))
