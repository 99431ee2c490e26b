"""OSV loading, matching, alias merging and scoring (scanner.osv)."""

import json
import zipfile
from pathlib import Path

import pytest

from scanner.model import Component, ScanError
from scanner.osv import OsvDatabase, fingerprint

CORPUS = Path(__file__).parents[1] / "data" / "corpus" / "osv"

V3_75 = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N"  # 7.5
V3_59 = "CVSS:3.1/AV:N/AC:H/PR:H/UI:N/S:U/C:H/I:H/A:N"  # 5.9
V3_81 = "CVSS:3.1/AV:N/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:N"  # 8.1
V4_93 = "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N"  # 9.3
V2_75 = "AV:N/AC:L/Au:N/C:P/I:P/A:P"  # 7.5


def record(
    rid,
    name="demo",
    eco="PyPI",
    *,
    aliases=(),
    vectors=(),
    label=None,
    events=({"introduced": "0"}, {"fixed": "2.0"}),
    versions=None,
    **extra,
):
    affected = {
        "package": {"ecosystem": eco, "name": name},
        "ranges": [{"type": "ECOSYSTEM", "events": list(events)}],
    }
    if versions is not None:
        affected["versions"] = versions
    data = {
        "id": rid,
        "modified": "2024-01-01T00:00:00Z",
        "aliases": list(aliases),
        "summary": f"summary of {rid}",
        "affected": [affected],
        "severity": [{"type": t, "score": v} for t, v in vectors],
        "references": [{"type": "WEB", "url": f"https://example.org/{rid}"}],
        **extra,
    }
    if label:
        data["database_specific"] = {"severity": label}
    return data


def write(tmp_path, *records):
    folder = tmp_path / "osv"
    for rec in records:
        sub = folder / rec["affected"][0]["package"]["ecosystem"].split(":")[0]
        sub.mkdir(parents=True, exist_ok=True)
        (sub / f"{rec['id']}.json").write_text(json.dumps(rec))
    return folder


def comp(name="demo", version="1.0", eco="PyPI", location="pkg.zip!/a/METADATA"):
    return Component(eco, name, version, f"pkg:{eco.lower()}/{name}@{version}", location)


def test_withdrawn_records_are_ignored(tmp_path):
    db = OsvDatabase.load(
        [
            write(
                tmp_path,
                record("GHSA-aaaa", withdrawn="2020-01-01T00:00:00Z", vectors=[("CVSS_V3", V3_75)]),
            )
        ]
    )
    assert db.records == 0
    assert db.match([comp()], 7.0) == []


def test_aliases_merge_and_the_highest_score_decides(tmp_path):
    folder = write(
        tmp_path,
        record(
            "GHSA-mmmm-1111-2222",
            aliases=["CVE-2023-1"],
            vectors=[("CVSS_V3", V3_59)],
            label="MODERATE",
        ),
        record(
            "PYSEC-2023-9",
            aliases=["CVE-2023-1", "GHSA-mmmm-1111-2222"],
            vectors=[("CVSS_V3", V3_81)],
        ),
    )
    [finding] = OsvDatabase.load([folder]).match([comp()], 7.0)
    assert finding.ids == ("GHSA-mmmm-1111-2222", "PYSEC-2023-9")
    assert finding.aliases == ("CVE-2023-1",)
    assert (finding.cvss.score, finding.cvss.source, finding.cvss.vector) == (
        8.1,
        "PYSEC-2023-9",
        V3_81,
    )
    assert finding.blocking
    assert finding.severity == "MODERATE"  # the database's label, kept as published
    assert finding.type == "vulnerability"


def test_merging_is_transitive_and_ignores_related(tmp_path):
    folder = write(
        tmp_path,
        record("GHSA-a", aliases=["CVE-1"]),
        record("PYSEC-b", aliases=["CVE-1", "OSV-c"]),
        record("OSV-c", aliases=[]),
        record("GHSA-d", related=["CVE-1", "GHSA-a"]),
    )
    findings = OsvDatabase.load([folder]).match([comp()], 7.0)
    assert sorted(f.ids for f in findings) == [("GHSA-a", "OSV-c", "PYSEC-b"), ("GHSA-d",)]


