"""Swift and iOS: ``Package.resolved`` of the Swift Package Manager (v1, v2 and v3)
and CocoaPods' ``Podfile.lock``.

The OSV ``SwiftURL`` ecosystem names a package by its repository URL without the
scheme: ``https://github.com/apple/swift-nio.git`` -> ``github.com/apple/swift-nio``.
A pin on a branch or a bare revision is reported at that revision (the commit
shipped), which no version range matches but the report and SBOM list. A local
package (``localSourceControl``) is the project's own code and is not reported.

``Podfile.lock``: every pod of its ``PODS`` section, subspecs included
(``AppCenter/Core``, purl ``pkg:cocoapods/AppCenter@4.2.0#Core``). OSV has no
CocoaPods ecosystem: the pods are listed under ``CocoaPods`` and match nothing.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Iterator

from packageurl import PackageURL

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
        if text(pin.get("kind")) in ("localSourceControl", "fileSystem"):
            continue  # the project's own code, on the developer's disk
        state = as_dict(pin.get("state"))
        version = text(state.get("version")) or text(state.get("revision"))
        if not url or not version:
            continue
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


_POD = re.compile(r"""^  - ["']?([^\s"'()]+) \(([^()\s]+)\)["']?:?\s*$""")
_PODS_MAX = 100_000


def _podfile_lock(member: Member) -> Iterator[Component]:
    lines = (read_text(member) or "").splitlines()
    try:
        start = lines.index("PODS:")
    except ValueError:
        return
    for line in lines[start + 1 : start + 1 + _PODS_MAX]:
        if line and not line.startswith(" "):
            break  # the next section
        pod = _POD.match(line)
        if not pod:
            continue  # a pod's own dependencies, four spaces in
        name, version = pod.groups()
        if not looks_like_version(version):
            continue
        base, _, subspec = name.partition("/")
        found = component("CocoaPods", name, version, member.location, purl_type="cocoapods",
                          purl_name=base)
        if subspec:
            purl = PackageURL(type="cocoapods", name=base, version=version, subpath=subspec)
            found = dataclasses.replace(found, purl=purl.to_string())
        yield found


def collect(members: Iterable[Member]) -> list[Component]:
    members = list(members)
    found = list(each(members, lambda p: leaf(p) == "Package.resolved", _parse))
    found += each(members, lambda p: leaf(p) == "Podfile.lock", _podfile_lock)
    return found


def keeps(path: str) -> bool:
    """Whether :func:`collect` may read the file at this inner path."""
    return leaf(path) in ("Package.resolved", "Podfile.lock")
