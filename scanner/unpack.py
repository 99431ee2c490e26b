"""Safe recursive unpacking of a package into a scratch directory.

Archives are read entry by entry and streamed to disk in bounded chunks. Only
regular files and directories are ever created, every file with mode 0o644 and
every directory 0o755, and only under the scratch root: an entry whose name
climbs out (``..``, absolute paths), a link, a device or a fifo is never
created. Such an entry, a limit that is hit, or a corrupt archive becomes an
``unscanned`` finding naming what was not examined, and unpacking goes on with
the rest wherever that is safe.

Disk layout: each opened archive gets its own flat directory ``scratch/cNNNNNN``,
so nesting depth never lengthens paths on disk. The location of a member is the
readable path through its containers (``pkg.zip!/lib/x.jar!/META-INF/...``).
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import lzma
import os
import stat
import struct
import tarfile
import time
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Callable

from scanner import identify
from scanner.model import NEST, Finding, Limits, Progress

CHUNK = 1024 * 1024
#: How much of a file's start a :class:`Member` carries (enough to tell an executable).
HEAD_BYTES = 8
#: How much of a file's start and end the unpacker keeps while writing it, for
#: format detection (:func:`scanner.formats.detect`) without reading it again.
_DETECT_HEAD = 64 * 1024
_DETECT_TAIL = 512
#: The expansion ratio is only judged once an archive has produced this much:
#: a tiny archive of a few kilobytes of zeros is no bomb.
RATIO_FLOOR = 1024 * 1024
#: Runs of zeros this long (and aligned) are left as holes in the file written, and
#: cost no disk: empty blocks of a file-system or disk image are not data.
HOLE = 4096
_ZERO_CHUNK = bytes(CHUNK)
#: How much of the data after a tar archive's last readable header is inspected.
TAIL_PROBE = 64 * 1024 * 1024
#: The longest link target read from a zip entry.
LINK_MAX = 4096

# What a damaged or hostile stream raises while it is read.
READ_ERRORS = (
    tarfile.TarError,
    zipfile.BadZipFile,
    zlib.error,
    lzma.LZMAError,
    EOFError,
    OSError,
    ValueError,
    NotImplementedError,
    RuntimeError,
)


@dataclass(frozen=True)
class Member:
    """One regular file found in the package (or the package itself)."""

    path: Path  # the file on disk; under the scratch root except for the package itself
    location: str  # "pkg.tar.gz!/dir/lib/x.jar!/META-INF/maven/g/a/pom.properties"
    size: int
    depth: int  # 0 for the package, 1 for its members, 2 inside a nested archive...
    container: bool  # True when this file was opened as an archive (its members follow)
    copy_of: str = ""  # location of an earlier member with the same content (not rescanned)
    #: The file's first bytes (:data:`HEAD_BYTES`, fewer for a shorter file) when the
    #: unpacker had them in hand while writing it; None otherwise.
    head: bytes | None = field(default=None, repr=False, compare=False)
    #: What the file was found to be: a kind told by :func:`scanner.identify.sniff` or a
    #: format told by :func:`scanner.formats.detect`; None for nothing known.
    kind: str | None = field(default=None, compare=False)
    #: The back end that opened it ("zip", "tar", "gzip", "squashfs", "carve", ...), or "".
    opened: str = field(default="", compare=False)
    #: Why it was not opened, when it was not: "leaf", "copy", "depth", "unsupported",
    #: "time", "stopped", "paired" (see :mod:`scanner.inventory`).
    not_opened: str = field(default="", compare=False)


#: The back end of each kind the unpacker opens itself, as the inventory names it.
BACK_ENDS = {
    "zip": "zip", "tar": "tar", "tar.gz": "tar", "tar.bz2": "tar", "tar.xz": "tar",
    "gz": "gzip", "bz2": "bzip2", "xz": "xz",
}


@dataclass
class Unpacked:
    root: Path
    members: list[Member] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    images: list = field(default_factory=list)  # scanner.nested.Image, one per container image
    #: location -> sha256 of every non-empty file written (the package itself aside), so a
    #: finding can be bound to the bytes it is about (:func:`scanner.nested.bind_content`)
    contents: dict[str, bytes] = field(default_factory=dict)


def unpack(
    package: Path,
    scratch: Path,
    limits: Limits,
    *,
    name: str,
    progress: Progress | None = None,
) -> Unpacked:
    """Unpack ``package`` (named ``name`` by the seller) recursively under ``scratch``.

    Every regular file is listed in ``members``, the package first and each
    container followed by its own members; everything that could not be
    examined is in ``findings``.
    """
    result = Unpacked(root=Path(scratch))
    images = result.images
    for item in iter_unpack(
        package, scratch, limits, name=name, progress=progress, images=images,
        contents=result.contents,
    ):
        if isinstance(item, Member):
            result.members.append(item)
        else:
            result.findings.append(item)
    return result


def iter_unpack(
    package: Path,
    scratch: Path,
    limits: Limits,
    *,
    name: str,
    progress: Progress | None = None,
    images: list | None = None,
    covered: set[str] | None = None,
    memory_dir: Path | None = None,
    contents: dict[str, bytes] | None = None,
    skipped: Skipped | None = None,
) -> Iterator[Member | Finding]:
    """Like :func:`unpack`, yielding each member as soon as it is on disk.

    ``memory_dir``, a directory on a memory file system (tmpfs), takes the
    small files (up to :data:`SMALL_FILE`) while it has room: creating and
    removing many small files there costs a fraction of what it costs on a
    disk file system. Everything else goes under ``scratch``.

    Container images found on the way are appended to ``images``. The location
    of each container whose every byte went into its members (a tar archive,
    compressed or not, read to its end with no finding on the way) is added to
    ``covered`` once its last member has been yielded: scanning its members
    scans all of it.

    ``skipped`` is told of each entry that was never written out (encrypted, a device,
    a name refused, over a limit before it was read): its location, declared size (or
    None), why (a short code) and the finding's summary.
    """
    unpacker = _Unpacker(Path(package), Path(scratch), limits, progress, images, covered, contents)
    unpacker.skipped = skipped
    if memory_dir is not None:
        unpacker.memory = _MemoryDir(Path(memory_dir))
    yield from unpacker.run(name)


#: Told of an entry never written out: (location, declared size or None, code, summary).
Skipped = Callable[[str, "int | None", str, str], None]


def finding_id(location: str, code: str) -> str:
    """The stable fingerprint of an unscanned finding."""
    return hashlib.sha256(f"unscanned|{location}|{code}".encode()).hexdigest()[:32]


def unscanned(location: str, code: str, summary: str) -> Finding:
    return Finding(
        id=finding_id(location, code),
        type="unscanned",
        location=location,
        blocking=True,
        engine="unpack",
        summary=summary,
    )


class _Stop(Exception):
    """A limit was crossed while a file was being written."""

    def __init__(self, scope: str, finding: Finding):
        super().__init__(finding.summary)
        self.scope = scope  # "file", "box" (this archive) or "all"
        self.finding = finding


class _Corrupt(Exception):
    """The archive's data could not be read."""


