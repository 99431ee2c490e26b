"""YAFFS2 images, read in-process in every layout found on NAND flash.

A YAFFS2 image is a sequence of NAND pages ("chunks"). Each holds either an
object header (a file, directory, symbolic link, hard link or special file, its
name and its parent's object id) or a piece of a file's data. The tags that say
which object and which piece a page belongs to live in the page's spare (OOB)
area. What varies between images in the field:

* the page size: 512, 1024, 2048, 4096, 8192 or 16384 bytes, with a spare area of
  1/32 or 1/16 of it (224 bytes on many 4 KiB NANDs);
* where the tags sit in the spare area: at its start (what ``mkyaffs2image``
  writes) or after the two bad-block-marker bytes (the common large-page NAND
  layout, as dumped from a device);
* the byte order (``mkyaffs2image ... convert`` writes big-endian images);
* whether the spare areas are there at all (a dump taken without OOB data). Such an
  image is read in the order ``mkyaffs2image`` writes it: each object header
  followed by its file's data pages, object ids given out from 257 upwards.

:func:`probe` finds the layout from the first pages alone, by structure: page 0
must be a valid object header whose tags (when there are spare areas) say so. The
reader keeps, for each object, its newest header and, for each piece of a file,
its newest copy (highest sequence number, the later one on a tie), as YAFFS2
itself does on mount. It creates regular files and directories only: symbolic
links, hard links and special files carry no bytes of their own and are skipped.
A name that would leave the output, a file whose pieces are missing, an object
whose parent is unknown (placed under ``lost+found``) are reported.
"""

from __future__ import annotations

import os
import struct
import time
from dataclasses import dataclass
from pathlib import Path

from scanner.formats._common import Budget, LimitExceeded, Problem, file_mode, safe_relpath
from scanner.model import Limits

FILE, SYMLINK, DIRECTORY, HARDLINK, SPECIAL = 1, 2, 3, 4, 5
ROOT, LOST_FOUND, UNLINKED, DELETED = 1, 2, 3, 4
HEADER_SIZE = 512
NAME_MAX = 256
LOWEST_SEQUENCE = 0x00001000
HIGHEST_SEQUENCE = 0xEFFFFF00
EXTRA_HEADER = 0x80000000
OBJ_ID_MASK = 0x0FFFFFFF
FIRST_OBJECT_ID = 257  # what mkyaffs2image gives the first object it writes

PAGE_SIZES = (512, 1024, 2048, 4096, 8192, 16384)
#: How many pages the layout probe follows past page 0.
PROBE_PAGES = 8


@dataclass(frozen=True)
class Layout:
    page: int  # data bytes per page
    spare: int  # spare (OOB) bytes per page; 0 for an image without them
    tags_at: int  # offset of the tags in the spare area (2 after a bad-block marker)
    endian: str  # "<" or ">": object headers
    tags_endian: str = (
        ""  # the tags' byte order when it is not the headers' (some writers swap only these)
    )

    @property
    def tag_order(self) -> str:
        return self.tags_endian or self.endian

    @property
    def stride(self) -> int:
        return self.page + self.spare

    def describe(self) -> str:
        spare = f"{self.spare}-byte spare" if self.spare else "no spare area"
        marker = ", bad-block marker" if self.tags_at else ""
        order = "little" if self.endian == "<" else "big"
        if self.tags_endian and self.tags_endian != self.endian:
            order += " (tags " + ("little" if self.tags_endian == "<" else "big") + ")"
        return f"{self.page}-byte pages, {spare}{marker}, {order}-endian"


@dataclass
class Header:
    kind: int
    parent: int
    name: bytes
    size: int
    equivalent: int
    mode: int


@dataclass
class Tags:
    seq: int
    obj: int
    chunk: int
    nbytes: int

    @property
    def is_header(self) -> bool:
        return self.chunk == 0 or bool(self.chunk & EXTRA_HEADER)


