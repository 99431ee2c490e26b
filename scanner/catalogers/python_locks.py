"""Python: requirements files and the lock files of pip-tools, Poetry, Pipenv, PDM and uv.

Sources and the scope each states:

- ``requirements*.txt`` (also ``*.txt`` under a ``requirements/`` directory): only
  exact pins (``name==1.0``, ``name===1.0``) are components; ``-r``/``-c``
  includes are followed inside the package, relative to the including file, a
  few levels deep and never out of the container. A constraints file (``-c``)
  only fixes the version of a package the requirements name without a pin. The
  format says nothing about dev use: scope "unknown".
- ``poetry.lock``: ``category`` (Poetry 1) or ``groups`` (Poetry 2): ``main`` is
  runtime (``optional = true``: optional), any other group is dev.
- ``Pipfile.lock``: ``default`` is runtime, ``develop`` is dev.
- ``pdm.lock``: the ``default`` group is runtime; another group is optional when
  the ``pyproject.toml`` beside the lock names it under
  ``[project.optional-dependencies]``, dev when it names it as a dependency group
  or PDM dev group, and unknown without that file.
- ``uv.lock``: scope follows the lock's graph from the project's own packages:
  ``dependencies`` are runtime, ``optional-dependencies`` optional,
  ``dev-dependencies`` dev. The project's own packages are not components.
"""

from __future__ import annotations

import posixpath
import re
import tomllib
from collections.abc import Iterable, Iterator

from scanner.catalogers._common import (
    PARSE_ERRORS,
    as_dict,
    as_list,
    component,
    container,
    guarded,
    inner,
    leaf,
    read_bytes,
    read_json,
    read_text,
    text,
)
from scanner.catalogers.python import canonical
from scanner.model import NEST, Component
from scanner.unpack import Member

#: A requirements file is a few hundred lines; a generated one with hashes a few MB.
_REQUIREMENTS_MAX = 8 * 1024 * 1024
#: How deep ``-r`` / ``-c`` includes are followed.
_INCLUDE_DEPTH = 8
#: Packages of one lock file (a large monorepo lock holds a few thousand).
_ENTRIES_MAX = 100_000

_LOCKS = ("poetry.lock", "Pipfile.lock", "pdm.lock", "uv.lock")
_ENDINGS = (".lock", "pyproject.toml")

_PIN = re.compile(
    r"^(?P<name>[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)\s*"
    r"(?:\[[^\]]*\])?\s*"
    r"(?:===?)\s*(?P<version>[A-Za-z0-9][A-Za-z0-9.+!_-]*)$"
)
_NAME = re.compile(r"^(?P<name>[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)\s*(?:\[[^\]]*\])?")
_INCLUDE = re.compile(
    r"^(?:(?P<r>-r|--requirement(?=[=\s]))|(?P<c>-c|--constraint(?=[=\s])))\s*=?\s*(?P<path>\S+)"
)


def pypi(name: str, version: str, location: str, scope: str) -> Component | None:
    name, version = name.strip(), version.strip()
    if not name or not version or any(ch.isspace() for ch in name + version):
        return None
    return component(
        "PyPI", name, version, location, purl_type="pypi", purl_name=canonical(name), scope=scope
    )


# -- requirements files ------------------------------------------------------------


def is_requirements(path: str) -> bool:
    lower = path.lower()
    if not lower.endswith(".txt"):
        return False
    name = leaf(lower)
    parent = posixpath.basename(posixpath.dirname(lower))
    return name.startswith("requirements") or parent == "requirements"


def _includable(path: str) -> bool:
    """A file a requirements file may include: kept while the package unpacks."""
    lower = path.lower()
    return lower.endswith((".txt", ".in")) and ("requirement" in lower or "constraint" in lower)


def _decode(data: bytes) -> str:
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16", "replace")
    return data.decode("utf-8", "replace").lstrip("\ufeff")


def _logical_lines(body: str) -> Iterator[str]:
    """Lines with continuations joined and comments removed, as pip reads them."""
    pending = ""
    for raw in body.splitlines():
        # A comment starts at "#" at the line's start or after whitespace.
        line = re.sub(r"(^|\s)#.*$", "", raw)
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line, pending = (pending + line).strip(), ""
        if line:
            yield line
    if pending.strip():
        yield pending.strip()