@dataclass
class _Box:
    """An archive being opened."""

    location: str
    depth: int  # the depth of the archive itself; its members are one deeper
    size: int  # bytes on disk, for the expansion ratio
    dir: Path
    out: int = 0
    stopped: bool = False
    findings: int = 0  # findings yielded while it was open, its nested containers' included
    ended: bool = False  # its data was read to the end


class _Unpacker:
    def __init__(
        self,
        package: Path,
        scratch: Path,
        limits: Limits,
        progress: Progress | None,
        images: list | None = None,
        covered: set[str] | None = None,
        contents: dict[str, bytes] | None = None,
    ):
        from scanner.nested import Nested  # it builds on this module

        self.covered = covered
        self.memory: _MemoryDir | None = None  # where small files go, when set
        self.dirs: set[Path] = set()  # directories made for entries (never removed while unpacking)
        self.chmod = not _umask_keeps_644()  # read once: files need no chmod under umask 022

        self.package = package
        self.scratch = scratch
        self.limits = limits
        self.progress = progress
        self.package_size = package.stat().st_size
        self.total = 0  # bytes of data written (holes aside), for the disk and ratio limits
        self.inflated = 0  # bytes produced, zeros included, for the work limit
        self.dense = 0  # bytes written that are neither zeros nor erased flash: the ratio's
        self.count = 0
        self.boxes = 0
        self.spills = 0
        self.stopped = False
        self.seen: set[str] = set()
        self.last_progress = 0.0
        self.nested = Nested(self, images, contents)
        self.skipped: Skipped | None = None

    # -- the tree ---------------------------------------------------------------

    def run(self, name: str) -> Iterator[Member | Finding]:
        self.scratch.mkdir(mode=0o755, parents=True, exist_ok=True)
        kind = identify.sniff(self.package)
        opens = kind in identify.ARCHIVES
        yield Member(
            self.package, name, self.package_size, 0, opens, kind=kind,
            opened=BACK_ENDS.get(kind, ""), not_opened=_why_not(kind, opens),
        )
        if opens:
            yield from self._open(self.package, name, kind, 0)
            yield from self.nested.finish()
        elif kind in identify.UNSUPPORTED:
            yield from self._finding(name, "unsupported", _unsupported(kind))
        self._report(self.package_size, force=True)

    def _open(self, path: Path, location: str, kind: str, depth: int) -> Iterator:
        self.boxes += 1
        box = _Box(location, depth, path.stat().st_size, self.scratch / f"c{self.boxes:06d}")
        _mkdir(box.dir)
        if kind == "zip":
            items = self._zip(path, box)
        elif kind.startswith("tar"):
            items = self._tar(path, box)
        else:
            items = self._single(path, box, kind)
        for item in items:
            if isinstance(item, Finding):
                box.findings += 1
            yield item

    def _nested(
        self, path: Path, location: str, depth: int, size: int, digest: bytes | None = None,
        head: bytes | None = None, tail: bytes | None = None,
    ) -> Iterator:
        """Yield a freshly written member, then its own members if it is an archive.

        ``digest``, ``head`` and ``tail``: the file's sha256, first 64 KiB and last
        512 bytes, when they were at hand as it was written.
        """
        kind = identify.sniff(path, head) if size else None
        claimed = self.nested.claim(path, location, kind, depth, size, digest, head, tail)
        if claimed is not None:  # file systems, images, copies, or out of time
            yield from claimed
            return
        opens = kind in identify.ARCHIVES
        why = ""
        if opens and depth + 1 > self.limits.max_depth:
            opens, why = False, "depth"
            yield from self._finding(
                location,
                "depth",
                f"nesting deeper than {self.limits.max_depth} levels: {location} was not opened",
            )
        elif kind in identify.UNSUPPORTED:
            yield from self._finding(location, "unsupported", _unsupported(kind))
        elif opens and self.stopped:
            why = "stopped"
        found = kind or self.nested.format or (None if size else "empty")
        yield Member(
            path, location, size, depth, opens, head=None if head is None else head[:HEAD_BYTES],
            kind=found, opened=BACK_ENDS.get(kind, "") if opens and not why else "",
            not_opened=why or _why_not(kind, opens, self.nested.format),
        )
        if opens and not self.stopped:
            yield from self._open(path, location, kind, depth)

    # -- zip --------------------------------------------------------------------

    def _zip(self, path: Path, box: _Box) -> Iterator:
        try:
            zf = zipfile.ZipFile(path)
        except READ_ERRORS as e:
            yield from self._finding(box.location, "corrupt", f"archive is corrupt: {e}")
            yield from self._zip_salvage(path, box)
            return
        stored: set[int] = set()  # ids of the entries whose data went into a member
        with zf:
            for info in zf.infolist():
                if box.stopped or self.stopped:
                    break
                if info.is_dir():
                    continue
                self._report(info.header_offset, top=box.depth == 0)
                yield from self._zip_entry(zf, info, box, stored)
            clean = not (box.findings or box.stopped or self.stopped)
            if self.covered is not None and clean and _zip_covered(path, zf, stored):
                self.covered.add(box.location)

    def _zip_entry(
        self, zf: zipfile.ZipFile, info: zipfile.ZipInfo, box: _Box, stored: set[int]
    ) -> Iterator:
        raw = _zip_name(info)
        mode = info.external_attr >> 16 if info.create_system == 3 else 0
        if not (yield from self._admit(box, raw, backslash=True)):
            return
        parts = _parts(raw, backslash=True)
        location = _join(box.location, parts)
        if stat.S_ISDIR(mode):
            return
        if stat.S_ISLNK(mode):
            try:
                with zf.open(info) as f:
                    target = f.read(LINK_MAX).decode("utf-8", "replace")
            except READ_ERRORS as e:
                yield from self._finding(location, "corrupt", f"archive is corrupt: {e}")
                return
            yield from self._link(box, parts, target, hard=False)
            return
        if mode and stat.S_IFMT(mode) not in (0, stat.S_IFREG):
            yield from self._special(location, mode, info.file_size)
            return
        if info.flag_bits & 0x1:
            summary = f"encrypted entry was not examined: {location}"
            self._skip(location, info.file_size, "encrypted", summary)
            yield from self._finding(location, "encrypted", summary)
            return
        if not (yield from self._precheck(box, location, info.file_size)):
            return
        try:
            src = zf.open(info)
        except READ_ERRORS as e:
            self._skip(location, info.file_size, "corrupt", f"archive is corrupt: {e}")
            yield from self._finding(location, "corrupt", f"archive is corrupt: {e}")
            return
        stored.add(id(info))
        with src:
            yield from self._store(box, parts, location, src)

    def _zip_salvage(self, path: Path, box: _Box) -> Iterator:
        """Read what the local headers of a zip with a broken directory still hold."""
        with open(path, "rb") as f:
            for raw, size, src in _local_entries(f):
                if box.stopped or self.stopped:
                    break
                if raw.endswith("/"):
                    continue
                if not (yield from self._admit(box, raw, backslash=True)):
                    continue
                parts = _parts(raw, backslash=True)
                location = _join(box.location, parts)
                if size is not None and not (yield from self._precheck(box, location, size)):
                    break
                yield from self._store(box, parts, location, src)

    # -- tar --------------------------------------------------------------------

    def _tar(self, path: Path, box: _Box) -> Iterator:
        with open(path, "rb") as raw:
            counted = _Counting(raw)
            gzipped = raw.peek(2)[:2] == GZIP_MAGIC
            try:
                # gzip is inflated here, in bounded pieces: tarfile's own stream reader
                # copies the whole output of each read, slow on long runs of zeros
                tf = tarfile.open(  # noqa: SIM115 (closed below)
                    fileobj=_Gunzip(counted) if gzipped else counted,
                    mode="r|" if gzipped else "r|*",
                    bufsize=CHUNK,
                )
            except READ_ERRORS as e:
                yield from self._finding(box.location, "corrupt", f"archive is corrupt: {e}")
                return
            with tf:
                while not (box.stopped or self.stopped):
                    try:
                        info = tf.next()
                    except READ_ERRORS as e:
                        yield from self._finding(
                            box.location, "corrupt", f"archive is corrupt: {e}"
                        )
                        return
                    if info is None:
                        yield from self._tar_tail(tf, box)
                        self._cover(tf, box)
                        return
                    tf.members.clear()  # bounded memory: links are never followed
                    self._report(counted.pos, top=box.depth == 0)
                    yield from self._tar_entry(tf, info, box)
                    if not (box.stopped or self.stopped):
                        yield from self._tar_skip(tf, box)

    def _tar_entry(self, tf: tarfile.TarFile, info: tarfile.TarInfo, box: _Box) -> Iterator:
        if info.isdir():
            return
        raw = info.name
        if not (yield from self._admit(box, raw, backslash=False)):
            return
        parts = _parts(raw, backslash=False)
        location = _join(box.location, parts)
        if info.issym() or info.islnk():
            yield from self._link(box, parts, info.linkname, hard=info.islnk())
            return
        if info.ischr() or info.isblk() or info.isfifo():
            yield from self._special(location, _tar_mode(info), None)
            return
        if not (yield from self._precheck(box, location, info.size)):
            return
        try:
            src = tf.extractfile(info)
        except READ_ERRORS as e:
            yield from self._finding(location, "corrupt", f"archive is corrupt: {e}")
            return
        if src is None:
            return
        yield from self._store(box, parts, location, src)

    def _tar_skip(self, tf: tarfile.TarFile, box: _Box) -> Iterator:
        """Move to the next header ourselves, past data that was not read.

        tarfile would spin for hours over a header that declares terabytes of
        data the archive does not hold; here the end of the data stops it, and so
        does a gap larger than the archive could honestly expand to.
        """
        gap = tf.offset - tf.fileobj.tell()
        if gap <= 0:
            return
        if gap > max(self.limits.max_ratio * box.size, RATIO_FLOOR):
            box.stopped = True
            yield from self._finding(
                box.location,
                "ratio",
                f"expansion ratio over {self.limits.max_ratio:g}: the rest of {box.location}"
                " was not examined",
            )
            return
        try:
            while gap > 0:
                chunk = tf.fileobj.read(min(CHUNK, gap))
                if not chunk:
                    raise EOFError("unexpected end of data")
                gap -= len(chunk)
        except READ_ERRORS as e:
            box.stopped = True
            yield from self._finding(box.location, "corrupt", f"archive is corrupt: {e}")

    def _tar_tail(self, tf: tarfile.TarFile, box: _Box) -> Iterator:
        """tarfile ends quietly at a bad header; anything but zeros after it is unread data."""
        left = TAIL_PROBE
        try:
            while left > 0:
                chunk = tf.fileobj.read(min(CHUNK, left))
                if not chunk:
                    box.ended = True
                    return
                if chunk.strip(b"\0"):
                    yield from self._finding(
                        box.location,
                        "corrupt",
                        f"archive is corrupt: unreadable data after its last good entry;"
                        f" the rest of {box.location} was not examined",
                    )
                    return
                left -= len(chunk)
        except READ_ERRORS as e:
            yield from self._finding(box.location, "corrupt", f"archive is corrupt: {e}")

    def _cover(self, tf: tarfile.TarFile, box: _Box) -> None:
        """Note a tar archive whose every byte went into members Assay wrote out."""
        clean = box.ended and not (box.findings or box.stopped or self.stopped)
        if self.covered is not None and clean and _consumed(tf.fileobj):
            self.covered.add(box.location)

    # -- single-file compressors -------------------------------------------------

    def _single(self, path: Path, box: _Box, kind: str) -> Iterator:
        stem = PurePosixPath(box.location.rsplit(NEST, 1)[-1]).name
        for suffix in (".gz", ".bz2", ".xz", ".z", ".Z"):
            if stem.endswith(suffix) and len(stem) > len(suffix):
                stem = stem[: -len(suffix)]
                break
        else:
            stem = f"{stem}.out"
        opener = {"gz": gzip.open, "bz2": bz2.open, "xz": lzma.open}[kind]
        parts = [_clean(stem)]
        if not (yield from self._admit(box, stem, backslash=False)):
            return
        with opener(path, "rb") as src:
            yield from self._store(box, parts, _join(box.location, parts), src)

    # -- entries ------------------------------------------------------------------

    def _admit(self, box: _Box, raw: str, *, backslash: bool):
        """Count an entry and refuse a name that leaves the package root."""
        self.count += 1
        if self.count > self.limits.max_members:
            self.stopped = True
            yield from self._finding(
                box.location,
                "members",
                f"more than {self.limits.max_members} members: the rest of {box.location}"
                " and anything after it was not examined",
            )
            return False
        problem = _name_problem(raw, backslash)
        if problem:
            code, summary = problem
            self._skip(box.location + NEST + _text(raw), None, code, summary)
            yield from self._finding(box.location + NEST + _text(raw), code, summary)
            return False
        return True

    def _link(self, box: _Box, parts: list[str], target: str, *, hard: bool) -> Iterator:
        """Links are never created; one that points out of the package is reported."""
        location = _join(box.location, parts)
        if hard:
            inside = _name_problem(target, backslash=False) is None
        else:
            inside = (
                not target.startswith("/")
                and ".."
                not in PurePosixPath(os.path.normpath("/".join(parts[:-1] + [target]))).parts
            )
        if not inside:
            yield from self._finding(
                location,
                "link",
                f"link points outside the package: {_text('/'.join(parts))} -> {_text(target)}",
            )

    def _special(self, location: str, mode: int, size: int | None) -> Iterator:
        what = (
            "character device"
            if stat.S_ISCHR(mode)
            else "block device"
            if stat.S_ISBLK(mode)
            else "fifo"
            if stat.S_ISFIFO(mode)
            else "socket"
            if stat.S_ISSOCK(mode)
            else "special file"
        )
        summary = f"{what} was not extracted: {location}"
        self._skip(location, size, "special", summary)
        yield from self._finding(location, "special", summary)

    def _precheck(self, box: _Box, location: str, declared: int):
        """Refuse, before writing anything, an entry whose declared size breaks a limit.

        Only the limits on its size and on the bytes inflated: how much of it is data,
        and so what it costs on disk, is known only as it is written (zeros are holes).
        """
        try:
            self._check(box, location, 0, declared, disk=0)
        except _Stop as stop:
            self._skip(location, declared, "limit", stop.finding.summary)
            yield from self._stop(box, stop)
            return False
        return True

    def _skip(self, location: str, size: int | None, code: str, summary: str) -> None:
        """Tell ``skipped`` of an entry that is not written out."""
        if self.skipped is not None:
            self.skipped(location, size, code, summary)

    def _store(self, box: _Box, parts: list[str], location: str, src: BinaryIO) -> Iterator:
        """Stream one entry to disk, then yield it (and its members if it is an archive)."""
        ahead: list[bytes] = []  # read before the file was made
        path = fd = None
        in_memory = False  # the whole file is in ``ahead`` and written to the memory dir
        if self.memory is not None and not parts[-1].endswith(PAIRED_SUFFIXES):
            try:
                ahead.append(src.read(CHUNK))
                if len(ahead[0]) <= SMALL_FILE:
                    ahead.append(src.read(CHUNK))
            except READ_ERRORS as e:
                ahead.append(e)  # raised again where a read error is reported
            else:
                if len(ahead) == 2 and not ahead[1] and self._fits(box, location, len(ahead[0])):
                    path, fd = self.memory.create(parts[-1], ahead[0], self.chmod)
                    in_memory = fd is not None
        if fd is None:
            path, fd = self._create(box.dir, parts)
        written = 0
        holes = False
        problem = None
        digest = hashlib.sha256()  # for the copy check, while the bytes are at hand
        head = tail = b""
        try:
            while True:
                try:
                    chunk = _next_chunk(ahead, src)
                except READ_ERRORS as e:
                    problem = _Corrupt(str(e))
                    break
                if not chunk:
                    break
                runs, disk, dense = _layout(chunk)
                if in_memory:
                    runs, disk = None, len(chunk)
                try:
                    self._check(box, location, written, len(chunk), disk, dense)
                except _Stop as stop:
                    problem = stop
                    break
                if runs is None and not in_memory:
                    _pwrite_all(fd, chunk, written)
                elif runs is not None:
                    for at, run in runs:
                        _pwrite_all(fd, run, written + at)
                    holes = holes or disk < len(chunk)
                digest.update(chunk)
                if not written:
                    head = chunk[:_DETECT_HEAD]
                elif len(head) < _DETECT_HEAD:
                    head += chunk[: _DETECT_HEAD - len(head)]
                tail = chunk[-_DETECT_TAIL:] if len(chunk) >= _DETECT_TAIL else (tail + chunk)[-_DETECT_TAIL:]
                written += len(chunk)
                box.out += dense
                self.total += disk
                self.dense += dense
                self.inflated += len(chunk)
            if holes:
                os.ftruncate(fd, written)  # a file that ends in a hole still has its size
        finally:
            os.close(fd)
        if isinstance(problem, _Corrupt):
            yield from self._finding(location, "corrupt", f"archive is corrupt: {problem}")
        elif problem is not None:
            yield from self._stop(box, problem)
        yield from self._nested(
            path, location, box.depth + 1, written, digest.digest(), head, tail
        )

    def _fits(self, box: _Box, location: str, size: int) -> bool:
        """Whether ``size`` more bytes keep within every limit (nothing is reported here)."""
        try:
            self._check(box, location, 0, size)
        except _Stop:
            return False
        return True

    def _check(
        self, box: _Box, location: str, written: int, more: int,
        disk: int | None = None, dense: int | None = None,
    ) -> None:
        """Raise _Stop when ``more`` bytes break a limit: ``disk`` of them take disk
        space (zeros are holes), ``dense`` of them are neither zeros nor erased flash
        (all of them, by default). Every byte counts against the bytes inflated; only
        disk bytes against the disk, and only dense bytes against the expansion ratio."""
        lim = self.limits
        disk = more if disk is None else disk
        dense = disk if dense is None else dense
        if self.inflated + more > lim.max_inflated_bytes:
            raise _Stop(
                "all",
                unscanned(
                    box.location,
                    "inflated-bytes",
                    f"more than {_size(lim.max_inflated_bytes)} inflated in total: the rest"
                    f" of {box.location} and anything after it was not examined",
                ),
            )
        if written + more > lim.max_file_bytes:
            raise _Stop(
                "file",
                unscanned(
                    location,
                    "file-size",
                    f"file larger than {_size(lim.max_file_bytes)}: {location} was not fully examined",
                ),
            )
        if self.total + disk > lim.max_total_bytes:
            raise _Stop(
                "all",
                unscanned(
                    box.location,
                    "total-bytes",
                    f"more than {_size(lim.max_total_bytes)} unpacked in total: the rest of"
                    f" {box.location} and anything after it was not examined",
                ),
            )
        out = box.out + dense
        if out > RATIO_FLOOR and out > lim.max_ratio * max(box.size, 1):
            raise _Stop(
                "box",
                unscanned(
                    box.location,
                    "ratio",
                    f"expansion ratio over {lim.max_ratio:g}: the rest of {box.location}"
                    " was not examined",
                ),
            )
        total = self.dense + dense
        if total > RATIO_FLOOR and total > lim.max_ratio * max(self.package_size, 1):
            raise _Stop(
                "all",
                unscanned(
                    box.location,
                    "ratio-total",
                    f"package expands more than {lim.max_ratio:g} times: the rest of"
                    f" {box.location} and anything after it was not examined",
                ),
            )

    def _stop(self, box: _Box, stop: _Stop) -> Iterator:
        if stop.scope == "box":
            box.stopped = True
        elif stop.scope == "all":
            self.stopped = True
        yield from self._emit(stop.finding)

    def _finding(self, location: str, code: str, summary: str) -> Iterator:
        yield from self._emit(unscanned(location, code, summary))

    def _emit(self, finding: Finding) -> Iterator:
        if finding.id not in self.seen:
            self.seen.add(finding.id)
            yield finding

    def _create(self, base: Path, parts: list[str]) -> tuple[Path, int]:
        """Create a new regular file for an entry under ``base``; never reuse one.

        A duplicate entry, a file standing where the name needs a directory, or a
        name the file system refuses goes to a numbered file under ``spill/``;
        its location still names the entry.
        """
        path = base.joinpath(*parts)
        try:
            if path.parent not in self.dirs:  # most entries share their directory
                _mkdir(path.parent, parents=True)
                self.dirs.add(path.parent)
            return path, _open_new(path, self.chmod)
        except (FileExistsError, NotADirectoryError, IsADirectoryError):
            pass
        except OSError as e:
            if e.errno not in _NAME_ERRNOS:
                raise
        self.spills += 1
        spill = self.scratch / "spill"
        if not spill.is_dir():
            _mkdir(spill)
        path = spill / str(self.spills)
        return path, _open_new(path, self.chmod)

    def _report(self, done: int, *, top: bool = True, force: bool = False) -> None:
        if self.progress is None or not top:
            return
        now = time.monotonic()
        if force or now - self.last_progress >= 0.25:
            self.last_progress = now
            self.progress("unpack", min(done, self.package_size), self.package_size)


