"""Package identification: the name rule and the format, told by content.

``sniff`` names the kind of any file from its first bytes; the unpacker uses it to
find archives nested at any depth, whatever their extension. ``identify`` applies
the Asset Security Standards to the package file itself.
"""

from __future__ import annotations

import bz2
import lzma
import re
import tarfile
import zlib
from pathlib import Path

from scanner.model import ScanError

#: A package's base name (without the extension).
NAME_RE = re.compile(r"[A-Za-z0-9_()\-]+")

#: Accepted package extensions, longest first so ".tar.gz" wins over ".gz".
EXTENSIONS = (".tar.gz", ".zip", ".tar")

#: Kinds the unpacker opens.
ARCHIVES = frozenset({"zip", "tar", "tar.gz", "tar.bz2", "tar.xz", "gz", "bz2", "xz"})

#: Archive kinds recognised but not opened by this version: their content is not examined.
UNSUPPORTED = frozenset({"7z", "rar", "zstd", "cab"})

_DESCRIPTIONS = {
    "zip": "a zip archive",
    "tar": "a tar archive",
    "tar.gz": "a gzip-compressed tar archive",
    "tar.bz2": "a bzip2-compressed tar archive",
    "tar.xz": "an xz-compressed tar archive",
    "gz": "gzip-compressed data",
    "bz2": "bzip2-compressed data",
    "xz": "xz-compressed data",
    "7z": "a 7-Zip archive",
    "rar": "a RAR archive",
    "zstd": "zstd-compressed data",
    "cab": "a Microsoft cabinet archive",
    "pdf": "a PDF document",
    "elf": "an ELF executable",
    "pe": "a Windows executable",
    "empty": "empty",
    None: "not a recognised archive",
}

_MAGIC = (
    (b"PK\x03\x04", "zip"),
    (b"PK\x05\x06", "zip"),  # an empty zip
    (b"\x1f\x8b", "gz"),
    (b"BZh", "bz2"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"7z\xbc\xaf\x27\x1c", "7z"),
    (b"Rar!\x1a\x07", "rar"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
    (b"MSCF\x00\x00\x00\x00", "cab"),
    (b"%PDF-", "pdf"),
    (b"\x7fELF", "elf"),
    (b"MZ", "pe"),
)

_HEAD = 4096


def describe(kind: str | None) -> str:
    """A short phrase for a kind returned by :func:`sniff`, for messages."""
    return _DESCRIPTIONS.get(kind, kind or _DESCRIPTIONS[None])


def sniff(path: Path, head: bytes | None = None) -> str | None:
    """Name the kind of a file from its first bytes, or None when it is nothing known.

    Compressed streams are looked into: gzip, bzip2 or xz around a tar is
    "tar.gz", "tar.bz2" or "tar.xz"; around anything else "gz", "bz2" or "xz".
    ``head``, when the caller has it, is the file's first 4 KiB at least (or all of it).
    """
    if head is None:
        with open(path, "rb") as f:
            head = f.read(_HEAD)
    else:
        head = head[:_HEAD]
    if not head:
        return "empty"
    if _is_tar(head):
        return "tar"
    for magic, kind in _MAGIC:
        if head.startswith(magic):
            if kind in ("gz", "bz2", "xz"):
                return f"tar.{kind}" if _is_tar(_inflate(kind, path)) else kind
            return kind
    return None


def identify(path: Path, name: str) -> str:
    """Return "zip", "tar" or "tar.gz" for a package, from its content.

    Raise ScanError with a one-line message for the seller when the name or the
    format is outside the rules, or when the extension and the content disagree.
    """
    _, ext = split_name(name)
    kind = sniff(path)
    if kind == "empty":
        raise ScanError(f"{name} is empty")
    wanted = ext.lstrip(".")
    if kind == wanted:
        return kind
    if kind in ("zip", "tar", "tar.gz"):
        raise ScanError(
            f"{name} is named {ext} but its content is {describe(kind)}; "
            f"name it .{kind} or upload {describe(wanted)}"
        )
    if kind == "gz" and wanted == "tar.gz":
        raise ScanError(f"{name} is gzip-compressed but does not hold a tar archive")
    raise ScanError(f"{name} is not a zip, tar or tar.gz archive (its content is {describe(kind)})")


def split_name(name: str) -> tuple[str, str]:
    """Split a package file name into (base name, extension), checking both rules."""
    lowered = name.lower()
    ext = next((e for e in EXTENSIONS if lowered.endswith(e)), None)
    if ext is None:
        raise ScanError(f'"{name}" is not a .zip, .tar or .tar.gz file')
    base = name[: -len(ext)]
    if not base:
        raise ScanError(f'"{name}" has no name before {ext}')
    if len(name.encode("utf-8")) > 255:
        raise ScanError("the package file name is longer than 255 bytes")
    if not NAME_RE.fullmatch(base):
        bad = "".join(sorted({c for c in base if not NAME_RE.fullmatch(c)}))
        raise ScanError(
            f'package name "{base}" may contain only letters, digits, "-", "_", "(" and ")"'
            f" (found {bad!r})"
        )
    return base, ext


def _is_tar(block: bytes) -> bool:
    if len(block) < tarfile.BLOCKSIZE:
        return False
    header = block[: tarfile.BLOCKSIZE]
    if header[257:262] == b"ustar":
        return True
    # Old (v7) headers carry no magic: a valid checksum is the only sign.
    try:
        tarfile.TarInfo.frombuf(header, "utf-8", "surrogateescape")
    except tarfile.HeaderError:
        return False
    return True


def _inflate(kind: str, path: Path) -> bytes:
    """The first bytes of a compressed stream's payload (empty when unreadable)."""
    # A bzip2 block (up to 900 kB) must be read whole before it yields anything.
    with open(path, "rb") as f:
        data = f.read(1024 * 1024 if kind == "bz2" else 64 * 1024)
    try:
        if kind == "gz":
            return zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(data, _HEAD)
        if kind == "bz2":
            return bz2.BZ2Decompressor().decompress(data, _HEAD)
        return lzma.LZMADecompressor().decompress(data, _HEAD)
    except (zlib.error, OSError, EOFError, lzma.LZMAError, ValueError):
        return b""
