"""npm: installed packages, lock files and npm tarballs.

Sources: ``node_modules/<name>/package.json`` (also scoped ``@scope/name``), the
``package/package.json`` at the top of an npm tarball, and ``package-lock.json`` /
``npm-shrinkwrap.json`` / ``node_modules/.package-lock.json`` (v1 "dependencies"
and v2/v3 "packages"). An application's own root package.json is not a component.

A lock file's packages get the scope it states: ``dev`` is dev, ``optional`` and
``devOptional`` (a dev dependency that is also an optional one of the runtime) are
optional, the rest runtime. The hidden lock file in ``node_modules`` describes an
installed tree: runtime. An alias (v1 ``"version": "npm:case@1.6.3"``, v2 an entry
with its own ``name``) is the real package.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

from scanner.catalogers._common import (
    as_dict,
    component,
    each,
    looks_like_version,
    read_json,
    text,
)
from scanner.model import NEST, Component
from scanner.unpack import Member

_INSTALLED = re.compile(r"(^|/)node_modules/(@[^/]+/)?[^/@][^/]*/package\.json$")
_LOCKS = ("package-lock.json", "npm-shrinkwrap.json", ".package-lock.json")
_NESTING_MAX = 64
#: A registry package name: ``name`` or ``@scope/name`` (never a path like
#: ``node_modules/x`` nor a reference like ``file:..``).
_NAME = re.compile(r"^(@[^/@:\s]+/)?[^/@:\s][^/:\s]*$")


def npm_component(
    name: str, version: str, location: str, scope: str = "runtime"
) -> Component | None:
    if not name or not looks_like_version(version) or not _NAME.match(name):
        return None
    namespace, _, bare = name.rpartition("/")
    return component(
        "npm", name, version, location, purl_type="npm", namespace=namespace or None,
        purl_name=bare, scope=scope,
    )


def lock_scope(entry: dict) -> str:
    """What a package-lock entry says the package is for."""
    if entry.get("dev") is True:
        return "dev"
    if entry.get("optional") is True or entry.get("devOptional") is True:
        return "optional"
    return "runtime"


def _installed(member: Member) -> Iterator[Component]:
    data = as_dict(read_json(member))
    found = npm_component(text(data.get("name")), text(data.get("version")), member.location)
    if found:
        yield found


def _lock(member: Member) -> Iterator[Component]:
    data = as_dict(read_json(member))
    installed = member.location.endswith("node_modules/.package-lock.json")
    packages = as_dict(data.get("packages"))
    if packages:
        for path, entry in packages.items():
            entry = as_dict(entry)
            if "node_modules/" not in path or entry.get("link"):
                continue
            name = text(entry.get("name")) or path.rsplit("node_modules/", 1)[-1]
            scope = "runtime" if installed else lock_scope(entry)
            found = npm_component(name, text(entry.get("version")), member.location, scope)
            if found:
                yield found
        return
    yield from _lock_v1(as_dict(data.get("dependencies")), member.location, 0, installed)


def _lock_v1(
    dependencies: dict, location: str, depth: int, installed: bool
) -> Iterator[Component]:
    if depth > _NESTING_MAX:
        return
    for name, entry in dependencies.items():
        entry = as_dict(entry)
        version = text(entry.get("version"))
        if version.startswith("npm:"):  # an alias: "npm:case@1.6.3"
            name, _, version = version[4:].rpartition("@")
        scope = "runtime" if installed else lock_scope(entry)
        found = npm_component(name, version, location, scope)
        if found:
            yield found
        yield from _lock_v1(as_dict(entry.get("dependencies")), location, depth + 1, installed)


def collect(members: Iterable[Member]) -> list[Component]:
    members = list(members)
    found = list(each(members, lambda p: bool(_INSTALLED.search(p)), _installed))
    # An npm tarball (npm pack) keeps its package under "package/".
    tarballs = [m for m in members if NEST in m.location and m.depth > 1]
    found += each(tarballs, lambda p: p == "package/package.json", _installed)
    found += each(members, lambda p: p.rsplit("/", 1)[-1] in _LOCKS, _lock, _lock_format)
    return found


def _lock_format(head: bytes) -> str | None:
    """"an npm lockfile" when ``head`` is the start of one (npm writes ``lockfileVersion``
    among its first keys); None for a file that merely shares the name."""
    start = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    return "an npm lockfile" if start.startswith(b"{") and b'"lockfileVersion"' in head else None


def keeps(path: str) -> bool:
    """Whether :func:`collect` may read the file at this inner path."""
    return bool(_INSTALLED.search(path)) or path == "package/package.json" or (
        path.rsplit("/", 1)[-1] in _LOCKS
    )
