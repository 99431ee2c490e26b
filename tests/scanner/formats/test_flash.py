"""Flash file systems: JFFS2, UBI and UBIFS made with mtd-utils (YAFFS2: test_yaffs2.py)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from scanner.formats import detect, extract
from scanner.model import Limits

from .conftest import assert_sample, needs, only_plain, populate

pytestmark = needs("mkfs.jffs2", "mkfs.ubifs", "ubinize")


def run(*argv, cwd=None) -> None:
    subprocess.run([str(a) for a in argv], check=True, capture_output=True, cwd=cwd)


def tree(tmp_path: Path) -> Path:
    root = populate(tmp_path / "tree")
    os.symlink("/etc/passwd", root / "etc/passwd-link")
    return root


def jffs2(tmp_path: Path) -> Path:
    img = tmp_path / "fs.jffs2"
    run("mkfs.jffs2", "-r", tree(tmp_path), "-o", img, "-e", "0x10000")
    return img


def ubifs(tmp_path: Path) -> Path:
    img = tmp_path / "fs.ubifs"
    run("mkfs.ubifs", "-r", tree(tmp_path), "-m", "2048", "-e", "126976", "-c", "64", "-o", img)
    return img


def ubi(tmp_path: Path) -> Path:
    fs = ubifs(tmp_path)
    ini = tmp_path / "ubi.ini"
    ini.write_text(f"[rootfs]\nmode=ubi\nimage={fs}\nvol_id=0\nvol_type=dynamic\nvol_name=rootfs\n")
    img = tmp_path / "fs.ubi"
    run("ubinize", "-o", img, "-m", "2048", "-p", "128KiB", "-s", "512", ini)
    return img


@pytest.mark.parametrize("fmt,build,prefix", [
    ("jffs2", jffs2, ""),
    ("ubifs", ubifs, ""),
    ("ubi", ubi, "rootfs"),
])  # fmt: skip
def test_flash_image(tmp_path, fmt, build, prefix):
    img = build(tmp_path)
    assert detect(img) == fmt
    out = tmp_path / "out"
    out.mkdir()
    assert extract(fmt, img, out, limits=Limits()) == []
    assert_sample(out, prefix)
    only_plain(out)
    assert not list(tmp_path.glob(".stage-*"))


def test_damaged_ubi(tmp_path):
    img = ubi(tmp_path)
    cut = tmp_path / "cut.ubi"
    cut.write_bytes(img.read_bytes()[:1000])
    out = tmp_path / "out"
    out.mkdir()
    problems = extract("ubi", cut, out, limits=Limits())
    assert problems and problems[0].path == "" and "could not be read" in problems[0].reason


# YAFFS2 (tests/scanner/formats/test_yaffs2.py): the builder the whole-scan tests use.
from .test_yaffs2 import yaffs2  # noqa: F401
