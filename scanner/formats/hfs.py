"""Classic HFS (Mac OS Standard) volumes through Debian's ``hfsutils``: 7-Zip reads only HFS+.

``hmount`` opens the image file (no root, no kernel mount); ``hls`` lists one
directory at a time and ``hcopy`` copies one file out. The tools keep their
"current volume" in ``$HOME/.hcwd``, so each extraction runs with a private
``HOME`` and never meets another's state.

* Names are MacRoman, up to 31 bytes, and may hold ``/`` or be ``.``/``..``:
  listings are read with ``-Q`` (quoted, escaped) and each name is made a plain
  host name (``/`` becomes ``_``, clashes get a suffix). HFS paths join with
  ``:``, which no name can hold.
* A file's data fork is written under its name; a non-empty resource fork
  (where classic Mac programs keep their code) beside it as ``<name>.rsrc``.
* HFS has no sparse files, links or special files; each file is checked against
  the limits by its listed size before it is copied, and the copies are moved
  in through :func:`harvest` like every other tool's output.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from scanner.formats._common import (
    Budget,
    Problem,
    harvest,
    remove_tree,
    run_tool,
    staging_dir,
)
from scanner.model import Limits

TOOLS = ("hmount", "hls", "hcopy", "humount")
#: ``hls -l -i -Q`` lines: catalog id, d/f/F (+ i for invisible), then sizes, date, "name".
_DIR = re.compile(r'^\s*(\d+) di?\s+(\d+) items?\s+.{12} "((?:[^"\\]|\\.)*)"$')
_FILE = re.compile(r'^\s*(\d+) [fF]i?\s+.{4}/.{4}\s+(\d+)\s+(\d+) .{12} "((?:[^"\\]|\\.)*)"$')
_ESCAPE = re.compile(rb"\\([0-7]{3}|.)", re.S)
_CONTROL = {b"a": 7, b"b": 8, b"t": 9, b"n": 10, b"v": 11, b"f": 12, b"r": 13, b"e": 27}
#: MacBinary header: data fork length at 83, resource fork length at 87 (big-endian).
MACBINARY_HEADER = 128


@dataclass
class _Entry:
    name: bytes  # the HFS name, MacRoman bytes
    folder: bool
    rsrc: int = 0
    data: int = 0


class _Volume:
    """One mounted image: the tools run with their own HOME, a shared deadline and the
    scan's limits."""

    def __init__(self, home: Path, timeout: float, limits: Limits | None = None):
        self.home = home
        self.deadline = time.monotonic() + timeout
        self.limits = limits

    def run(self, *argv: str | bytes, watch: tuple[Path, int] | None = None):
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError
        args = [os.fsdecode(a) for a in argv]
        res = run_tool(args, cwd=self.home, timeout=left, watch=watch, env={"HOME": str(self.home)},
                       limits=self.limits)
        if res.timed_out:
            raise TimeoutError
        return res


def extract(fmt: str, path: Path, outdir: Path, limits: Limits, timeout: float) -> list[Problem]:
    """Extract every file of a classic HFS volume into ``outdir``."""
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        return [Problem("", f"HFS image could not be opened: {', '.join(missing)} not installed")]
    budget = Budget(limits, path.stat().st_size)
    home = staging_dir(outdir)
    stage = staging_dir(outdir)
    volume = _Volume(home, timeout, limits)
    try:
        res = volume.run("hmount", str(path))
        if res.returncode != 0:
            return [Problem("", f"HFS image could not be opened: {_last(res.stderr)}")]
        try:
            problems = _copy_tree(volume, stage, Budget(limits, path.stat().st_size))
        finally:
            volume.run("humount")
        return problems + harvest(stage, outdir, budget)
    except TimeoutError:
        return [Problem("", f"HFS image not extracted within {timeout:.0f} s")]
    finally:
        remove_tree(stage)
        remove_tree(home)


