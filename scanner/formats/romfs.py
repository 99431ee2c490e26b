"""romfs (Linux ROM file system), parsed in Python: 7-Zip does not read it.

Every header is 16-byte aligned: ``next`` (low 3 bits: type, bit 3: executable),
``spec.info``, ``size``, ``checksum``, then the name and the data. Directories
point at their first entry through ``spec.info``. Only regular files and
directories are created; a hard link's target is written again under the link's
name; loops are cut.
"""

from __future__ import annotations

import struct
from pathlib import Path

from scanner.formats._common import Budget, Problem, write_stream
from scanner.formats.firmware import Damaged, _guarded

HARDLINK, DIRECTORY, REGULAR = 0, 1, 2
MAX_NAME = 4096


def _name_at(fh, offset: int) -> tuple[str, int]:
    """The name at ``offset`` and the offset just after its 16-byte padding."""
    fh.seek(offset)
    raw = b""
    while b"\0" not in raw:
        chunk = fh.read(16)
        if len(chunk) < 16:
            raise Damaged("name is truncated")
        raw += chunk
        if len(raw) > MAX_NAME:
            raise Damaged("name is too long")
    name = raw.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
    return name, offset + (len(name) + 16) // 16 * 16


def parse_romfs(path: Path, outdir: Path, budget: Budget) -> list[Problem]:
    problems: list[Problem] = []
    size = path.stat().st_size
    with open(path, "rb") as fh:
        if fh.read(8) != b"-rom1fs-":
            raise Damaged("not a romfs image")
        _, first = _name_at(fh, 16)
        seen: set[int] = set()
        stack = [(first, outdir, "")]
        while stack:
            offset, directory, prefix = stack.pop()
            while offset and offset not in seen:
                if offset + 16 > size:
                    raise Damaged(f"header at {offset} is outside the image")
                seen.add(offset)
                fh.seek(offset)
                nxt, spec, length, _sum = struct.unpack(">IIII", fh.read(16))
                name, data = _name_at(fh, offset + 16)
                kind = nxt & 7
                rel = f"{prefix}{name}"
                if name not in (".", "..") and ("/" in name or not name):
                    problems.append(Problem(rel, "entry name is not a plain name"))
                elif name in (".", ".."):
                    pass
                elif kind == DIRECTORY:
                    (directory / name).mkdir(exist_ok=True)
                    stack.append((spec, directory / name, f"{rel}/"))
                elif kind in (REGULAR, HARDLINK):
                    if kind == HARDLINK:
                        fh.seek(spec)
                        tnext, _tspec, length, _ = struct.unpack(">IIII", fh.read(16))
                        if tnext & 7 != REGULAR:
                            offset = nxt & ~15
                            continue
                        _, data = _name_at(fh, spec + 16)
                        nxt = (nxt & ~15) | (tnext & 8)
                    reason = budget.file_fits(length)
                    if reason:
                        problems.append(Problem(rel, reason))
                    elif data + length > size:
                        problems.append(Problem(rel, "file data runs past the end of the image"))
                    else:
                        fh.seek(data)
                        write_stream(fh, directory / name, length, budget, 0o755 if nxt & 8 else 0o644)
                offset = nxt & ~15
    return problems


EXTRACTORS = {"romfs": _guarded(parse_romfs)}
