"""Java: Maven coordinates from jars, wars, ears and Jenkins plugins, ``pom.xml``
and ``gradle.lockfile``.

Archives (nested ones too):

* ``META-INF/maven/<group>/<artifact>/pom.properties`` is the authority; a
  ``pom.properties`` elsewhere in an archive (relocated by shading) counts when it
  states all three coordinates.
* An archive whose ``META-INF/maven/<group>/<artifact>/`` holds only ``pom.xml``
  is named by that path and the pom's version (its own, else its parent's).
* A Jenkins plugin (``.hpi``/``.jpi``) is named by its manifest's ``Group-Id``,
  ``Short-Name`` and ``Plugin-Version`` when no pom names it.
* An archive with no Maven descriptor at all is named from its manifest only when
  the manifest and the file name agree on a real ``groupId:artifactId``: the file
  is ``<artifact>-<version>.jar``, a manifest version is that version, and the
  group is the ``Implementation-Vendor-Id`` or what the ``Bundle-SymbolicName``
  leaves once the artifact is taken off (the maven-bundle-plugin's rule run
  backwards); failing that, the ``Implementation-Vendor-Id`` maven-archiver writes
  and an ``Implementation-Title`` that is an artifact id (a project without a
  ``<name>`` is titled by it), with the ``Implementation-Version``. Otherwise
  nothing is reported: a Maven component without its group id is one no
  advisory can match.

``pom.xml`` files a package holds (a project's sources): each dependency with a
version, ``${property}`` references resolved from the pom, its parents found in
the package (``relativePath`` or the parent's coordinates) and
``dependencyManagement`` (imported BOMs included when the package holds them).
Scope ``test`` is dev; ``provided``, ``system`` and ``<optional>true`` are
optional. A dependency whose version cannot be resolved from what the package
holds is not reported. A dependency's own dependencies are followed where the
package holds its pom (a Maven repository tree such as ``.m2/repository``, found by
``<artifact>/<version>/<artifact>-<version>.pom``, or a pom anywhere else, by the
coordinates it states): Maven's nearest wins (the first declared at one depth; a
``[1.2.3]`` hard requirement over a soft version), the project's
``dependencyManagement`` overrides versions all the way down, compile and runtime
dependencies are transitive and take their parent's scope (test, provided and
optional ones are not), exclusions hold for the subtree; depth and count are
bounded. ``gradle.lockfile``: every locked module; one locked only for test
configurations is dev.
"""

from __future__ import annotations

import posixpath
import re
import xml.etree.ElementTree as ET
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from scanner.catalogers._common import (
    component,
    container,
    each,
    inner,
    leaf,
    looks_like_version,
    read_text,
)
from scanner.model import Component
from scanner.unpack import Member

_POM = re.compile(r"(^|/)META-INF/maven/([^/]+)/([^/]+)/pom\.properties$")
_EMBEDDED_POM = re.compile(r"(^|/)META-INF/maven/([^/]+)/([^/]+)/pom\.xml$")
_MANIFEST = "META-INF/MANIFEST.MF"
_SMALL = 1024 * 1024
#: A pom larger than this is not parsed.
_POM_MAX = 4 * 1024 * 1024
#: Parents followed from one pom, and rounds of ``${...}`` substitution.
_PARENTS_MAX = 16
_EXPAND_MAX = 8
#: Transitive dependencies: how deep, how many per project, how many poms read in all
_DEPTH_MAX = 32
_TRANSITIVE_MAX = 5000
_MODELS_MAX = 5000
_EXCLUSIONS_MAX = 256
#: ``<artifact>/<version>/<artifact>-<version>.pom`` of a Maven repository tree
_REPOSITORY_POM = re.compile(r"(?:^|/)([^/]+)/([^/]+)/\1-\2\.pom$")
_ARCHIVE_NAME = re.compile(
    r"^(?P<artifact>[A-Za-z][\w.-]*?)-(?P<version>\d[\w.+-]*)\.(jar|war|ear|hpi|jpi)$"
)
_GROUP = re.compile(r"^[A-Za-z_][\w-]*(\.[A-Za-z_][\w-]*)+$")
_ARTIFACT_ID = re.compile(r"^[a-z][a-z0-9_.-]*$")
#: A pom.properties elsewhere in an archive (relocated by shading) names a component
#: only when it states all three coordinates.
_OTHER_POM = re.compile(r"(^|/)pom\.properties$")
_PROPERTY = re.compile(r"\$\{([^}]+)\}")


