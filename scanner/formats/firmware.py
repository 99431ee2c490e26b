"""Firmware containers, parsed in Python: no external tool runs on them.

* Intel HEX and Motorola S-record: each contiguous run of data becomes
  ``segment-0x<address>.bin`` (a gap is never filled, so a high load address
  costs nothing).
* U-Boot legacy image (uImage): the 64-byte header is read, the payload
  decompressed (gzip, bzip2, lzma/xz) and its CRC checked; multi-file images give
  one file per part.
* FIT (a flattened device tree): every ``/images/<name>`` node's data, embedded
  or external, decompressed when it says so.
* Linux zImage/bzImage: the first compressed kernel payload found inside.
* Android sparse images: expanded to ``image.raw`` (holes stay holes; the
  apparent size counts against the limits).
* Android boot images, header versions 0 to 4 (and vendor_boot): kernel,
  ramdisk, second stage, recovery DTBO and DTB as separate files.
* cpio (newc, crc, odc and binary): regular files and directories only.
* RockChip RKFW/RKAF update images: loader and every partition file.
"""

from __future__ import annotations

import bz2
import io
import lzma
import os
import re
import struct
import zlib
from pathlib import Path
from typing import BinaryIO, Callable

from scanner.formats._common import (
    CHUNK,
    Budget,
    LimitExceeded,
    Problem,
    file_mode,
    safe_relpath,
    write_bytes,
    write_stream,
)
from scanner.model import Limits

MAX_TEXT_INPUT = 512 * 1024 * 1024


class Damaged(Exception):
    """The container's structure is broken; the message is one line."""


# --------------------------------------------------------------------------- helpers


def _budget(path: Path, limits: Limits) -> Budget:
    return Budget(limits, path.stat().st_size)


def _make_parent(outdir: Path, rel: str) -> Path:
    dst = outdir / rel
    parent = outdir
    for part in rel.split("/")[:-1]:
        parent = parent / part
        if parent.is_symlink() or (parent.exists() and not parent.is_dir()):
            raise Damaged(f"{rel}: a file stands where a directory should be")
        parent.mkdir(exist_ok=True)
    if dst.is_dir() and not dst.is_symlink():
        raise Damaged(f"{rel}: a directory stands where a file should be")
    return dst


def decompress_to(data: BinaryIO, method: str, dst: Path, budget: Budget) -> None:
    """Stream-decompress ``data`` into ``dst`` without exceeding the budget.

    Bytes after the end of the compressed stream are ignored.
    """
    if method in ("none", ""):
        write_bytes(dst, data.read(), budget)
        return
    if method == "gzip":
        dec = zlib.decompressobj(wbits=47)
    elif method == "bzip2":
        dec = bz2.BZ2Decompressor()
    elif method in ("lzma", "xz"):
        dec = lzma.LZMADecompressor()
    else:
        raise Damaged(f"{method} compression is not supported")
    limit, written = budget.remaining(), 0
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW
    try:
        with os.fdopen(os.open(dst, flags, 0o600), "wb") as out:
            pending = b""
            while not dec.eof:
                if method == "gzip":
                    if not pending:
                        pending = data.read(CHUNK)
                        if not pending:
                            break
                    piece = dec.decompress(pending, CHUNK)
                    pending = dec.unconsumed_tail
                else:
                    chunk = b""
                    if dec.needs_input:
                        chunk = data.read(CHUNK)
                        if not chunk:
                            break
                    piece = dec.decompress(chunk, max_length=CHUNK)
                written += len(piece)
                if written > limit:
                    raise LimitExceeded(f"decompresses to more than the {limit}-byte limit")
                out.write(piece)
        if not dec.eof:
            raise Damaged(f"{method} data is truncated")
    except (zlib.error, EOFError, lzma.LZMAError, OSError) as exc:
        dst.unlink(missing_ok=True)
        raise Damaged(f"{method} data could not be decompressed: {exc}") from exc
    except (LimitExceeded, Damaged):
        dst.unlink(missing_ok=True)
        raise
    budget.take(written)
    os.chmod(dst, 0o644)


