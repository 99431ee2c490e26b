"""rpm NDB databases (SUSE, openSUSE), and the Berkeley DB reader checked against rpm itself.

``tests/data/rpmdb/README.md`` says how the committed NDB sample was written by rpm's
own NDB code.
"""

from __future__ import annotations

import shutil
import sqlite3
import struct
import subprocess
import tarfile
from pathlib import Path

import pytest

from scanner.catalog import catalog
from scanner.catalogers.distro import rpm_header
from scanner.catalogers.rpm_ndb import ndb_blobs
from scanner.model import Limits
from scanner.unpack import unpack

from . import test_catalog
from .test_catalog import found, purls, scan, zip_bytes

DATA = Path(__file__).parents[1] / "data"
NDB = DATA / "rpmdb" / "ndb" / "Packages.db"
OSV = DATA / "corpus" / "osv"
NAME, VERSION, RELEASE, EPOCH, ARCH = 1000, 1001, 1002, 1003, 1022

OPENSUSE = {
    ("openSUSE", "openSUSE-release", "15.6-lp156.1.1"),
    ("openSUSE", "libopenssl3", "3.1.4-150600.5.7.1"),
    ("openSUSE", "libgcrypt20", "1:1.10.3-150600.3.3.1"),
    ("openSUSE", "timezone", "2024a-150000.75.28.1"),
}


def _catalog(tmp_path: Path, files: dict[str, bytes | str]):
    """Components and the findings of cataloging a zip package holding ``files``."""
    package = tmp_path / "pkg.zip"
    package.write_bytes(zip_bytes(files))
    unpacked = unpack(package, tmp_path / "scratch", Limits(), name="pkg.zip")
    return catalog(unpacked), unpacked.findings


@pytest.mark.parametrize("where", ["var/lib/rpm/Packages.db", "usr/lib/sysimage/rpm/Packages.db"])
def test_ndb_database(tmp_path, where):
    components = scan(tmp_path, {f"leap/{where}": NDB.read_bytes()})
    assert found(components) == {(*c, f"leap/{where}") for c in OPENSUSE}
    # the removed fifth package (a copy of the first) is not reported twice
    assert len(components) == 4
    assert ("pkg:rpm/opensuse/libgcrypt20@1.10.3-150600.3.3.1?arch=x86_64&epoch=1"
            in purls(components))
    assert "pkg:rpm/opensuse/timezone@2024a-150000.75.28.1?arch=noarch" in purls(components)


def test_ndb_blobs_are_rpms_headers():
    blobs = ndb_blobs(NDB.read_bytes(), 64 * 1024 * 1024)
    assert [rpm_header(b)[NAME] for b in blobs] == [
        "openSUSE-release", "libopenssl3", "libgcrypt20", "timezone"]
    assert max(len(b) for b in blobs) > 65536  # the long description: one blob of 71 KB
    # a blob over the reader's limit is skipped, not cut
    assert [rpm_header(b)[NAME] for b in ndb_blobs(NDB.read_bytes(), 65536)] == [
        "openSUSE-release", "libopenssl3", "timezone"]


def _slot(data: bytes, n: int) -> int:
    """Byte offset of the n-th slot (0-based) of the first slot page."""
    return 32 + 16 * n