def test_cve_62_in_one_record_and_75_in_another(tmp_path):
    v62 = "CVSS:3.1/AV:L/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N"
    folder = write(
        tmp_path,
        record("GHSA-x", aliases=["CVE-2018-1"], vectors=[("CVSS_V3", v62)]),
        record("PYSEC-y", aliases=["CVE-2018-1"], vectors=[("CVSS_V3", V3_75)]),
    )
    [finding] = OsvDatabase.load([folder]).match([comp()], 7.0)
    assert (finding.cvss.score, finding.cvss.source) == (7.5, "PYSEC-y")
    assert finding.blocking
    assert OsvDatabase.load([folder]).match([comp()], 7.6)[0].blocking is False


def test_v4_vectors_count(tmp_path):
    folder = write(tmp_path, record("GHSA-v4", vectors=[("CVSS_V3", V3_59), ("CVSS_V4", V4_93)]))
    [finding] = OsvDatabase.load([folder]).match([comp()], 7.0)
    assert (finding.cvss.score, finding.cvss.vector) == (9.3, V4_93)


def test_v2_only_when_nothing_newer(tmp_path):
    only_v2 = write(tmp_path, record("OLD-1", vectors=[("CVSS_V2", V2_75)]))
    [finding] = OsvDatabase.load([only_v2]).match([comp()], 7.0)
    assert (finding.cvss.score, finding.cvss.vector, finding.blocking) == (7.5, V2_75, True)

    mixed = write(
        tmp_path / "m",
        record("OLD-1", aliases=["CVE-9"], vectors=[("CVSS_V2", V2_75)]),
        record("NEW-1", aliases=["CVE-9"], vectors=[("CVSS_V3", V3_59)]),
    )
    [finding] = OsvDatabase.load([mixed]).match([comp()], 7.0)
    assert (finding.cvss.score, finding.cvss.source, finding.blocking) == (5.9, "NEW-1", False)


def test_unscored_is_reported_with_its_label_and_never_blocks(tmp_path):
    folder = write(tmp_path, record("GHSA-nv", label="CRITICAL"))
    [finding] = OsvDatabase.load([folder]).match([comp()], 0.0)
    assert finding.cvss is None
    assert finding.severity == "CRITICAL"
    assert finding.blocking is False


def test_invalid_vector_is_not_a_score(tmp_path):
    folder = write(tmp_path, record("GHSA-bad", vectors=[("CVSS_V3", "CVSS:3.1/AV:N/garbage")]))
    [finding] = OsvDatabase.load([folder]).match([comp()], 7.0)
    assert finding.cvss is None and not finding.blocking


def test_versions_list_and_near_miss(tmp_path):
    folder = write(
        tmp_path,
        record("PYSEC-l", events=(), versions=["1.0", "1.1"], vectors=[("CVSS_V3", V3_75)]),
    )
    db = OsvDatabase.load([folder])
    assert len(db.match([comp(version="1.1")], 7.0)) == 1
    assert db.match([comp(version="1.2")], 7.0) == []


def test_pypi_names_match_after_normalisation(tmp_path):
    folder = write(tmp_path, record("PYSEC-n", name="Zope_Interface", vectors=[("CVSS_V3", V3_75)]))
    [finding] = OsvDatabase.load([folder]).match([comp(name="zope.interface")], 7.0)
    assert finding.component.name == "zope.interface"


def test_ecosystem_with_release_matches_its_base(tmp_path):
    folder = write(
        tmp_path,
        record(
            "DSA-1",
            name="nginx",
            eco="Debian:12",
            events=({"introduced": "0"}, {"fixed": "1.22.1-9"}),
        ),
    )
    db = OsvDatabase.load([folder])
    assert len(db.match([comp("nginx", "1.22.1-8", "Debian")], 7.0)) == 1
    assert db.match([comp("nginx", "1.22.1-9", "Debian")], 7.0) == []
    assert db.match([comp("nginx", "1.22.1-8", "Alpine")], 7.0) == []