def _guarded(func: Callable[[Path, Path, Budget], list[Problem]]):
    """Wrap a parser: damage and limits become problems, never exceptions."""

    def run(fmt: str, path: Path, outdir: Path, limits: Limits, timeout: float) -> list[Problem]:
        try:
            return func(path, outdir, _budget(path, limits))
        except Damaged as exc:
            return [Problem("", f"{fmt}: {exc}")]
        except LimitExceeded as exc:
            return [Problem("", f"{fmt}: {exc}")]
        except (struct.error, ValueError, IndexError, EOFError) as exc:
            return [Problem("", f"{fmt} is damaged: {exc}")]

    return run


# --------------------------------------------------------------------------- hex files


def _segments(records: list[tuple[int, bytes]]) -> list[tuple[int, bytearray]]:
    segments: list[tuple[int, bytearray]] = []
    for addr, data in sorted(records, key=lambda r: r[0]):
        if segments and segments[-1][0] + len(segments[-1][1]) == addr:
            segments[-1][1].extend(data)
        elif segments and addr < segments[-1][0] + len(segments[-1][1]):
            raise Damaged(f"overlapping data at 0x{addr:08x}")
        else:
            segments.append((addr, bytearray(data)))
    return segments


def _read_text(path: Path) -> list[str]:
    if path.stat().st_size > MAX_TEXT_INPUT:
        raise Damaged("file is too large for a hex file")
    return path.read_text("ascii", "replace").splitlines()


def _write_segments(records, outdir: Path, budget: Budget) -> list[Problem]:
    segments = _segments(records)
    if not segments:
        raise Damaged("no data records")
    for addr, data in segments:
        write_bytes(outdir / f"segment-0x{addr:08x}.bin", bytes(data), budget)
    return []


def parse_ihex(path: Path, outdir: Path, budget: Budget) -> list[Problem]:
    records, base, total = [], 0, 0
    for n, line in enumerate(_read_text(path), 1):
        line = line.strip()
        if not line:
            continue
        if not line.startswith(":"):
            raise Damaged(f"line {n} is not a record")
        raw = bytes.fromhex(line[1:])
        if len(raw) < 5 or len(raw) != raw[0] + 5 or sum(raw) & 0xFF:
            raise Damaged(f"line {n} has a bad length or checksum")
        count, addr, kind, data = raw[0], int.from_bytes(raw[1:3], "big"), raw[3], raw[4:-1]
        if kind == 0:
            total += count
            if total > budget.remaining():
                raise LimitExceeded("hex data over the limits")
            records.append((base + addr, data))
        elif kind == 1:
            break
        elif kind == 2:
            base = int.from_bytes(data, "big") << 4
        elif kind == 4:
            base = int.from_bytes(data, "big") << 16
    return _write_segments(records, outdir, budget)


def parse_srec(path: Path, outdir: Path, budget: Budget) -> list[Problem]:
    records, total = [], 0
    addr_len = {"1": 2, "2": 3, "3": 4}
    for n, line in enumerate(_read_text(path), 1):
        line = line.strip()
        if not line:
            continue
        if len(line) < 4 or line[0] != "S":
            raise Damaged(f"line {n} is not a record")
        raw = bytes.fromhex(line[2:])
        if len(raw) != raw[0] + 1 or (sum(raw[:-1]) + raw[-1]) & 0xFF != 0xFF:
            raise Damaged(f"line {n} has a bad length or checksum")
        kind = line[1]
        if kind in addr_len:
            k = addr_len[kind]
            data = raw[1 + k : -1]
            total += len(data)
            if total > budget.remaining():
                raise LimitExceeded("S-record data over the limits")
            records.append((int.from_bytes(raw[1 : 1 + k], "big"), data))
    return _write_segments(records, outdir, budget)


# --------------------------------------------------------------------------- U-Boot

UIMAGE_COMP = {0: "none", 1: "gzip", 2: "bzip2", 3: "lzma", 4: "lzo", 5: "lz4", 6: "zstd"}
UIMAGE_MULTI = 4


def parse_uimage(path: Path, outdir: Path, budget: Budget) -> list[Problem]:
    problems = []
    with open(path, "rb") as fh:
        header = fh.read(64)
        if len(header) < 64:
            raise Damaged("header is truncated")
        magic, hcrc, _time, size, _load, _ep, dcrc, _os, _arch, kind, comp = struct.unpack(
            ">IIIIIIIBBBB", header[:32]
        )
        if zlib.crc32(header[:4] + b"\0\0\0\0" + header[8:]) != hcrc:
            problems.append(Problem("", "uImage header checksum does not match"))
        payload = fh.read(size)
    if len(payload) < size:
        raise Damaged("payload is truncated")
    if zlib.crc32(payload) != dcrc:
        problems.append(Problem("", "uImage data checksum does not match"))
    method = UIMAGE_COMP.get(comp, f"unknown ({comp})")
    parts = [payload]
    if kind == UIMAGE_MULTI:
        parts = _multi_parts(payload)
    for i, part in enumerate(parts):
        name = "payload" if len(parts) == 1 else f"part-{i}"
        problems += _payload(part, method, outdir / name, budget, name)
    return problems


