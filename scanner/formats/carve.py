"""Carving: containers found at any offset inside a file that is opened but not understood.

A decompressed kernel (``vmlinux``, an arm64 ``Image``, an Android boot
image's ``kernel``), a raw flash dump or a
firmware blob (an unidentified ``.bin``, ``.img``, ``.rom``... of at least
:data:`MIN_SIZE` bytes) may hold a file system, an archive or a compressed stream
anywhere: an initramfs built into the kernel, a SquashFS after a boot loader.
:func:`wanted` says which files are searched; nothing else is (an executable, a
library or a document is never carved). :func:`carve` searches one for the
signatures below and yields what validates, each named after its offset
(``@0x1c0000.squashfs``):

==========================  ===============================================  =======
signature                   validated by                                     yields
==========================  ===============================================  =======
cpio newc/crc ``070701``    every header parsed up to ``TRAILER!!!``         file
gzip, xz, bzip2, zstd       decompressed to its end, checksum verified       file
zip ``PK\\x03\\x04``          an end record whose central directory lies       file
                            right after the members, read by :mod:`zipfile`
SquashFS ``hsqs``           a consistent version 4 superblock, then          tree
                            extracted (``unsquashfs``)
ext2/3/4 superblock         a consistent superblock at a 1 KiB boundary,     tree
                            then extracted (7-Zip)
==========================  ===============================================  =======

A *file* is handed back to the unpacker as a member (``fw.bin!/@0x4000.gz``), which
opens it as it would any file; a *tree* is a directory of the container's files
(``fw.bin!/@0x1c0000.squashfs!/etc/passwd``). A candidate that does not validate,
or whose extraction gives no file at all, is dropped without a word: magic bytes
met by chance in a blob are not a finding. Candidates inside a container already
taken are skipped.

Bounded: only the first :data:`MAX_BYTES` of a file are searched, at most
:data:`MAX_HITS` signature hits are looked at and :data:`MAX_CARVED` containers
taken per file, within a deadline; bytes written count against the limits given.
"""

from __future__ import annotations

import bz2
import lzma
import mmap
import os
import re
import shutil
import struct
import time
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from scanner.formats._common import CHUNK, Budget, LimitExceeded, Problem
from scanner.model import Limits

#: Smaller files are not searched.
MIN_SIZE = 64 * 1024
#: How far into a file signatures are searched.
MAX_BYTES = 2 * 1024**3
#: Signature hits looked at, and containers taken, per file.
MAX_HITS = 4096
MAX_CARVED = 64
#: How many carvings deep a location may go (``a.bin!/@0x10.gz!/@0x200.cpio``...).
MAX_NESTING = 3
#: The mark of a carved container in a location.
MARK = "@0x"
#: A stream that decompresses to more than this before a limit stops it is not chance.
BELIEVED = 1024 * 1024
#: cpio entries a candidate may have before it is no longer believed.
MAX_CPIO_ENTRIES = 200_000

_NAMES = re.compile(
    r"(?i)(\.(bin|img|rom|fw|dump|raw|flash|nand|nor|dd|trx|chk|ubi|dat)$|^vmlinu[xz](\..*)?$|^kernel$)"
)
_CARVED = re.compile(r"^@0x[0-9a-f]+\.")

_SIGNATURES = re.compile(
    rb"070701|070702"  # cpio newc / crc
    rb"|\x1f\x8b\x08"  # gzip, deflate
    rb"|\xfd7zXZ\x00"  # xz
    rb"|BZh[1-9]1AY&SY"  # bzip2
    rb"|\x28\xb5\x2f\xfd"  # zstd frame
    rb"|hsqs"  # SquashFS, little-endian
    rb"|PK\x03\x04"  # zip local header
    rb"|\x53\xef[\x01-\x04]\x00"  # ext superblock magic + state (seen 1080 bytes in)
)


@dataclass
class Carved:
    """A container found inside a file: a file to open as a member, or a tree of files."""

    offset: int
    label: str  # "@0x1c0000.squashfs"
    path: Path  # the file, or the directory holding the container's files
    tree: bool
    problems: list[Problem] = field(default_factory=list)


