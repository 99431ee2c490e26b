"""File systems and disk images through 7-Zip (Debian's ``7zip`` package, binary ``7zz``).

7-Zip opens SquashFS, ext2/3/4, ISO 9660, UDF, FAT, NTFS, exFAT, cramfs,
HFS+, WIM, QCOW2, VMDK, VHD, VHDX, VDI and MBR/GPT partition tables, and
descends through a single-partition disk by itself. Its habits shape this
module:

* It writes sparse files out as real zeros, so declared sizes are read first
  (``7zz l -slt``) and anything over the limits is excluded before extraction.
* It exits 2 on ordinary images because it refuses links containing ``..``;
  its messages are read, and only real errors become problems.
* It cannot read lz4 SquashFS: ``unsquashfs`` (squashfs-tools) takes over.
* Disk formats it cannot open are converted to a sparse raw image with
  ``qemu-img`` (never following a backing file or a separate extent), then
  opened again.

A disk with several partitions comes out as one raw file per partition; each
partition holding a file system is opened in turn and replaced by a directory
of the same name.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from scanner.formats._common import (
    Budget,
    Problem,
    harvest,
    remove_tree,
    run_tool,
    safe_relpath,
    staging_dir,
)
from scanner.model import Limits

SEVENZIP = ("7zz", "7z")
FILESYSTEMS = (
    "squashfs", "ext", "iso9660", "udf", "cramfs", "fat", "ntfs", "exfat",
    "hfsplus", "wim",
)  # fmt: skip
DISKS = ("qcow2", "vmdk", "vhd", "vhdx", "vdi", "mbr", "gpt")
FORMATS = FILESYSTEMS + DISKS
QEMU_FORMATS = {"qcow2": "qcow2", "vmdk": "vmdk", "vhd": "vpc", "vhdx": "vhdx", "vdi": "vdi"}
#: 7-Zip archive types whose items are whole partitions or disks, not files.
CONTAINER_TYPES = {"MBR", "GPT", "APM", "QCOW", "VMDK", "VHD", "VHDX", "VDI", "RAW"}
#: 7-Zip's pseudo-entries for file-system metadata (journals, $MFT): not files.
SYSTEM_PREFIXES = ("[SYS]", "[SYSTEM]", "[DELETED]", "[UNUSED]")
_ERR_PATH = re.compile(r"^ERROR: (.+?) : (.+)$")


def tool() -> str | None:
    for name in SEVENZIP:
        found = shutil.which(name)
        if found:
            return found
    return None


@dataclass
class Entry:
    path: str
    folder: bool
    size: int
    mode: str
    encrypted: bool
    gap: bool = False  # unpartitioned space between partitions: no file system, no content


@dataclass
class Listing:
    opened: bool
    types: list[str] = field(default_factory=list)
    entries: list[Entry] = field(default_factory=list)
    message: str = ""
    errors: bool = False  # opened, but 7-Zip met errors (an unsupported method, say)


class _Clock:
    def __init__(self, timeout: float):
        self.timeout = timeout
        self.deadline = time.monotonic() + timeout

    def left(self) -> float:
        return max(1.0, self.deadline - time.monotonic())

    def expired(self) -> bool:
        return time.monotonic() >= self.deadline


def extract(fmt: str, path: Path, outdir: Path, limits: Limits, timeout: float) -> list[Problem]:
    """Extract a file system or disk image into ``outdir``."""
    budget = Budget(limits, path.stat().st_size)
    return _extract(fmt, path, outdir, budget, _Clock(timeout), depth=0)


def _extract(
    fmt: str, path: Path, outdir: Path, budget: Budget, clock: _Clock, depth: int
) -> list[Problem]:
    if fmt == "vmdk" and _is_descriptor(path):
        # A text descriptor only names extent files; they are members of the package
        # in their own right and are opened as such. Never let a tool follow the names.
        return []
    if fmt in QEMU_FORMATS and depth == 0:
        refusal = _refers_elsewhere(fmt, path, budget)
        if refusal:
            return [Problem("", f"{fmt} image could not be opened: {refusal}")]
    binary = tool()
    if binary is None:
        return [Problem("", "7-Zip (7zz) is not installed")]
    listing = list_archive(binary, path, clock, budget.limits)
    if fmt in QEMU_FORMATS and depth == 0 and (not listing.opened or listing.errors):
        return _via_qemu(fmt, path, outdir, budget, clock)
    if listing.opened:
        problems = _extract_7z(binary, path, outdir, listing, budget, clock)
    elif fmt == "squashfs":
        from scanner.formats.squashfs import unsquashfs

        return unsquashfs(path, outdir, budget, clock.left())
    else:
        reason = listing.message or "7-Zip could not open it"
        return [Problem("", f"{fmt} image could not be opened: {reason}")]
    if listing.types and listing.types[-1].upper() in CONTAINER_TYPES and depth < 2:
        problems += _open_partitions(outdir, budget, clock, depth)
    return problems


def _is_descriptor(path: Path) -> bool:
    with open(path, "rb") as fh:
        return fh.read(21) == b"# Disk DescriptorFile"


def list_archive(binary: str, path: Path, clock: _Clock, limits: Limits | None = None) -> Listing:
    res = run_tool(
        [binary, "l", "-slt", "-sccUTF-8", "-bd", "-p", "--", str(path.resolve())],
        timeout=clock.left(),
        limits=limits,
    )
    if res.timed_out:
        return Listing(False, message=f"listing timed out after {clock.timeout:.0f} s")
    if res.over_output or res.returncode not in (0, 1, 2):
        # a listing cut short, or a 7-Zip killed or that never started (a memory limit):
        # nothing to plan the extraction with
        return Listing(False, message=_last(res.stderr))
    return parse_listing(res.stdout, res.stderr, res.returncode or 0)


def parse_listing(stdout: str, stderr: str, returncode: int) -> Listing:
    head, sep, body = stdout.partition("\n----------\n")
    types = re.findall(r"^Type = (.+)$", head, re.M)
    if not sep:
        reason = "not a supported image"
        if "Can not open encrypted archive" in stderr + stdout:
            reason = "the image is encrypted"
        return Listing(False, types, message=reason)
    entries = []
    for block in body.split("\n\n"):
        props = dict(
            line.split(" = ", 1) for line in block.splitlines() if " = " in line
        )
        if "Path" not in props:
            continue
        size = props.get("Size", "").strip()
        entries.append(
            Entry(
                path=props["Path"],
                folder=props.get("Folder", "").strip() == "+",
                size=int(size) if size.isdigit() else 0,
                mode="l"
                if props.get("Symbolic Link", "").strip() or props.get("Link", "").strip()
                else props.get("Mode", "").strip(),
                encrypted=props.get("Encrypted", "").strip() == "+",
                gap=props["Path"].isdigit()
                and "File System" in props
                and not props["File System"].strip()
                and not props.get("Primary", "").strip(),
            )
        )
    errors = bool(re.search(r"^(Errors: \d+|ERRORS:)$", stdout + "\n" + stderr, re.M))
    return Listing(True, types, entries, errors=errors)


def _plan(entries: list[Entry], budget: Budget) -> tuple[list[str], list[Problem], set[str]]:
    """Which entries to leave out, the problems that makes, and the files expected out.

    7-Zip reads ``*`` and ``?`` in an exclusion as wildcards. A link or device
    whose name holds one is left in (nothing is created for it anyway), so that a
    crafted name can never silently exclude real files.
    """
    excluded, problems, expected = [], [], set()
    planned = Budget(budget.limits)
    planned.cap, planned.total, planned.members = budget.cap, budget.total, budget.members
    for e in entries:
        if e.folder:
            continue
        if e.gap or e.path.startswith(SYSTEM_PREFIXES) or e.mode[:1] in ("l", "c", "b", "p", "s"):
            if not any(c in e.path for c in "*?"):
                excluded.append(e.path)  # metadata, links and free space: no content of their own
            continue
        if e.encrypted:
            excluded.append(e.path)
            problems.append(Problem(e.path, "encrypted, could not be read"))
            continue
        reason = planned.file_fits(e.size)
        if reason:
            excluded.append(e.path)
            problems.append(Problem(e.path, f"not extracted: {reason}"))
            continue
        planned.take(e.size)
        rel = safe_relpath(e.path)
        if rel:
            expected.add(rel)
    return excluded, problems, expected


def _extract_7z(
    binary: str, path: Path, outdir: Path, listing: Listing, budget: Budget, clock: _Clock
) -> list[Problem]:
    excluded, problems, expected = _plan(listing.entries, budget)
    stage = staging_dir(outdir)
    try:
        files = stage / "files"
        files.mkdir()
        argv = [binary, "x", "-y", "-bd", "-sccUTF-8", "-scsUTF-8", "-p", f"-o{files}"]
        if excluded:
            exclude_list = stage / "exclude.txt"
            exclude_list.write_text("\n".join(excluded) + "\n", "utf-8")
            argv.append(f"-x@{exclude_list}")
        argv += ["--", str(path.resolve())]
        res = run_tool(
            argv,
            cwd=stage,
            timeout=clock.left(),
            max_file_bytes=budget.limits.max_file_bytes,
            watch=(files, budget.cap - budget.total),
            limits=budget.limits,
        )
        if res.over_cap:
            problems.append(Problem("", "7-Zip wrote more than the image declared; stopped"))
        elif res.timed_out:
            problems.append(Problem("", f"7-Zip timed out after {clock.timeout:.0f} s"))
        elif res.over_output:
            problems.append(Problem("", f"7-Zip could not extract in full: {_last(res.stderr)}"))
        else:
            problems += _messages(res.stdout + "\n" + res.stderr, res.returncode or 0, path)
        problems += harvest(files, outdir, budget)
        if res.returncode is not None:
            problems += _missing(expected, outdir, problems)
    finally:
        remove_tree(stage)
    return problems


def _last(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[-1][:300] if lines else "unknown error"


def _missing(expected: set[str], outdir: Path, problems: list[Problem]) -> list[Problem]:
    """Files the listing promised that did not come out, and that no message explains."""
    explained = {p.path for p in problems}
    missing = []
    for rel in sorted(expected - explained):
        try:
            if (outdir / rel).is_file():
                continue
        except OSError:
            pass
        missing.append(Problem(rel, "listed in the image but not extracted"))
    return missing


def _messages(text: str, returncode: int, path: Path) -> list[Problem]:
    """7-Zip's errors as problems; refused ``..`` links are not errors."""
    problems = []
    lines = [ln.strip() for ln in text.splitlines()]
    for i, line in enumerate(lines):
        if not line.startswith("ERROR:") or "Dangerous link path was ignored" in line:
            continue
        m = _ERR_PATH.match(line)
        if m and m.group(2) != str(path.resolve()):
            problems.append(Problem(m.group(2), f"7-Zip: {m.group(1)}"))
        else:
            detail = next((ln for ln in lines[i + 1 : i + 3] if ln), "")
            problems.append(Problem("", f"7-Zip: {line[6:].strip()} {detail}".strip()))
    if "ERRORS:" in lines:
        start = lines.index("ERRORS:") + 1
        for line in lines[start : start + 5]:
            if not line:
                break
            problems.append(Problem("", f"7-Zip: {line}"))
    if returncode not in (0, 1, 2) and not problems:
        problems.append(Problem("", f"7-Zip failed with exit code {returncode}"))
    return problems