_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


#: Files up to this size may go to the memory directory (see :func:`iter_unpack`).
SMALL_FILE = 1024 * 1024
#: Halves of a block-based OTA partition, found by name beside each other
#: (:func:`scanner.formats.ota_partition`): always under the scratch tree, together.
PAIRED_SUFFIXES = (".transfer.list", ".new.dat", ".new.dat.br")


class _MemoryDir:
    """Small files on a memory file system, as long as it has room.

    Its free space is looked at every :attr:`CHECK` files: below a quarter of
    its size (or :attr:`RESERVE` bytes) no more files go there until space
    comes back. A write that fails there (full, or refused) goes to disk.
    """

    CHECK = 64
    RESERVE = 64 * 1024 * 1024

    def __init__(self, root: Path):
        self.root = root
        self.count = 0
        self.roomy = True

    def create(self, name: str, data: bytes, chmod: bool) -> tuple[Path | None, int | None]:
        """A new file named after ``name`` holding ``data``, or (None, None) to use the disk.

        The data is written here already; the caller writes nothing more to it.
        """
        self.count += 1
        if self.count % self.CHECK == 1:
            self.roomy = self._has_room()
        if not self.roomy:
            return None, None
        path = self.root / f"{self.count:x}-{name}"[:255]
        try:
            fd = _open_new(path, chmod)
        except OSError:
            return None, None
        try:
            _write_all(fd, data)
        except OSError:
            os.close(fd)
            unlink_quietly(path)
            self.roomy = False
            return None, None
        return path, fd

    def _has_room(self) -> bool:
        try:
            st = os.statvfs(self.root)
        except OSError:
            return False
        free, size = st.f_bavail * st.f_frsize, st.f_blocks * st.f_frsize
        return free > max(size // 4, self.RESERVE)


def _next_chunk(ahead: list, src: BinaryIO) -> bytes:
    """The next chunk of an entry: one read ahead of time first (or its error), then ``src``."""
    if not ahead:
        return src.read(CHUNK)
    chunk = ahead.pop(0)
    if isinstance(chunk, BaseException):
        raise chunk
    return chunk


def unlink_quietly(path: Path) -> None:
    """Remove a file; one already gone (or that cannot go) is no error."""
    try:
        os.unlink(path)
    except OSError:
        pass


def _layout(chunk: bytes) -> tuple[list[tuple[int, memoryview]] | None, int, int]:
    """How to write ``chunk``: (runs, disk, dense).

    ``runs``: (offset, bytes) of what to write, :data:`HOLE`-aligned blocks of zeros
    left as holes, or None to write it whole. ``disk``: the bytes that take disk space.
    ``dense``: the bytes that are neither zeros nor erased flash (0xFF), the only ones an
    expansion ratio judges: empty and erased blocks are what images are mostly made of.
    """
    if len(chunk) == CHUNK and chunk == _ZERO_CHUNK:  # the usual empty block, at memcmp speed
        return [], 0, 0
    zeros, erased = chunk.count(0), chunk.count(255)
    if zeros == len(chunk):
        return [], 0, 0
    if erased == len(chunk):
        return None, len(chunk), 0
    if zeros < len(chunk) // 4 and erased < len(chunk) // 4:
        return None, len(chunk), len(chunk)
    view, runs, start, disk, dense = memoryview(chunk), [], None, 0, 0
    for at in range(0, len(chunk), HOLE):
        end = min(at + HOLE, len(chunk))
        hole = end - at == HOLE and chunk.count(0, at, end) == HOLE
        if not hole:
            disk += end - at
            if chunk.count(255, at, end) != end - at:
                dense += end - at
        if hole and start is not None:
            runs.append((start, view[start:at]))
            start = None
        elif not hole and start is None:
            start = at
    if start is not None:
        runs.append((start, view[start:]))
    return runs, disk, dense


def _pwrite_all(fd: int, data, offset: int) -> None:
    view = memoryview(data)
    while view:
        done = os.pwrite(fd, view, offset)
        view, offset = view[done:], offset + done


def _write_all(fd: int, data: bytes) -> None:
    """Write all of ``data`` to ``fd`` (a file descriptor: no buffering layer per file)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _open_new(path: Path, chmod: bool = True) -> int:
    """A new regular file, mode 0o644 whatever the umask (the virus engine must read it).

    ``chmod=False`` when the umask is known to leave 0o644 whole (:func:`_umask_keeps_644`).
    """
    fd = os.open(path, _CREATE, 0o644)
    if chmod:
        os.fchmod(fd, 0o644)
    return fd


def _umask_keeps_644() -> bool:
    """Whether the process umask leaves mode 0o644 whole (read from /proc; False if unsure)."""
    try:
        with open("/proc/self/status", "rb") as f:
            for line in f:
                if line.startswith(b"Umask:"):
                    return int(line.split()[1], 8) & 0o644 == 0
    except (OSError, ValueError, IndexError):
        pass
    return False


def _mkdir(path: Path, *, parents: bool = False) -> None:
    """Create a directory (and its missing parents) with mode 0o755 whatever the umask."""
    missing = []
    while not path.is_dir():
        missing.append(path)
        if not parents:
            break
        path = path.parent
    for directory in reversed(missing):
        os.mkdir(directory, 0o755)
        os.chmod(directory, 0o755)


_NAME_ERRNOS = {36, 84, 22}  # ENAMETOOLONG, EILSEQ, EINVAL


# -- names ------------------------------------------------------------------------


def _zip_name(info: zipfile.ZipInfo) -> str:
    """The entry name as readable text: UTF-8 when it decodes so, else cp437."""
    name = info.filename
    if info.flag_bits & 0x800:
        return name
    raw = info.orig_filename.encode("cp437")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return info.orig_filename


def _name_problem(raw: str, backslash: bool) -> tuple[str, str] | None:
    name = raw.replace("\\", "/") if backslash else raw
    if name.startswith("/") or (len(name) > 1 and name[1] == ":" and name[0].isalpha()):
        return "absolute", f"absolute path refused: {_text(raw)}"
    if ".." in name.split("/"):
        return "traversal", f"path escapes the package root: {_text(raw)}"
    if "\0" in name:
        return "name", f"entry name holds a NUL byte: {_text(raw)}"
    if not _parts(raw, backslash):
        return "name", f"entry has an empty name: {_text(raw)!r}"
    return None


def _parts(raw: str, backslash: bool) -> list[str]:
    name = raw.replace("\\", "/") if backslash else raw
    return [_clean(p) for p in name.split("/") if p not in ("", ".")]


def _clean(part: str) -> str:
    return _text(part)


def _text(name: str) -> str:
    """Readable text for a name: undecodable bytes as \\xNN, control characters escaped."""
    if name.isascii() and name.isprintable():  # nearly every name
        return name
    if any("\udc80" <= c <= "\udcff" for c in name):
        name = name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    if name.isprintable():
        return name
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in name)


def _join(location: str, parts: list[str]) -> str:
    return location + NEST + "/".join(parts)


def _tar_mode(info: tarfile.TarInfo) -> int:
    kinds = {
        tarfile.CHRTYPE: stat.S_IFCHR,
        tarfile.BLKTYPE: stat.S_IFBLK,
        tarfile.FIFOTYPE: stat.S_IFIFO,
    }
    return kinds.get(info.type, 0) | (info.mode & 0o7777)


def _size(n: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:g} {unit}" if unit == "bytes" else f"{n:.4g} {unit}"
        n /= 1024
    return str(n)


def _why_not(kind: str | None, opens: bool, fmt: str | None = None) -> str:
    """Why a file the unpacker lists itself is not opened ("" when it is)."""
    if opens:
        return ""
    if kind in identify.UNSUPPORTED or fmt is not None:
        return "unsupported"
    return "leaf"


def _unsupported(kind: str) -> str:
    return f"{identify.describe(kind)} cannot be opened: its content was not examined"


# -- streams ---------------------------------------------------------------------


def _zip_covered(path: Path, zf: zipfile.ZipFile, stored: set[int]) -> bool:
    """True when every byte of a zip is a header, or data of an entry written out whole.

    Entries lie back to back from offset 0 (local header, data, data descriptor),
    the central directory follows the last one directly, and the end records
    finish the file: no data before, between or after, no overlapping entries,
    no archive or entry comments. Any doubt answers False: the zip is then
    scanned whole.
    """
    if zf.comment:
        return False
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            return _zip_layout(f, size, zf, stored)
    except (OSError, struct.error, ValueError):
        return False


def _zip_layout(f: BinaryIO, size: int, zf: zipfile.ZipFile, stored: set[int]) -> bool:
    def read(at: int, n: int) -> bytes:
        f.seek(at)
        return f.read(n)

    cd_end = size - 22
    eocd = read(cd_end, 22) if cd_end >= 0 else b""
    if len(eocd) != 22 or eocd[:4] != b"PK\x05\x06":
        return False
    _, _, _, n_disk, n, size_cd, offset_cd, comment = struct.unpack("<4s4H2LH", eocd)
    if comment:
        return False
    if 0xFFFFFFFF in (size_cd, offset_cd) or 0xFFFF in (n, n_disk):
        locator = read(cd_end - 20, 20)  # zip64: its locator, and its record before that
        if len(locator) != 20 or locator[:4] != b"PK\x06\x07":
            return False
        record_at = struct.unpack_from("<Q", locator, 8)[0]
        record = read(record_at, 56)
        if len(record) != 56 or record[:4] != b"PK\x06\x06":
            return False
        if record_at + 12 + struct.unpack_from("<Q", record, 4)[0] != cd_end - 20:
            return False
        size_cd, offset_cd = struct.unpack_from("<QQ", record, 40)
        cd_end = record_at
    if offset_cd + size_cd != cd_end or offset_cd != zf.start_dir:
        return False
    infos = sorted(zf.infolist(), key=lambda i: i.header_offset)
    at = 0
    for k, info in enumerate(infos):
        if info.header_offset != at or info.comment:
            return False
        if id(info) not in stored and (info.compress_size or info.file_size):
            return False
        head = read(at, 30)
        if len(head) != 30 or head[:4] != b"PK\x03\x04":
            return False
        names, extra = struct.unpack_from("<HH", head, 26)
        at += 30 + names + extra + info.compress_size
        if info.flag_bits & 0x8:  # a data descriptor: CRC and sizes, 32 or 64 bits
            if read(at, 4) == b"PK\x07\x08":
                at += 4
            following = infos[k + 1].header_offset if k + 1 < len(infos) else offset_cd
            if following not in (at + 12, at + 20):
                return False
            at = following
    return at == offset_cd

#: Bytes a compressed stream may hold after its compressed data (gzip: CRC and size).
_TRAILERS = {"gz": 8, "bz2": 0, "xz": 0}


def _consumed(stream) -> bool:
    """True when a tarfile stream read its file to the end and nothing followed the data.

    Data after a compressed stream (appended bytes, a second gzip member) is
    read by nobody, so such an archive is not covered. Anything unexpected
    about the stream answers False: the archive is then scanned whole.
    """
    comptype = getattr(stream, "comptype", None)
    if getattr(stream, "buf", None) != b"" or getattr(stream, "dbuf", b"") != b"":
        return False
    if comptype == "tar":
        inner = getattr(stream, "fileobj", None)
        return inner.consumed() if isinstance(inner, _Gunzip) else True
    decompressor = getattr(stream, "cmp", None)
    trailer = _TRAILERS.get(comptype)
    if trailer is None or not getattr(decompressor, "eof", False):
        return False
    return len(decompressor.unused_data) == trailer


class _Counting:
    """A read-only file wrapper that knows how far it has read (for progress)."""

    def __init__(self, raw: BinaryIO):
        self.raw = raw
        self.pos = 0

    def read(self, n: int = -1) -> bytes:
        data = self.raw.read(n)
        self.pos += len(data)
        return data

    def tell(self) -> int:
        return self.pos


def _local_entries(f: BinaryIO) -> Iterator[tuple[str, int | None, BinaryIO]]:
    """Walk a zip's local file headers from the start, for stored and deflated entries."""

    while True:
        head = f.read(30)
        if len(head) < 30 or head[:4] != b"PK\x03\x04":
            return
        _, _, flags, method, _, _, _, csize, usize, nlen, xlen = struct.unpack(
            "<4sHHHHHIIIHH", head
        )
        raw_name = f.read(nlen)
        extra = f.read(xlen)
        if csize == 0xFFFFFFFF or usize == 0xFFFFFFFF:
            csize, usize = _zip64_sizes(extra, csize, usize)
        name = raw_name.decode("utf-8" if flags & 0x800 else "cp437", "replace")
        if not flags & 0x800:
            try:
                name = raw_name.decode("utf-8")
            except UnicodeDecodeError:
                pass
        if flags & 0x1 or method not in (0, 8):
            return  # cannot tell where an encrypted or unknown entry ends
        described = not flags & 0x8
        if method == 0:
            if not described:
                return
            src = _Bounded(f, csize)
        else:
            src = _Inflating(f, csize if described else None)
        yield name, usize if described else None, src
        try:
            src.finish()
        except READ_ERRORS:
            return
        if not described:
            tail = f.read(4)
            f.read(12 if tail == b"PK\x07\x08" else 8)


def _zip64_sizes(extra: bytes, csize: int, usize: int) -> tuple[int, int]:

    i = 0
    while i + 4 <= len(extra):
        tag, size = struct.unpack_from("<HH", extra, i)
        if tag == 1:
            body = extra[i + 4 : i + 4 + size]
            values = list(struct.unpack_from(f"<{len(body) // 8}Q", body))
            if usize == 0xFFFFFFFF and values:
                usize = values.pop(0)
            if csize == 0xFFFFFFFF and values:
                csize = values.pop(0)
            break
        i += 4 + size
    return csize, usize


class _Bounded:
    def __init__(self, f: BinaryIO, size: int):
        self.f = f
        self.left = size

    def read(self, n: int) -> bytes:
        data = self.f.read(min(n, self.left))
        self.left -= len(data)
        return data

    def finish(self) -> None:
        while self.left > 0 and self.read(CHUNK):
            pass


GZIP_MAGIC = b"\x1f\x8b"


class _Gunzip:
    """A gzip stream inflated as it is read, ``n`` bytes at most at a time.

    One member is read, as tarfile did, and its CRC and length are checked at its end;
    whatever follows it is left unread (and the archive is then not covered).
    """

    def __init__(self, f):
        self.f = f
        self.d = zlib.decompressobj(16 + zlib.MAX_WBITS)

    def read(self, n: int = CHUNK) -> bytes:
        n = n if n and n > 0 else CHUNK
        while not self.d.eof:
            data = self.d.unconsumed_tail or self.f.read(CHUNK)
            if not data:
                raise EOFError("compressed data ends early")
            out = self.d.decompress(data, n)
            if out:
                return out
        return b""

    def consumed(self) -> bool:
        """Whether the member ended and nothing at all followed it."""
        return self.d.eof and not self.d.unused_data and not self.f.read(1)


class _Inflating:
    """Raw deflate data read from a file up to its end (or ``size`` compressed bytes)."""

    def __init__(self, f: BinaryIO, size: int | None):
        self.f = f
        self.left = size
        self.d = zlib.decompressobj(-15)
        self.buffer = b""

    def read(self, n: int) -> bytes:
        while not self.d.eof:
            if self.d.unconsumed_tail:
                out = self.d.decompress(self.d.unconsumed_tail, n)
                if out:
                    return out
                continue
            want = CHUNK if self.left is None else min(CHUNK, self.left)
            data = self.f.read(want) if want else b""
            if not data:
                raise EOFError("compressed data ends early")
            if self.left is not None:
                self.left -= len(data)
            out = self.d.decompress(data, n)
            if out:
                return out
        return b""

    def finish(self) -> None:
        while not self.d.eof and self.read(CHUNK):
            pass
        if self.left is None:
            # The entry ends with the deflate stream: give back what was read past it.
            self.f.seek(-len(self.d.unused_data), os.SEEK_CUR)
        elif self.left:
            self.f.seek(self.left, os.SEEK_CUR)
