"""JavaScript lock files besides npm's: Yarn (v1 and berry), pnpm and Bun.

Sources and the scope each states:

- ``yarn.lock`` v1 (its own format) and berry (v2+, YAML with ``__metadata``): every
  resolved registry package; an alias (``"x@npm:case@1.6.3"``) is the real package.
  The lock does not say which packages are dev: the scope follows the graph from
  the ``package.json`` beside it, as for pnpm v9, and is "unknown" without one
  (and for what the project's manifest does not reach). Workspace, link, portal,
  file and patch entries are the project's own code, not components; git and URL
  references are no registry release and are left out too.
- ``pnpm-lock.yaml``, lockfile versions 5 to 9 (a tarball or packed file is reported
  with the version the lock gives it): v5/v6 mark packages ``dev: true``
  (dev), ``dev: false`` (runtime) and ``optional: true``; v9 states no flag, so the
  scope follows the graph from the importers (``dependencies`` runtime,
  ``optionalDependencies`` optional, ``devDependencies`` dev).
- ``bun.lock`` (text, JSONC): the graph from the workspaces, as for pnpm v9.
"""

from __future__ import annotations

import json
import posixpath
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from scanner.catalogers import _lockyaml
from scanner.catalogers._common import (
    PARSE_ERRORS,
    as_dict,
    as_list,
    guarded,
    inner,
    leaf,
    looks_like_version,
    read_json,
    read_text,
    text,
)
from scanner.catalogers.npm import npm_component
from scanner.model import Component
from scanner.unpack import Member

_LOCKS = ("yarn.lock", "pnpm-lock.yaml", "bun.lock")
_ENDINGS = (".lock", ".yaml", "package.json")
#: Packages of one lock file.
_ENTRIES_MAX = 200_000
_RANK = {"runtime": 0, "optional": 1, "dev": 2}
#: A range with a protocol other than npm's: "github:", "git+https:", "file:", "workspace:"...
_PROTOCOL = re.compile(r"^[a-z][a-z0-9+.-]*:")


def split_spec(spec: str) -> tuple[str, str]:
    """``@scope/name@range`` -> (``@scope/name``, ``range``)."""
    at = spec.find("@", 1)
    if at < 0:
        return spec, ""
    return spec[:at], spec[at + 1 :]


def _npm(name: str, version: str, location: str, scope: str) -> Component | None:
    return npm_component(name, version, location, scope)


# -- Yarn -----------------------------------------------------------------------------


@dataclass
class _YarnEntry:
    name: str
    version: str
    #: False for git, URL, path and workspace references: no registry release.
    release: bool
    dependencies: dict = field(default_factory=dict)
    optional: dict = field(default_factory=dict)


def _yarn_v1(body: str) -> tuple[list[_YarnEntry], dict[str, int]]:
    entries: list[_YarnEntry] = []
    index: dict[str, int] = {}
    current: _YarnEntry | None = None
    group: dict | None = None
    for count, line in enumerate(body.splitlines()):
        if count >= _lockyaml.MAX_LINES:
            break
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if not line.startswith(" "):
            specs = [s.strip().strip('"') for s in line.rstrip().rstrip(":").split(",")]
            name, wanted = split_spec(specs[0])
            release = True
            if wanted.startswith("npm:"):
                name, _ = split_spec(wanted[4:])
            elif _PROTOCOL.match(wanted):
                release = False  # git, a URL, a path or the project's own
            current, group = _YarnEntry(name, "", release), None
            entries.append(current)
            for spec in specs:
                index.setdefault(spec, len(entries) - 1)
            continue
        if current is None:
            continue
        key, _, value = line.strip().partition(" ")
        key, value = key.strip('"').rstrip(":"), value.strip().strip('"')
        if not line.startswith("   "):
            group = {"dependencies": current.dependencies,
                     "optionalDependencies": current.optional}.get(key)
            if key == "version":
                current.version = value
        elif group is not None and not line.startswith("     "):
            group[key] = value
    return entries, index


