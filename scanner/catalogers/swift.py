"""Swift: ``Package.resolved`` of the Swift Package Manager (v1, v2 and v3).

The OSV ``SwiftURL`` ecosystem names a package by its repository URL without the
scheme: ``https://github.com/apple/swift-nio.git`` -> ``github.com/apple/swift-nio``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

from scanner.catalogers._common import as_dict, as_list, component, each, leaf, read_json, text
from scanner.model import Component
from scanner.unpack import Member


def repository_name(url: str) -> str:
    url = url.strip()
    scp = re.fullmatch(r"[\w.-]+@([\w.-]+):(.+)", url)  # git@github.com:owner/repo.git
    if scp:
        url = f"{scp.group(1)}/{scp.group(2)}"
    url = re.sub(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", "", url)
    url = re.sub(r"^[^/@]+@", "", url)  # user@host
    url = url.rstrip("/")
    return url.removesuffix(".git")


def _parse(member: Member) -> Iterator[Component]:
    data = as_dict(read_json(member))
    pins = as_list(data.get("pins")) or as_list(as_dict(data.get("object")).get("pins"))
    for pin in pins:
        pin = as_dict(pin)
        url = text(pin.get("location")) or text(pin.get("repositoryURL"))
        version = text(as_dict(pin.get("state")).get("version"))
        if not url or not version:
            continue  # a pin on a branch or revision has no version to match
        name = repository_name(url)
        namespace, _, bare = name.rpartition("/")
        yield component(
            "SwiftURL",
            name,
            version,
            member.location,
            purl_type="swift",
            namespace=namespace,
            purl_name=bare,
        )


def collect(members: Iterable[Member]) -> list[Component]:
    return list(each(members, lambda p: leaf(p) == "Package.resolved", _parse))


def keeps(path: str) -> bool:
    """Whether :func:`collect` may read the file at this inner path."""
    return leaf(path) == "Package.resolved"
