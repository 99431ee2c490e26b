""".NET: NuGet packages from what a build or a deployment leaves behind.

* ``*.deps.json``: the ``libraries`` of type ``package`` (runtime).
* ``packages.lock.json``: every package of every target framework (``Direct``,
  ``Transitive``, ``CentralTransitive``; ``Project`` entries are the solution's
  own). The lock file does not tell build-only packages apart: scope unknown.
* ``*.csproj`` / ``*.fsproj`` / ``*.vbproj`` / ``Directory.Build.props`` /
  ``Directory.Packages.props``: ``PackageReference`` with a version, its own or
  (central package management) the ``PackageVersion`` of the nearest
  ``Directory.Packages.props`` above it in the package; ``VersionOverride``
  wins, ``$(Property)`` is resolved from the file and the ``Directory.*.props``
  above it, ``[1.2.3]`` is 1.2.3, and a range or floating version is not reported.
  ``GlobalPackageReference`` counts too. ``PrivateAssets="all"`` (analyzers,
  build tools) is dev.
* ``packages.config``: ``developmentDependency="true"`` is dev.
* ``.nuspec`` files: the package itself, in a ``.nupkg`` (a zip holding its
  nuspec at the root) and in the folders NuGet restores packages to
  (``<id>/<version>/`` and ``<id>.<version>/``). A nuspec elsewhere is a
  project's own recipe, not a package shipped.
"""

from __future__ import annotations

import posixpath
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Iterator

from scanner.catalogers._common import (
    as_dict,
    component,
    each,
    inner,
    leaf,
    looks_like_version,
    read_json,
    read_text,
    text,
)
from scanner.model import NEST, Component
from scanner.unpack import Member

_PROJECT_SUFFIXES = (".csproj", ".fsproj", ".vbproj")
_PROPS = ("Directory.Build.props", "Directory.Packages.props")
_XML_MAX = 8 * 1024 * 1024
_EXPAND_MAX = 8
_PROPERTY = re.compile(r"\$\(([A-Za-z_][\w.-]*)\)")


def nuget(name: str, version: str, location: str, scope: str = "runtime") -> Component:
    return component("NuGet", name, version, location, purl_type="nuget", scope=scope)


def exact_version(value: str) -> str:
    """A NuGet version string as the one version it pins, or "" for a range or float."""
    value = value.strip()
    pinned = re.fullmatch(r"\[\s*([^,\[\]()\s]+)\s*\]", value)
    if pinned:
        value = pinned.group(1)
    if "*" in value or not looks_like_version(value) or any(c in value for c in "[](),$ "):
        return ""
    return value


def _xml(member: Member) -> ET.Element:
    data = read_text(member, _XML_MAX) or ""
    if "<!ENTITY" in data or "<!DOCTYPE" in data:
        raise ValueError("a DTD in a NuGet or MSBuild file")
    try:
        return ET.fromstring(data)
    except ET.ParseError as error:
        raise ValueError(f"not XML: {error}") from None


def _tag(element: ET.Element) -> str:
    return element.tag.rsplit("}", 1)[-1] if isinstance(element.tag, str) else ""


def _attribute(element: ET.Element, name: str) -> str:
    """An MSBuild item's metadata: an attribute or a child element, any case."""
    for key, value in element.attrib.items():
        if key.lower() == name.lower():
            return value.strip()
    for child in element:
        if _tag(child).lower() == name.lower():
            return (child.text or "").strip()
    return ""


# -- deps.json, packages.lock.json, packages.config ----------------------------------------


def _deps_json(member: Member) -> Iterator[Component]:
    libraries = as_dict(as_dict(read_json(member)).get("libraries"))
    for key, entry in libraries.items():
        if text(as_dict(entry).get("type")) != "package":
            continue
        name, _, version = key.rpartition("/")
        if name and version:
            yield nuget(name, version, member.location)


def _lock(member: Member) -> Iterator[Component]:
    frameworks = as_dict(as_dict(read_json(member)).get("dependencies"))
    for packages in frameworks.values():
        for name, entry in as_dict(packages).items():
            entry = as_dict(entry)
            if text(entry.get("type")).lower() == "project":
                continue
            version = text(entry.get("resolved"))
            if name and looks_like_version(version):
                yield nuget(name, version, member.location, "unknown")


def _packages_config(member: Member) -> Iterator[Component]:
    root = _xml(member)
    for entry in root.iter():
        if _tag(entry) != "package":
            continue
        name, version = _attribute(entry, "id"), exact_version(_attribute(entry, "version"))
        if name and version:
            dev = _attribute(entry, "developmentDependency").lower() == "true"
            yield nuget(name, version, member.location, "dev" if dev else "runtime")


# -- MSBuild projects ------------------------------------------------------------------------