def _yarn_berry(data: dict) -> tuple[list[_YarnEntry], dict[str, int]]:
    entries: list[_YarnEntry] = []
    index: dict[str, int] = {}
    for key, entry in list(data.items())[:_ENTRIES_MAX]:
        entry = as_dict(entry)
        if key == "__metadata" or not entry:
            continue
        resolution = text(entry.get("resolution")) or key.split(",")[0].strip()
        name, reference = split_spec(resolution)
        # workspace, patch, link, git: the project's own or not a release
        release = reference.startswith("npm:")
        version = text(entry.get("version")) or reference[4:]
        dependencies = {k: text(v) for k, v in as_dict(entry.get("dependencies")).items()}
        meta = as_dict(entry.get("dependenciesMeta"))
        optional = {k: v for k, v in dependencies.items()
                    if as_dict(meta.get(k)).get("optional") is True}
        entries.append(_YarnEntry(
            name, version, release,
            {k: v for k, v in dependencies.items() if k not in optional}, optional,
        ))
        for spec in key.split(","):
            index.setdefault(spec.strip(), len(entries) - 1)
    return entries, index


def _yarn_scopes(
    entries: list[_YarnEntry], index: dict[str, int], manifest: dict
) -> dict[int, str]:
    """Scope of each entry from the package.json beside the lock."""

    def target(name: str, wanted) -> int | None:
        wanted = text(wanted)
        for spec in (f"{name}@{wanted}", f"{name}@npm:{wanted}"):
            if spec in index:
                return index[spec]
        return None

    scope_of: dict[int, str] = {}

    def reach(start: list[tuple[int, str]]) -> None:
        stack = list(start)
        steps = 0
        while stack and steps < _ENTRIES_MAX * 4:
            steps += 1
            at, scope = stack.pop()
            if at in scope_of and _RANK[scope_of[at]] <= _RANK[scope]:
                continue
            scope_of[at] = scope
            weaker = "optional" if scope == "runtime" else scope
            for deps, s in ((entries[at].dependencies, scope), (entries[at].optional, weaker)):
                stack.extend((t, s) for n, w in deps.items() if (t := target(n, w)) is not None)

    for field_name, scope in (
        ("dependencies", "runtime"), ("optionalDependencies", "optional"),
        ("peerDependencies", "runtime"), ("devDependencies", "dev"),
    ):
        deps = as_dict(manifest.get(field_name))
        reach([(t, scope) for n, w in deps.items() if (t := target(n, w)) is not None])
    return scope_of


def _yarn(body: str, location: str, manifest: dict | None) -> Iterator[Component]:
    if "__metadata:" in body[:4096]:
        entries, index = _yarn_berry(_lockyaml.loads(body))
    else:
        entries, index = _yarn_v1(body)
    scope_of = _yarn_scopes(entries, index, manifest) if manifest else {}
    for at, entry in enumerate(entries):
        if entry.release:
            found = _npm(entry.name, entry.version, location, scope_of.get(at, "unknown"))
            if found:
                yield found


# -- pnpm -----------------------------------------------------------------------------


_PNPM_V5 = re.compile(r"^((?:@[^/]+/)?[^/@]+)/([^/_]+)(?:_.*)?$")
_PNPM_V6 = re.compile(r"^((?:@[^/@]+/)?[^/@]+)@([^/@]+)$")


def _pnpm_key(key: str) -> tuple[str, str]:
    """(name, version) of a pnpm package key, in any lockfile version."""
    key = key.strip()
    if "(" in key:
        key = key[: key.index("(")]
    key = key.lstrip("/")
    v5 = _PNPM_V5.match(key)  # "/name/1.0.0", "/@scope/name/1.0.0_peer@1.0.0"
    if v5:
        return v5.group(1), v5.group(2)
    v6 = _PNPM_V6.match(key)  # v6 "/name@1.0.0", v9 "name@1.0.0"
    if v6:
        return v6.group(1), v6.group(2)
    # v5 with a registry host: "registry.npmjs.org/@scope/name/1.0.0", "example.com/n/1.3.0_p@2"
    parts = re.sub(r"_[^/]*$", "", key).split("/")
    if len(parts) > 2 and "." in parts[0]:
        parts = parts[1:]
    return "/".join(parts[:-1]), parts[-1]


