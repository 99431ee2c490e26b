"""The catalogers read under limits, and what they could not read is an ``unscanned`` finding.

A crafted ``rpmdb.sqlite`` whose ``Packages`` is an endless recursive view used to
hang a scan for ever inside SQLite; metadata files over their size limit, or
malformed ones in a recognised format, used to be skipped in silence.
"""

from __future__ import annotations

import io
import json
import sqlite3
import tarfile
import time
from pathlib import Path

import pytest

from scanner.catalog import catalog
from scanner.catalogers import _common
from scanner.catalogers._common import MAX_TEXT, SqliteLimit
from scanner.catalogers.distro import rpm_packages
from scanner.model import Limits, Settings
from scanner.osv import OsvDatabase
from scanner.pipeline import scan_package
from scanner.unpack import Member, Unpacked

OSV = Path(__file__).parents[1] / "data" / "corpus" / "osv"
DB_AT = "rootfs/var/lib/rpm/rpmdb.sqlite"


def endless_rpmdb(path: Path) -> Path:
    """An rpmdb.sqlite whose Packages view never returns a row and never ends."""
    path.parent.mkdir(parents=True, exist_ok=True)
    connection = sqlite3.connect(path)
    connection.executescript(
        "CREATE VIEW Packages AS WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n)"
        " SELECT NULL AS blob FROM n WHERE x < 0;")
    connection.close()
    return path