def _multi_parts(payload: bytes) -> list[bytes]:
    sizes, off = [], 0
    while True:
        (n,) = struct.unpack_from(">I", payload, off)
        off += 4
        if n == 0:
            break
        sizes.append(n)
        if len(sizes) > 64:
            raise Damaged("multi-file image lists too many parts")
    parts = []
    for n in sizes:
        parts.append(payload[off : off + n])
        off += (n + 3) & ~3
    return parts


def _payload(data: bytes, method: str, dst: Path, budget: Budget, name: str) -> list[Problem]:
    if method in ("none", "gzip", "bzip2", "lzma", "xz"):
        try:
            decompress_to(io.BytesIO(data), method, dst, budget)
            return []
        except Damaged as exc:
            write_bytes(dst.with_name(dst.name + ".compressed"), data, budget)
            return [Problem(name, str(exc))]
    # lzo, lz4, zstd: kept as they are; nothing here can look inside.
    write_bytes(dst.with_name(f"{dst.name}.{method.split()[0]}"), data, budget)
    return [Problem(name, f"{method} compressed payload could not be decompressed")]


# --------------------------------------------------------------------------- FIT / FDT

FDT_MAGIC = 0xD00DFEED


def parse_fdt(blob: bytes) -> dict:
    """A flattened device tree as nested dicts: properties as bytes, sub-nodes as dicts."""
    magic, total, off_struct, off_strings = struct.unpack_from(">IIII", blob, 0)
    if magic != FDT_MAGIC:
        raise Damaged("not a device tree")
    strings = blob[off_strings:total]
    root: dict = {}
    stack = [root]
    off = off_struct
    while off < total:
        (token,) = struct.unpack_from(">I", blob, off)
        off += 4
        if token == 1:  # begin node
            end = blob.index(b"\0", off)
            name = blob[off:end].decode("utf-8", "replace")
            off = (end + 4) & ~3
            node: dict = {}
            stack[-1][name] = node
            stack.append(node)
            if len(stack) > 64:
                raise Damaged("device tree nests too deep")
        elif token == 2:  # end node
            stack.pop()
            if not stack:
                raise Damaged("device tree closes more nodes than it opens")
        elif token == 3:  # property
            length, nameoff = struct.unpack_from(">II", blob, off)
            off += 8
            pname = strings[nameoff : strings.index(b"\0", nameoff)].decode("utf-8", "replace")
            stack[-1][pname] = bytes(blob[off : off + length])
            off = (off + length + 3) & ~3
        elif token == 4:  # nop
            continue
        elif token == 9:  # end
            break
        else:
            raise Damaged(f"unknown device tree token {token}")
    return root.get("", root)


def _prop_str(node: dict, name: str, default: str = "") -> str:
    value = node.get(name)
    return value.rstrip(b"\0").decode("utf-8", "replace") if isinstance(value, bytes) else default


def _prop_int(node: dict, name: str) -> int | None:
    value = node.get(name)
    return int.from_bytes(value[:4], "big") if isinstance(value, bytes) and len(value) >= 4 else None


def parse_fit(path: Path, outdir: Path, budget: Budget) -> list[Problem]:
    blob = path.read_bytes() if path.stat().st_size <= 1024**3 else b""
    if not blob:
        raise Damaged("FIT image is too large to parse")
    tree = parse_fdt(blob)
    total = struct.unpack_from(">I", blob, 4)[0]
    images = tree.get("images")
    if not isinstance(images, dict):
        raise Damaged("FIT image has no /images node")
    problems: list[Problem] = []
    (outdir / "images").mkdir()
    for name, node in images.items():
        if not isinstance(node, dict):
            continue
        rel = safe_relpath(name)
        if rel is None or "/" in rel:
            problems.append(Problem(f"images/{name}", "image name is not a plain name"))
            continue
        data = node.get("data")
        if not isinstance(data, bytes):
            pos, off, size = (
                _prop_int(node, "data-position"),
                _prop_int(node, "data-offset"),
                _prop_int(node, "data-size"),
            )
            if size is None or (pos is None and off is None):
                problems.append(Problem(f"images/{name}", "image has no data"))
                continue
            start = pos if pos is not None else ((total + 3) & ~3) + (off or 0)
            data = blob[start : start + size]
            if len(data) < size:
                problems.append(Problem(f"images/{name}", "external data is truncated"))
                continue
        method = _prop_str(node, "compression", "none")
        method = {"lzma": "lzma", "gzip": "gzip", "bzip2": "bzip2", "none": "none"}.get(method, method)
        problems += _payload(data, method, outdir / "images" / rel, budget, f"images/{name}")
    return problems