def _pnpm(data: dict, location: str) -> Iterator[Component]:
    packages = as_dict(data.get("packages"))
    snapshots = as_dict(data.get("snapshots"))
    try:
        major = int(float(str(data.get("lockfileVersion", "9")).strip("'\"")))
    except ValueError:
        major = 9
    flags = major < 9 and not snapshots
    scope_of = {} if flags else _pnpm_graph(data, packages, snapshots)
    for key, entry in list(packages.items())[:_ENTRIES_MAX]:
        entry = as_dict(entry)
        name, version = _pnpm_key(key)
        name = text(entry.get("name")) or name
        version = text(entry.get("version")) or version
        if not npm_component(name, version, location):
            # a tarball or a packed file the lock names with its version:
            # "asynckit@https://github.com/.../tarball/v0.4.0", "lodash@file:vendor/lodash.tgz"
            name = split_spec(_pnpm_id(key))[0]
        if flags:
            if entry.get("dev") is True:
                scope = "dev"
            elif entry.get("optional") is True:
                scope = "optional"
            else:
                scope = "runtime"
        else:
            scope = scope_of.get(_pnpm_id(key), "unknown")
        found = _npm(name, version, location, scope)
        if found:
            yield found


def _pnpm_environment(document: dict) -> bool:
    """pnpm's own environment (the package manager's version, written before the
    project's lock in the same file): no package of the project."""
    kinds = {k for i in as_dict(document.get("importers")).values() for k in as_dict(i)}
    return bool(kinds) and kinds <= {"packageManagerDependencies", "configDependencies"}


def _pnpm_id(key: str) -> str:
    """A package's key without its peer suffix: ``a@1.0.0(b@2.0.0)`` -> ``a@1.0.0``."""
    key = key.lstrip("/")
    return key[: key.index("(")] if "(" in key else key


def _pnpm_graph(data: dict, packages: dict, snapshots: dict) -> dict[str, str]:
    """Scope of each package (by :func:`_pnpm_id`) from the importers' dependency kinds."""
    nodes = snapshots or packages

    def target(name: str, ref) -> str | None:
        ref = text(as_dict(ref).get("version")) if isinstance(ref, dict) else text(ref)
        if not ref or ref.startswith("link:"):
            return None
        return ref if "@" in ref[1:] and not ref.startswith("(") else f"{name}@{ref}"

    importers = as_dict(data.get("importers")) or {".": data}
    scope_of: dict[str, str] = {}
    by_snapshot: dict[str, dict] = {k.lstrip("/"): as_dict(v) for k, v in nodes.items()}

    def reach(start: list[tuple[str, str]]) -> None:
        stack = list(start)
        steps = 0
        while stack and steps < _ENTRIES_MAX * 4:
            steps += 1
            node, node_scope = stack.pop()
            pid = _pnpm_id(node)
            if pid in scope_of and _RANK[scope_of[pid]] <= _RANK[node_scope]:
                continue
            scope_of[pid] = node_scope
            entry = by_snapshot.get(node, {})
            weaker = "optional" if node_scope == "runtime" else node_scope
            for group, s in (("dependencies", node_scope), ("optionalDependencies", weaker)):
                for name, ref in as_dict(entry.get(group)).items():
                    t = target(name, ref)
                    if t:
                        stack.append((t, s))

    for group, scope in (
        ("dependencies", "runtime"), ("optionalDependencies", "optional"),
        ("devDependencies", "dev"),
    ):
        for importer in importers.values():
            deps = as_dict(as_dict(importer).get(group))
            reach([(t, scope) for n, r in deps.items() if (t := target(n, r))])
    return scope_of


# -- Bun ------------------------------------------------------------------------------


def jsonc(body: str):
    """JSON with comments and trailing commas, as bun.lock is written."""
    out: list[str] = []
    i, n = 0, len(body)
    while i < n:
        ch = body[i]
        if ch == '"':
            j = i + 1
            while j < n and body[j] != '"':
                j += 2 if body[j] == "\\" else 1
            out.append(body[i : j + 1])
            i = j + 1
        elif body.startswith("//", i):
            j = body.find("\n", i)
            i = n if j < 0 else j
        elif body.startswith("/*", i):
            j = body.find("*/", i + 2)
            i = n if j < 0 else j + 2
        elif ch == ",":
            j = i + 1
            while j < n and body[j] in " \t\r\n":
                j += 1
            if j < n and body[j] in "]}":
                i += 1
                continue
            out.append(ch)
            i += 1
        else:
            j = i
            while j < n and body[j] not in '",/':
                j += 1
            if j == i:
                out.append(ch)
                j = i + 1
            else:
                out.append(body[i:j])
            i = j
    return json.loads("".join(out))


