"""Block-based (non-A/B) Android OTA: ``<name>.transfer.list`` + ``<name>.new.dat[.br]``.

A full block-based OTA zip carries each partition as two files side by side:
the transfer list (text: format version 1 to 4, the number of blocks written,
from version 2 the stash entries and blocks, then one command a line) and the
new data, every block the ``new`` commands place, in command order,
brotli-compressed (``.new.dat.br``) or not (``.new.dat``). The partition is
rebuilt as ``<name>.img`` (4096-byte blocks): ``new`` ranges are written from
the data as it is decompressed, ``zero`` and ``erase`` ranges stay holes. The
image's whole apparent size is counted against the limits before anything is
written.

An incremental OTA (``move``, ``bsdiff``, ``imgdiff``, ``stash``) patches the
device's current image, which the package does not carry: it is a problem, not
a guess. ``free`` and ``compute_hash_tree`` change no file content and are
passed over (the verity hash tree stays zeros).

The transfer list is the container: :func:`partition` tells the unpacker which
two files belong together, whichever of them it meets first.
"""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path

import brotli

from scanner.formats._common import CHUNK, Budget, LimitExceeded, Problem
from scanner.formats.detect import transfer_list_head
from scanner.formats.firmware import Damaged
from scanner.model import Limits

BLOCK = 4096
LIST_SUFFIX = ".transfer.list"
DATA_SUFFIXES = (".new.dat.br", ".new.dat")
#: A transfer list is text of a few hundred KB; anything far larger is not one.
MAX_LIST = 16 * 1024 * 1024
INCREMENTAL = frozenset({"move", "bsdiff", "imgdiff", "stash"})
PASSED_OVER = frozenset({"free"})


def partition(path: Path) -> tuple[Path | None, Path | None] | None:
    """The (transfer list, new data) of the partition ``path`` belongs to, or None.

    ``path`` is either file; the other is looked for beside it and is None while
    it is not there. The data is ``<name>.new.dat.br``, else ``<name>.new.dat``:
    None for the one of them that is not used, and for any other file.
    """
    path = Path(path)
    name = path.name
    if name.endswith(LIST_SUFFIX) and len(name) > len(LIST_SUFFIX):
        if not _is_listing(path):
            return None
        return path, _data_of(path.parent, name[: -len(LIST_SUFFIX)])
    for suffix in DATA_SUFFIXES:
        if name.endswith(suffix) and len(name) > len(suffix):
            stem = name[: -len(suffix)]
            if _data_of(path.parent, stem) != path:
                return None
            listing = path.parent / f"{stem}{LIST_SUFFIX}"
            return (listing if _is_listing(listing) else None), path
    return None


def _regular(path: Path) -> bool:
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


def _is_listing(path: Path) -> bool:
    if not _regular(path):
        return False
    try:
        with open(path, "rb") as fh:
            return transfer_list_head(fh.read(256))
    except OSError:
        return False


def _data_of(directory: Path, stem: str) -> Path | None:
    for suffix in DATA_SUFFIXES:
        candidate = directory / f"{stem}{suffix}"
        if _regular(candidate):
            return candidate
    return None


# --------------------------------------------------------------------------- the transfer list


def _ranges(text: str) -> list[tuple[int, int]]:
    """A range set ("4,0,10,20,25"): (first block, end block) pairs."""
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError as exc:
        raise Damaged(f"bad range set {text[:40]!r}") from exc
    count, values = values[0], values[1:]
    if count != len(values) or not count or count % 2 or min(values) < 0:
        raise Damaged(f"bad range set {text[:40]!r}")
    pairs = list(zip(values[::2], values[1::2]))
    if any(start >= end for start, end in pairs):
        raise Damaged(f"bad range set {text[:40]!r}")
    return pairs


