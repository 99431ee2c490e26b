"""C and C++ package managers: Conan lock files and vcpkg.

* ``conan.lock``: Conan 1's graph lock (``"version": "0.4"``, ``graph_lock.nodes``
  with ``ref`` ``name/version[@user/channel][#revision]``; a node in the
  ``build`` context is dev) and Conan 2's lock (``"version": "0.5"``,
  ``requires``, ``build_requires`` and ``python_requires`` references, the last
  two dev). OSV ecosystem ``ConanCenter``, purl ``pkg:conan/<name>@<version>``
  (``user``, ``channel`` and ``rrev`` qualifiers when the reference has them). A
  reference whose version is not a version (``pkgb/system``: the system's own
  library) is not reported.
* ``vcpkg/status`` of an installed tree (classic ``installed/vcpkg/status`` or
  manifest mode's ``vcpkg_installed/vcpkg/status``): every port installed, its
  feature paragraphs aside. purl ``pkg:vcpkg/<name>@<version>`` with
  ``port_version`` and ``triplet`` qualifiers. OSV has no vcpkg ecosystem: the
  ports are listed under ``vcpkg``.
* ``vcpkg.json``: the ``overrides``, the only exact versions a manifest states. A
  dependency's version otherwise comes from the ``builtin-baseline`` commit of
  the vcpkg registry, which the package does not hold: it is not guessed. An
  override of a direct dependency is runtime (``"host": true`` ones dev); one of a
  package reached only transitively is of unknown scope.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

from scanner.catalogers._common import (
    as_dict,
    as_list,
    component,
    each,
    leaf,
    looks_like_version,
    read_json,
    read_text,
    text,
)
from scanner.model import Component
from scanner.unpack import Member

_REFERENCE = re.compile(
    r"^(?P<name>[\w.+-]+)/(?P<version>[^@#/%\s]+)"
    r"(?:@(?P<user>[\w.+-]+)/(?P<channel>[\w.+-]+))?"
    r"(?:#(?P<rrev>[0-9a-fA-F]+))?(?:%[\d.]+)?(?::.*)?$"
)
_STATUS = re.compile(r"(^|/)vcpkg/status$")
_PARAGRAPHS_MAX = 200_000


# -- Conan ---------------------------------------------------------------------------


def conan(reference: str, location: str, scope: str) -> Component | None:
    ref = _REFERENCE.match(reference.strip())
    if not ref or not looks_like_version(ref["version"]):
        return None
    qualifiers = {}
    if ref["user"] and ref["user"] != "_":
        qualifiers["user"] = ref["user"]
    if ref["channel"] and ref["channel"] != "_":
        qualifiers["channel"] = ref["channel"]
    if ref["rrev"]:
        qualifiers["rrev"] = ref["rrev"]
    return component(
        "ConanCenter",
        ref["name"],
        ref["version"],
        location,
        purl_type="conan",
        qualifiers=qualifiers,
        scope=scope,
    )


def _conan_lock(member: Member) -> Iterator[Component]:
    data = as_dict(read_json(member))
    nodes = as_dict(as_dict(data.get("graph_lock")).get("nodes"))
    for node in nodes.values():  # Conan 1
        node = as_dict(node)
        scope = "dev" if text(node.get("context")) == "build" else "runtime"
        found = conan(text(node.get("ref")), member.location, scope)
        if found:
            yield found
    sections = (("requires", "runtime"), ("build_requires", "dev"), ("python_requires", "dev"))
    for key, scope in sections:
        for reference in as_list(data.get(key)):  # Conan 2
            found = conan(text(reference), member.location, scope)
            if found:
                yield found


# -- vcpkg ---------------------------------------------------------------------------


def vcpkg(name: str, version: str, port_version: str, location: str, scope: str,
          triplet: str = "") -> Component:
    qualifiers = {}
    if port_version not in ("", "0"):
        qualifiers["port_version"] = port_version
    if triplet:
        qualifiers["triplet"] = triplet
    return component("vcpkg", name, version, location, purl_type="vcpkg",
                     qualifiers=qualifiers, scope=scope)


def paragraphs(data: str) -> Iterator[dict[str, str]]:
    """The paragraphs of a Debian-style control file, continuation lines joined."""
    fields: dict[str, str] = {}
    key = ""
    for count, line in enumerate(data.splitlines()):
        if count > _PARAGRAPHS_MAX * 40:
            break
        if not line.strip():
            if fields:
                yield fields
            fields, key = {}, ""
            continue
        if line[0] in " \t" and key:
            fields[key] += "\n" + line.strip()
            continue
        key, sep, value = line.partition(":")
        key = key.strip() if sep else ""
        if key:
            fields[key] = value.strip()
    if fields:
        yield fields


def _status(member: Member) -> Iterator[Component]:
    for fields in paragraphs(read_text(member) or ""):
        if "Feature" in fields or not fields.get("Status", "").endswith(" installed"):
            continue
        if fields.get("Status", "").split()[0:1] != ["install"]:
            continue
        name, version = fields.get("Package", ""), fields.get("Version", "")
        if name and version:
            yield vcpkg(name, version, fields.get("Port-Version", ""), member.location, "runtime",
                        fields.get("Architecture", ""))


_VERSION_KEYS = ("version", "version-semver", "version-date", "version-string")


def _manifest(member: Member) -> Iterator[Component]:
    data = as_dict(read_json(member))
    direct: dict[str, str] = {}
    for dependency in as_list(data.get("dependencies")):
        if isinstance(dependency, str):
            direct[dependency] = "runtime"
        else:
            dependency = as_dict(dependency)
            name = text(dependency.get("name"))
            if name:
                direct[name] = "dev" if dependency.get("host") is True else "runtime"
    for override in as_list(data.get("overrides")):
        override = as_dict(override)
        name = text(override.get("name"))
        version = next((text(override.get(k)) for k in _VERSION_KEYS if text(override.get(k))), "")
        port_version = override.get("port-version")
        port = str(port_version) if isinstance(port_version, int) else ""
        if "#" in version:  # "1.2.3#2": the port version written in the version
            version, _, port = version.partition("#")
        if name and version:
            yield vcpkg(name, version, port, member.location, direct.get(name, "unknown"))


# -- the cataloger ----------------------------------------------------------------------


def collect(members: Iterable[Member]) -> list[Component]:
    members = list(members)
    found = list(each(members, lambda p: leaf(p) == "conan.lock", _conan_lock))
    found += each(members, lambda p: bool(_STATUS.search(p)), _status)
    found += each(members, lambda p: leaf(p) == "vcpkg.json", _manifest)
    return found


def keeps(path: str) -> bool:
    """Whether :func:`collect` may read the file at this inner path."""
    return leaf(path) in ("conan.lock", "vcpkg.json") or bool(_STATUS.search(path))
