"""Ruby: Bundler's ``Gemfile.lock`` (or ``gems.locked``), installed ``specifications/*.gemspec``.

Ecosystem RubyGems, purl type ``gem``. ``Gemfile.lock`` lists the gems of its ``GEM``,
``GIT`` and ``PATH`` sections (four-space ``name (version)`` lines; a platform suffix
such as ``-x86_64-linux`` is not part of the version), but not the ``PATH`` with
``remote: .``: that is the project's own gem. The groups a gem belongs to are in the
Gemfile, not the lock: scope "unknown". A gemspec under ``specifications/`` is what
RubyGems wrote when it installed the gem (``s.name = "rake".freeze``,
``s.version = "13.0.3"``): runtime.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

from scanner.catalogers._common import component, each, leaf, read_text
from scanner.model import Component
from scanner.unpack import Member

_GEMSPEC_MAX = 1024 * 1024
_SPEC = re.compile(r"^ {4}([A-Za-z0-9][A-Za-z0-9._-]*) \(([^()\s]+)\)\s*$")
_SECTIONS = ("GEM", "GIT", "PATH")
_LOCKS = ("Gemfile.lock", "gems.locked")
_INSTALLED = re.compile(r"(^|/)specifications/[^/]+\.gemspec$")
_FIELD = r"^\s*\w+\.{}\s*=\s*(?:Gem::Version\.new\(\s*)?([\"'])([^\"']+)\1"
_NAME = re.compile(_FIELD.format("name"), re.MULTILINE)
_VERSION = re.compile(_FIELD.format("version"), re.MULTILINE)


def gem(name: str, version: str, location: str, scope: str) -> Component | None:
    if not name or not version or not re.match(r"\d", version):
        return None
    return component("RubyGems", name, version, location, purl_type="gem", scope=scope)


def _lock(member: Member) -> Iterator[Component]:
    section = ""
    for line in (read_text(member) or "").splitlines():
        if line and not line[0].isspace():
            section = line.strip()
            continue
        if section == "PATH" and line.strip() == "remote: .":
            section = "PATH ."  # the project itself
        if section not in _SECTIONS:
            continue
        spec = _SPEC.match(line)
        if spec:
            # a platform gem: "1.13.10-x86_64-linux" (RubyGems versions never hold "-")
            version = spec.group(2).split("-", 1)[0]
            found = gem(spec.group(1), version, member.location, "unknown")
            if found:
                yield found


def _gemspec(member: Member) -> Iterator[Component]:
    body = read_text(member, _GEMSPEC_MAX) or ""
    name, version = _NAME.search(body), _VERSION.search(body)
    if name and version:
        found = gem(name.group(2), version.group(2), member.location, "runtime")
        if found:
            yield found


def collect(members: Iterable[Member]) -> list[Component]:
    members = list(members)
    found = list(each(members, lambda p: leaf(p) in _LOCKS, _lock))
    found += each(members, lambda p: bool(_INSTALLED.search(p)), _gemspec)
    return found


def keeps(path: str) -> bool:
    """Whether :func:`collect` may read the file at this inner path."""
    if path.endswith(".gemspec"):
        return bool(_INSTALLED.search(path))
    return path.endswith(_LOCKS) and leaf(path) in _LOCKS