def _bun(data: dict, location: str) -> Iterator[Component]:
    packages = as_dict(data.get("packages"))

    def resolve(parent: str, name: str) -> str | None:
        nested = f"{parent}/{name}" if parent else name
        if nested in packages:
            return nested
        return name if name in packages else None

    scope_of: dict[str, str] = {}

    def reach(start: list[tuple[str, str]]) -> None:
        stack = list(start)
        steps = 0
        while stack and steps < _ENTRIES_MAX * 4:
            steps += 1
            key, node_scope = stack.pop()
            if key in scope_of and _RANK[scope_of[key]] <= _RANK[node_scope]:
                continue
            scope_of[key] = node_scope
            entry = as_list(packages.get(key))
            info = as_dict(entry[2]) if len(entry) > 2 else {}
            weaker = "optional" if node_scope == "runtime" else node_scope
            for group, s in (("dependencies", node_scope), ("optionalDependencies", weaker)):
                for dep in as_dict(info.get(group)):
                    t = resolve(key, dep)
                    if t:
                        stack.append((t, s))

    for group, scope in (
        ("dependencies", "runtime"), ("optionalDependencies", "optional"),
        ("peerDependencies", "runtime"), ("devDependencies", "dev"),
    ):
        for workspace in as_dict(data.get("workspaces")).values():
            deps = as_dict(as_dict(workspace).get(group))
            reach([(t, scope) for d in deps if (t := resolve("", d))])

    for key, entry in list(packages.items())[:_ENTRIES_MAX]:
        ident = text(as_list(entry)[0]) if as_list(entry) else ""
        name, version = split_spec(ident)
        if not looks_like_version(version):
            continue  # workspace:, github:, file:, link: and tarball URLs
        found = _npm(name, version, location, scope_of.get(key, "unknown"))
        if found:
            yield found


# -- the cataloger --------------------------------------------------------------------


def _parse(member: Member, manifests: dict[str, Member]) -> list[Component]:
    body = read_text(member) or ""
    name = leaf(inner(member.location))
    if name == "yarn.lock":
        beside = manifests.get(posixpath.join(posixpath.dirname(member.location), "package.json"))
        try:
            manifest = as_dict(read_json(beside)) if beside is not None else None
        except PARSE_ERRORS:
            manifest = None
        return list(_yarn(body, member.location, manifest))
    if name == "pnpm-lock.yaml":
        return [
            c for document in _lockyaml.documents(body) if not _pnpm_environment(document)
            for c in _pnpm(document, member.location)
        ]
    return list(_bun(as_dict(jsonc(body)), member.location))


def collect(members: Iterable[Member]) -> list[Component]:
    members = [m for m in members if m.depth and keeps(inner(m.location))]
    manifests = {m.location: m for m in members if leaf(inner(m.location)) == "package.json"}
    found: list[Component] = []
    for member in members:
        if leaf(inner(member.location)) in _LOCKS:
            found += guarded(member, lambda m: _parse(m, manifests), _lock_format)
    return found


def _lock_format(head: bytes) -> str | None:
    """The lockfile ``head`` starts, by its header; None for a file that merely shares a name."""
    if b"# yarn lockfile v1" in head or head.lstrip().startswith(b"__metadata:") or (
            b"\n__metadata:" in head):
        return "a yarn.lock"
    if re.match(rb"\s*['\"]?lockfileVersion['\"]?\s*:", head):
        return "a pnpm lockfile"
    return None


def keeps(path: str) -> bool:
    """Whether :func:`collect` may read the file at this inner path (a yarn.lock's
    scopes come from the package.json beside it)."""
    return path.endswith(_ENDINGS) and leaf(path) in (*_LOCKS, "package.json")
