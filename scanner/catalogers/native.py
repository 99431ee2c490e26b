"""Native libraries inside executables, and mobile apps themselves.

* ELF and PE files: the versions of the well-known C libraries whose banners they
  embed (OpenSSL, zlib, BusyBox; see :mod:`scanner.formats.binary`), as
  ``Assay-native`` components with a ``pkg:generic/<name>@<version>`` purl. OSV
  has no ecosystem for them: they are matched against the advisories shipped
  with the scanner (:mod:`scanner.native`).
* APK, IPA and HAP packages: the app itself, by the id and version its manifest
  declares (``Generic``, purl ``pkg:generic/<id>@<version>?app=apk``). OSV's
  ``Android`` ecosystem is the Android platform's own components, not apps. The
  libraries and jars an app bundles are unpacked and cataloged like any others.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from scanner import formats
from scanner.catalogers._common import component
from scanner.catalogers.executable import executable_head
from scanner.model import Component
from scanner.unpack import Member

ECOSYSTEM = "Generic"
APPS = frozenset({"apk", "ipa", "hap"})
_ZIP = b"PK\x03\x04"


def collect(members: Iterable[Member]) -> Iterator[Component]:
    for member in members:
        try:
            head = _head(member)
        except OSError:
            continue
        yield from arrival(member, head)


def arrival(member: Member, head: bytes) -> list[Component]:
    """Components of one member, told apart by its first bytes (4 at least)."""
    try:
        if member.depth and executable_head(head, member.size):
            return list(_libraries(member))
        if member.container and head[:4] == _ZIP:
            return list(_app(member))
    except OSError:
        pass
    return []


def _head(member: Member) -> bytes:
    with open(member.path, "rb") as f:
        return f.read(4)


def _libraries(member: Member) -> Iterator[Component]:
    for ecosystem, name, version in formats.inspect_binary(member.path):
        yield component(ecosystem, name, version, member.location, purl_type="generic")


def _app(member: Member) -> Iterator[Component]:
    fmt = formats.detect(member.path)
    if fmt not in APPS:
        return
    about = formats.describe(fmt, member.path)
    if about.get("id") and about.get("version"):
        yield component(
            ECOSYSTEM,
            about["id"],
            about["version"],
            member.location,
            purl_type="generic",
            qualifiers={"app": fmt},
        )