def test_malformed_ndb_databases(tmp_path):
    good = NDB.read_bytes()
    # slot 2 (libgcrypt20) points past the end of the file
    past_end = bytearray(good)
    struct.pack_into("<I", past_end, _slot(good, 2) + 8, len(good) // 16)
    # slot 1 (libopenssl3) claims another package's blob
    wrong_index = bytearray(good)
    struct.pack_into("<I", wrong_index, _slot(good, 1) + 4, 3)
    # slot 0 (openSUSE-release) points into the slot pages
    into_slots = bytearray(good)
    struct.pack_into("<I", into_slots, _slot(good, 0) + 8, 2)
    # the blob of slot 3 (timezone) says it is longer than its blocks
    (offset,) = struct.unpack_from("<I", good, _slot(good, 3) + 8)
    long_blob = bytearray(good)
    struct.pack_into("<I", long_blob, offset * 16 + 12, 0xFFFFFF00)
    # more slot pages than the file holds; the second slot page's magic overwritten
    huge = bytearray(good)
    struct.pack_into("<I", huge, 12, 0xFFFFFFFF)
    no_slot_magic = bytearray(good)
    no_slot_magic[_slot(good, 7) : _slot(good, 7) + 4] = b"XXXX"
    components, findings = _catalog(tmp_path, {
        "a/var/lib/rpm/Packages.db": bytes(past_end),
        "b/var/lib/rpm/Packages.db": bytes(wrong_index),
        "c/var/lib/rpm/Packages.db": bytes(into_slots),
        "d/var/lib/rpm/Packages.db": bytes(long_blob),
        "e/var/lib/rpm/Packages.db": bytes(huge),
        "f/var/lib/rpm/Packages.db": bytes(no_slot_magic),
        "g/var/lib/rpm/Packages.db": good[:100],
        "h/var/lib/rpm/Packages.db": b"not a database at all" * 10,
    })  # fmt: skip
    by_root: dict[str, set[str]] = {}
    for c in components:
        by_root.setdefault(c.location.split("!/", 1)[1][0], set()).add(c.name)
    everything = {"openSUSE-release", "libopenssl3", "libgcrypt20", "timezone"}
    assert by_root == {
        "a": everything - {"libgcrypt20"},
        "b": everything - {"libopenssl3"},
        "c": everything - {"openSUSE-release"},
        "d": everything - {"timezone"},
    }
    unread = {f.location.split("!/", 1)[1]: f.summary for f in findings}
    # files that start as an NDB database but cannot be read are reported as unread
    assert set(unread) == {"e/var/lib/rpm/Packages.db", "f/var/lib/rpm/Packages.db",
                           "g/var/lib/rpm/Packages.db"}
    assert "slot pages" in unread["e/var/lib/rpm/Packages.db"]
    assert "Slot magic" in unread["f/var/lib/rpm/Packages.db"]
    assert all("NDB" in summary for summary in unread.values())


def test_ndb_through_the_scan(tmp_path, clamd):
    from scanner.model import Settings
    from scanner.osv import OsvDatabase
    from scanner.pipeline import scan_package

    release = tmp_path / "os-release"
    release.write_text('NAME="openSUSE Leap"\nID="opensuse-leap"\nVERSION_ID="15.6"\n')
    with tarfile.open(tmp_path / "appliance.tar.gz", "w:gz") as tar:
        tar.add(NDB, "appliance/rootfs/usr/lib/sysimage/rpm/Packages.db")
        tar.add(release, "appliance/rootfs/etc/os-release")
    settings = Settings(osv_paths=(OSV,), clamd=clamd.address, scratch_dir=tmp_path)
    result = scan_package(tmp_path / "appliance.tar.gz", settings, osv=OsvDatabase.load([OSV]))
    at = "appliance/rootfs/usr/lib/sysimage/rpm/Packages.db"
    got = {(c.ecosystem, c.name, c.version, c.location.split("!/", 1)[1])
           for c in result.components}
    assert got == {(*c, at) for c in OPENSUSE}, result.findings
    assert {c.scope for c in result.components} == {"runtime"}
    assert result.verdict == "approved"  # the corpus holds no SUSE advisory


# -- the Berkeley DB reader against rpm's own -------------------------------------------------

needs_rpm = pytest.mark.skipif(
    not all(shutil.which(t) for t in ("rpm", "rpmbuild", "db5.3_load")),
    reason="needs rpm and db5.3-util (ops/install.sh)",
)

SPEC = """Name: {name}
Version: {version}
Release: {release}
{epoch}
Summary: {name}
License: MIT
BuildArch: {arch}
%description
{description}
%files
"""


def _real_headers(tmp_path: Path) -> list[bytes]:
    """Header blobs as rpm stores them: rpms built with rpmbuild, installed with --justdb."""
    top, db = tmp_path / "rpmbuild", tmp_path / "sqlite"
    db.mkdir()
    packages = [
        ("openssl-libs", "1.0.2k", "19.el7", "Epoch: 1", "x86_64", "OpenSSL " * 2000),
        ("bash", "4.2.46", "34.el7", "", "x86_64", "shell"),
        ("centos-release", "7", "9.2009.0.el7.centos", "", "x86_64", "release"),
        ("tzdata", "2020a", "1.el7", "", "noarch", "zones"),
    ]
    for name, version, release, epoch, arch, description in packages:
        spec = tmp_path / f"{name}.spec"
        spec.write_text(SPEC.format(name=name, version=version, release=release, epoch=epoch,
                                    arch=arch, description=description))
        subprocess.run(["rpmbuild", "--quiet", "--define", f"_topdir {top}",
                        "--define", "_build_id_links none", "-bb", str(spec)],
                       check=True, capture_output=True)
    rpms = sorted(str(p) for p in top.glob("RPMS/*/*.rpm"))
    subprocess.run(["rpm", "--dbpath", str(db), "--initdb"], check=True)
    subprocess.run(["rpm", "--dbpath", str(db), "-i", "--justdb", "--nodeps", "--ignorearch",
                    "--ignoreos", *rpms], check=True, capture_output=True)
    connection = sqlite3.connect(db / "rpmdb.sqlite")
    try:
        return [bytes(b) for (b,) in connection.execute("SELECT blob FROM Packages ORDER BY hnum")]
    finally:
        connection.close()


@needs_rpm
@pytest.mark.parametrize("lorder", [1234, 4321])
def test_berkeley_db_reader_agrees_with_rpm(tmp_path, monkeypatch, lorder):
    blobs = _real_headers(tmp_path)
    bdb = tmp_path / "bdb"
    bdb.mkdir()
    # the test helper lays out (instance, header blob) pairs; here the blobs are rpm's own
    monkeypatch.setattr(test_catalog, "rpm_header", lambda blob: blob)
    data = test_catalog.berkeley_rpmdb(bdb, blobs, lorder=lorder)
    listed = subprocess.run(
        ["rpm", "--define", "_db_backend bdb_ro", "--dbpath", str(bdb), "-qa", "--qf",
         "%{NAME} %|EPOCH?{%{EPOCH}:}:{}|%{VERSION}-%{RELEASE} %{ARCH}\\n"],
        check=True, capture_output=True, text=True,
    ).stdout.split("\n")
    rpm_says = {tuple(line.split(" ")) for line in listed if line}
    assert len(rpm_says) == 4
    components = scan(tmp_path, {"centos7/var/lib/rpm/Packages": data})
    assert {(c.name, c.version, dict(_qualifiers(c.purl))["arch"]) for c in components} == rpm_says


def _qualifiers(purl: str):
    query = purl.partition("?")[2]
    return (pair.split("=", 1) for pair in query.split("&") if pair)


@pytest.mark.skipif(not shutil.which("db5.3_load"), reason="needs db5.3-util (ops/install.sh)")
def test_berkeley_db_through_the_scan(tmp_path, clamd):
    """The scan keeps members under names of its own: the database is told by its location."""
    from scanner.model import Settings
    from scanner.osv import OsvDatabase
    from scanner.pipeline import scan_package

    bdb = tmp_path / "bdb"
    bdb.mkdir()
    data = test_catalog.berkeley_rpmdb(bdb, [
        {NAME: "bash", VERSION: "4.2.46", RELEASE: "34.el7", ARCH: "x86_64"},
        {NAME: "centos-release", VERSION: "7", RELEASE: "9.2009.0.el7.centos", ARCH: "x86_64"},
    ])  # fmt: skip
    (tmp_path / "Packages").write_bytes(data)
    with tarfile.open(tmp_path / "image.tar.gz", "w:gz") as tar:
        tar.add(tmp_path / "Packages", "image/rootfs/var/lib/rpm/Packages")
    settings = Settings(osv_paths=(OSV,), clamd=clamd.address, scratch_dir=tmp_path)
    result = scan_package(tmp_path / "image.tar.gz", settings, osv=OsvDatabase.load([OSV]))
    assert {(c.name, c.version) for c in result.components} == {
        ("bash", "4.2.46-34.el7"), ("centos-release", "7-9.2009.0.el7.centos")}, result.findings
