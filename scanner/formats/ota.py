"""Android A/B OTA ``payload.bin`` (``CrAU``): full updates rebuilt into partition images.

Header: magic, format version (u64 BE), manifest size (u64 BE) and, from
version 2, the metadata signature size (u32 BE); then the protobuf
``DeltaArchiveManifest`` and the data blobs. Each partition is written to
``<name>.img`` from its install operations: REPLACE, REPLACE_BZ, REPLACE_XZ,
ZERO and DISCARD. Delta operations need the device's previous image, which a
package does not carry: such a partition is a problem, not a guess. Each
operation's SHA-256 is checked when the manifest gives one.
"""

from __future__ import annotations

import bz2
import hashlib
import lzma
import os
import struct
from pathlib import Path

from scanner.formats._common import Budget, LimitExceeded, Problem, safe_relpath
from scanner.formats.firmware import Damaged, _guarded

REPLACE, REPLACE_BZ, ZERO, DISCARD, REPLACE_XZ = 0, 1, 6, 7, 8
MAX_MANIFEST = 64 * 1024 * 1024
MAX_BLOB = 256 * 1024 * 1024


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise Damaged("manifest varint is truncated")
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, pos
        shift += 7


def fields(buf: bytes) -> list[tuple[int, int | bytes]]:
    """A protobuf message as (field number, value) pairs: ints or length-delimited bytes."""
    out: list[tuple[int, int | bytes]] = []
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
            out.append((number, value))
        elif wire == 2:
            length, pos = _varint(buf, pos)
            if pos + length > len(buf):
                raise Damaged("manifest field is truncated")
            out.append((number, buf[pos : pos + length]))
            pos += length
        elif wire == 1:
            out.append((number, int.from_bytes(buf[pos : pos + 8], "little")))
            pos += 8
        elif wire == 5:
            out.append((number, int.from_bytes(buf[pos : pos + 4], "little")))
            pos += 4
        else:
            raise Damaged(f"manifest wire type {wire} is not supported")
    return out


def _first(msg, number, default=None):
    return next((v for n, v in msg if n == number), default)


def _all(msg, number):
    return [v for n, v in msg if n == number]


def parse_payload(path: Path, outdir: Path, budget: Budget) -> list[Problem]:
    with open(path, "rb") as fh:
        head = fh.read(24)
        if head[:4] != b"CrAU":
            raise Damaged("not an OTA payload")
        version, manifest_size = struct.unpack_from(">QQ", head, 4)
        sig_size = struct.unpack_from(">I", head, 20)[0] if version >= 2 else 0
        header = 24 if version >= 2 else 20
        if manifest_size > MAX_MANIFEST:
            raise Damaged("manifest is too large")
        fh.seek(header)
        manifest = fields(fh.read(manifest_size))
        data_start = header + manifest_size + sig_size
        block = int(_first(manifest, 3, 4096))
        problems: list[Problem] = []
        for part in _all(manifest, 13):
            problems += _partition(fh, fields(part), block, data_start, outdir, budget)
    return problems


def _partition(fh, part, block: int, data_start: int, outdir: Path, budget: Budget) -> list[Problem]:
    name = _first(part, 1, b"").decode("utf-8", "replace")
    rel = safe_relpath(name)
    if rel is None or "/" in rel:
        return [Problem(name, "partition name is not a plain name")]
    info = fields(_first(part, 7, b""))
    size = int(_first(info, 1, 0))
    ops = [fields(op) for op in _all(part, 8)]
    if not size:
        size = max((_extent_end(op, block) for op in ops), default=0)
    reason = budget.file_fits(size)
    if reason:
        return [Problem(f"{rel}.img", reason)]
    budget.take(size)
    dst = outdir / f"{rel}.img"
    problems: list[Problem] = []
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
    with os.fdopen(os.open(dst, flags, 0o644), "wb") as out:
        out.truncate(size)
        for op in ops:
            kind = int(_first(op, 1, 0))
            if kind in (ZERO, DISCARD):
                continue
            if kind not in (REPLACE, REPLACE_BZ, REPLACE_XZ):
                return [Problem(f"{rel}.img", "incremental update: needs the previous image")]
            data = _blob(fh, op, data_start)
            expected = _first(op, 8)
            if isinstance(expected, bytes) and expected and hashlib.sha256(data).digest() != expected:
                problems.append(Problem(f"{rel}.img", "operation data does not match its hash"))
                continue
            data = _inflate(data, kind, size)
            _place(out, data, op, block, size)
    return problems


def _extent_end(op, block: int) -> int:
    ends = [0]
    for ext in _all(op, 6):
        e = fields(ext)
        ends.append((int(_first(e, 1, 0)) + int(_first(e, 2, 0))) * block)
    return max(ends)


def _blob(fh, op, data_start: int) -> bytes:
    offset, length = int(_first(op, 2, 0)), int(_first(op, 3, 0))
    if length > MAX_BLOB:
        raise Damaged("operation data is too large")
    fh.seek(data_start + offset)
    data = fh.read(length)
    if len(data) < length:
        raise Damaged("operation data is truncated")
    return data


def _inflate(data: bytes, kind: int, cap: int) -> bytes:
    try:
        if kind == REPLACE_BZ:
            dec = bz2.BZ2Decompressor()
        elif kind == REPLACE_XZ:
            dec = lzma.LZMADecompressor()
        else:
            return data
        out = dec.decompress(data, max_length=cap + 1)
    except (OSError, EOFError, lzma.LZMAError) as exc:
        raise Damaged(f"operation data could not be decompressed: {exc}") from exc
    if len(out) > cap:
        raise LimitExceeded("operation data decompresses past its partition")
    return out


def _place(out, data: bytes, op, block: int, size: int) -> None:
    pos = 0
    for ext in _all(op, 6):
        e = fields(ext)
        start, count = int(_first(e, 1, 0)) * block, int(_first(e, 2, 0)) * block
        if start + count > size:
            raise Damaged("operation writes past the end of its partition")
        out.seek(start)
        out.write(data[pos : pos + count])
        pos += count


EXTRACTORS = {"android-ota-payload": _guarded(parse_payload)}