def properties(text: str) -> dict[str, str]:
    """Java .properties "key=value" / "key: value" lines (comments skipped)."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line[0] in "#!":
            continue
        pair = re.match(r"([^=:\s]+)\s*[=:\s]\s*(.*)", line)
        if pair:
            values[pair.group(1)] = pair.group(2).strip()
    return values


def manifest(text: str) -> dict[str, str]:
    """The main section of a jar manifest, continuation lines joined."""
    values: dict[str, str] = {}
    key = None
    for line in text.splitlines():
        if not line.strip():
            break
        if line.startswith(" ") and key:
            values[key] += line[1:]
            continue
        key, sep, value = line.partition(":")
        if not sep:
            key = None
            continue
        key = key.strip()
        values[key] = value.strip()
    return values


def maven(
    group: str, artifact: str, version: str, location: str, scope: str = "runtime"
) -> Component:
    return component(
        "Maven",
        f"{group}:{artifact}",
        version,
        location,
        purl_type="maven",
        namespace=group,
        purl_name=artifact,
        scope=scope,
    )


# -- archives ------------------------------------------------------------------------


def _pom_properties(member: Member) -> Iterator[Component]:
    match = _POM.search(inner(member.location))
    values = properties(read_text(member, _SMALL) or "")
    group = values.get("groupId") or (match.group(2) if match else "")
    artifact = values.get("artifactId") or (match.group(3) if match else "")
    version = values.get("version", "")
    if group and artifact and version:
        yield maven(group, artifact, version, member.location)


def _embedded_pom(member: Member) -> Iterator[Component]:
    match = _EMBEDDED_POM.search(inner(member.location))
    pom = parse_pom(read_text(member, _POM_MAX) or "")
    if pom is None:
        return
    group, artifact = match.group(2), match.group(3)
    version = pom.expand(pom.version or pom.parent_version)
    if looks_like_version(version) and "${" not in version:
        yield maven(group, artifact, version, member.location)


def _manifest(member: Member, named: set[tuple[str, str]]) -> Iterator[Component]:
    values = manifest(read_text(member, _SMALL) or "")
    # A Jenkins plugin names itself.
    group = values.get("Group-Id", "")
    artifact = values.get("Short-Name", "")
    version = values.get("Plugin-Version", "")
    if group and artifact and version:
        if (group, artifact) not in named:
            yield maven(group, artifact, version, member.location)
        return
    if named:
        return
    found = _from_file_name(values, leaf(container(member.location))) or _from_vendor_id(values)
    if found:
        yield maven(*found, member.location)


def _from_vendor_id(values: dict[str, str]) -> tuple[str, str, str] | None:
    """maven-archiver's default entries: the group id, and a title that is an artifact id.

    A project without a ``<name>`` is titled by its artifact id; one with a name
    (``Jackson-core``, ``Apache Commons Lang``) is not taken for one.
    """
    group = values.get("Implementation-Vendor-Id", "").strip()
    title = values.get("Implementation-Title", "").strip()
    version = values.get("Implementation-Version", "").strip()
    if _GROUP.match(group) and _ARTIFACT_ID.match(title) and looks_like_version(version):
        return group, title, version
    return None


def _from_file_name(values: dict[str, str], file_name: str) -> tuple[str, str, str] | None:
    """(group, artifact, version) when the manifest and the archive's name agree."""
    name = _ARCHIVE_NAME.match(file_name)
    if not name:
        return None
    artifact, version = name.group("artifact"), name.group("version")
    versions = {
        values.get(k, "").strip()
        for k in ("Implementation-Version", "Bundle-Version", "Specification-Version")
    }
    if version not in versions:
        return None
    vendor = values.get("Implementation-Vendor-Id", "").strip()
    if _GROUP.match(vendor):
        return vendor, artifact, version
    symbolic = values.get("Bundle-SymbolicName", "").split(";", 1)[0].strip()
    group = _bundle_group(symbolic, artifact)
    if group and _GROUP.match(group):
        return group, artifact, version
    return None


