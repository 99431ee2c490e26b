"""Java: Maven coordinates from jars, wars and ears (nested ones too).

``META-INF/maven/<group>/<artifact>/pom.properties`` is the authority. Only an
archive that holds no pom.properties at all falls back to the main section of
its ``META-INF/MANIFEST.MF`` (Implementation-Title and -Version), and then no
group id is invented: the component is named by its title alone.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

from scanner.catalogers._common import component, container, each, inner, read_text
from scanner.model import Component
from scanner.unpack import Member

_POM = re.compile(r"(^|/)META-INF/maven/([^/]+)/([^/]+)/pom\.properties$")
_MANIFEST = "META-INF/MANIFEST.MF"
_SMALL = 1024 * 1024


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


def _pom(member: Member) -> Iterator[Component]:
    match = _POM.search(inner(member.location))
    values = properties(read_text(member, _SMALL) or "")
    group = values.get("groupId") or match.group(2)
    artifact = values.get("artifactId") or match.group(3)
    version = values.get("version", "")
    if group and artifact and version:
        yield component(
            "Maven",
            f"{group}:{artifact}",
            version,
            member.location,
            purl_type="maven",
            namespace=group,
            purl_name=artifact,
        )


def _manifest(member: Member) -> Iterator[Component]:
    values = manifest(read_text(member, _SMALL) or "")
    title = values.get("Implementation-Title", "").strip()
    version = values.get("Implementation-Version", "").strip()
    if title and version:
        yield component("Maven", title, version, member.location, purl_type="maven")


def collect(members: Iterable[Member]) -> list[Component]:
    members = list(members)
    poms = list(each(members, lambda p: bool(_POM.search(p)), _pom))
    with_pom = {container(m.location) for m in members if _POM.search(inner(m.location))}
    fallback = [m for m in members if container(m.location) not in with_pom]
    return poms + list(each(fallback, lambda p: p == _MANIFEST, _manifest))


def keeps(path: str) -> bool:
    """Whether :func:`collect` may read the file at this inner path."""
    return path == _MANIFEST or bool(_POM.search(path))
