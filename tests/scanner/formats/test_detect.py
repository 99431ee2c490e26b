"""Detection: cheap, never raises, and leaves ordinary archives to the unpacker."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import tarfile
import zipfile

import pytest

from scanner.formats import detect, extract, extractable
from scanner.model import Limits


def test_ordinary_archives_are_not_ours(tmp_path):
    (tmp_path / "a.gz").write_bytes(gzip.compress(b"x" * 100))
    (tmp_path / "a.bz2").write_bytes(bz2.compress(b"x" * 100))
    (tmp_path / "a.xz").write_bytes(lzma.compress(b"x" * 100))
    with zipfile.ZipFile(tmp_path / "a.zip", "w") as zf:
        zf.writestr("readme.txt", "hello")
    with tarfile.open(tmp_path / "a.tar", "w") as tar:
        info = tarfile.TarInfo("readme.txt")
        info.size = 5
        tar.addfile(info, io.BytesIO(b"hello"))
    (tmp_path / "text.txt").write_text("hello world\n" * 100)
    for name in ("a.gz", "a.bz2", "a.xz", "a.zip", "a.tar", "text.txt"):
        assert detect(tmp_path / name) is None, name


@pytest.mark.parametrize("size", [0, 513, 70000])
def test_odd_input_never_raises(tmp_path, size):
    for fill in (b"\0", os.urandom(1)):
        path = tmp_path / f"f{size}"
        path.write_bytes((fill * size)[:size])
        detect(path)
        out = tmp_path / "out"
        for fmt in sorted(extractable()):
            if out.exists():
                import shutil

                shutil.rmtree(out)
            out.mkdir()
            problems = extract(fmt, path, out, limits=Limits(), timeout=20)
            assert isinstance(problems, list)


def test_random_bytes_with_magic_never_raise(tmp_path):
    magics = [b"hsqs", b"QFI\xfb", b"\x27\x05\x19\x56", b"\x3a\xff\x26\xed", b"ANDROID!", b"RKFW",
              b"RKAF", b"070701", b"-rom1fs-", b"\xd0\x0d\xfe\xed", b"UBI#", b"\x85\x19\x01\xe0"]  # fmt: skip
    for i, magic in enumerate(magics):
        path = tmp_path / f"m{i}"
        path.write_bytes(magic + os.urandom(3000))
        fmt = detect(path)
        out = tmp_path / f"out{i}"
        out.mkdir()
        if fmt in extractable():
            problems = extract(fmt, path, out, limits=Limits(), timeout=20)
            assert isinstance(problems, list)


def test_directory_and_missing_path(tmp_path):
    assert detect(tmp_path) is None
    assert detect(tmp_path / "missing") is None