def _bundle_group(symbolic: str, artifact: str) -> str | None:
    """The group id the maven-bundle-plugin made ``symbolic`` from, given the artifact."""
    if not symbolic:
        return None
    if symbolic.endswith("." + artifact):  # com.fasterxml.jackson.core.jackson-core
        return symbolic[: -len(artifact) - 1]
    group, _, rest = symbolic.rpartition(".")
    last = group.rsplit(".", 1)[-1]
    if group and artifact.startswith(last):  # org.apache.commons:commons-text -> ...commons.text
        tail = artifact[len(last):].lstrip("-._")
        if tail and tail.replace("-", ".").replace("_", ".") == rest:
            return group
    return None


# -- pom.xml ---------------------------------------------------------------------------


@dataclass
class Dependency:
    group: str
    artifact: str
    version: str
    scope: str
    optional: bool
    type: str = "jar"
    #: (groupId, artifactId) pairs, either may be ``*``
    exclusions: tuple[tuple[str, str], ...] = ()


@dataclass
class Pom:
    group: str = ""
    artifact: str = ""
    version: str = ""
    parent_group: str = ""
    parent_artifact: str = ""
    parent_version: str = ""
    parent_path: str | None = None
    props: dict[str, str] = field(default_factory=dict)
    dependencies: list[Dependency] = field(default_factory=list)
    managed: list[Dependency] = field(default_factory=list)
    #: Properties inherited from the parents (set once the parents are known).
    inherited: dict[str, str] = field(default_factory=dict)

    def builtins(self) -> dict[str, str]:
        group = self.group or self.parent_group
        version = self.version or self.parent_version
        values = {
            "project.groupId": group,
            "pom.groupId": group,
            "groupId": group,
            "project.artifactId": self.artifact,
            "pom.artifactId": self.artifact,
            "artifactId": self.artifact,
            "project.version": version,
            "pom.version": version,
            "version": version,
            "project.parent.version": self.parent_version,
            "parent.version": self.parent_version,
            "project.parent.groupId": self.parent_group,
            "parent.groupId": self.parent_group,
        }
        return {k: v for k, v in values.items() if v}

    def expand(self, value: str) -> str:
        table = {**self.inherited, **self.props, **self.builtins()}
        for _ in range(_EXPAND_MAX):
            if "${" not in value:
                break
            value = _PROPERTY.sub(lambda m: table.get(m.group(1).strip(), m.group(0)), value)
        return value.strip()


def _tag(element: ET.Element) -> str:
    return element.tag.rsplit("}", 1)[-1] if isinstance(element.tag, str) else ""


def _child(element: ET.Element | None, name: str) -> ET.Element | None:
    if element is None:
        return None
    for child in element:
        if _tag(child) == name:
            return child
    return None


def _value(element: ET.Element | None, name: str) -> str:
    child = _child(element, name)
    return (child.text or "").strip() if child is not None else ""


def _children(element: ET.Element | None, name: str) -> list[ET.Element]:
    child = _child(element, name)
    return [] if child is None else list(child)


def _dependencies(section: ET.Element | None) -> list[Dependency]:
    found = []
    for dep in _children(section, "dependencies"):
        if _tag(dep) != "dependency":
            continue
        found.append(
            Dependency(
                group=_value(dep, "groupId"),
                artifact=_value(dep, "artifactId"),
                version=_value(dep, "version"),
                scope=_value(dep, "scope"),
                optional=_value(dep, "optional").lower() == "true",
                type=_value(dep, "type") or "jar",
                exclusions=tuple(
                    (_value(e, "groupId") or "*", _value(e, "artifactId") or "*")
                    for e in _children(dep, "exclusions")[:_EXCLUSIONS_MAX]
                    if _tag(e) == "exclusion"
                ),
            )
        )
    return found


def parse_pom(text: str) -> Pom | None:
    """The parts of a pom this cataloger reads, or None for a file that is not a pom."""
    if "<!ENTITY" in text or "<!DOCTYPE" in text:
        return None  # a pom has no use for either; entity expansion is refused
    try:
        root = ET.fromstring(text)
    except ET.ParseError as error:
        raise ValueError(f"not XML: {error}") from None
    if _tag(root) != "project":
        return None
    pom = Pom(
        group=_value(root, "groupId"),
        artifact=_value(root, "artifactId"),
        version=_value(root, "version"),
    )
    parent = _child(root, "parent")
    if parent is not None:
        pom.parent_group = _value(parent, "groupId")
        pom.parent_artifact = _value(parent, "artifactId")
        pom.parent_version = _value(parent, "version")
        relative = _child(parent, "relativePath")
        pom.parent_path = "../pom.xml" if relative is None else (relative.text or "").strip()
    for prop in _children(root, "properties"):
        if _tag(prop):
            pom.props[_tag(prop)] = (prop.text or "").strip()
    pom.dependencies = _dependencies(root)
    pom.managed = _dependencies(_child(root, "dependencyManagement"))
    return pom


