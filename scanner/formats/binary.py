"""Versions of well-known libraries compiled into ELF and PE files.

Statically linked or vendored C libraries leave no package-manager metadata,
only their own version banners. A small set is recognised, each by a banner
specific enough not to match documentation text:

* OpenSSL: ``OpenSSL 1.0.2k  26 Jan 2017`` (the version string with its date),
* zlib: `` deflate 1.2.11 Copyright 1995-2017`` (or ``inflate``),
* BusyBox: ``BusyBox v1.30.1``.

The ecosystem is ``"Assay-native"`` with the upstream project name in lower
case (the purl is ``pkg:generic/<name>@<version>``): OSV has no ecosystem for C
libraries, so they are matched against the small advisory set shipped in
``scanner/data/native`` (see :mod:`scanner.native`).
"""

from __future__ import annotations

import mmap
import re
from pathlib import Path

ECOSYSTEM = "Assay-native"
PATTERNS: list[tuple[str, re.Pattern[bytes]]] = [
    ("openssl", re.compile(rb"OpenSSL (\d+\.\d+\.\d+[a-z]{0,2})(?:-fips|-freebsd)?  ?\d{1,2} [A-Z][a-z]{2} \d{4}")),
    ("zlib", re.compile(rb"(?:in|de)flate (\d+\.\d+(?:\.\d+){0,2}) Copyright \d{4}-\d{4}")),
    ("busybox", re.compile(rb"BusyBox v(\d+\.\d+(?:\.\d+)?)")),
]
MAX_HITS = 16


def inspect_binary(path: Path) -> list[tuple[str, str, str]]:
    """(ecosystem, name, version) found in the file, each once, in pattern order."""
    found: list[tuple[str, str, str]] = []
    try:
        with open(path, "rb") as fh:
            if fh.seek(0, 2) == 0:
                return []
            with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as data:
                for name, pattern in PATTERNS:
                    for i, m in enumerate(pattern.finditer(data)):
                        hit = (ECOSYSTEM, name, m.group(1).decode("ascii"))
                        if hit not in found:
                            found.append(hit)
                        if i >= MAX_HITS:
                            break
    except (OSError, ValueError):
        return []
    return found