def wanted(name: str, kind: str | None, fmt: str | None, size: int, head: bytes | None = None) -> bool:
    """Whether a file is searched for containers: a kernel, a dump, a firmware blob.

    ``kind`` is what :func:`scanner.identify.sniff` says, ``fmt`` what
    :func:`scanner.formats.detect` says; anything either one names (an archive, an
    executable, a file system at offset 0...) is not searched, except a kernel's
    ELF ``vmlinux``.
    """
    if size < MIN_SIZE:
        return False
    base = name.rsplit("/", 1)[-1]
    if kind == "elf":
        return base.startswith("vmlinux")
    if kind is not None or fmt is not None:
        return False
    if base == "Image" and head is not None and head[0x38:0x3C] == b"ARM\x64":
        return True  # an arm64 kernel, uncompressed
    return bool(_NAMES.search(base) or _CARVED.match(base))


def nesting(location: str) -> int:
    """How many carved containers a location is in."""
    return location.count("!/" + MARK)


def carve(
    path: Path,
    box: Path,
    limits: Callable[[], Limits],
    deadline: float,
    extract: Callable[[str, Path, Path, Limits, float], list[Problem]],
) -> Iterator[Carved]:
    """Each container found in ``path`` and validated, in offset order.

    ``box`` is an empty directory for the results; ``limits`` gives the limits left
    at each moment (``max_total_bytes`` also bounds what one stream may inflate to);
    ``extract`` is :func:`scanner.formats.extract` (format, file,
    outdir, limits, timeout), for the containers opened by a back end.
    """
    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        if size == 0:
            return
        with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            yield from _carve(mm, min(size, MAX_BYTES), box, limits, deadline, extract)


def _carve(mm, size, box, limits, deadline, extract) -> Iterator[Carved]:
    taken_until = 0
    hits = carved = 0
    for m in _SIGNATURES.finditer(mm, 0, size):
        if time.monotonic() > deadline or carved >= MAX_CARVED:
            return
        hits += 1
        if hits > MAX_HITS:
            return
        magic = m.group()
        offset = m.start()
        if magic.startswith(b"\x53\xef"):
            offset -= 1080
            if offset < 0 or offset % 1024:
                continue
        if offset < taken_until:
            continue
        try:
            found = _candidate(mm, size, offset, magic, box, limits(), deadline, extract)
        except (LimitExceeded, OSError, ValueError, struct.error):
            found = None
        if found is None:
            continue
        result, end = found
        taken_until = end
        carved += 1
        yield result


def _candidate(mm, size, offset, magic, box, lim: Limits, deadline, extract):
    if magic in (b"070701", b"070702"):
        end = _cpio_end(mm, offset, size)
        return None if end is None else _file(mm, offset, end, "cpio", box, lim)
    if magic.startswith(b"\x1f\x8b"):
        return _stream(mm, offset, size, "gz", box, lim, deadline) if _gzip_header(mm, offset) else None
    if magic.startswith(b"\xfd7zXZ"):
        return _stream(mm, offset, size, "xz", box, lim, deadline)
    if magic.startswith(b"BZh"):
        return _stream(mm, offset, size, "bz2", box, lim, deadline)
    if magic == b"\x28\xb5\x2f\xfd":
        return _stream(mm, offset, size, "zst", box, lim, deadline)
    if magic == b"PK\x03\x04":
        return _zip(mm, offset, size, box, lim)
    if magic == b"hsqs":
        end = _squashfs_end(mm, offset, size)
        return None if end is None else _tree(mm, offset, end, "squashfs", box, lim, deadline, extract)
    if magic.startswith(b"\x53\xef"):
        end = _ext_end(mm, offset, size)
        return None if end is None else _tree(mm, offset, end, "ext", box, lim, deadline, extract)
    return None


def _label(offset: int, ext: str) -> str:
    return f"{MARK}{offset:x}.{ext}"


def _slot(box: Path, offset: int) -> Path:
    slot = box / f"o{offset:012x}"
    slot.mkdir(mode=0o755)
    return slot


# -- validators: where a container that starts at ``offset`` ends, or None ----------


