"""Go: module build info embedded in executables, and go.mod requirements.

The build info header starts with ``\\xff Go buildinf:``; byte 14 is the pointer
size and byte 15 the flags. Go 1.18+ (flag 2) stores the version and module info
inline as varint-prefixed strings after the 32-byte header; older toolchains store
two pointers to Go string headers, read here through the executable's segments.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

from scanner.catalogers._common import component, each, leaf, read_text
from scanner.catalogers.executable import Executable, is_executable, open_executable
from scanner.model import Component
from scanner.unpack import Member

MAGIC = b"\xff Go buildinf:"
_SECTIONS = (".go.buildinfo", "__go_buildinfo")
_STRING_MAX = 4 * 1024 * 1024
_WINDOW = 4 * 1024 * 1024


def go_component(path: str, version: str, location: str) -> Component | None:
    if not path or not version or version == "(devel)":
        return None
    namespace, _, name = path.rpartition("/")
    return component(
        "Go",
        path,
        version.removeprefix("v"),
        location,
        purl_type="golang",
        namespace=namespace or None,
        purl_name=name,
        purl_version=version,
    )


def stdlib_version(toolchain: str) -> str | None:
    """``go1.20.3`` -> ``1.20.3``; ``go1.20`` -> ``1.20.0``; ``go1.21rc2`` -> ``1.21.0-rc.2``."""
    match = re.fullmatch(r"go(\d+)\.(\d+)(?:\.(\d+))?(?:(rc|beta)(\d+))?", toolchain.split()[0])
    if not match:
        return None
    major, minor, patch, pre, number = match.groups()
    version = f"{major}.{minor}.{patch or 0}"
    return f"{version}-{pre}.{number}" if pre else version


def modinfo_components(toolchain: str, modinfo: str, location: str) -> list[Component]:
    """Components from a binary's ``runtime/debug.BuildInfo`` text and Go version."""
    found: list[Component | None] = []
    last: tuple[str, str] | None = None
    for line in modinfo.splitlines():
        fields = line.split("\t")
        if fields[0] in ("mod", "dep") and len(fields) >= 3:
            if last:
                found.append(go_component(*last, location))
            last = (fields[1], fields[2])
        elif fields[0] == "=>" and len(fields) >= 3 and last:
            last = (fields[1], fields[2])  # the replacement is what was built
    if last:
        found.append(go_component(*last, location))
    version = stdlib_version(toolchain) if toolchain else None
    if version:
        found.append(
            component("Go", "stdlib", version, location, purl_type="golang", purl_name="stdlib")
        )
    return [c for c in found if c]


def buildinfo(exe: Executable) -> tuple[str, str] | None:
    """(Go version, module info text) of an executable, or None."""
    blob = exe.section(*_SECTIONS, limit=_STRING_MAX)
    if blob is not None:
        candidates = [blob] if blob.startswith(MAGIC) else []
    elif exe.kind == "pe" and ".data" in exe.sections:
        candidates = _search(exe, *exe.sections[".data"])  # Go puts it at the start of .data
    elif exe.sections:
        return None  # ELF and Mach-O builds by Go 1.13+ name the section: not a Go binary
    else:
        candidates = _search(exe, 0, exe.size)  # section headers stripped
    for data in candidates:
        parsed = _header(exe, data)
        if parsed:
            return parsed
    return None


def _search(exe: Executable, start: int, size: int) -> Iterator[bytes]:
    """Every place the magic appears (the go command itself holds it as a constant)."""
    offset, end = start, min(start + size, exe.size)
    while offset < end:
        window = exe.read(offset, min(_WINDOW, end - offset) + len(MAGIC) - 1)
        at = window.find(MAGIC)
        while at != -1:
            yield exe.read(offset + at, _STRING_MAX)
            at = window.find(MAGIC, at + 1)
        offset += _WINDOW


def _header(exe: Executable, data: bytes) -> tuple[str, str] | None:
    if len(data) < 32:
        return None
    ptr_size, flags = data[14], data[15]
    if flags & 2:
        version, at = _varstring(data, 32)
        modinfo, _ = _varstring(data, at)
    elif ptr_size in (4, 8):
        endian = ">" if flags & 1 else "<"
        version = _pointed(exe, data[16 : 16 + ptr_size], ptr_size, endian)
        modinfo = _pointed(exe, data[16 + ptr_size : 16 + 2 * ptr_size], ptr_size, endian)
    else:
        return None
    if version is None or modinfo is None or not version.startswith("go"):
        return None
    # Module info is wrapped in 16-byte sentinels.
    if len(modinfo) >= 33 and modinfo[-17] == "\n":
        modinfo = modinfo[16:-16]
    return version, modinfo


