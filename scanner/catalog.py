"""Component cataloging: what package managers left in the unpacked package.

Each cataloger in :mod:`scanner.catalogers` reads one family of metadata files;
this module runs them all and returns the components, deduplicated and sorted.
A component's ``location`` is the member location of the file it came from, and
its version always comes from the package manager's own metadata.
"""

from __future__ import annotations

from scanner.catalogers import (
    distro,
    dotnet,
    golang,
    java,
    native,
    npm,
    php,
    python,
    rust,
    swift,
)
from scanner.model import Component
from scanner.unpack import Unpacked

CATALOGERS = (python, npm, java, golang, rust, php, dotnet, swift, distro, native)


def catalog(unpacked: Unpacked) -> list[Component]:
    """Every component found in the unpacked members, one per (ecosystem, name, version, location)."""
    members = unpacked.members
    found: dict[tuple[str, str, str, str], Component] = {}
    for cataloger in CATALOGERS:
        for c in cataloger.collect(members):
            found.setdefault((c.ecosystem, c.name, c.version, c.location), c)
    return [found[key] for key in sorted(found)]
