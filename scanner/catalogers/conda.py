"""conda: the package records of an environment, ``conda-meta/*.json``.

Ecosystem "conda", purl type ``conda``
(``pkg:conda/name@version?build=...&channel=...&subdir=...``).
OSV has no conda ecosystem, and a conda package is not a PyPI release: conda's
``openssl`` or ``python`` are native builds, its ``pyyaml`` a rebuild that may
carry its own patches, and conda names and versions only partly follow PyPI's.
Reporting them as PyPI would match advisories on guesswork. A conda package
that installs a Python distribution also installs its ``*.dist-info`` (or
``*.egg-info``) under ``site-packages``, and the Python cataloger reports that
one as PyPI, from the distribution's own metadata.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

from scanner.catalogers._common import as_dict, component, each, read_json, text
from scanner.model import Component
from scanner.unpack import Member

_RECORD = re.compile(r"(^|/)conda-meta/[^/]+\.json$")
_SUBDIR = re.compile(r"noarch|[a-z]+-(?:64|32|aarch64|armv[67]l|ppc64le|s390x|arm64)")


def _channel(url: str) -> tuple[str, str]:
    """(channel, subdir) of a record's channel URL: ".../pkgs/main/linux-64" -> (main, linux-64)."""
    parts = [p for p in url.rstrip("/").split("/") if p]
    if len(parts) >= 2 and _SUBDIR.fullmatch(parts[-1]):
        return parts[-2], parts[-1]
    return (parts[-1] if parts else ""), ""


def _parse(member: Member) -> Iterator[Component]:
    data = as_dict(read_json(member))
    name, version = text(data.get("name")), text(data.get("version"))
    if not name or not version:
        return
    channel, subdir = _channel(text(data.get("channel")))
    qualifiers = {
        key: value
        for key, value in (
            ("build", text(data.get("build"))),
            ("channel", channel),
            ("subdir", text(data.get("subdir")) or subdir),
        )
        if value
    }
    yield component(
        "conda", name, version, member.location, purl_type="conda", qualifiers=qualifiers
    )


def keeps(path: str) -> bool:
    """Whether :func:`collect` may read the file at this inner path."""
    return path.endswith(".json") and "conda-meta/" in path and bool(_RECORD.search(path))


def collect(members: Iterable[Member]) -> list[Component]:
    return list(each(members, keeps, _parse))
