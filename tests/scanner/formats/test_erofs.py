"""EROFS images made with mkfs.erofs (Debian erofs-utils), opened with fsck.erofs."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from scanner.formats import detect, extract
from scanner.model import NEST, Limits, Settings
from scanner.osv import OsvDatabase
from scanner.pipeline import scan_package

from .conftest import METADATA_PATH, assert_sample, needs, only_plain, populate, wrap

pytestmark = needs("mkfs.erofs", "fsck.erofs")
OSV = Path(__file__).parents[2] / "data" / "corpus" / "osv"
SB_CHKSUM = 0x1  # feature_compat bit: the superblock carries a checksum


def lz4_supported() -> bool:
    done = subprocess.run(["mkfs.erofs", "--help"], capture_output=True, text=True, check=False)
    return "lz4" in done.stdout + done.stderr


def erofs(tmp_path: Path, *options: str) -> Path:
    root = populate(tmp_path / "tree")
    img = tmp_path / ("system-lz4.img" if options else "system.img")
    subprocess.run(
        ["mkfs.erofs", "-T0", *options, str(img), str(root)], check=True, capture_output=True
    )
    return img


BUILDS = {
    "plain": lambda t: erofs(t),
    "lz4": lambda t: erofs(t, "-zlz4"),
}


@pytest.mark.parametrize("kind", sorted(BUILDS))
def test_erofs(tmp_path, kind):
    if kind == "lz4" and not lz4_supported():
        pytest.skip("mkfs.erofs has no lz4 here")
    img = BUILDS[kind](tmp_path)
    assert detect(img) == "erofs"
    out = tmp_path / "out"
    out.mkdir()
    assert extract("erofs", img, out, limits=Limits()) == []
    assert_sample(out)
    only_plain(out)
    assert not list(tmp_path.glob(".stage-*"))


def hostile(tmp_path: Path, outside: Path) -> Path:
    """A symbolic link named ``aa`` to a directory outside, and a directory ``ab`` renamed
    ``aa`` in the image, so that a file in it would be written through the link; a device
    node beside them."""
    root = tmp_path / "tree"
    (root / "ab").mkdir(parents=True)
    (root / "ab/f").write_text("through the link\n")
    os.symlink(outside, root / "aa")
    os.symlink("/etc/passwd", root / "passwd")
    os.mknod(root / "dev", 0o600 | 0o020000, os.makedev(1, 3))
    img = tmp_path / "hostile.img"
    subprocess.run(["mkfs.erofs", "-T0", str(img), str(root)], check=True, capture_output=True)
    raw = bytearray(img.read_bytes())
    names = raw.index(b"...aaab")  # ".", "..", "aa", "ab": the root directory's names
    raw[names + 6] = ord("a")
    raw[1024 + 8] &= ~SB_CHKSUM  # the superblock checksum would give the change away
    img.write_bytes(bytes(raw))
    return img


@pytest.mark.skipif(os.geteuid() != 0, reason="mknod needs root")
def test_hostile_erofs_nothing_escapes(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    img = hostile(tmp_path, outside)
    assert detect(img) == "erofs"
    box = tmp_path / "box"
    out = box / "out"
    out.mkdir(parents=True)
    problems = extract("erofs", img, out, limits=Limits())
    assert problems and "EROFS image could not be read in full" in problems[0].reason
    assert list(outside.iterdir()) == []
    assert [p.name for p in box.iterdir()] == ["out"]  # the staging directory is gone
    only_plain(out)


@pytest.mark.skipif(os.geteuid() != 0, reason="mknod needs root")
def test_links_and_devices_are_not_created(tmp_path):
    root = populate(tmp_path / "tree")
    os.symlink(tmp_path / "outside", root / "etc/link")
    os.symlink("/etc/passwd", root / "opt/app/passwd")
    os.mknod(root / "etc/null", 0o600 | 0o020000, os.makedev(1, 3))
    os.mkfifo(root / "etc/fifo")
    img = tmp_path / "fs.img"
    subprocess.run(["mkfs.erofs", "-T0", str(img), str(root)], check=True, capture_output=True)
    out = tmp_path / "out"
    out.mkdir()
    assert extract("erofs", img, out, limits=Limits()) == []
    assert_sample(out)
    only_plain(out)
    for name in ("etc/link", "opt/app/passwd", "etc/null", "etc/fifo"):
        assert not os.path.lexists(out / name), name


def test_damaged_erofs_is_a_problem(tmp_path):
    img = erofs(tmp_path)
    raw = bytearray(img.read_bytes())
    raw[1024 + 16 : 1024 + 64] = b"\x5a" * 48  # the superblock past its magic
    img.write_bytes(bytes(raw))
    assert detect(img) == "erofs"
    out = tmp_path / "out"
    out.mkdir()
    problems = extract("erofs", img, out, limits=Limits())
    assert problems and problems[0].path == "" and problems[0].reason.startswith("EROFS image")


# --------------------------------------------------------------------------- whole scan


@pytest.fixture(scope="module")
def osv() -> OsvDatabase:
    return OsvDatabase.load([OSV])


@pytest.mark.parametrize("name", ["pkg.zip", "pkg.tar.gz"])
@pytest.mark.parametrize("kind", sorted(BUILDS))
def test_found_through_the_whole_scan(tmp_path, clamd, osv, kind, name):
    if kind == "lz4" and not lz4_supported():
        pytest.skip("mkfs.erofs has no lz4 here")
    sample = BUILDS[kind](tmp_path)
    package = wrap(sample, tmp_path / name)
    settings = Settings(osv_paths=(OSV,), clamd=clamd.address, kind="binary", scratch_dir=tmp_path)
    result = scan_package(package, settings, osv=osv)
    assert [f.summary for f in result.findings if f.type == "unscanned"] == []
    base = f"{name}{NEST}{sample.name}{NEST}"
    assert base + "opt/app/eicar.com" in [f.location for f in result.findings if f.type == "virus"]
    pyyaml = [f for f in result.findings if f.component and f.component.name == "PyYAML"]
    assert pyyaml and {f.location for f in pyyaml} == {base + METADATA_PATH}
    assert result.verdict == "rejected"