class _Msbuild:
    """Every project and Directory.*.props file of the package, parsed once."""

    def __init__(self, members: list[Member]) -> None:
        self.files: dict[str, ET.Element] = {}
        for member in members:
            if member.depth and _is_msbuild(inner(member.location)):
                try:
                    self.files[member.location] = _xml(member)
                except (ValueError, RecursionError):
                    continue

    def above(self, location: str, name: str) -> str | None:
        """The nearest ``name`` in the project's directory or one above it, same container."""
        box, _, path = location.rpartition(NEST)
        directory = posixpath.dirname(path)
        while True:
            candidate = posixpath.join(directory, name)
            candidate = f"{box}{NEST}{candidate}" if box else candidate
            if candidate in self.files and candidate != location:
                return candidate
            if not directory:
                return None
            directory = posixpath.dirname(directory)

    def properties(self, location: str) -> dict[str, str]:
        table: dict[str, str] = {}
        chain = [location]
        for name in _PROPS:
            found = self.above(location, name)
            if found:
                chain.append(found)
        for path in reversed(chain):  # the project's own properties win
            for group in self.files[path].iter():
                if _tag(group) != "PropertyGroup":
                    continue
                for prop in group:
                    if _tag(prop) and prop.text:
                        table[_tag(prop)] = prop.text.strip()
        return table

    def central(self, location: str) -> dict[str, str]:
        """Lower-cased package id -> version of the nearest Directory.Packages.props."""
        path = location if leaf(location) == "Directory.Packages.props" else self.above(
            location, "Directory.Packages.props"
        )
        if not path:
            return {}
        props = self.properties(path)
        versions = {}
        for item in _items(self.files[path]):
            if _tag(item) == "PackageVersion":
                name = _attribute(item, "Include") or _attribute(item, "Update")
                versions[name.lower()] = _expand(_attribute(item, "Version"), props)
        return versions


def _items(root: ET.Element) -> Iterator[ET.Element]:
    """The items of an MSBuild file: the children of its ItemGroups (in targets too)."""
    for group in root.iter():
        if _tag(group) == "ItemGroup":
            yield from group


def _expand(value: str, props: dict[str, str]) -> str:
    for _ in range(_EXPAND_MAX):
        if "$(" not in value:
            break
        value = _PROPERTY.sub(lambda m: props.get(m.group(1), m.group(0)), value)
    return value


def _is_msbuild(path: str) -> bool:
    name = leaf(path)
    return name.endswith(_PROJECT_SUFFIXES) or name in _PROPS


def _project(location: str, msbuild: _Msbuild) -> Iterator[Component]:
    root = msbuild.files[location]
    props = msbuild.properties(location)
    central = msbuild.central(location)
    for item in _items(root):
        kind = _tag(item)
        if kind not in ("PackageReference", "GlobalPackageReference"):
            continue
        name = _attribute(item, "Include") or _attribute(item, "Update")
        if not name or "$(" in name:
            continue
        version = (
            _attribute(item, "VersionOverride")
            or _attribute(item, "Version")
            or central.get(name.lower(), "")
        )
        version = exact_version(_expand(version, props))
        if not version:
            continue
        private = _attribute(item, "PrivateAssets").lower()
        dev = private == "all" or (kind == "GlobalPackageReference" and not private)
        yield nuget(name, version, location, "dev" if dev else "runtime")


def _projects(members: list[Member]) -> Iterator[Component]:
    if not any(m.depth and _is_msbuild(inner(m.location)) for m in members):
        return
    msbuild = _Msbuild(members)
    for location in msbuild.files:
        try:
            yield from list(_project(location, msbuild))
        except (ValueError, KeyError, TypeError, AttributeError, RecursionError):
            continue


# -- nuspec --------------------------------------------------------------------------------


def _nuspec(member: Member) -> Iterator[Component]:
    root = _xml(member)
    metadata = next((e for e in root if _tag(e) == "metadata"), None)
    if metadata is None:
        return
    name = _attribute(metadata, "id")
    version = exact_version(_attribute(metadata, "version"))
    if name and version and _restored(inner(member.location), name, version):
        dev = _attribute(metadata, "developmentDependency").lower() == "true"
        yield nuget(name, version, member.location, "dev" if dev else "runtime")


def _restored(path: str, name: str, version: str) -> bool:
    """Whether a nuspec at ``path`` is that of a package file or of a restored package."""
    folders = [part.lower() for part in path.split("/")[:-1]]
    name, version = name.lower(), version.lower()
    return (
        not folders
        or folders[-1] == f"{name}.{version}"
        or (len(folders) >= 2 and folders[-2:] == [name, version])
    )


def _is_nuspec(path: str) -> bool:
    return path.endswith(".nuspec")


# -- the cataloger ---------------------------------------------------------------------------


def collect(members: Iterable[Member]) -> list[Component]:
    members = list(members)
    found = list(each(members, lambda p: leaf(p).endswith(".deps.json"), _deps_json))
    found += each(members, lambda p: leaf(p) == "packages.lock.json", _lock)
    found += each(members, lambda p: leaf(p) == "packages.config", _packages_config)
    found += each(members, _is_nuspec, _nuspec)
    found += _projects(members)
    return found


def keeps(path: str) -> bool:
    """Whether :func:`collect` may read the file at this inner path."""
    name = leaf(path)
    return (
        name.endswith(".deps.json")
        or name in ("packages.lock.json", "packages.config")
        or _is_nuspec(path)
        or _is_msbuild(path)
    )

