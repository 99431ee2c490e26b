"""C and C++ package managers: conan.lock (Conan 1 and 2), vcpkg.json overrides, vcpkg/status."""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest

from scanner.catalogers import cpp

from .test_catalog import found, purls, scan

LOCKFILES = Path(__file__).parents[1] / "data" / "lockfiles"
OSV = Path(__file__).parents[1] / "data" / "corpus" / "osv"


def test_conan2_lock(tmp_path):
    at = "build/conan.lock"
    components = scan(tmp_path, {at: (LOCKFILES / "conan/conan2.lock").read_bytes()})
    assert {(c.name, c.version, c.scope) for c in components} == {
        ("zlib", "1.2.11", "runtime"),
        ("openssl", "1.1.1k", "runtime"),
        ("libcurl", "7.80.0", "runtime"),
        ("fmt", "8.1.1", "runtime"),
        ("cmake", "3.25.3", "dev"),
        ("pkgconf", "1.9.3", "dev"),
    }
    assert {c.ecosystem for c in components} == {"ConanCenter"}
    assert {
        "pkg:conan/zlib@1.2.11?rrev=fca992a7d96a1b92bd956caa8a97d18f",
        "pkg:conan/fmt@8.1.1?channel=stable&rrev=b3e969f8561a85087bd0365c09bbf4fb&user=mycompany",
    } <= purls(components)


def test_conan1_graph_lock(tmp_path):
    at = "src/conan.lock"
    components = scan(tmp_path, {at: (LOCKFILES / "conan/conan1.lock").read_bytes()})
    assert found(components) == {
        ("ConanCenter", "openssl", "1.1.1k", at),
        ("ConanCenter", "zlib", "1.2.11", at),
        ("ConanCenter", "cmake", "3.21.3", at),
    }  # not libpng/system: the system's own library, of no version the lock knows
    assert {c.name: c.scope for c in components}["cmake"] == "dev"  # the build context


@pytest.mark.parametrize(
    ("reference", "expected"),
    [
        ("zlib/1.2.11", ("zlib", "1.2.11", "pkg:conan/zlib@1.2.11")),
        ("pkga/0.1@user/testing", ("pkga", "0.1", "pkg:conan/pkga@0.1?channel=testing&user=user")),
        ("pkgd/0.1.0#7dcb50c43a5a50d984c2e8fa5898bf18",
         ("pkgd", "0.1.0", "pkg:conan/pkgd@0.1.0?rrev=7dcb50c43a5a50d984c2e8fa5898bf18")),
        ("b/1.0@_/_#abc%1675278904.07", ("b", "1.0", "pkg:conan/b@1.0?rrev=abc")),
        ("pkgb/system", None),
        ("no-version", None),
    ],
)
def test_conan_references(reference, expected):
    got = cpp.conan(reference, "x", "runtime")
    assert (got and (got.name, got.version, got.purl)) == expected


def test_vcpkg_manifest_overrides_and_installed_status(tmp_path):
    files = {
        "gw/vcpkg.json": (LOCKFILES / "vcpkg/app/vcpkg.json").read_bytes(),
        "gw/vcpkg_installed/vcpkg/status": (LOCKFILES / "vcpkg/installed/vcpkg/status").read_bytes(),
    }
    components = scan(tmp_path, files)
    status = "gw/vcpkg_installed/vcpkg/status"
    assert found(components) == {
        ("vcpkg", "fmt", "8.1.1", "gw/vcpkg.json"),
        ("vcpkg", "zlib", "1.2.11", "gw/vcpkg.json"),
        ("vcpkg", "vcpkg-cmake", "2022-12-22", "gw/vcpkg.json"),
        ("vcpkg", "liblzma", "5.2.5", "gw/vcpkg.json"),
        ("vcpkg", "vcpkg-cmake", "2022-12-22", status),
        ("vcpkg", "zlib", "1.2.11", status),
        ("vcpkg", "openssl", "3.0.2", status),
        ("vcpkg", "curl", "7.84.0", status),
    }  # not openssl's minimum in vcpkg.json, nor curl's feature, nor libpng (not installed)
    manifest = {c.name: c.scope for c in components if c.location.endswith("vcpkg.json")}
    assert manifest == {"fmt": "runtime", "zlib": "runtime", "vcpkg-cmake": "dev", "liblzma": "unknown"}
    assert {
        "pkg:vcpkg/zlib@1.2.11?port_version=13",
        "pkg:vcpkg/liblzma@5.2.5?port_version=4",
        "pkg:vcpkg/openssl@3.0.2?port_version=1&triplet=x64-linux",
        "pkg:vcpkg/vcpkg-cmake@2022-12-22?triplet=x64-linux",
    } <= purls(components)


def test_malformed_cpp_metadata_is_skipped(tmp_path):
    components = scan(
        tmp_path,
        {
            "a/conan.lock": '{"graph_lock": {"nodes": ["x"]}, "requires": {"a": 1}}',
            "b/conan.lock": "[" * 50_000,
            "c/conan.lock": '{"version": "0.5", "requires": [1, null, "bad ref", "x/"]}',
            "d/vcpkg.json": '{"overrides": "fmt", "dependencies": 3}',
            "e/vcpkg.json": '{"overrides": [{"name": "fmt"}, 4]',
            "f/installed/vcpkg/status": b"\xff\xfe\x00\nStatus\n\n:::\n",
        },
    )
    assert components == []


def test_cpp_sources_through_the_scan(tmp_path, clamd):
    from scanner.model import Settings
    from scanner.osv import OsvDatabase
    from scanner.pipeline import scan_package

    package = tmp_path / "gateway.tar.gz"
    with tarfile.open(package, "w:gz") as tar:
        tar.add(LOCKFILES / "conan/conan2.lock", "gateway/conan.lock")
        tar.add(LOCKFILES / "vcpkg/app/vcpkg.json", "gateway/vcpkg.json")
        tar.add(LOCKFILES / "vcpkg/installed", "gateway/vcpkg_installed")
    settings = Settings(osv_paths=(OSV,), clamd=clamd.address, scratch_dir=tmp_path)
    result = scan_package(package, settings, osv=OsvDatabase.load([OSV]))
    got = {(c.ecosystem, c.name, c.version, c.location) for c in result.components}
    assert {
        ("ConanCenter", "openssl", "1.1.1k", "gateway.tar.gz!/gateway/conan.lock"),
        ("vcpkg", "curl", "7.84.0", "gateway.tar.gz!/gateway/vcpkg_installed/vcpkg/status"),
        ("vcpkg", "liblzma", "5.2.5", "gateway.tar.gz!/gateway/vcpkg.json"),
    } <= got
    assert len(result.components) == 14