def _cpio_end(mm, offset: int, size: int) -> int | None:
    pos, entries = offset, 0
    while entries < MAX_CPIO_ENTRIES:
        header = mm[pos : pos + 110]
        if len(header) < 110 or header[:6] not in (b"070701", b"070702"):
            return None
        try:
            fields = [int(header[6 + i : 14 + i], 16) for i in range(0, 104, 8)]
        except ValueError:
            return None
        if not all(re.fullmatch(rb"[0-9A-Fa-f]{8}", header[6 + i : 14 + i]) for i in range(0, 104, 8)):
            return None
        filesize, namesize = fields[6], fields[11]
        if not 1 <= namesize <= 4096:
            return None
        name = mm[pos + 110 : pos + 110 + namesize]
        if len(name) < namesize or name[-1:] != b"\0" or b"\0" in name[:-1]:
            return None
        data = pos + _align4(110 + namesize)
        pos = data + _align4(filesize) if fields[6] else data
        if pos > size:
            return None
        entries += 1
        if name == b"TRAILER!!!\0":
            return min(pos, size)
    return None


def _align4(n: int) -> int:
    return (n + 3) & ~3


def _gzip_header(mm, offset: int) -> bool:
    head = mm[offset : offset + 10]
    return len(head) == 10 and not head[3] & 0xE0 and head[8] in (0, 2, 4) and (head[9] <= 13 or head[9] == 255)


_SQUASHFS = struct.Struct("<IIIIIHHHHHHQQQQQQQQ")


def _squashfs_end(mm, offset: int, size: int) -> int | None:
    raw = mm[offset : offset + _SQUASHFS.size]
    if len(raw) < _SQUASHFS.size:
        return None
    (_magic, inodes, _mtime, block_size, _frags, compression, block_log, _flags, ids, major, minor,
     _root, used, id_table, _xattr, inode_table, dir_table, _frag_table, _export) = _SQUASHFS.unpack(raw)
    if (major, minor) != (4, 0) or not 12 <= block_log <= 20 or block_size != 1 << block_log:
        return None
    if not 1 <= compression <= 6 or not inodes or not ids:
        return None
    if not _SQUASHFS.size <= used <= size - offset:
        return None
    if not _SQUASHFS.size <= inode_table < dir_table < used or not dir_table < id_table < used:
        return None
    return offset + used


