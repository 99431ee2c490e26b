"""Builders for hostile archives, written at test time with crafted headers."""

from __future__ import annotations

import gzip
import io
import os
import shutil
import stat
import struct
import subprocess
import tarfile
import threading
import zipfile
import zlib
from pathlib import Path

GOOD = b"a perfectly ordinary file\n"


def tar_entry(tf: tarfile.TarFile, name: str, data: bytes = GOOD, **attrs) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    for key, value in attrs.items():
        setattr(info, key, value)
    if info.isreg():
        tf.addfile(info, io.BytesIO(data))
    else:
        info.size = 0
        tf.addfile(info)


def make_tar(path: Path, entries: list[tuple], mode: str = "w") -> Path:
    """entries: (name, data) or (name, data, {TarInfo attributes})."""
    with tarfile.open(path, mode, format=tarfile.PAX_FORMAT) as tf:
        for entry in entries:
            name, data, *rest = entry
            tar_entry(tf, name, data, **(rest[0] if rest else {}))
    return path


def make_zip(path: Path, entries: dict[str, bytes], compression=zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(path, "w", compression) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return path


def traversal_tar(path: Path, outside: Path) -> Path:
    return make_tar(
        path,
        [
            ("good/first.txt", GOOD),
            ("../../escaped.txt", b"escaped"),
            ("good/../../../escaped2.txt", b"escaped"),
            (str(outside), b"absolute"),
            ("good/second.txt", GOOD),
        ],
    )


def links_tar(path: Path, outside: Path) -> Path:
    return make_tar(
        path,
        [
            ("good/first.txt", GOOD),
            ("up", b"", {"type": tarfile.SYMTYPE, "linkname": "../../.."}),
            ("abs", b"", {"type": tarfile.SYMTYPE, "linkname": str(outside)}),
            ("hard", b"", {"type": tarfile.LNKTYPE, "linkname": "../../etc/passwd"}),
            ("inside", b"", {"type": tarfile.SYMTYPE, "linkname": "good/first.txt"}),
            # A link followed by a file written "through" it.
            ("up/through.txt", b"through the link"),
            ("good/second.txt", GOOD),
        ],
    )


def specials_tar(path: Path) -> Path:
    return make_tar(
        path,
        [
            ("good/first.txt", GOOD),
            ("dev/null2", b"", {"type": tarfile.CHRTYPE, "devmajor": 1, "devminor": 3}),
            ("dev/sda9", b"", {"type": tarfile.BLKTYPE, "devmajor": 8, "devminor": 9}),
            ("run/pipe", b"", {"type": tarfile.FIFOTYPE}),
            ("bin/setuid", b"#!/bin/sh\nid\n", {"mode": 0o6755}),
            ("good/second.txt", GOOD),
        ],
    )


def zip_with_links(path: Path) -> Path:
    """A zip whose entries carry unix modes for a symlink and a fifo."""
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("good.txt", GOOD)
        link = zipfile.ZipInfo("escape")
        link.create_system = 3
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(link, "../../../../etc/passwd")
        fifo = zipfile.ZipInfo("fifo")
        fifo.create_system = 3
        fifo.external_attr = (stat.S_IFIFO | 0o644) << 16
        zf.writestr(fifo, "")
        traversal = zipfile.ZipInfo("..\\..\\evil.txt")
        zf.writestr(traversal, b"evil")
        zf.writestr("also-good.txt", GOOD)
    return path


def nested_zip(path: Path, levels: int, payload: bytes = GOOD) -> Path:
    """A zip holding a zip ... ``levels`` deep, the innermost holding payload.txt."""
    data = _zip_bytes({"payload.txt": payload})
    for level in range(levels - 1, 0, -1):
        data = _zip_bytes({f"level{level}.zip": data, f"note{level}.txt": GOOD})
    path.write_bytes(data)
    return path


def _zip_bytes(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return buffer.getvalue()


def zeros_gz(path: Path, size: int, fill: bytes = b"\0") -> Path:
    """``size`` bytes of zeros (or of ``fill`` repeated), gzipped (a ratio near 1000).

    Zeros are holes and cost no disk, and neither they nor erased flash (0xFF) count
    against the expansion ratio: a bomb is made of anything else."""
    block = fill * (1024 * 1024)
    with gzip.open(path, "wb", compresslevel=6) as f:
        for _ in range(size // len(block)):
            f.write(block)
    return path


def bomb_tar(path: Path, scratch: Path, size: int = 200 * 1024 * 1024) -> Path:
    """A tar holding a good file and a gzip bomb (of "A"s: zeros would cost no disk)."""
    bomb = zeros_gz(scratch / "zeros.bin.gz", size, fill=b"BOMB")
    with tarfile.open(path, "w") as tf:
        tar_entry(tf, "good.txt")
        tf.add(bomb, "data/zeros.bin.gz")
        tar_entry(tf, "after.txt")
    bomb.unlink()
    return path


def huge_header_tar(path: Path, declared: int = 100 * 1024**3, name: str = "huge.bin") -> Path:
    """A tar whose second member declares ``declared`` bytes but holds a few."""
    first = tarfile.TarInfo("good.txt")
    first.size = len(GOOD)
    good = first.tobuf(format=tarfile.GNU_FORMAT) + GOOD.ljust(tarfile.BLOCKSIZE, b"\0")
    info = tarfile.TarInfo(name)
    info.size = declared
    header = info.tobuf(format=tarfile.GNU_FORMAT)
    path.write_bytes(good + header + b"tiny body".ljust(tarfile.BLOCKSIZE, b"\0"))
    return path


def sparse_tar(path: Path, work: Path, apparent: int, posix: bool = False) -> Path | None:
    """A GNU tar sparse member of ``apparent`` bytes (None when GNU tar is missing)."""
    tar = shutil.which("tar")
    if (
        not tar
        or b"GNU tar"
        not in subprocess.run([tar, "--version"], capture_output=True, check=False).stdout
    ):
        return None
    source = work / "sparse-src"
    source.mkdir()
    (source / "good.txt").write_bytes(GOOD)
    with open(source / "sparse.img", "wb") as f:
        f.write(b"head")
        f.seek(apparent - 4)
        f.write(b"tail")
    args = [tar, "-S", "-cf", str(path), "-C", str(source), "good.txt", "sparse.img"]
    if posix:
        args.insert(1, "--format=posix")
    subprocess.run(args, check=True)
    shutil.rmtree(source)
    return path


def many_tar(path: Path, count: int) -> Path:
    return make_tar(path, [(f"files/{i:04d}.txt", GOOD) for i in range(count)])


def truncated_tgz(path: Path) -> Path:
    """A tar.gz cut off half way through: the first members are whole."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tf:
        tar_entry(tf, "first.txt")
        tar_entry(tf, "second.txt")
        tar_entry(tf, "big.bin", os.urandom(256 * 1024))
        tar_entry(tf, "last.txt")
    data = buffer.getvalue()
    path.write_bytes(data[: len(data) // 2])
    return path


def bad_directory_zip(path: Path) -> Path:
    """A zip whose central directory is overwritten with garbage."""
    make_zip(path, {"one.txt": GOOD, "dir/two.txt": GOOD * 100, "three.bin": b"\x00" * 10})
    data = bytearray(path.read_bytes())
    start = data.find(b"PK\x01\x02")
    data[start : start + 46] = b"\xde\xad" * 23
    path.write_bytes(bytes(data))
    return path


# -- what a package really costs ------------------------------------------------------


def allocated(root: Path) -> int:
    """Bytes the files under ``root`` really take on disk (blocks, not apparent size)."""
    total = 0
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_blocks * 512
            except FileNotFoundError:  # removed while it was measured
                pass
    return total


class PeakDisk:
    """The most disk the files under ``root`` took at once, sampled while a block runs."""

    def __init__(self, root: Path, every: float = 0.02):
        self.root, self.every, self.peak = root, every, 0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while True:
            self.peak = max(self.peak, allocated(self.root))
            if self._done.wait(self.every):
                return

    def __enter__(self) -> PeakDisk:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._done.set()
        self._thread.join()
        self.peak = max(self.peak, allocated(self.root))


# -- sparse images packed as sellers pack them ------------------------------------------

_MIB = 1024 * 1024
_ZEROS = bytes(_MIB)


def _deflated_zeros() -> bytes:
    """Raw deflate blocks for 1 MiB of zeros that refer to nothing before them."""
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    return c.compress(_ZEROS) + c.flush(zlib.Z_FULL_FLUSH)


def image_tgz(image: Path, path: Path, name: str) -> Path:
    """A .tar.gz holding ``image`` as ``name``: one ordinary gzip member, as ``tar czf``
    writes it (no sparse-file extension), built in a moment however large the image.

    The image's holes (SEEK_DATA/SEEK_HOLE) are deflated once per MiB and the blocks
    repeated: after a full flush, deflate data refers to nothing before it.
    """
    zero_block = _deflated_zeros()
    size = image.stat().st_size
    info = tarfile.TarInfo(name)
    info.size, info.mode = size, 0o644
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    crc = total = 0
    with open(path, "wb") as out, open(image, "rb") as src:
        out.write(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff")  # gzip header, mtime 0

        def data(chunk: bytes) -> None:
            nonlocal crc, total
            out.write(c.compress(chunk))
            crc, total = zlib.crc32(chunk, crc), total + len(chunk)

        def zeros(count: int) -> None:
            nonlocal crc, total
            out.write(c.flush(zlib.Z_FULL_FLUSH))
            for _ in range(count // _MIB):
                out.write(zero_block)
                crc = zlib.crc32(_ZEROS, crc)
            total += count - count % _MIB
            if count % _MIB:
                data(bytes(count % _MIB))

        data(info.tobuf(format=tarfile.GNU_FORMAT))
        fd, at = src.fileno(), 0
        while at < size:
            try:
                start = os.lseek(fd, at, os.SEEK_DATA)
            except OSError:  # no data past ``at``: the rest is a hole
                start = size
            zeros(start - at)
            if start >= size:
                break
            end = min(os.lseek(fd, start, os.SEEK_HOLE), size)
            src.seek(start)
            for offset in range(start, end, _MIB):
                data(src.read(min(_MIB, end - offset)))
            at = end
        data(bytes(-size % tarfile.BLOCKSIZE) + bytes(2 * tarfile.BLOCKSIZE))
        out.write(c.flush())
        out.write(struct.pack("<II", crc, total & 0xFFFFFFFF))
    return path