class _Poms:
    """Every pom in the package, by path and by coordinates, parsed once."""

    def __init__(self, members: list[Member]) -> None:
        self.by_path: dict[str, tuple[Member, Pom]] = {}
        self.by_gav: dict[tuple[str, str, str], tuple[str, Pom]] = {}
        #: a dependency's pom, its parents and what it manages, by coordinates
        self.models: dict[tuple[str, str, str], tuple[Pom, list[Pom], dict]] = {}
        in_repository: dict[tuple[str, str, str], tuple[str, Pom]] = {}
        for member in members:
            path = inner(member.location)
            if not member.depth or not _is_pom_file(path):
                continue
            try:
                pom = parse_pom(read_text(member, _POM_MAX) or "")
            except (ValueError, RecursionError):
                continue
            if pom is None:
                continue
            self.by_path[member.location] = (member, pom)
            group = pom.group or pom.parent_group
            version = pom.version or pom.parent_version
            if group and pom.artifact and version and "${" not in version:
                self.by_gav.setdefault((group, pom.artifact, version), (member.location, pom))
            where = _REPOSITORY_POM.search(path)
            if group and where:  # Maven looks a pom up in a repository by its path
                in_repository[(group, where.group(1), where.group(2))] = (member.location, pom)
        self.by_gav.update(in_repository)

    def dependencies_of(self, group: str, artifact: str, version: str,
                        root: dict[tuple[str, str], Dependency]) -> list[Dependency]:
        """A dependency's own dependencies, from its pom in the package (none without)."""
        key = (group, artifact, version)
        if key not in self.models:
            hit = self.by_gav.get(key)
            if hit is None or len(self.models) >= _MODELS_MAX:
                return []
            location, pom = hit
            chain = self.parents(location, pom)
            _inherit(pom, chain)
            self.models[key] = (pom, chain, _managed(pom, chain, self))
        pom, chain, managed = self.models[key]
        return _declared(pom, chain, managed, root)

    def parents(self, location: str, pom: Pom) -> list[Pom]:
        """The pom's parents found in the package, nearest first."""
        chain: list[Pom] = []
        seen = {id(pom)}
        while pom.parent_artifact and len(chain) < _PARENTS_MAX:
            parent = None
            if pom.parent_path:
                here = posixpath.dirname(location)
                path = posixpath.normpath(posixpath.join(here, pom.parent_path))
                if not path.endswith(".xml"):
                    path = f"{path}/pom.xml"
                hit = self.by_path.get(path)
                if hit and hit[1].artifact == pom.parent_artifact:
                    parent, location = hit[1], path
            if parent is None:
                hit = self.by_gav.get((pom.parent_group, pom.parent_artifact, pom.parent_version))
                if hit:
                    location, parent = hit
            if parent is None or id(parent) in seen:
                break
            seen.add(id(parent))
            chain.append(parent)
            pom = parent
        return chain


def _is_pom_file(path: str) -> bool:
    name = leaf(path)
    return name == "pom.xml" or name.endswith(".pom")


def _inherit(pom: Pom, chain: list[Pom]) -> None:
    inherited: dict[str, str] = {}
    for parent in reversed(chain):
        inherited.update(parent.props)
    pom.inherited = inherited
    if not pom.group:
        pom.group = pom.parent_group
    if not pom.version:
        pom.version = pom.parent_version


def _managed(
    pom: Pom, chain: list[Pom], poms: _Poms, depth: int = 0
) -> dict[tuple[str, str], Dependency]:
    """groupId:artifactId -> the managed dependency (versions and scopes expanded)."""
    table: dict[tuple[str, str], Dependency] = {}
    imports: list[tuple[str, str, str]] = []
    # As Maven does, the model is inherited first and interpolated after: a parent's
    # ${...} takes the value the scanned pom gives it.
    for owner in [pom, *chain]:
        for dep in owner.managed:
            group, artifact = pom.expand(dep.group), pom.expand(dep.artifact)
            version = pom.expand(dep.version)
            if dep.scope == "import" and dep.type == "pom":
                imports.append((group, artifact, version))
                continue
            table.setdefault(
                (group, artifact),
                Dependency(group, artifact, version, pom.expand(dep.scope), dep.optional,
                           exclusions=_expanded(pom, dep.exclusions)),
            )
    # What the poms manage themselves wins over what they import, in any order.
    for gav in imports:
        hit = poms.by_gav.get(gav)
        if hit is not None and depth < _PARENTS_MAX:
            bom_location, bom = hit
            bom_chain = poms.parents(bom_location, bom)
            _inherit(bom, bom_chain)
            for key, value in _managed(bom, bom_chain, poms, depth + 1).items():
                table.setdefault(key, value)
    return table