def _open_partitions(outdir: Path, budget: Budget, clock: _Clock, depth: int) -> list[Problem]:
    """Replace each top-level partition image holding a file system by its files."""
    from scanner.formats.detect import detect

    problems: list[Problem] = []
    for entry in sorted(os.scandir(outdir), key=lambda e: e.name):
        if not entry.is_file(follow_symlinks=False):
            continue
        inner = detect(Path(entry.path))
        if inner not in FORMATS:
            continue
        size = entry.stat(follow_symlinks=False).st_size
        target = Path(entry.path + ".d")
        target.mkdir()
        sub = _extract(inner, Path(entry.path), target, budget, clock, depth + 1)
        problems += [Problem(f"{entry.name}/{p.path}".rstrip("/"), p.reason) for p in sub]
        os.unlink(entry.path)
        budget.total -= size
        budget.members -= 1
        os.rename(target, entry.path)
    return problems


def _via_qemu(fmt: str, path: Path, outdir: Path, budget: Budget, clock: _Clock) -> list[Problem]:
    qemu = shutil.which("qemu-img")
    if qemu is None:
        return [Problem("", f"{fmt} image could not be opened by 7-Zip and qemu-img is not installed")]
    driver = QEMU_FORMATS[fmt]
    info = run_tool([qemu, "info", "--output=json", "-f", driver, str(path.resolve())],
                    timeout=min(60, clock.left()), limits=budget.limits)
    reason = _unsafe_for_qemu(info.stdout, path, budget) if info.returncode == 0 else (
        info.stderr.strip().splitlines() or ["qemu-img could not read it"]
    )[-1]
    if reason:
        return [Problem("", f"{fmt} image could not be opened: {reason}")]
    stage = staging_dir(outdir)
    try:
        raw = stage / "disk.raw"
        res = run_tool(
            [qemu, "convert", "-f", driver, "-O", "raw", str(path.resolve()), str(raw)],
            cwd=stage,
            timeout=clock.left(),
            watch=(stage, budget.cap - budget.total),  # the raw disk is sparse: data only
            limits=budget.limits,
        )
        if res.over_cap:
            return [Problem("", f"qemu-img wrote more than the {budget.cap - budget.total} bytes"
                                " of scratch space left; stopped")]
        if res.timed_out:
            return [Problem("", f"qemu-img timed out after {clock.timeout:.0f} s")]
        if res.returncode != 0:
            last = (res.stderr.strip().splitlines() or ["conversion failed"])[-1]
            return [Problem("", f"{fmt} image could not be converted: {last}")]
        return _extract("mbr", raw, outdir, budget, clock, depth=1)
    finally:
        remove_tree(stage)


