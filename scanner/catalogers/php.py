"""PHP: Composer's ``composer.lock`` and ``vendor/composer/installed.json``.

installed.json is a list (Composer 1) or ``{"packages": [...]}`` (Composer 2).
Versions drop the leading "v" of tags ("v5.4.6" -> "5.4.6"), as Composer
itself normalises them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

from scanner.catalogers._common import as_dict, as_list, component, each, leaf, read_json, text
from scanner.model import Component
from scanner.unpack import Member


def composer(entry: dict, location: str) -> Component | None:
    name = text(entry.get("name")).lower()
    version = text(entry.get("version"))
    if not name or not version:
        return None
    if re.match(r"[vV]\d", version):
        version = version[1:]
    vendor, _, bare = name.rpartition("/")
    return component(
        "Packagist", name, version, location, purl_type="composer", namespace=vendor, purl_name=bare
    )


def _entries(data) -> list:
    if isinstance(data, list):
        return data
    data = as_dict(data)
    return as_list(data.get("packages")) + as_list(data.get("packages-dev"))


def _parse(member: Member) -> Iterator[Component]:
    for entry in _entries(read_json(member)):
        found = composer(as_dict(entry), member.location)
        if found:
            yield found


def _wanted(path: str) -> bool:
    return leaf(path) == "composer.lock" or path.endswith("composer/installed.json")


def collect(members: Iterable[Member]) -> list[Component]:
    return list(each(members, _wanted, _parse))


def keeps(path: str) -> bool:
    """Whether :func:`collect` may read the file at this inner path."""
    return _wanted(path)