def _spares(page: int) -> tuple[int, ...]:
    sizes = {page // 32, page // 16}
    if page == 4096:
        sizes.add(224)
    if page == 8192:
        sizes.add(448)
    return tuple(sorted(sizes))


def parse_header(data: bytes, endian: str) -> Header | None:
    """The object header at the start of ``data``, or None if it is not one."""
    if len(data) < HEADER_SIZE:
        return None
    kind, parent = struct.unpack_from(endian + "II", data, 0)
    if kind not in (FILE, SYMLINK, DIRECTORY, HARDLINK, SPECIAL) or not 0 < parent <= OBJ_ID_MASK:
        return None
    raw = data[10 : 10 + NAME_MAX]
    end = raw.find(b"\0")
    if end <= 0:
        return None
    name = raw[:end]
    if any(c < 0x20 or c == 0x7F for c in name) or b"/" in name:
        return None
    (mode,) = struct.unpack_from(endian + "I", data, 268)
    size_low, equivalent = struct.unpack_from(endian + "Ii", data, 292)
    (size_high,) = struct.unpack_from(endian + "I", data, 496)
    size = size_low
    if kind == FILE and size_high not in (0, 0xFFFFFFFF):
        size |= size_high << 32
    return Header(kind, parent, name, size if kind == FILE else 0, equivalent, mode)


def parse_tags(spare: bytes, layout: Layout) -> Tags | None:
    """The page's tags, or None for an erased or unreadable page."""
    raw = spare[layout.tags_at : layout.tags_at + 16]
    if len(raw) < 16 or raw == b"\xff" * 16:
        return None
    seq, obj, chunk, nbytes = struct.unpack(layout.tag_order + "IIII", raw)
    if not LOWEST_SEQUENCE <= seq < HIGHEST_SEQUENCE:
        return None
    tags = Tags(seq, obj, chunk, nbytes)
    if tags.is_header:
        tags.obj &= OBJ_ID_MASK
    elif nbytes > layout.page:
        return None
    if tags.obj == 0:
        return None
    return tags


def _erased(data: bytes) -> bool:
    return data.count(0xFF) == len(data)


def _score_with_spare(head: bytes, layout: Layout) -> int:
    """How many pages from the start read as valid under ``layout`` (0: page 0 does not)."""
    first = head[: layout.page]
    header = parse_header(first, layout.endian)
    tags = parse_tags(head[layout.page : layout.stride], layout)
    if header is None or tags is None or not tags.is_header or header.parent != ROOT:
        return 0
    if (
        layout.tags_at
        and head[layout.page : layout.page + layout.tags_at] != b"\xff" * layout.tags_at
    ):
        return 0  # a bad-block marker on the first block: not a block anyone wrote to
    if tags.chunk & EXTRA_HEADER and tags.chunk & 0x0FFFFFFF != header.parent:
        return 0
    score = 1
    for n in range(1, PROBE_PAGES + 1):
        page = head[n * layout.stride : (n + 1) * layout.stride]
        if len(page) < layout.stride:
            break
        spare = page[layout.page :]
        if _erased(spare):
            continue
        t = parse_tags(spare, layout)
        if t is None:
            return 0
        if t.is_header and parse_header(page[: layout.page], layout.endian) is None:
            return 0
        score += 1
    return score


def _walk_plain(head: bytes, page: int, endian: str, limit: int | None = None) -> int:
    """Pages that read as a header-then-data sequence in an image without spare areas."""
    n, score = 0, 0
    while limit is None or n < limit:
        data = head[n * page : (n + 1) * page]
        if len(data) < page:
            break
        n += 1
        if _erased(data):
            continue
        header = parse_header(data, endian)
        if header is None or not _erased(data[HEADER_SIZE:]):
            return 0 if score == 0 else -score
        score += 1
        if header.kind == FILE:
            n += -(-header.size // page)
    return score


def _other(endian: str) -> str:
    return ">" if endian == "<" else "<"


def probe(head: bytes, size: int | None = None) -> Layout | None:
    """The layout of a YAFFS2 image from its first bytes, or None if it is not one."""
    best: tuple[int, int, Layout] | None = None
    for endian in ("<", ">"):
        header = parse_header(head[:HEADER_SIZE], endian)
        if header is None or header.parent != ROOT:
            continue
        for page in PAGE_SIZES:
            for spare in _spares(page):
                for tags_at, tags_endian in (
                    (0, ""),
                    (2, ""),
                    (0, _other(endian)),
                    (2, _other(endian)),
                ):
                    layout = Layout(page, spare, tags_at, endian, tags_endian)
                    score = _score_with_spare(head, layout)
                    if score:
                        fits = 1 if size is not None and size % layout.stride == 0 else 0
                        key = (fits, score)
                        if best is None or key > best[:2]:
                            best = (*key, layout)
        if best is not None:
            return best[2]
        # No spare area: the header's page is padded with 0xFF to the page size, and the
        # next page is the next header (or this file's data). The largest page size that
        # reads consistently is the image's.
        for page in reversed(PAGE_SIZES):
            if len(head) < 2 * page and (size is None or size > len(head)):
                continue
            if not _erased(head[HEADER_SIZE:page]):
                continue
            if _walk_plain(head, page, endian, PROBE_PAGES) >= 2:
                return Layout(page, 0, 0, endian)
    return None


# --------------------------------------------------------------------------- reading


@dataclass
class _Object:
    seq: int
    order: int
    header: Header
    obj: int


def extract(fmt: str, path: Path, outdir: Path, limits: Limits, timeout: float) -> list[Problem]:
    with open(path, "rb") as fh:
        head = fh.read(2 * PROBE_PAGES * (16384 + 1024))
        size = fh.seek(0, 2)
        layout = probe(head, size)
        if layout is None:
            return [Problem("", "YAFFS2 image could not be read: no valid object header at page 0")]
        return _Reader(fh, size, layout, outdir, limits, timeout).run()


class _Reader:
    def __init__(self, fh, size: int, layout: Layout, outdir: Path, limits: Limits, timeout: float):
        self.fh = fh
        self.size = size
        self.layout = layout
        self.outdir = outdir
        self.limits = limits
        self.deadline = time.monotonic() + timeout
        self.timeout = timeout
        self.budget = Budget(limits)
        self.objects: dict[int, _Object] = {}
        # (object id, piece) -> (sequence number, page offset, bytes)
        self.chunks: dict[tuple[int, int], tuple[int, int, int]] = {}
        self.problems: list[Problem] = []
        self.unreadable = 0

    def run(self) -> list[Problem]:
        try:
            if self.layout.spare:
                self._index_tagged()
            else:
                self._index_plain()
            if not self.objects:
                return [
                    Problem("", f"YAFFS2 image ({self.layout.describe()}) holds no readable object")
                ]
            self._write()
        except LimitExceeded as exc:
            self.problems.append(Problem("", f"YAFFS2 image not read in full: {exc}"))
        except _Late:
            self.problems.append(
                Problem("", f"YAFFS2 image not read in full: timed out after {self.timeout:.0f} s")
            )
        if self.unreadable:
            self.problems.append(Problem(
                "",
                f"YAFFS2 image ({self.layout.describe()}): {self.unreadable} pages could not be read",
            ))  # fmt: skip
        return self.problems

    def _tick(self, n: int) -> None:
        if n % 4096 == 0 and time.monotonic() > self.deadline:
            raise _Late

    def _pages(self):
        stride = self.layout.stride
        self.fh.seek(0)
        n = 0
        while True:
            page = self.fh.read(stride)
            if len(page) < stride:
                if page and not _erased(page):
                    self.unreadable += 1
                return
            self._tick(n)
            yield n * stride, page
            n += 1

    def _index_tagged(self) -> None:
        layout = self.layout
        for n, (offset, page) in enumerate(self._pages()):
            spare = page[layout.page :]
            if _erased(spare):
                continue
            tags = parse_tags(spare, layout)
            if tags is None:
                self.unreadable += 1
                continue
            if tags.is_header:
                header = parse_header(page[: layout.page], layout.endian)
                if header is None:
                    self.unreadable += 1
                    continue
                self._keep_header(tags.obj, tags.seq, n, header)
            else:
                key = (tags.obj, tags.chunk)
                old = self.chunks.get(key)
                if old is None or tags.seq >= old[0]:
                    if old is None and len(self.chunks) >= self._max_chunks():
                        raise LimitExceeded(f"more than {self._max_chunks()} data pages")
                    self.chunks[key] = (tags.seq, offset, tags.nbytes)

    def _max_chunks(self) -> int:
        return max(1, self.limits.max_total_bytes // 64)

    def _keep_header(self, obj: int, seq: int, order: int, header: Header) -> None:
        old = self.objects.get(obj)
        if old is None or seq >= old.seq:
            if old is None and len(self.objects) >= self.limits.max_members:
                raise LimitExceeded(f"more than {self.limits.max_members} objects")
            self.objects[obj] = _Object(seq, order, header, obj)

    def _index_plain(self) -> None:
        """No tags: headers in write order, each file's data in the pages after it."""
        page_size = self.layout.page
        pending: tuple[int, int] | None = None  # (object id, pieces still to come)
        piece = 0
        obj_id = FIRST_OBJECT_ID
        for n, (offset, page) in enumerate(self._pages()):
            if pending is not None:
                obj, left = pending
                piece += 1
                nbytes = min(page_size, self.objects[obj].header.size - (piece - 1) * page_size)
                self.chunks[(obj, piece)] = (LOWEST_SEQUENCE, offset, nbytes)
                pending = (obj, left - 1) if left > 1 else None
                continue
            if _erased(page):
                continue
            header = parse_header(page, self.layout.endian)
            if header is None:
                self.unreadable += 1
                continue
            self._keep_header(obj_id, LOWEST_SEQUENCE, n, header)
            pieces = -(-header.size // page_size) if header.kind == FILE else 0
            if pieces:
                pending, piece = (obj_id, pieces), 0
            obj_id += 1

    # -- writing ----------------------------------------------------------------

    def _path(self, obj: _Object) -> str | None:
        """The object's path from the root, or None when it is deleted."""
        parts: list[str] = []
        seen = {obj.obj}
        current = obj
        while True:
            name = current.header.name.decode("utf-8", "surrogateescape")
            parts.append(name)
            parent = current.header.parent
            if parent in (UNLINKED, DELETED):
                return None
            if parent == ROOT:
                break
            nxt = self.objects.get(parent)
            if parent == LOST_FOUND and nxt is None:
                parts.append("lost+found")
                break
            if nxt is None or parent in seen or nxt.header.kind != DIRECTORY:
                parts.append(f"lost+found/{parent}")
                self.problems.append(Problem(
                    "/".join(reversed(parts[:-1])),
                    f"YAFFS2 object {obj.obj}: its directory (object {parent}) is not in the image; "
                    "placed under lost+found",
                ))  # fmt: skip
                break
            seen.add(parent)
            current = nxt
        return "/".join(reversed(parts))

    def _write(self) -> None:
        self.pieces: dict[int, list[tuple[int, int, int]]] = {}
        for (owner, piece), (_seq, offset, nbytes) in self.chunks.items():
            self.pieces.setdefault(owner, []).append((piece, offset, nbytes))
        ordered = sorted(self.objects.values(), key=lambda o: o.order)
        for obj in ordered:
            if obj.header.kind not in (FILE, DIRECTORY):
                continue  # links and special files carry no bytes of their own
            path = self._path(obj)
            if path is None:
                continue
            rel = safe_relpath(path)
            if rel is None:
                self.problems.append(
                    Problem(path, "YAFFS2 object name leaves the image; not extracted")
                )
                continue
            dest = self.outdir / rel
            try:
                if obj.header.kind == DIRECTORY:
                    dest.mkdir(parents=True, exist_ok=True)
                else:
                    self._write_file(obj, dest, rel)
            except (FileExistsError, NotADirectoryError):
                self.problems.append(
                    Problem(rel, "YAFFS2 image holds two objects at this path; one was skipped")
                )

    def _write_file(self, obj: _Object, dest: Path, rel: str) -> None:
        page_size = self.layout.page
        size = obj.header.size
        pieces = sorted(
            (piece, offset, nbytes)
            for piece, offset, nbytes in self.pieces.get(obj.obj, ())
            if 0 < piece and (piece - 1) * page_size < size
        )
        covered = sum(min(nbytes, size - (piece - 1) * page_size) for piece, _o, nbytes in pieces)
        reason = self.budget.file_fits(size)
        if reason:
            self.problems.append(Problem(rel, f"YAFFS2 file not extracted: {reason}"))
            return
        self.budget.take(size)
        dest.parent.mkdir(parents=True, exist_ok=True)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
        fd = os.open(dest, flags, 0o600)
        with os.fdopen(fd, "wb") as out:
            for piece, offset, nbytes in pieces:
                self.fh.seek(offset)
                data = self.fh.read(min(nbytes, page_size, size - (piece - 1) * page_size))
                out.seek((piece - 1) * page_size)
                out.write(data)
            out.truncate(size)
        os.chmod(dest, file_mode(obj.header.mode))
        if covered < size:
            self.problems.append(Problem(
                rel, f"YAFFS2 file read only in part: {size - covered} of its {size} bytes are not in the image"
            ))  # fmt: skip


class _Late(Exception):
    pass


EXTRACTORS = {"yaffs2": extract}
