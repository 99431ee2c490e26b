""".NET: the ``libraries`` of ``*.deps.json`` files that are NuGet packages."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from scanner.catalogers._common import as_dict, component, each, leaf, read_json, text
from scanner.model import Component
from scanner.unpack import Member


def _parse(member: Member) -> Iterator[Component]:
    libraries = as_dict(as_dict(read_json(member)).get("libraries"))
    for key, entry in libraries.items():
        if text(as_dict(entry).get("type")) != "package":
            continue
        name, _, version = key.rpartition("/")
        if name and version:
            yield component("NuGet", name, version, member.location, purl_type="nuget")


def collect(members: Iterable[Member]) -> list[Component]:
    return list(each(members, lambda p: leaf(p).endswith(".deps.json"), _parse))


def keeps(path: str) -> bool:
    """Whether :func:`collect` may read the file at this inner path."""
    return leaf(path).endswith(".deps.json")