def _varstring(data: bytes, at: int) -> tuple[str | None, int]:
    length, shift = 0, 0
    while at < len(data) and shift < 64:
        byte = data[at]
        at += 1
        length |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            if length > _STRING_MAX or at + length > len(data):
                return None, at
            return data[at : at + length].decode("utf-8", "replace"), at + length
    return None, at


def _pointed(exe: Executable, raw: bytes, ptr_size: int, endian: str) -> str | None:
    """Follow a pointer to a Go string header (data pointer, length) and read it."""
    addr = int.from_bytes(raw, "big" if endian == ">" else "little")
    header = exe.read_addr(addr, 2 * ptr_size)
    if header is None:
        return None
    order = "big" if endian == ">" else "little"
    data_addr = int.from_bytes(header[:ptr_size], order)
    length = int.from_bytes(header[ptr_size:], order)
    if length > _STRING_MAX:
        return None
    if length == 0:
        return ""
    data = exe.read_addr(data_addr, length)
    return None if data is None else data.decode("utf-8", "replace")


def _binary(member: Member) -> Iterator[Component]:
    with open(member.path, "rb") as f:
        exe = open_executable(f, member.size)
        found = buildinfo(exe) if exe else None
    if found:
        yield from modinfo_components(*found, member.location)


def go_mod(text: str, location: str) -> list[Component]:
    """The requirements of a go.mod as built: versioned ``replace`` directives applied, a
    module replaced by a local directory left out (its code is whatever that directory held,
    not the version required), and an ``exclude``d version never reported."""
    requires: list[tuple[str, str]] = []
    replaces: dict[tuple[str, str | None], tuple[str, str] | None] = {}
    excludes: set[tuple[str, str]] = set()
    block = None
    for raw in text.splitlines():
        line = raw.split("//", 1)[0].strip()
        if not line:
            continue
        if block:
            if line == ")":
                block = None
                continue
            words = line.split()
        else:
            words = line.split()
            if len(words) >= 2 and words[1] == "(":
                block = words[0]
                continue
            block_word, words = words[0], words[1:]
            if block_word not in ("require", "replace", "exclude"):
                continue
            _directive(block_word, words, requires, replaces, excludes)
            continue
        _directive(block, words, requires, replaces, excludes)
    found = []
    for path, version in requires:
        if (path, version) in excludes:
            continue  # go builds the next version up, which go.mod does not name
        key = (path, version) if (path, version) in replaces else (path, None)
        if key in replaces:
            if replaces[key] is None:
                continue  # a local directory: no published version was built
            path, version = replaces[key]
        found.append(go_component(path, version, location))
    return [c for c in found if c]


def _directive(kind, words, requires, replaces, excludes) -> None:
    words = [w.strip('"') for w in words]
    if kind == "require" and len(words) >= 2:
        requires.append((words[0], words[1]))
    elif kind == "exclude" and len(words) >= 2:
        excludes.add((words[0], words[1]))
    elif kind == "replace" and "=>" in words:
        at = words.index("=>")
        old, new = words[:at], words[at + 1 :]
        if not old or not new:
            return
        # "=> path version" is a module; "=> ../dir" (one word) a local directory
        replaces[(old[0], old[1] if len(old) > 1 else None)] = (
            (new[0], new[1]) if len(new) == 2 else None
        )


def _go_mod(member: Member) -> Iterator[Component]:
    yield from go_mod(read_text(member) or "", member.location)


def _wanted_mod(path: str) -> bool:
    # go.mod files of dependencies (module cache, vendor/) state minimums, not what was built.
    return leaf(path) == "go.mod" and "/pkg/mod/" not in f"/{path}" and "vendor/" not in path


def keeps(path: str) -> bool:
    """Whether the file at this inner path is read by :func:`collect_files`."""
    return _wanted_mod(path)


def collect_files(members: Iterable[Member]) -> list[Component]:
    """Components of the go.mod files (executables aside)."""
    return list(each(members, _wanted_mod, _go_mod))


def binary(member: Member) -> list[Component]:
    """Components of one executable (the caller checked it is one)."""
    return list(each([member], lambda p: True, _binary))


def collect(members: Iterable[Member]) -> list[Component]:
    members = list(members)
    found = collect_files(members)
    for m in members:
        if is_executable(m):
            found += binary(m)
    return found