class _Requirements:
    """What one requirements file says: pins, unpinned names, includes."""

    def __init__(self, body: str) -> None:
        self.pins: list[tuple[str, str]] = []
        self.unpinned: set[str] = set()
        self.includes: list[tuple[str, str]] = []  # ("r" or "c", relative path)
        for line in _logical_lines(body):
            if line.startswith("-"):
                found = _INCLUDE.match(line)
                if found:
                    self.includes.append(("r" if found.group("r") else "c", found.group("path")))
                continue
            # Options after the requirement (--hash=..., --global-option ...) and markers;
            # a "#" never belongs to a pin ("Jinja2==3.0.0#comment").
            requirement = re.split(r"\s--?[A-Za-z]", line, maxsplit=1)[0]
            if "://" not in requirement:
                requirement = requirement.split("#", 1)[0]
            requirement = requirement.split(";", 1)[0].strip()
            if "@" in requirement or "://" in requirement:
                continue  # a direct reference: no registry version
            pin = _PIN.match(requirement)
            if pin and "*" not in pin.group("version"):
                self.pins.append((pin.group("name"), pin.group("version")))
                continue
            named = _NAME.match(requirement)
            if named:
                self.unpinned.add(canonical(named.group("name")))


class _RequirementsReader:
    """Reads requirements files of one package, following includes among ``members``."""

    def __init__(self, members: list[Member]) -> None:
        self.by_location = {m.location: m for m in members}
        self.parsed: dict[str, _Requirements | None] = {}

    def read(self, location: str) -> _Requirements | None:
        if location not in self.parsed:
            self.parsed[location] = None
            member = self.by_location.get(location)
            if member is not None:
                try:
                    data = read_bytes(member, _REQUIREMENTS_MAX)
                    self.parsed[location] = None if data is None else _Requirements(_decode(data))
                except (OSError, *PARSE_ERRORS):
                    self.parsed[location] = None
        return self.parsed[location]

    def include(self, location: str, relative: str) -> str | None:
        """The location of the file ``relative`` names, or None when it leaves the package."""
        if "://" in relative or relative.startswith("/"):
            return None
        base = posixpath.dirname(inner(location))
        path = posixpath.normpath(posixpath.join(base, relative))
        if path == ".." or path.startswith("../") or path.startswith("/"):
            return None
        outer = container(location)
        return f"{outer}{NEST}{path}" if NEST in location else path

    def components(self, location: str) -> list[Component]:
        """The pins of the file at ``location`` and of what it includes."""
        found: list[Component] = []
        seen: set[str] = set()
        unpinned: set[str] = set()
        constraints: list[tuple[str, str, str]] = []

        def walk(at: str, depth: int, constraint: bool) -> None:
            if at in seen or depth > _INCLUDE_DEPTH:
                return
            seen.add(at)
            parsed = self.read(at)
            if parsed is None:
                return
            if constraint:
                constraints.extend((name, version, at) for name, version in parsed.pins)
            else:
                for name, version in parsed.pins:
                    c = pypi(name, version, at, "unknown")
                    if c:
                        found.append(c)
                unpinned.update(parsed.unpinned)
            for kind, relative in parsed.includes:
                target = self.include(at, relative)
                if target:
                    walk(target, depth + 1, constraint or kind == "c")

        walk(location, 0, False)
        pinned = {canonical(c.name) for c in found}
        for name, version, at in constraints:
            key = canonical(name)
            if key in unpinned and key not in pinned:
                c = pypi(name, version, at, "unknown")
                if c:
                    found.append(c)
        return found


# -- lock files --------------------------------------------------------------------


def _packages(data: dict) -> list[dict]:
    return [as_dict(p) for p in as_list(data.get("package"))[:_ENTRIES_MAX]]


def _poetry(body: str, location: str) -> Iterator[Component]:
    for entry in _packages(tomllib.loads(body)):
        groups = [text(g) for g in as_list(entry.get("groups"))]
        category = text(entry.get("category"))
        if groups:
            runtime = "main" in groups
        elif category:
            runtime = category == "main"
        else:
            runtime = None
        if runtime is None:
            scope = "unknown"
        elif not runtime:
            scope = "dev"
        else:
            scope = "optional" if entry.get("optional") is True else "runtime"
        c = pypi(text(entry.get("name")), text(entry.get("version")), location, scope)
        if c:
            yield c


def _pipfile(data: dict, location: str) -> Iterator[Component]:
    for section, scope in (("default", "runtime"), ("develop", "dev")):
        for name, entry in list(as_dict(data.get(section)).items())[:_ENTRIES_MAX]:
            version = text(as_dict(entry).get("version"))
            if version.startswith("=="):
                c = pypi(name, version.lstrip("="), location, scope)
                if c:
                    yield c


def _pdm_groups(pyproject: str | None) -> tuple[set[str], set[str]]:
    """(optional groups, dev groups) a pyproject.toml names."""
    if not pyproject:
        return set(), set()
    data = tomllib.loads(pyproject)
    optional = set(as_dict(as_dict(data.get("project")).get("optional-dependencies")))
    dev = set(as_dict(data.get("dependency-groups")))
    dev |= set(as_dict(as_dict(as_dict(data.get("tool")).get("pdm")).get("dev-dependencies")))
    return optional, dev