def _copy_tree(volume: _Volume, stage: Path, declared: Budget) -> list[Problem]:
    problems: list[Problem] = []
    stack: list[tuple[bytes, Path, str]] = [(b":", stage, "")]
    while stack:
        hfs_dir, host_dir, rel_dir = stack.pop()
        res = volume.run("hls", "-l", "-a", "-i", "-Q", "-U", hfs_dir)
        if res.returncode != 0:
            problems.append(Problem(rel_dir, f"HFS folder could not be listed: {_last(res.stderr)}"))
            continue
        taken: set[str] = set()
        for line in res.stdout.splitlines():
            entry = _parse(line)
            if entry is None:
                problems.append(Problem(rel_dir, f"HFS listing not understood: {line.strip()!r}"))
                continue
            name = _host_name(entry.name, taken)
            rel = f"{rel_dir}/{name}" if rel_dir else name
            source = hfs_dir + entry.name + (b":" if entry.folder else b"")
            if entry.folder:
                (host_dir / name).mkdir()
                stack.append((source, host_dir / name, rel))
                continue
            reason = declared.file_fits(entry.data + entry.rsrc)
            if reason:
                problems.append(Problem(rel, reason))
                continue
            declared.take(entry.data + entry.rsrc)
            problems += _copy_file(volume, source, host_dir, name, entry, rel, taken)
    return problems


def _copy_file(volume, source: bytes, host_dir: Path, name: str, entry: _Entry, rel, taken):
    target = host_dir / name
    watch = (host_dir, (entry.data + entry.rsrc) * 2 + MACBINARY_HEADER * 2 + 4096)
    if not entry.rsrc:
        res = volume.run("hcopy", "-r", source, str(target), watch=watch)
        if res.returncode != 0:
            return [Problem(rel, f"HFS file could not be copied: {_last(res.stderr)}")]
        return []
    # Both forks: one MacBinary copy, split here.
    packed = volume.home / "fork.bin"
    res = volume.run("hcopy", "-m", source, str(packed), watch=watch)
    try:
        if res.returncode != 0:
            return [Problem(rel, f"HFS file could not be copied: {_last(res.stderr)}")]
        fork = _host_name(entry.name + b".rsrc", taken)
        return _split_macbinary(packed, target, host_dir / fork, entry, rel)
    finally:
        packed.unlink(missing_ok=True)


def _split_macbinary(packed: Path, data_path: Path, rsrc_path: Path, entry: _Entry, rel: str):
    with open(packed, "rb") as fh:
        header = fh.read(MACBINARY_HEADER)
        if len(header) < MACBINARY_HEADER:
            return [Problem(rel, "HFS file could not be copied: short MacBinary header")]
        data_len = int.from_bytes(header[83:87], "big")
        rsrc_len = int.from_bytes(header[87:91], "big")
        if (data_len, rsrc_len) != (entry.data, entry.rsrc):
            return [Problem(rel, "HFS file could not be copied: fork sizes disagree")]
        _copy_bytes(fh, data_path, data_len)
        fh.seek(MACBINARY_HEADER + (data_len + 127) // 128 * 128)
        _copy_bytes(fh, rsrc_path, rsrc_len)
    return []


def _copy_bytes(src, dst: Path, size: int) -> None:
    with open(dst, "xb") as out:
        while size > 0:
            chunk = src.read(min(1 << 20, size))
            if not chunk:
                break
            out.write(chunk)
            size -= len(chunk)


def _parse(line: str) -> _Entry | None:
    if m := _DIR.match(line):
        return _Entry(_unescape(m.group(3)), folder=True)
    if m := _FILE.match(line):
        return _Entry(_unescape(m.group(4)), False, int(m.group(2)), int(m.group(3)))
    return None


def _unescape(quoted: str) -> bytes:
    raw = os.fsencode(quoted)

    def one(m: re.Match) -> bytes:
        code = m.group(1)
        if len(code) == 3 and code.isdigit():
            return bytes([int(code, 8) & 0xFF])
        return bytes([_CONTROL[code]]) if code in _CONTROL else code

    return _ESCAPE.sub(one, raw)


def _host_name(name: bytes, taken: set[str]) -> str:
    """A plain, unique host name for an HFS name (MacRoman, may hold ``/``, may be ``..``)."""
    text = name.decode("mac_roman").replace("/", "_").replace("\x00", "_")
    if text in ("", ".", ".."):
        text = "_" + text
    candidate, n = text, 1
    while candidate in taken:
        n += 1
        candidate = f"{text}~{n}"
    taken.add(candidate)
    return candidate


def _last(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "the tool failed"


EXTRACTORS = {"hfs": extract}
