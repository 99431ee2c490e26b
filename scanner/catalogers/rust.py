"""Rust: ``Cargo.lock`` and the cargo-auditable ``.dep-v0`` section of executables.

The section holds zlib-compressed JSON: ``{"packages": [{"name", "version",
"source", "kind"}]}``. Local crates (the application itself) and build-time
dependencies (not in the shipped binary) are left out.
"""

from __future__ import annotations

import json
import tomllib
import zlib
from collections.abc import Iterable, Iterator

from scanner.catalogers._common import as_dict, as_list, component, each, leaf, read_text, text
from scanner.catalogers.executable import is_executable, open_executable
from scanner.model import Component
from scanner.unpack import Member

_SECTIONS = (".dep-v0", "__dep_v0")
_COMPRESSED_MAX = 8 * 1024 * 1024
_JSON_MAX = 64 * 1024 * 1024


def crate(name: str, version: str, location: str) -> Component | None:
    if not name or not version:
        return None
    return component("crates.io", name, version, location, purl_type="cargo")


def cargo_lock(data: str, location: str) -> list[Component]:
    found = []
    for entry in as_list(tomllib.loads(data).get("package")):
        entry = as_dict(entry)
        if text(entry.get("source")):  # no source: a crate of the workspace itself
            found.append(crate(text(entry.get("name")), text(entry.get("version")), location))
    return [c for c in found if c]


def auditable(blob: bytes, location: str) -> list[Component]:
    inflater = zlib.decompressobj()
    raw = inflater.decompress(blob, _JSON_MAX)
    data = as_dict(json.loads(raw.decode("utf-8")))
    found = []
    for entry in as_list(data.get("packages")):
        entry = as_dict(entry)
        if entry.get("source") == "local" or entry.get("kind") == "build":
            continue
        found.append(crate(text(entry.get("name")), text(entry.get("version")), location))
    return [c for c in found if c]


def _lock(member: Member) -> Iterator[Component]:
    yield from cargo_lock(read_text(member) or "", member.location)


def _binary(member: Member) -> Iterator[Component]:
    with open(member.path, "rb") as f:
        exe = open_executable(f, member.size)
        blob = exe.section(*_SECTIONS, limit=_COMPRESSED_MAX) if exe else None
    if blob:
        yield from auditable(blob, member.location)


def keeps(path: str) -> bool:
    """Whether the file at this inner path is read by :func:`collect_files`."""
    return leaf(path) == "Cargo.lock"


def collect_files(members: Iterable[Member]) -> list[Component]:
    """Components of the Cargo.lock files (executables aside)."""
    return list(each(members, keeps, _lock))


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