def package(tmp_path: Path, files: dict[str, bytes]) -> Path:
    out = tmp_path / "pkg.tar.gz"
    with tarfile.open(out, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out


def unpacked(tmp_path: Path, files: dict[str, bytes | int]) -> Unpacked:
    """Members as the unpacker leaves them; an int is the size of a sparse file."""
    result = Unpacked(root=tmp_path)
    result.members.append(Member(tmp_path / "pkg", "pkg.tar", 1, 0, True))
    for i, (name, data) in enumerate(files.items()):
        path = tmp_path / f"m{i}"
        if isinstance(data, int):
            with open(path, "wb") as f:
                f.truncate(data)
            size = data
        else:
            path.write_bytes(data)
            size = len(data)
        result.members.append(Member(path, f"pkg.tar!/{name}", size, 1, False))
    return result


@pytest.fixture(scope="module")
def osv() -> OsvDatabase:
    return OsvDatabase.load([OSV])


def test_the_endless_view_is_stopped_at_its_deadline(tmp_path, monkeypatch):
    monkeypatch.setattr(_common, "SQLITE_SECONDS", 1.0)
    path = endless_rpmdb(tmp_path / "rpmdb.sqlite")
    started = time.monotonic()
    with pytest.raises(SqliteLimit, match="over 1 seconds"):
        rpm_packages(path)
    assert time.monotonic() - started < 5


def test_rows_past_the_cap_stop_the_read(tmp_path, monkeypatch):
    monkeypatch.setattr(_common, "SQLITE_ROWS", 100)
    path = tmp_path / "rpmdb.sqlite"
    connection = sqlite3.connect(path)
    connection.executescript(
        "CREATE VIEW Packages AS WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n"
        " WHERE x < 100000) SELECT x'00' AS blob FROM n;")
    connection.close()
    with pytest.raises(SqliteLimit, match="more than 100 rows"):
        rpm_packages(path)


def test_the_endless_database_ends_quickly_as_an_unscanned_finding(
        clamd, osv, tmp_path, monkeypatch):
    """Through the whole scan, with a real clamd: the scan ends, the rest is still read."""
    monkeypatch.setattr(_common, "SQLITE_SECONDS", 2.0)
    db = endless_rpmdb(tmp_path / "src" / "rpmdb.sqlite").read_bytes()
    lock = {"name": "app", "lockfileVersion": 3, "packages": {
        "node_modules/lodash": {"version": "4.17.20"}}}
    pkg = package(tmp_path, {
        DB_AT: db, "rootfs/etc/os-release": b'ID="rhel"\nVERSION_ID="9.4"\n',
        "app/package-lock.json": json.dumps(lock).encode(),
    })
    settings = Settings(osv_paths=(OSV,), clamd=clamd.address, scratch_dir=tmp_path)
    started = time.monotonic()
    result = scan_package(pkg, settings, osv=osv)
    assert time.monotonic() - started < 30
    unscanned = [f for f in result.findings if f.type == "unscanned"]
    assert [(f.location, f.engine) for f in unscanned] == [(f"pkg.tar.gz!/{DB_AT}", "catalog")]
    assert "not read to the end" in unscanned[0].summary
    assert "over 2 seconds" in unscanned[0].summary
    assert result.verdict == "rejected"
    # the other catalogers still ran
    assert ("npm", "lodash", "4.17.20") in {(c.ecosystem, c.name, c.version)
                                            for c in result.components}


def test_the_catalog_stage_deadline_stops_the_catalogers_with_a_finding(tmp_path, monkeypatch):
    monkeypatch.setattr(_common, "SQLITE_SECONDS", 60.0)
    files = {
        DB_AT: endless_rpmdb(tmp_path / "src" / "rpmdb.sqlite").read_bytes(),
        "app/package-lock.json": json.dumps(
            {"lockfileVersion": 3, "packages": {"node_modules/a": {"version": "1.0.0"}}}
        ).encode(),
    }
    result = unpacked(tmp_path, files)
    started = time.monotonic()
    components = catalog(result, Limits(max_catalog_seconds=1.5))
    assert time.monotonic() - started < 10
    by_code = {f.id: f for f in result.findings}
    assert len(by_code) == 2
    db_finding = next(f for f in result.findings if f.location.endswith("rpmdb.sqlite"))
    assert "catalog stage's time limit" in db_finding.summary
    stage = next(f for f in result.findings if f.location == "pkg.tar")
    assert "cataloging took over 1.5 seconds" in stage.summary
    assert "native" in stage.summary  # the catalogers after distro did not run
    assert all(f.type == "unscanned" and f.blocking for f in result.findings)
    assert ("npm", "a") in {(c.ecosystem, c.name) for c in components}  # npm ran before


def test_a_spent_deadline_names_every_cataloger_not_run(tmp_path):
    result = unpacked(tmp_path, {"app/package-lock.json": b"{}"})
    assert catalog(result, Limits(max_catalog_seconds=0)) == []
    [finding] = result.findings
    assert finding.location == "pkg.tar" and finding.engine == "catalog"
    assert "python, python_locks" in finding.summary and "distro, native" in finding.summary


def test_a_lockfile_over_its_size_limit_is_a_finding(tmp_path):
    result = unpacked(tmp_path, {"app/package-lock.json": MAX_TEXT + 1})
    assert catalog(result) == []
    [finding] = result.findings
    assert finding.location == "pkg.tar!/app/package-lock.json"
    assert finding.type == "unscanned" and finding.blocking
    assert f"{MAX_TEXT + 1} bytes is over the {MAX_TEXT}-byte limit" in finding.summary


def test_a_truncated_npm_lockfile_is_a_finding(tmp_path):
    whole = json.dumps({"name": "app", "lockfileVersion": 3, "packages": {
        "node_modules/a": {"version": "1.0.0"}}}).encode()
    result = unpacked(tmp_path, {"app/package-lock.json": whole[: len(whole) // 2]})
    catalog(result)
    [finding] = result.findings
    assert finding.location == "pkg.tar!/app/package-lock.json"
    assert finding.summary.startswith("could not be read as an npm lockfile: ")


def test_a_malformed_sqlite_rpm_database_is_a_finding(tmp_path):
    result = unpacked(tmp_path, {
        "a/var/lib/rpm/rpmdb.sqlite": b"SQLite format 3\0" + b"\xff" * 4000,
        "b/var/lib/rpm/rpmdb.sqlite": b"not sqlite",
    })
    catalog(result)
    [finding] = result.findings
    assert finding.location == "pkg.tar!/a/var/lib/rpm/rpmdb.sqlite"
    assert finding.summary.startswith("could not be read as an rpm database (SQLite): ")


def test_files_that_merely_share_a_metadata_name_stay_silent(tmp_path):
    result = unpacked(tmp_path, {
        "docs/package-lock.json": b"this is not json",
        "x/var/lib/rpm/rpmdb.sqlite": b"",
        "y/var/lib/dpkg/status": b"\x00\x01 not a status file",
        "z/Cargo.lock": b"[[[ garbage",
    })
    catalog(result)
    assert result.findings == []


def test_malformed_python_lockfiles_are_findings(tmp_path):
    result = unpacked(tmp_path, {
        "d/poetry.lock": b"# This file is automatically @generated by Poetry 1.8.3 and should"
                         b' not be changed by hand.\n\n[[package]]\nname = "x\n',
        "e/Pipfile.lock": b'{\n "_meta": {"pipfile-spec": 6, ',
        "f/poetry.lock": b"[[[ not poetry's",
    })
    catalog(result)
    assert sorted((f.location, f.summary.split(":")[0]) for f in result.findings) == [
        ("pkg.tar!/d/poetry.lock", "could not be read as a poetry.lock"),
        ("pkg.tar!/e/Pipfile.lock", "could not be read as a Pipfile.lock"),
    ]


def test_a_yarn_lock_over_its_size_limit_is_a_finding(tmp_path):
    result = unpacked(tmp_path, {"app/yarn.lock": MAX_TEXT + 1, "app/package.json": b"{}"})
    catalog(result)
    [finding] = result.findings
    assert finding.location == "pkg.tar!/app/yarn.lock"
    assert "over the 67108864-byte limit" in finding.summary


def test_a_large_file_at_a_containers_top_is_no_metadata_file(tmp_path):
    """Only files under ``var/lib/dpkg/status.d/`` are dpkg entries: a disk image at the
    top of a package is not read (nor reported) as one."""
    result = unpacked(tmp_path, {
        "rootfs.ext4": MAX_TEXT + 1,
        "disk.vmdk": MAX_TEXT + 1,
        "var/lib/dpkg/status.d/big": MAX_TEXT + 1,
    })
    catalog(result)
    [finding] = result.findings
    assert finding.location == "pkg.tar!/var/lib/dpkg/status.d/big"