def test_unparseable_component_version_is_reported_not_blocking(tmp_path):
    folder = write(tmp_path, record("GHSA-u", eco="Debian", name="x", vectors=[("CVSS_V3", V3_75)]))
    [finding] = OsvDatabase.load([folder]).match([comp("x", "?? bad", "Debian")], 7.0)
    assert finding.blocking is False
    assert finding.cvss.score == 7.5
    assert finding.summary.startswith("Version could not be compared")


def test_one_finding_per_advisory_at_the_first_location(tmp_path):
    folder = write(tmp_path, record("GHSA-loc", vectors=[("CVSS_V3", V3_75)]))
    db = OsvDatabase.load([folder])
    a = comp(location="pkg.zip!/z/METADATA")
    b = comp(location="pkg.zip!/a/lib.whl!/METADATA")
    [finding] = db.match([a, b], 7.0)
    assert finding.location == b.location


def test_fingerprint_is_stable_and_location_independent(tmp_path):
    folder = write(
        tmp_path,
        record("GHSA-f", aliases=["CVE-2020-10", "CVE-2020-9"], vectors=[("CVSS_V3", V3_75)]),
    )
    db = OsvDatabase.load([folder])
    first = db.match([comp(location="a.zip!/x")], 7.0)[0].id
    again = OsvDatabase.load([folder]).match([comp(location="b.tar!/y/z")], 7.0)[0].id
    assert first == again == fingerprint("PyPI", "demo", "1.0", "CVE-2020-9")
    assert len(first) == 32
    assert db.match([comp(version="1.1")], 7.0)[0].id != first


def test_fixed_versions_references_and_summary(tmp_path):
    folder = write(
        tmp_path,
        record(
            "GHSA-fx",
            events=({"introduced": "0"}, {"fixed": "0.5"}, {"introduced": "1.0"}, {"fixed": "1.4"}),
        ),
    )
    [finding] = OsvDatabase.load([folder]).match([comp(version="1.2")], 7.0)
    assert finding.fixed_versions == ("1.4",)
    assert finding.references == ("https://example.org/GHSA-fx",)
    assert finding.summary == "summary of GHSA-fx"


def test_load_from_an_all_zip(tmp_path):
    archive = tmp_path / "all.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for rec in (
            record("GHSA-z1", vectors=[("CVSS_V3", V3_75)]),
            record("GHSA-z2", name="o"),
            record("GHSA-z3", withdrawn="2021-01-01T00:00:00Z"),
        ):
            zf.writestr(f"{rec['id']}.json", json.dumps(rec))
    db = OsvDatabase.load([archive])
    assert db.records == 2
    [finding] = db.match([comp()], 7.0)
    assert finding.ids == ("GHSA-z1",) and finding.blocking


def test_snapshot_is_stable_and_dedupes_sources(tmp_path):
    recs = [record("GHSA-s1"), record("GHSA-s2")]
    folder = write(tmp_path, *recs)
    archive = tmp_path / "all.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for rec in reversed(recs):
            zf.writestr(f"{rec['id']}.json", json.dumps(rec))
    a, b = OsvDatabase.load([folder]), OsvDatabase.load([archive])
    both = OsvDatabase.load([folder, archive])
    assert a.snapshot == b.snapshot == both.snapshot
    assert both.records == 2
    assert a.snapshot.startswith("osv:sha256:")
    assert OsvDatabase.load([write(tmp_path / "c", recs[0])]).snapshot != a.snapshot


def test_missing_or_corrupt_data_is_an_error(tmp_path):
    with pytest.raises(ScanError, match="not found"):
        OsvDatabase.load([tmp_path / "nope"])
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "X.json").write_text("{not json")
    with pytest.raises(ScanError, match="X.json"):
        OsvDatabase.load([bad])


def test_corpus_loads_without_the_withdrawn_record():
    db = OsvDatabase.load([CORPUS])
    assert db.records == 364
    minimist = comp("minimist", "0.0.8", "npm")
    ids = {i for f in db.match([minimist], 7.0) for i in f.ids}
    assert "GHSA-7fhm-mqm4-2wp7" not in ids
    assert ids == {"GHSA-xvch-5gv4-984h", "GHSA-vh95-rmgr-6w4m"}
