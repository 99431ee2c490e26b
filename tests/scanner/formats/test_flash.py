"""Flash file systems: JFFS2, UBI and UBIFS made with mtd-utils."""

from __future__ import annotations

import os
import struct
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


# --------------------------------------------------------------------------- YAFFS2
# Debian has no mkyaffs2image: the image is written here, 2 KiB chunks with 64-byte
# spare areas holding packed tags, as NAND dumps of Android and router flash are.
CHUNK, SPARE = 2048, 64
FILE, SYMLINK, DIRECTORY, SPECIAL = 1, 2, 3, 5


def _chunk(data: bytes, obj_id: int, chunk_id: int, count: int) -> bytes:
    tags = struct.pack("<IIII", 0x1000, obj_id, chunk_id, count)
    return data.ljust(CHUNK, b"\xff") + tags.ljust(SPARE, b"\xff")


def _header(kind: int, parent: int, name: str, mode: int, size: int = 0, alias: str = "") -> bytes:
    head = struct.pack("<IIH", kind, parent, 0xFFFF) + name.encode().ljust(256, b"\0") + b"\xff\xff"
    head += struct.pack("<6Iii", mode, 0, 0, 0, 0, 0, size, 0) + alias.encode().ljust(160, b"\0")
    return head + struct.pack("<I", 0x0103 if kind == SPECIAL else 0)


def yaffs2(tmp_path: Path) -> Path:
    root = tree(tmp_path)
    ids = {root: 1}
    out = b""
    for dirpath, dirnames, filenames in os.walk(root):
        parent = ids[Path(dirpath)]
        for name in sorted(dirnames) + sorted(filenames):
            path = Path(dirpath) / name
            obj = ids[path] = len(ids) + 256
            if path.is_symlink():
                out += _chunk(_header(SYMLINK, parent, name, 0o120777, alias=os.readlink(path)), obj, 0, 0xFFFF)
            elif path.is_dir():
                out += _chunk(_header(DIRECTORY, parent, name, 0o40755), obj, 0, 0xFFFF)
            else:
                data = path.read_bytes()
                out += _chunk(_header(FILE, parent, name, 0o100644, len(data)), obj, 0, 0xFFFF)
                for i in range(0, len(data), CHUNK):
                    out += _chunk(data[i : i + CHUNK], obj, i // CHUNK + 1, len(data[i : i + CHUNK]))
    out += _chunk(_header(SPECIAL, 1, "console", 0o20600), len(ids) + 256, 0, 0xFFFF)
    img = tmp_path / "fs.yaffs2"
    img.write_bytes(out)
    return img


@needs("unyaffs")
def test_yaffs2(tmp_path):
    img = yaffs2(tmp_path)
    assert detect(img) == "yaffs2"
    out = tmp_path / "out"
    out.mkdir()
    assert extract("yaffs2", img, out, limits=Limits()) == []
    assert_sample(out)
    only_plain(out)
    assert not (out / "console").exists()
