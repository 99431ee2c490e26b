"""Libraries known only by their embedded version string, matched against the shipped advisories."""

import json

import pytest
from cvss import CVSS3

from scanner import native
from scanner.catalogers._common import component
from scanner.match import NativeVersion, ecosystem_base
from scanner.osv import UNDECIDED_NOTE

ECOSYSTEM = "Assay-native"
#: id -> (library, CVSS v3 base score as NVD gives it)
RECORDS = {
    "CVE-2014-0160": ("openssl", 7.5),
    "CVE-2016-2108": ("openssl", 9.8),
    "CVE-2022-0778": ("openssl", 7.5),
    "CVE-2018-25032": ("zlib", 7.5),
    "CVE-2022-37434": ("zlib", 9.8),
    "CVE-2021-42386": ("busybox", 7.2),
    "CVE-2022-28391": ("busybox", 8.8),
}


def lib(name: str, version: str):
    return component(ECOSYSTEM, name, version, f"p.zip!/bin/{name}", purl_type="generic")


def test_every_shipped_record_is_scored_from_its_vector():
    files = sorted(native.DATA.glob("*.json"))
    assert len(files) == len(RECORDS) == native.database().records
    for file in files:
        record = json.loads(file.read_text())
        name, score = RECORDS[record["id"]]
        [affected] = record["affected"]
        assert affected["package"] == {
            "ecosystem": ECOSYSTEM,
            "name": name,
            "purl": f"pkg:generic/{name}",
        }
        [severity] = record["severity"]
        assert severity["type"] == "CVSS_V3"
        assert float(CVSS3(severity["score"]).base_score) == score
    assert (native.DATA / "PROVENANCE.md").is_file()


def test_the_ecosystem_is_no_osv_ecosystem():
    assert ecosystem_base(ECOSYSTEM.lower()) == ECOSYSTEM
    assert ":" not in ECOSYSTEM  # no release part


@pytest.mark.parametrize(
    ("older", "newer"),
    [
        ("1.0.1f", "1.0.1g"),
        ("1.0.2", "1.0.2a"),
        ("1.0.2k", "1.0.2z"),
        ("1.0.2z", "1.0.2za"),
        ("1.0.2zc", "1.0.2zd"),
        ("1.0.2zh", "1.1.0"),
        ("1.1.1w", "3.0.0"),
        ("3.0.2", "3.0.10"),
        ("1.2.9", "1.2.11"),
        ("1.2.12", "1.2.12.1"),
        ("1.29.3", "1.30.1"),
    ],
)
def test_version_order(older, newer):
    assert NativeVersion(older) < NativeVersion(newer)


def test_trailing_zeros_and_bad_versions():
    assert NativeVersion("1.2") == NativeVersion("1.2.0")
    for bad in ("", "1.0.2-beta1", "v", "1.0.2abc"):
        assert not NativeVersion.is_valid(bad)


@pytest.mark.parametrize(
    ("name", "version", "expected"),
    [
        ("openssl", "1.0.1f", {"CVE-2014-0160", "CVE-2016-2108"}),
        ("openssl", "1.0.1g", {"CVE-2016-2108"}),
        ("openssl", "1.0.1o", set()),
        ("openssl", "1.0.0t", set()),
        ("openssl", "1.0.2", {"CVE-2016-2108", "CVE-2022-0778"}),
        ("openssl", "1.0.2k", {"CVE-2022-0778"}),
        ("openssl", "1.0.2zd", set()),
        ("openssl", "1.1.0l", set()),
        ("openssl", "1.1.1k", {"CVE-2022-0778"}),
        ("openssl", "1.1.1n", set()),
        ("openssl", "3.0.1", {"CVE-2022-0778"}),
        ("openssl", "3.0.2", set()),
        ("zlib", "1.2.11", {"CVE-2018-25032", "CVE-2022-37434"}),
        ("zlib", "1.2.12", {"CVE-2022-37434"}),
        ("zlib", "1.2.13", set()),
        ("zlib", "1.3.1", set()),
        ("busybox", "1.30.1", {"CVE-2021-42386", "CVE-2022-28391"}),
        ("busybox", "1.34.0", {"CVE-2022-28391"}),
        ("busybox", "1.35.0", {"CVE-2022-28391"}),
        ("busybox", "1.36.1", set()),
    ],
)
def test_ranges(name, version, expected):
    findings = native.match([lib(name, version)], 7.0)
    assert {i for f in findings for i in f.ids} == expected
    for finding in findings:
        assert finding.blocking  # every shipped record scores >= 7.0
        assert finding.summary.startswith(native.NOTE)
        assert finding.component.purl == f"pkg:generic/{name}@{version}"


def test_fixed_versions_and_the_threshold():
    [finding] = native.match([lib("openssl", "1.1.1k")], 7.0)
    assert finding.ids == ("CVE-2022-0778",)
    assert finding.fixed_versions == ("1.1.1n", "3.0.2")
    assert finding.cvss.score == 7.5 and finding.cvss.source == "CVE-2022-0778"
    [finding] = native.match([lib("openssl", "1.1.1k")], 8.0)
    assert not finding.blocking


def test_other_ecosystems_and_unreadable_versions_are_left_alone():
    pypi = component("PyPI", "zlib", "1.2.11", "p.zip!/x", purl_type="pypi")
    app = component("Generic", "zlib", "1.2.11", "p.zip!/x", purl_type="generic")
    assert native.match([pypi, app], 7.0) == []
    # a version the ranges cannot order is listed for review, never blocking
    findings = native.match([lib("zlib", "1.2.11-rc1")], 7.0)
    assert {i for f in findings for i in f.ids} == {"CVE-2018-25032", "CVE-2022-37434"}
    assert not any(f.blocking for f in findings)
    assert all(f.summary.startswith(native.NOTE + UNDECIDED_NOTE) for f in findings)
