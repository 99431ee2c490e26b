"""Component cataloging: what package managers left in the unpacked package.

Each cataloger in :mod:`scanner.catalogers` reads one family of metadata files;
this module runs them all and returns the components, deduplicated and sorted.
A component's ``location`` is the member location of the file it came from, and
its version always comes from the package manager's own metadata.

:func:`catalog` reads the files of an unpack that is still on disk. A scan that
removes each file once it is done with it offers every member to a
:class:`Catalog` as it arrives instead: executables (Go build info, cargo-auditable
data, embedded library versions) and apps are read right then, and the few
metadata files a cataloger wants — told by their path alone — stay on disk
until :func:`catalog` reads them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

from scanner.catalogers import (
    conda,
    cpp,
    distro,
    dotnet,
    golang,
    java,
    js_locks,
    native,
    npm,
    php,
    python,
    python_locks,
    ruby,
    rust,
    swift,
)
from scanner.catalogers._common import OutOfTime, inner, session
from scanner.catalogers.executable import executable_head
from scanner.model import NEST, Component, Finding, Limits
from scanner.unpack import Member, Unpacked, unscanned

CATALOGERS = (
    python, python_locks, conda, npm, js_locks, java, golang, rust, php, dotnet, swift, cpp,
    ruby, distro, native,
)
#: Catalogers that read metadata files by path: their ``keeps(path)`` tells which.
_BY_PATH = (
    python, python_locks, conda, npm, js_locks, java, golang, rust, php, dotnet, swift, cpp,
    ruby, distro,
)
#: Bytes of a file's start :meth:`Catalog.offer` needs.
HEAD_BYTES = 4
#: Locations one component is reported at through copies of the archives holding it.
MAX_COPY_LOCATIONS = 10_000


class Catalog:
    """The catalogers, fed one member at a time while the package unpacks."""

    def __init__(self) -> None:
        self.early: dict[object, list[Component]] = {c: [] for c in (golang, rust, native)}

    def offer(self, member: Member, head: bytes | None = None) -> bool:
        """Read what concerns the catalogers in ``member`` now, while it is on disk.

        ``head`` is the file's first bytes (at least :data:`HEAD_BYTES`, or the whole
        file when it is shorter), or None for the member's own (``member.head``) or,
        failing that, to read them here. Returns True when a cataloger will read the
        file at catalog time: it must stay on disk until then.
        """
        path = inner(member.location)
        keep = any(c.keeps(path) for c in _BY_PATH)
        if head is None:
            head = getattr(member, "head", None)
        if head is None and (member.container or member.depth):
            head = _head(member)
        if head is None:
            return keep
        if member.depth and executable_head(head, member.size):
            self.early[golang] += golang.binary(member)
            self.early[rust] += rust.binary(member)
        self.early[native] += native.arrival(member, head)
        return keep

    def components(self, members: list[Member]) -> list[Component]:
        """Every component, once the unpack has ended (see :func:`catalog`)."""
        found = _gather((c, read(), early) for c, read, early in self.collectors(members))
        return with_copies(found, members)

    def collectors(self, members: list[Member]):
        """(cataloger, reads its files, what it read on arrival) for each cataloger."""
        for c in CATALOGERS:
            if c in (golang, rust):
                yield c, (lambda c=c: c.collect_files(members)), self.early.get(c, [])
            elif c is native:
                yield c, list, self.early.get(c, [])
            else:
                yield c, (lambda c=c: c.collect(members)), self.early.get(c, [])


@dataclass
class Cataloged(Unpacked):
    """An unpack whose members were offered to ``feed`` as they arrived."""

    feed: Catalog = field(default_factory=Catalog)


def catalog(unpacked: Unpacked, limits: Limits | None = None) -> list[Component]:
    """Every component found in the unpacked members, one per (ecosystem, name, version, location).

    The catalogers run under ``limits.max_catalog_seconds``: those still to run (or
    running) at the deadline stop. What could not be read — a metadata file too large
    or malformed, a database over its limits, catalogers stopped by the deadline — is
    added to ``unpacked.findings`` as ``unscanned`` findings.
    """
    limits = limits or Limits()
    members = unpacked.members
    if isinstance(unpacked, Cataloged):
        collectors = list(unpacked.feed.collectors(members))
    else:
        collectors = [(c, (lambda c=c: c.collect(members)), []) for c in CATALOGERS]
    parts = []
    with session(time.monotonic() + limits.max_catalog_seconds) as current:
        for i, (cataloger, read, early) in enumerate(collectors):
            try:
                if time.monotonic() > current.deadline:
                    raise OutOfTime()
                files = list(read())
            except OutOfTime:
                stopped = [_name(c) for c, _, _ in collectors[i:]]
                unpacked.findings.append(
                    _finding(_package_location(members), "catalog-deadline",
                             f"cataloging took over {limits.max_catalog_seconds:g} seconds: the"
                             f" metadata files of {', '.join(stopped)} were not (all) read")
                )
                parts.append((cataloger, [], early))
                parts += [(c, [], e) for c, _, e in collectors[i + 1:]]
                break
            parts.append((cataloger, files, early))
        unpacked.findings.extend(
            _finding(u.location, u.code, u.reason) for u in current.unread
        )
    return with_copies(_gather(parts), members)


def _name(cataloger) -> str:
    return cataloger.__name__.rsplit(".", 1)[-1]


def _package_location(members: list[Member]) -> str:
    return next((m.location for m in members if not m.depth), members[0].location if members else "")


def _finding(location: str, code: str, reason: str) -> Finding:
    return replace(unscanned(location, code, reason), engine="catalog")


def with_copies(components: list[Component], members: list[Member]) -> list[Component]:
    """The components found in an archive, at each of its copies' locations too.

    The unpacker opens one archive of each content and lists its copies without
    opening them (their bytes are scanned once); what is inside the first is
    shipped at every location a copy sits.
    """
    opened = {m.location for m in members if m.container}
    copies: dict[str, list[str]] = {}
    for m in members:
        # a copy of a metadata file is only read where its cataloger looks (status-old
        # beside dpkg's status is not an installed tree): only archives' contents move
        if m.copy_of in opened:
            copies.setdefault(m.copy_of, []).append(m.location)
    if not copies:
        return components
    found = {(c.ecosystem, c.name, c.version, c.location): c for c in components}
    for c in components:
        for moved in _copy_locations(c.location, copies):
            found.setdefault((c.ecosystem, c.name, c.version, moved), replace(c, location=moved))
    return [found[key] for key in sorted(found)]


def _copy_locations(location: str, copies: dict[str, list[str]]) -> list[str]:
    """Where else ``location`` is shipped: under every copy of it or of a container
    holding it, copies within copies included (at most :data:`MAX_COPY_LOCATIONS`)."""
    seen, todo, out = {location}, [location], []
    while todo and len(out) < MAX_COPY_LOCATIONS:
        current = todo.pop()
        prefix = current
        while prefix:
            for where in copies.get(prefix, ()):
                moved = where + current[len(prefix):]
                if moved not in seen:
                    seen.add(moved)
                    todo.append(moved)
                    out.append(moved)
            prefix = prefix.rpartition(NEST)[0]
    return out[:MAX_COPY_LOCATIONS]


def _gather(parts) -> list[Component]:
    found: dict[tuple[str, str, str, str], Component] = {}
    for _cataloger, files, early in parts:
        for c in [*files, *early]:
            found.setdefault((c.ecosystem, c.name, c.version, c.location), c)
    return [found[key] for key in sorted(found)]


def _head(member: Member) -> bytes | None:
    try:
        with open(member.path, "rb") as f:
            return f.read(HEAD_BYTES)
    except OSError:
        return None
