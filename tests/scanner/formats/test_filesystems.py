"""File-system images made with Debian's tools, opened through 7-Zip or the fallbacks."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from scanner.formats import detect, extract
from scanner.formats._common import run_tool
from scanner.model import Limits

from .conftest import METADATA_PATH, assert_sample, needs, only_plain, populate

pytestmark = needs("7zz")


def run(*argv: str | Path) -> None:
    subprocess.run([str(a) for a in argv], check=True, capture_output=True)


def tree(tmp_path: Path, links: bool = True) -> Path:
    root = populate(tmp_path / "tree")
    if links:
        os.symlink("../etc/hostname", root / "opt/app/up-link")
        os.symlink("/etc/passwd", root / "opt/app/abs-link")
    return root


def squashfs(tmp_path, comp="gzip"):
    img = tmp_path / "fs.img"
    run("mksquashfs", tree(tmp_path), img, "-comp", comp, "-quiet", "-noappend", "-no-progress")
    return img


def ext4(tmp_path):
    img = tmp_path / "fs.img"
    run("mke2fs", "-q", "-F", "-t", "ext4", "-d", tree(tmp_path), img, "4M")
    return img


def iso(tmp_path, udf=False):
    img = tmp_path / "fs.iso"
    run("genisoimage", "-quiet", "-R", "-J", *(["-udf"] if udf else []), "-o", img, tree(tmp_path))
    return img


def fat(tmp_path):
    img = tmp_path / "fs.img"
    run("mkfs.fat", "-C", img, "2048")
    src = tree(tmp_path, links=False)
    run("mcopy", "-s", "-i", img, src / "opt", src / "usr", src / "etc", "::/")
    return img


def cramfs(tmp_path):
    img = tmp_path / "fs.img"
    run("mkfs.cramfs", tree(tmp_path), img)
    return img


def wim(tmp_path):
    img = tmp_path / "fs.wim"
    run("wimlib-imagex", "capture", tree(tmp_path), img)
    return img


CASES = {
    "wim": (wim, "wimlib-imagex"),
    "squashfs": (squashfs, "mksquashfs"),
    "ext": (ext4, "mke2fs"),
    "iso9660": (iso, "genisoimage"),
    "udf": (lambda p: iso(p, udf=True), "genisoimage"),
    "fat": (fat, "mcopy"),
    "cramfs": (cramfs, "mkfs.cramfs"),
}


@pytest.mark.parametrize("fmt", sorted(CASES))
def test_file_system_image(tmp_path, fmt):
    build, tool = CASES[fmt]
    if not shutil_which(tool):
        pytest.skip(f"needs {tool}")
    img = build(tmp_path)
    assert detect(img) == fmt
    out = tmp_path / "out"
    out.mkdir()
    problems = extract(fmt, img, out, limits=Limits())
    assert problems == []
    assert_sample(out)
    only_plain(out)
    assert not (out / "opt/app/abs-link").is_symlink()


def shutil_which(tool: str) -> bool:
    import shutil

    return shutil.which(tool) is not None


@needs("mksquashfs", "unsquashfs")
def test_lz4_squashfs_falls_back_to_unsquashfs(tmp_path):
    img = squashfs(tmp_path, comp="lz4")
    out = tmp_path / "out"
    out.mkdir()
    assert extract("squashfs", img, out, limits=Limits()) == []
    assert_sample(out)
    only_plain(out)


@pytest.mark.parametrize("fmt,comp", [("squashfs", "gzip"), ("squashfs", "lz4"), ("ext", None)])
def test_sparse_bomb_is_refused_before_writing(tmp_path, fmt, comp):
    root = tree(tmp_path)
    with open(root / "opt/bomb.bin", "wb") as fh:
        # Over the scratch space left for the package (given here as the limit): a file
        # system that claims more than the disk can take is refused before writing.
        fh.truncate(64 * 1024**2 if fmt == "squashfs" else 8 * 1024**3)
    img = tmp_path / "fs.img"
    if fmt == "squashfs":
        run("mksquashfs", root, img, "-comp", comp, "-quiet", "-noappend", "-no-progress")
    else:
        run("mke2fs", "-q", "-F", "-t", "ext4", "-d", root, img, "16M")
    out = tmp_path / "out"
    out.mkdir()
    problems = extract(fmt, img, out, limits=Limits(max_total_bytes=32 * 1024**2))
    assert [p.path for p in problems] == ["opt/bomb.bin"]
    assert "limit" in problems[0].reason
    assert not (out / "opt/bomb.bin").exists()
    assert_sample(out)


def test_limits_per_file(tmp_path):
    img = ext4(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    problems = extract("ext", img, out, limits=Limits(max_file_bytes=60))
    assert {p.path for p in problems} == {"opt/app/eicar.com"}
    assert not (out / "opt/app/eicar.com").exists()
    assert (out / METADATA_PATH).exists()


def test_damaged_image_is_a_problem_not_an_exception(tmp_path):
    img = iso(tmp_path)
    cut = tmp_path / "cut.iso"
    cut.write_bytes(img.read_bytes()[:40000])
    out = tmp_path / "out"
    out.mkdir()
    problems = extract("iso9660", cut, out, limits=Limits())
    assert problems and problems[0].path == ""
    (tmp_path / "junk.img").write_bytes(b"hsqs" + b"\xff" * 5000)
    problems = extract("squashfs", tmp_path / "junk.img", out, limits=Limits())
    assert problems and "SquashFS" in problems[0].reason
    assert extract("nonsense", cut, out, limits=Limits())[0].reason.startswith("no extractor")


def test_tool_timeout_kills_the_process_group(tmp_path):
    started = time.monotonic()
    res = run_tool(["sh", "-c", "sleep 30 & sleep 30"], timeout=0.5)
    assert res.timed_out and time.monotonic() - started < 10


def test_staging_is_cleaned_up(tmp_path):
    img = ext4(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    extract("ext", img, out, limits=Limits())
    assert not list(tmp_path.glob(".stage-*"))


@needs("mksquashfs", "unsquashfs")
@pytest.mark.parametrize("comp", ["gzip", "lz4"])
def test_a_wildcard_named_link_cannot_hide_files(tmp_path, comp):
    root = tree(tmp_path)
    os.symlink("/nowhere", root / "*")
    os.symlink("/nowhere", root / "opt/app/?icar.com")
    img = tmp_path / "fs.img"
    run("mksquashfs", root, img, "-comp", comp, "-quiet", "-noappend", "-no-progress")
    out = tmp_path / "out"
    out.mkdir()
    assert extract("squashfs", img, out, limits=Limits()) == []
    assert_sample(out)
    only_plain(out)