def _refers_elsewhere(fmt: str, path: Path, budget: Budget) -> str | None:
    """Why a virtual disk must not be opened at all: it names a parent or extent file,
    or its virtual size is more than the scratch space left.

    Differencing disks (qcow2 backing files, VHD/VHDX/VDI parents, VMDK parent
    hints) are refused before 7-Zip or qemu-img sees them, so no tool ever opens a
    file by a name the seller chose. ``qemu-img info`` reads headers only. 7-Zip
    writes a disk it cannot see into as one raw file, zeros included, so a disk
    whose virtual size would not fit is refused before anything is written.
    """
    if _has_parent(fmt, path):
        return "it is a differencing disk that refers to a parent file outside the package"
    qemu = shutil.which("qemu-img")
    if qemu is None:
        return None
    info = run_tool([qemu, "info", "--output=json", "-f", QEMU_FORMATS[fmt], str(path.resolve())],
                    timeout=60, limits=budget.limits)
    if info.returncode != 0:
        return None  # unreadable headers: 7-Zip decides, the fallback re-checks
    try:
        data = json.loads(info.stdout)
    except ValueError:
        return None
    if data.get("backing-filename") or data.get("full-backing-filename"):
        return "it is a differencing disk that refers to a parent file outside the package"
    return _too_large(data, budget)


