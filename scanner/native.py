"""Known-vulnerable C libraries, identified by the version string compiled into a binary.

:mod:`scanner.formats.binary` reads the version banners of OpenSSL, zlib and
BusyBox from ELF and PE files; the native cataloger lists them as
``Assay-native`` components. Their advisories are a small curated set of OSV
records shipped in ``scanner/data/native`` (see its ``PROVENANCE.md``), loaded
on every scan next to the configured OSV data.

Such a finding blocks like any other vulnerability at or above the threshold.
A distribution build may carry a backported fix under the old version string,
so the summary says how the library was identified: a seller whose build has
the fix appeals with evidence of it.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Iterable
from pathlib import Path

from scanner.model import Component, Finding
from scanner.osv import OsvDatabase

DATA = Path(__file__).parent / "data" / "native"
NOTE = (
    "Identified from the version string embedded in the binary; if this build "
    "carries a backported fix, appeal with evidence of it. "
)


@functools.cache
def database() -> OsvDatabase:
    """The shipped advisories, read once per process."""
    return OsvDatabase.load([DATA])


def match(components: Iterable[Component], threshold: float) -> list[Finding]:
    """Findings for the embedded libraries among ``components``, each summary saying so."""
    return [
        dataclasses.replace(finding, summary=NOTE + finding.summary)
        for finding in database().match(components, threshold)
    ]