_SCOPES = {"test": "dev", "provided": "optional", "system": "optional"}


def _expanded(pom: Pom, exclusions: tuple[tuple[str, str], ...]) -> tuple[tuple[str, str], ...]:
    return tuple((pom.expand(g), pom.expand(a)) for g, a in exclusions)


def _declared(pom: Pom, chain: list[Pom], managed: dict[tuple[str, str], Dependency],
              root: dict[tuple[str, str], Dependency] | None = None) -> list[Dependency]:
    """The pom's dependencies (its parents' too), with what its ``dependencyManagement``
    gives those that leave a field out, then what the root project's manages overriding
    (``root``: for a dependency's own pom; never a ``test`` scope), as Maven does."""
    declared: dict[tuple[str, str], Dependency] = {}
    for owner in [pom, *chain]:  # a parent's dependencies are inherited
        for dep in owner.dependencies:
            key = (pom.expand(dep.group), pom.expand(dep.artifact))
            declared.setdefault(key, Dependency(
                *key, pom.expand(dep.version), pom.expand(dep.scope), dep.optional,
                exclusions=_expanded(pom, dep.exclusions)))
    for key, dep in declared.items():
        manage = managed.get(key)
        if manage is not None:
            dep.version = dep.version or manage.version
            dep.scope = dep.scope or manage.scope
            dep.optional = dep.optional or manage.optional
            dep.exclusions += manage.exclusions
        manage = (root or {}).get(key)
        if manage is not None:
            dep.version = manage.version or dep.version
            if manage.scope and dep.scope != "test":
                dep.scope = manage.scope
            dep.optional = dep.optional or manage.optional
            dep.exclusions += manage.exclusions
    return list(declared.values())


def _pinned(version: str) -> tuple[str, bool]:
    """(version, whether it is a hard requirement): ``[1.2.3]`` pins a version that
    wins over a nearer soft one; any other range names no version shipped."""
    if version.startswith("[") and version.endswith("]") and "," not in version:
        return version[1:-1].strip(), True
    return version, False


def _excluded(exclusions: frozenset[tuple[str, str]], group: str, artifact: str) -> bool:
    return any(g in ("*", group) and a in ("*", artifact) for g, a in exclusions)


def _project(member: Member, pom: Pom, poms: _Poms) -> Iterator[Component]:
    chain = poms.parents(member.location, pom)
    _inherit(pom, chain)
    managed = _managed(pom, chain, poms)
    # groupId:artifactId -> [version, hard, scope, depth]: Maven's nearest wins, the
    # first declared at the same depth, a hard requirement over a soft one
    chosen: dict[tuple[str, str], list] = {}
    queue: deque[tuple[Dependency, str, int, frozenset]] = deque()
    for dep in _declared(pom, chain, managed):
        version, hard = _pinned(dep.version)
        if not dep.group or not dep.artifact or "${" in dep.group + dep.artifact + version:
            continue
        if not looks_like_version(version) or dep.scope == "import":
            continue  # no version, or a range: nothing the package says was shipped
        kind = "optional" if dep.optional else _SCOPES.get(dep.scope, "runtime")
        chosen.setdefault((dep.group, dep.artifact), [version, hard, kind, 1])
        queue.append((Dependency(dep.group, dep.artifact, version, dep.scope, dep.optional),
                      kind, 1, frozenset(dep.exclusions)))
    _transitive(queue, chosen, managed, poms)
    for (group, artifact), (version, _hard, kind, _depth) in chosen.items():
        yield maven(group, artifact, version, member.location, kind)