# --------------------------------------------------------------------------- zImage

_KERNEL_MAGICS = [(b"\x1f\x8b\x08", "gzip"), (b"\xfd7zXZ\x00", "xz"), (b"BZh", "bzip2"), (b"\x5d\x00\x00", "lzma")]


def parse_zimage(path: Path, outdir: Path, budget: Budget) -> list[Problem]:
    head = path.read_bytes()[: 64 * 1024 * 1024]
    candidates = sorted(
        (m.start(), method)
        for magic, method in _KERNEL_MAGICS
        for m in re.finditer(re.escape(magic), head)
    )
    for offset, method in candidates[:64]:
        try:
            decompress_to(_Trailing(head[offset:]), method, outdir / "vmlinux", budget)
            return []
        except Damaged:
            continue
    write_bytes(outdir / "zImage.bin", head, budget)
    return [Problem("", "no kernel payload that could be decompressed was found")]


class _Trailing(io.BytesIO):
    """A compressed stream followed by unrelated bytes: the decompressor stops at its end."""


# --------------------------------------------------------------------------- Android sparse

SPARSE_RAW, SPARSE_FILL, SPARSE_DONT_CARE, SPARSE_CRC = 0xCAC1, 0xCAC2, 0xCAC3, 0xCAC4


def parse_android_sparse(path: Path, outdir: Path, budget: Budget) -> list[Problem]:
    with open(path, "rb") as fh:
        hdr = fh.read(28)
        magic, major, _minor, file_hdr, chunk_hdr, blk, blocks, chunks, _crc = struct.unpack(
            "<IHHHHIIII", hdr
        )
        if magic != 0xED26FF3A or major != 1 or blk == 0 or blk % 4:
            raise Damaged("not a version 1 Android sparse image")
        size = blk * blocks
        budget.take(size)
        fh.seek(file_hdr)
        dst = outdir / "image.raw"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
        with os.fdopen(os.open(dst, flags, 0o644), "wb") as out:
            pos = 0
            for _ in range(chunks):
                ch = fh.read(chunk_hdr)
                if len(ch) < 12:
                    raise Damaged("chunk header is truncated")
                kind, _res, nblk, total = struct.unpack_from("<HHII", ch)
                length = nblk * blk
                if pos + length > size:
                    raise Damaged("chunks run past the declared image size")
                body = total - chunk_hdr
                if kind == SPARSE_RAW:
                    if body != length:
                        raise Damaged("raw chunk size does not match")
                    _copy(fh, out, length)
                elif kind == SPARSE_FILL:
                    pattern = fh.read(4)
                    if len(pattern) < 4:
                        raise Damaged("fill chunk is truncated")
                    if pattern == b"\0\0\0\0":
                        out.seek(pos + length)
                    else:
                        block = pattern * (min(length, CHUNK) // 4)
                        left = length
                        while left:
                            n = min(left, len(block))
                            out.write(block[:n])
                            left -= n
                elif kind == SPARSE_DONT_CARE:
                    out.seek(pos + length)
                elif kind == SPARSE_CRC:
                    fh.seek(body, 1)
                    continue
                else:
                    raise Damaged(f"unknown chunk type 0x{kind:04x}")
                pos += length
            out.truncate(size)
    return []


def _copy(src: BinaryIO, dst: BinaryIO, length: int) -> None:
    while length:
        data = src.read(min(CHUNK, length))
        if not data:
            raise Damaged("data is truncated")
        dst.write(data)
        length -= len(data)


# --------------------------------------------------------------------------- Android boot


def _pages(size: int, page: int) -> int:
    return (size + page - 1) // page * page


def parse_android_boot(path: Path, outdir: Path, budget: Budget) -> list[Problem]:
    with open(path, "rb") as fh:
        data = fh.read(4096)
        version = struct.unpack_from("<I", data, 40)[0]
        if data[:8] == b"VNDRBOOT":
            return _vendor_boot(path, outdir, budget)
        if version >= 3:
            kernel, ramdisk = struct.unpack_from("<II", data, 8)
            page = 4096
            parts = [("kernel", kernel), ("ramdisk", ramdisk)]
            if version >= 4:
                parts.append(("boot_signature", struct.unpack_from("<I", data, 1580)[0]))
            offset = page
        else:
            kernel, _ka, ramdisk, _ra, second, _sa, _tags, page = struct.unpack_from("<8I", data, 8)
            if page not in (2048, 4096, 8192, 16384):
                raise Damaged(f"page size {page} is not valid")
            parts = [("kernel", kernel), ("ramdisk", ramdisk), ("second", second)]
            if version >= 1:
                parts.append(("recovery_dtbo", struct.unpack_from("<I", data, 1632)[0]))
            if version >= 2:
                parts.append(("dtb", struct.unpack_from("<I", data, 1648)[0]))
            offset = page
        return _write_parts(fh, outdir, budget, parts, offset, page)


def _vendor_boot(path: Path, outdir: Path, budget: Budget) -> list[Problem]:
    with open(path, "rb") as fh:
        data = fh.read(4096)
        _version, page = struct.unpack_from("<II", data, 8)
        ramdisk = struct.unpack_from("<I", data, 24)[0]
        header_size, dtb = struct.unpack_from("<II", data, 2096)
        if page not in (2048, 4096, 8192, 16384):
            raise Damaged(f"page size {page} is not valid")
        parts = [("vendor_ramdisk", ramdisk), ("dtb", dtb)]
        return _write_parts(fh, outdir, budget, parts, _pages(header_size, page), page)


def _write_parts(fh, outdir: Path, budget: Budget, parts, offset: int, page: int) -> list[Problem]:
    problems = []
    for name, size in parts:
        if size == 0:
            continue
        fh.seek(offset)
        write_stream(fh, outdir / name, size, budget)
        if (outdir / name).stat().st_size < size:
            problems.append(Problem(name, f"{name} is truncated"))
        offset += _pages(size, page)
    return problems


# --------------------------------------------------------------------------- cpio

S_IFMT, S_IFDIR, S_IFREG = 0o170000, 0o040000, 0o100000


def parse_cpio(path: Path, outdir: Path, budget: Budget) -> list[Problem]:
    problems: list[Problem] = []
    with open(path, "rb") as fh:
        while True:
            entry = _cpio_header(fh)
            if entry is None:
                break
            name, mode, size, align = entry
            if name == "TRAILER!!!":
                # Concatenated archives (early microcode + initramfs) follow after padding.
                if not _skip_padding(fh):
                    break
                continue
            rel = safe_relpath(name)
            kind = mode & S_IFMT
            if rel is None:
                if name not in (".", "./", "/") and size:
                    problems.append(Problem(name, "path leaves the archive root"))
                fh.seek(_aligned(size, align), 1)
                continue
            if kind == S_IFDIR:
                _make_parent(outdir, rel + "/x")
            elif kind == S_IFREG:
                reason = budget.file_fits(size)
                if reason:
                    problems.append(Problem(rel, reason))
                    fh.seek(_aligned(size, align), 1)
                    continue
                try:
                    dst = _make_parent(outdir, rel)
                except Damaged as exc:
                    problems.append(Problem(rel, str(exc)))
                    fh.seek(_aligned(size, align), 1)
                    continue
                if os.path.lexists(dst):
                    os.unlink(dst)
                start = fh.tell()
                write_stream(fh, dst, size, budget, file_mode(mode))
                if fh.tell() - start < size:
                    problems.append(Problem(rel, "file data is truncated"))
                    break
                fh.seek(_aligned(size, align) - size, 1)
            else:
                fh.seek(_aligned(size, align), 1)  # links and devices: nothing created
    return problems


def _aligned(n: int, align: int) -> int:
    return (n + align - 1) // align * align


def _skip_padding(fh) -> bool:
    while True:
        pos = fh.tell()
        block = fh.read(512)
        if not block:
            return False
        stripped = block.lstrip(b"\0")
        if stripped:
            fh.seek(pos + len(block) - len(stripped))
            return True


def _cpio_header(fh) -> tuple[str, int, int, int] | None:
    start = fh.tell()
    magic = fh.read(6)
    if len(magic) < 6:
        return None
    if magic in (b"070701", b"070702"):
        rest = fh.read(104)
        if len(rest) < 104:
            raise Damaged("header is truncated")
        fields = [int(rest[i : i + 8], 16) for i in range(0, 104, 8)]
        mode, size, namesize = fields[1], fields[6], fields[11]
        name = fh.read(namesize)
        fh.seek(_aligned(fh.tell() - start, 4) + start)
        return _name(name), mode, size, 4
    if magic == b"070707":
        rest = fh.read(70)
        if len(rest) < 70:
            raise Damaged("header is truncated")
        mode = int(rest[12:18], 8)
        namesize, size = int(rest[53:59], 8), int(rest[59:70], 8)
        return _name(fh.read(namesize)), mode, size, 1
    if magic[:2] in (b"\xc7\x71", b"\x71\xc7"):
        end = "<" if magic[:2] == b"\xc7\x71" else ">"
        rest = magic[2:] + fh.read(20)
        if len(rest) < 24:
            raise Damaged("header is truncated")
        f = struct.unpack(end + "12H", magic[:2] + rest[:22])
        mode, namesize = f[3], f[10]
        size = (f[11] << 16) | struct.unpack(end + "H", rest[22:24])[0]
        name = fh.read(namesize + (namesize & 1))
        return _name(name), mode, size, 2
    if magic == b"\0" * 6:
        return None
    raise Damaged(f"unknown cpio header at offset {start}")


def _name(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")


# --------------------------------------------------------------------------- RockChip


def parse_rockchip(path: Path, outdir: Path, budget: Budget) -> list[Problem]:
    with open(path, "rb") as fh:
        head = fh.read(64)
        if head[:4] == b"RKAF":
            return _rkaf(fh, 0, outdir, budget)
        if head[:4] != b"RKFW":
            raise Damaged("not a RockChip image")
        loader_off, loader_len, image_off, image_len = struct.unpack_from("<IIII", head, 0x19)
        problems = []
        if loader_len:
            fh.seek(loader_off)
            write_stream(fh, outdir / "loader.bin", loader_len, budget)
        fh.seek(image_off)
        if fh.read(4) == b"RKAF":
            (outdir / "update").mkdir()
            problems += [
                Problem(f"update/{p.path}", p.reason)
                for p in _rkaf(fh, image_off, outdir / "update", budget)
            ]
        elif image_len:
            fh.seek(image_off)
            write_stream(fh, outdir / "update.img", image_len, budget)
        return problems


def _rkaf(fh, base: int, outdir: Path, budget: Budget) -> list[Problem]:
    fh.seek(base)
    header = fh.read(140 + 16 * 112)
    if len(header) < 140 + 16 * 112 or header[:4] != b"RKAF":
        raise Damaged("RKAF header is truncated")
    (count,) = struct.unpack_from("<I", header, 136)
    problems = []
    for i in range(min(count, 16)):
        off = 140 + 112 * i
        name = header[off : off + 32].split(b"\0")[0].decode("latin-1")
        filename = header[off + 32 : off + 92].split(b"\0")[0].decode("latin-1")
        _nand_size, pos, _nand_addr, _padded, size = struct.unpack_from("<5I", header, off + 92)
        if filename in ("SELF", "RESERVED") or not size:
            continue
        rel = safe_relpath(filename) or safe_relpath(name)
        if rel is None:
            problems.append(Problem(filename, "part name leaves the image root"))
            continue
        dst = _make_parent(outdir, rel)
        fh.seek(base + pos)
        write_stream(fh, dst, size, budget)
        if dst.stat().st_size < size:
            problems.append(Problem(rel, "part is truncated"))
    return problems


EXTRACTORS = {
    "ihex": _guarded(parse_ihex),
    "srec": _guarded(parse_srec),
    "uimage": _guarded(parse_uimage),
    "fit": _guarded(parse_fit),
    "zimage": _guarded(parse_zimage),
    "android-sparse": _guarded(parse_android_sparse),
    "android-boot": _guarded(parse_android_boot),
    "android-vendor-boot": _guarded(parse_android_boot),
    "cpio": _guarded(parse_cpio),
    "rockchip": _guarded(parse_rockchip),
}