def _pdm(body: str, location: str, pyproject: str | None) -> Iterator[Component]:
    try:
        optional, dev = _pdm_groups(pyproject)
    except PARSE_ERRORS:
        optional, dev = set(), set()
    for entry in _packages(tomllib.loads(body)):
        groups = {text(g) for g in as_list(entry.get("groups"))}
        if not groups:
            scope = "unknown"
        elif "default" in groups:
            scope = "runtime"
        elif groups & optional:
            scope = "optional"
        elif groups <= dev:
            scope = "dev"
        else:
            scope = "unknown"
        c = pypi(text(entry.get("name")), text(entry.get("version")), location, scope)
        if c:
            yield c


_LOCAL_SOURCES = ("virtual", "editable", "directory")


def _uv(body: str, location: str) -> Iterator[Component]:
    packages = _packages(tomllib.loads(body))
    by_name: dict[str, list[dict]] = {}
    for p in packages:
        by_name.setdefault(canonical(text(p.get("name"))), []).append(p)

    def targets(edge) -> list[dict]:
        """The packages an edge points at, with the extras it asks for followed too."""
        edge = as_dict(edge)
        candidates = by_name.get(canonical(text(edge.get("name"))), [])
        version = text(edge.get("version"))
        if version:
            candidates = [p for p in candidates if text(p.get("version")) == version] or candidates
        return candidates

    def extras(edge, target: dict) -> list:
        wanted = {text(x) for x in as_list(as_dict(edge).get("extra"))}
        groups = as_dict(target.get("optional-dependencies"))
        return [e for x in wanted for e in as_list(groups.get(x))]

    def group_edges(p: dict, field: str) -> list:
        return [e for deps in as_dict(p.get(field)).values() for e in as_list(deps)]

    roots = [p for p in packages if set(as_dict(p.get("source"))) & set(_LOCAL_SOURCES)]
    scope_of: dict[int, str] = {}
    rank = {"runtime": 0, "optional": 1, "dev": 2}

    def reach(start: list, scope: str) -> None:
        stack = list(start)
        steps = 0
        while stack and steps < _ENTRIES_MAX * 4:
            steps += 1
            edge = stack.pop()
            for p in targets(edge):
                stack.extend(extras(edge, p))
                key = id(p)
                if key in scope_of and rank[scope_of[key]] <= rank[scope]:
                    continue
                scope_of[key] = scope
                stack.extend(as_list(p.get("dependencies")))

    for root in roots:
        reach(as_list(root.get("dependencies")), "runtime")
    for root in roots:
        reach(group_edges(root, "optional-dependencies"), "optional")
    for root in roots:
        reach(group_edges(root, "dev-dependencies"), "dev")
    root_ids = {id(p) for p in roots}
    for p in packages:
        if id(p) in root_ids:
            continue
        scope = scope_of.get(id(p), "unknown")
        c = pypi(text(p.get("name")), text(p.get("version")), location, scope)
        if c:
            yield c


# -- the cataloger -----------------------------------------------------------------


def _lock(member: Member, siblings: dict[str, Member]) -> list[Component]:
    name = leaf(inner(member.location))
    if name == "Pipfile.lock":
        return list(_pipfile(as_dict(read_json(member)), member.location))
    body = read_text(member) or ""
    if name == "poetry.lock":
        return list(_poetry(body, member.location))
    if name == "uv.lock":
        return list(_uv(body, member.location))
    beside = siblings.get(posixpath.join(posixpath.dirname(member.location), "pyproject.toml"))
    pyproject = read_text(beside, _REQUIREMENTS_MAX) if beside is not None else None
    return list(_pdm(body, member.location, pyproject))


def collect(members: Iterable[Member]) -> list[Component]:
    members = [m for m in members if m.depth and keeps(inner(m.location))]
    found: list[Component] = []
    requirements = _RequirementsReader([m for m in members if _includable(inner(m.location))])
    siblings = {m.location: m for m in members if leaf(inner(m.location)) == "pyproject.toml"}
    for member in members:
        path = inner(member.location)
        try:
            if is_requirements(path):
                found += requirements.components(member.location)
            elif leaf(path) in _LOCKS:
                found += guarded(member, lambda m: _lock(m, siblings), _lock_format)
        except PARSE_ERRORS:
            continue
    return found


def _lock_format(head: bytes) -> str | None:
    """The lockfile ``head`` starts, by its header; None for a file that merely shares a name."""
    if b"@generated by Poetry" in head:
        return "a poetry.lock"
    if head.lstrip().startswith(b"{") and b'"_meta"' in head and b'"pipfile-spec"' in head:
        return "a Pipfile.lock"
    return None


def keeps(path: str) -> bool:
    """Whether :func:`collect` may read the file at this inner path."""
    if path.endswith((".txt", ".in")):
        return _includable(path) or is_requirements(path)
    return path.endswith(_ENDINGS) and leaf(path) in (*_LOCKS, "pyproject.toml")