def _too_large(info: dict, budget: Budget) -> str | None:
    """Why a disk of this virtual size does not fit the scratch space left, or None."""
    try:
        virtual = int(info.get("virtual-size") or 0)
    except (TypeError, ValueError):
        return "qemu-img gave no usable virtual size"
    left = max(0, budget.cap - budget.total)
    if virtual > left:
        return (f"its virtual size of {virtual} bytes ({_human(virtual)}) is over the"
                f" {left}-byte limit (the scratch space left)")
    return None


def _human(size: int) -> str:
    value = float(size)
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:g} {unit}" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} bytes"


#: VHDX metadata item "Parent Locator" (A8D35F2D-B30B-454D-ABF7-D3D84834AB0C), as stored.
VHDX_PARENT_LOCATOR = bytes.fromhex("2d5fd3a80bb34d45abf7d3d84834ab0c")
VHD_DIFFERENCING, VDI_DIFFERENCING = 4, 4


def _has_parent(fmt: str, path: Path) -> bool:
    """Read the header fields that say "differencing disk", format by format."""
    with open(path, "rb") as fh:
        head = fh.read(8 * 1024 * 1024)
        size = fh.seek(0, 2)
        fh.seek(max(0, size - 512))
        tail = fh.read(512)
    if fmt == "vhd":
        footer = head[:512] if head.startswith(b"conectix") else tail
        return len(footer) >= 64 and int.from_bytes(footer[60:64], "big") == VHD_DIFFERENCING
    if fmt == "vdi":
        return len(head) >= 0x50 and int.from_bytes(head[0x4C:0x50], "little") == VDI_DIFFERENCING
    if fmt == "vhdx":
        return VHDX_PARENT_LOCATOR in head
    if fmt == "vmdk":
        return b"parentFileNameHint" in head[:64 * 1024]
    return False


def _unsafe_for_qemu(info_json: str, path: Path, budget: Budget) -> str | None:
    """Why qemu-img must not convert this image (it would read other files), or None."""
    try:
        info = json.loads(info_json)
    except ValueError:
        return "qemu-img gave no usable description"
    if info.get("backing-filename") or info.get("full-backing-filename"):
        return "it refers to a backing file outside the package"
    too_large = _too_large(info, budget)
    if too_large:
        return too_large
    extents = ((info.get("format-specific") or {}).get("data") or {}).get("extents") or []
    for ext in extents:
        if Path(ext.get("filename", "")).resolve() != path.resolve():
            return "it refers to extent files outside the package"
    return None