def _transitive(queue, chosen, root: dict[tuple[str, str], Dependency], poms: _Poms) -> None:
    """Follow the dependencies' own poms the package holds (a local repository tree,
    poms beside jars), breadth first. Scopes as Maven propagates them: a dependency's
    compile and runtime dependencies are its own scope's (runtime under runtime stays
    runtime, anything under test is test); test, provided and optional ones are not
    transitive. Exclusions hold for the whole subtree. Bounded in depth and count."""
    while queue and len(chosen) < _TRANSITIVE_MAX:
        dep, kind, depth, exclusions = queue.popleft()
        if depth >= _DEPTH_MAX:
            continue
        for child in poms.dependencies_of(dep.group, dep.artifact, dep.version, root):
            if child.optional or child.scope not in ("", "compile", "runtime"):
                continue
            version, hard = _pinned(child.version)
            key = (child.group, child.artifact)
            if (not child.group or not child.artifact or _excluded(exclusions, *key)
                    or "${" in child.group + child.artifact + version
                    or not looks_like_version(version)):
                continue
            seen = chosen.get(key)
            if seen is not None:
                if kind == "runtime" and seen[3] > 1:
                    seen[2] = "runtime"  # also reached at run time: the wider scope
                if not hard or seen[1] or seen[0] == version:
                    continue
                seen[0], seen[1] = version, True  # a hard requirement wins
            else:
                chosen[key] = [version, hard, kind, depth + 1]
            queue.append((Dependency(*key, version, child.scope, False), kind, depth + 1,
                          exclusions | frozenset(child.exclusions)))


def _projects(members: list[Member]) -> Iterator[Component]:
    wanted = [m for m in members if m.depth and leaf(inner(m.location)) == "pom.xml"
              and not _EMBEDDED_POM.search(inner(m.location))]
    if not wanted:
        return
    poms = _Poms(members)
    for member in wanted:
        hit = poms.by_path.get(member.location)
        if hit is None:
            continue
        try:
            yield from list(_project(member, hit[1], poms))
        except (ValueError, KeyError, TypeError, AttributeError, RecursionError):
            continue


# -- gradle.lockfile -------------------------------------------------------------------

_TEST_CONFIGURATION = re.compile(r"(^test|Test[A-Z]|Test$)")
_LOCK_LINE = re.compile(r"^([^:=\s]+):([^:=\s]+):([^:=\s]+)=(.*)$")


def _gradle_scope(configurations: str) -> str:
    names = [c.strip() for c in configurations.split(",") if c.strip()]
    if names and all(_TEST_CONFIGURATION.search(n) for n in names):
        return "dev"
    return "runtime"


def _gradle_lock(member: Member) -> Iterator[Component]:
    for line in (read_text(member) or "").splitlines():
        found = _LOCK_LINE.match(line.strip())
        if not found:
            continue
        group, artifact, version, configurations = found.groups()
        yield maven(group, artifact, version, member.location, _gradle_scope(configurations))


def _is_gradle_lock(path: str) -> bool:
    return leaf(path).endswith("gradle.lockfile")


# -- the cataloger ----------------------------------------------------------------------


def collect(members: Iterable[Member]) -> list[Component]:
    members = list(members)
    found = list(each(members, lambda p: bool(_POM.search(p)), _pom_properties))
    # Elsewhere in an archive (not in a directory tree of the package itself).
    found += each(
        [m for m in members if m.depth > 1],
        lambda p: bool(_OTHER_POM.search(p)) and not _POM.search(p),
        _pom_properties,
    )
    described: dict[str, set[tuple[str, str]]] = {}
    for m in members:
        hit = _POM.search(inner(m.location))
        if hit:
            described.setdefault(container(m.location), set()).add((hit.group(2), hit.group(3)))
    pom_only = []
    for m in members:
        hit = _EMBEDDED_POM.search(inner(m.location))
        if hit and (hit.group(2), hit.group(3)) not in described.get(container(m.location), set()):
            pom_only.append(m)
    found += each(pom_only, lambda p: True, _embedded_pom)
    for m in pom_only:
        hit = _EMBEDDED_POM.search(inner(m.location))
        described.setdefault(container(m.location), set()).add((hit.group(2), hit.group(3)))
    found += each(
        members,
        lambda p: p == _MANIFEST,
        lambda m: _manifest(m, described.get(container(m.location), set())),
    )
    found += _projects(members)
    found += each(members, _is_gradle_lock, _gradle_lock)
    return found


def keeps(path: str) -> bool:
    """Whether :func:`collect` may read the file at this inner path."""
    return (
        path == _MANIFEST
        or bool(_OTHER_POM.search(path))
        or _is_pom_file(path)
        or _is_gradle_lock(path)
    )