def parse(text: str) -> tuple[list[tuple[int, int]], int, str | None]:
    """(the ranges ``new`` writes, in order; the image's size in blocks; the first
    incremental command, if any) of a transfer list."""
    lines = text.splitlines()
    if len(lines) < 2 or not transfer_list_head(text.encode()):
        raise Damaged("not a transfer list")
    version = int(lines[0])
    body = lines[2:] if version == 1 else lines[4:]
    if version > 1 and len(lines) < 4:
        raise Damaged("transfer list header is truncated")
    writes: list[tuple[int, int]] = []
    end = 0
    for line in body:
        words = line.split()
        if not words:
            continue
        command = words[0]
        if command in INCREMENTAL:
            return [], 0, command
        if command in PASSED_OVER:
            continue
        if command in ("new", "zero", "erase", "compute_hash_tree"):
            if len(words) < 2:
                raise Damaged(f"{command} without a range set")
            pairs = _ranges(words[1])
            end = max(end, max(e for _, e in pairs))
            if command == "new":
                writes += pairs
            continue
        raise Damaged(f"unknown transfer list command {command[:40]!r}")
    return writes, end, None


# --------------------------------------------------------------------------- the new data


class _Data:
    """The new data, decompressed as it is read; never more than a chunk or two in memory."""

    def __init__(self, fh, compressed: bool):
        self.fh = fh
        self.dec = brotli.Decompressor() if compressed else None
        self.buffer = b""
        self.pos = 0

    def read(self, n: int) -> bytes:
        while len(self.buffer) - self.pos < n:
            more = self._more()
            if not more:
                break
            self.buffer = self.buffer[self.pos :] + more
            self.pos = 0
        out = self.buffer[self.pos : self.pos + n]
        self.pos += len(out)
        return out

    def _more(self) -> bytes:
        if self.dec is None:
            return self.fh.read(CHUNK)
        try:
            while True:
                if self.dec.is_finished():
                    if self.fh.read(1):
                        raise Damaged("data follows the end of the brotli stream")
                    return b""
                if self.dec.can_accept_more_data():
                    chunk = self.fh.read(CHUNK)
                    if not chunk:
                        raise Damaged("brotli stream is truncated")
                    out = self.dec.process(chunk, output_buffer_limit=CHUNK)
                else:
                    out = self.dec.process(b"", output_buffer_limit=CHUNK)
                if out:
                    return out
        except brotli.error as exc:
            raise Damaged(f"brotli data could not be decompressed: {exc}") from exc


def rebuild(listing: Path, outdir: Path, limits: Limits, timeout: float) -> list[Problem]:
    name = listing.name[: -len(LIST_SUFFIX)]
    image = f"{name}.img"
    if listing.stat().st_size > MAX_LIST:
        raise Damaged("transfer list is too large")
    text = listing.read_bytes().decode("ascii", "replace")
    writes, blocks, incremental = parse(text)
    if incremental:
        return [
            Problem(
                "",
                f"incremental OTA cannot be rebuilt without the source image"
                f" ({incremental} command in {listing.name})",
            )
        ]
    data = _data_of(listing.parent, name)
    if data is None:
        return [
            Problem("", f"{name}.new.dat.br or {name}.new.dat is missing beside {listing.name}")
        ]
    if not blocks:
        raise Damaged("transfer list places no blocks")
    size = blocks * BLOCK
    budget = Budget(limits, data.stat().st_size)
    reason = budget.file_fits(size)
    if reason:
        return [Problem(image, reason)]
    budget.take(size)
    deadline = time.monotonic() + timeout
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
    with open(data, "rb") as fh, os.fdopen(os.open(outdir / image, flags, 0o644), "wb") as out:
        out.truncate(size)  # zero and erase ranges, and any block no command names, stay holes
        src = _Data(fh, data.name.endswith(".br"))
        for start, end in writes:
            out.seek(start * BLOCK)
            left = (end - start) * BLOCK
            while left:
                chunk = src.read(min(CHUNK, left))
                if not chunk:
                    raise Damaged(
                        f"{data.name} ends before the last block its transfer list places"
                    )
                out.write(chunk)
                left -= len(chunk)
                if time.monotonic() > deadline:
                    raise LimitExceeded(f"rebuilding {image} took longer than {timeout:g} seconds")
        if src.read(1):
            return [Problem("", f"{data.name} holds data past the blocks its transfer list places")]
    return []


def _run(fmt: str, path: Path, outdir: Path, limits: Limits, timeout: float) -> list[Problem]:
    try:
        return rebuild(path, outdir, limits, timeout)
    except (Damaged, LimitExceeded) as exc:
        return [Problem("", f"{fmt}: {exc}")]
    except (ValueError, IndexError, EOFError) as exc:
        return [Problem("", f"{fmt} is damaged: {exc}")]


EXTRACTORS = {"android-transfer-list": _run}