def _ext_end(mm, offset: int, size: int) -> int | None:
    sb = mm[offset + 1024 : offset + 1024 + 128]
    if len(sb) < 128:
        return None
    inodes, blocks, _r, _free_b, _free_i, first_data, log_block = struct.unpack_from("<7I", sb, 0)
    per_group = struct.unpack_from("<I", sb, 32)[0]
    inodes_per_group = struct.unpack_from("<I", sb, 40)[0]
    rev = struct.unpack_from("<I", sb, 76)[0]
    if log_block > 6 or rev > 1 or not inodes or not blocks or not inodes_per_group:
        return None
    block = 1024 << log_block
    if first_data != (1 if block == 1024 else 0) or not 0 < per_group <= 8 * block:
        return None
    groups = -(-(blocks - first_data) // per_group)
    if inodes_per_group * groups != inodes:
        return None
    end = offset + blocks * block
    return end if end <= size else None


# -- what validates: a member file, or a tree of files ---------------------------------


def _copy(mm, start: int, end: int, dst: Path, lim: Limits) -> None:
    """Copy ``mm[start:end]`` into ``dst``, runs of zeros as holes."""
    if end - start > lim.max_file_bytes:
        raise LimitExceeded("too large")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
    with os.fdopen(os.open(dst, flags, 0o600), "wb") as out:
        pos = start
        while pos < end:
            chunk = mm[pos : min(end, pos + CHUNK)]
            if chunk.count(0) == len(chunk):
                out.seek(len(chunk), 1)
            else:
                out.write(chunk)
            pos += len(chunk)
        out.truncate(end - start)
    os.chmod(dst, 0o644)


def _file(mm, offset: int, end: int, ext: str, box: Path, lim: Limits):
    label = _label(offset, ext)
    dst = _slot(box, offset) / label
    Budget(lim).take(end - offset)  # fits, or LimitExceeded: not taken
    _copy(mm, offset, end, dst, lim)
    return Carved(offset, label, dst.parent, False), end


def _stream(mm, offset: int, size: int, ext: str, box: Path, lim: Limits, deadline: float):
    """A compressed stream decompressed to its end (its checksum verified), or None."""
    if ext == "gz":
        dec = zlib.decompressobj(wbits=31)
    elif ext == "xz":
        dec = lzma.LZMADecompressor(format=lzma.FORMAT_XZ)
    elif ext == "bz2":
        dec = bz2.BZ2Decompressor()
    else:
        try:
            import zstandard
        except ImportError:
            return None
        dec = zstandard.ZstdDecompressor().decompressobj()
    cap = Budget(lim).remaining()
    label = _label(offset, ext)
    slot = _slot(box, offset)
    dst = slot / label
    written, pos, ok = 0, offset, False
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
    try:
        with os.fdopen(os.open(dst, flags, 0o600), "wb") as out:
            step = 1024 if ext == "zst" else 64 * 1024  # zstd has no output bound per call
            while pos < size and not dec.eof and written <= cap:
                if time.monotonic() > deadline:
                    break
                chunk = mm[pos : min(size, pos + step)]
                pos += len(chunk)
                for piece in _pieces(dec, chunk, ext):
                    written += len(piece)
                    if written > cap:
                        break
                    if piece.count(0) == len(piece):
                        out.seek(len(piece), 1)
                    else:
                        out.write(piece)
            if dec.eof and written <= cap:
                pos -= len(dec.unused_data)
                ok = True
            out.truncate(min(written, cap))
    except Exception:  # noqa: BLE001 - zlib, lzma, bz2, zstandard errors: a stream that fails is not one
        ok = False
    problems = []
    if not ok and written > BELIEVED and (written > cap or time.monotonic() > deadline):
        # Too long a stream to be chance: what came out is examined, the rest is a finding.
        why = f"more than {cap} bytes" if written > cap else "more than the time allowed"
        problems.append(Problem("", f"{ext} stream at offset 0x{offset:x} decompresses to {why}:"
                                    " only its start was examined"))
        ok, pos = True, size
    if not ok or not written:
        shutil.rmtree(slot, ignore_errors=True)
        return None
    os.chmod(dst, 0o644)
    return Carved(offset, label, slot, False, problems), pos


def _pieces(dec, chunk: bytes, ext: str) -> Iterator[bytes]:
    """What ``chunk`` decompresses to, in pieces of at most :data:`CHUNK` bytes where the
    decompressor allows it."""
    if ext == "zst":
        yield dec.decompress(chunk)
    elif ext == "gz":
        yield dec.decompress(chunk, CHUNK)
        while dec.unconsumed_tail and not dec.eof:
            yield dec.decompress(dec.unconsumed_tail, CHUNK)
    else:
        yield dec.decompress(chunk, max_length=CHUNK)
        while not dec.eof and not dec.needs_input:
            yield dec.decompress(b"", max_length=CHUNK)


def _zip(mm, offset: int, size: int, box: Path, lim: Limits):
    """A zip whose end record's central directory lies right after its members."""
    eocd = mm.find(b"PK\x05\x06", offset, size)
    while eocd != -1:
        rec = mm[eocd : eocd + 22]
        if len(rec) == 22:
            _sig, disk, cd_disk, _n_here, n, cd_size, cd_offset, comment = struct.unpack("<IHHHHIIH", rec)
            cd = offset + cd_offset
            if disk == cd_disk == 0 and n and cd + cd_size == eocd and mm[cd : cd + 4] == b"PK\x01\x02":
                end = min(size, eocd + 22 + comment)
                result = _file(mm, offset, end, "zip", box, lim)
                member = result[0].path / result[0].label
                try:
                    with zipfile.ZipFile(member) as zf:
                        zf.infolist()
                except (zipfile.BadZipFile, OSError, ValueError, NotImplementedError):
                    shutil.rmtree(result[0].path, ignore_errors=True)
                    return None
                return result
        eocd = mm.find(b"PK\x05\x06", eocd + 4, size)
    return None


def _tree(mm, offset: int, end: int, fmt: str, box: Path, lim: Limits, deadline: float, extract):
    """The container extracted by its back end: its files, or None when there are none."""
    label = _label(offset, fmt)
    slot = _slot(box, offset)
    image = slot / "image"
    _copy(mm, offset, end, image, lim)
    out = slot / "files"
    out.mkdir(mode=0o755)
    try:
        problems = extract(fmt, image, out, lim, max(1.0, deadline - time.monotonic()))
    finally:
        image.unlink(missing_ok=True)
    if not any(p.is_file() for p in out.rglob("*")):
        shutil.rmtree(slot, ignore_errors=True)
        return None
    return Carved(offset, label, out, True, list(problems)), end


__all__ = ["Carved", "MARK", "MIN_SIZE", "carve", "nesting", "wanted"]
