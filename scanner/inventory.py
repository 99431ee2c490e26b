"""The inventory of what a scan examined: one JSON line per file, written as files arrive.

Each line of a file the unpacker wrote out (the package first)::

    {"location": "app.tar.gz!/lib/x.jar", "size": 1234, "sha256": "<hex>",
     "kind": "zip", "opened": "zip", "not_opened": null}

``kind`` is what the file was found to be (``zip``, ``tar.gz``, ``gz``, ``elf``,
``squashfs``, ``ext``..., null for nothing known). ``opened`` names the back end
that opened it: ``zip``, ``tar``, ``gzip``, ``bzip2``, ``xz``, a format of
:mod:`scanner.formats` (``squashfs``, ``ext``, ``yaffs2``, ``oci-image``...) or
``carve`` (searched for containers at any offset). Otherwise ``not_opened``
says why:

* ``leaf``: not a container,
* ``copy``: the same bytes as ``copy_of``, an earlier location (neither opened
  nor scanned again; its findings are the original's),
* ``depth``: nested deeper than the limit,
* ``time``: unpacking ran out of time,
* ``stopped``: a limit stopped unpacking before it could be opened,
* ``unsupported``: a container this version cannot open,
* ``paired``: one half of a block-based OTA partition, opened with the other half.

An entry that was never written out has a line too, with ``"extracted": false``,
the size its archive declared (or null), a null ``sha256`` and ``not_opened``
naming why: ``encrypted``, ``special`` (a device or fifo), ``absolute``,
``traversal``, ``name`` (a name refused), ``limit`` (over a size limit) or
``corrupt``; ``detail`` is the finding's summary.

Lines go to the file as they come, so memory stays bounded whatever the
package holds; only the counts (:class:`~scanner.model.Coverage`) are kept.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from scanner.model import Coverage

#: Reasons a recognised container was not opened (counted as containers not opened).
UNOPENED = frozenset({"depth", "time", "stopped", "unsupported"})
_EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


class Inventory:
    """Writes the inventory to ``path`` (or only counts, when ``path`` is None)."""

    def __init__(self, path: Path | None = None):
        self.files = self.opened = self.unopened = self.skipped = 0
        self._out = open(path, "w", encoding="utf-8", errors="backslashreplace") if path is not None else None  # noqa: SIM115

    def file(self, member, sha256: str | None) -> None:
        """A file written out and examined (a :class:`scanner.unpack.Member`)."""
        self.files += 1
        if member.opened:
            self.opened += 1
        elif member.not_opened in UNOPENED:
            self.unopened += 1
        if self._out is None:
            return
        if sha256 is None and member.size == 0:
            sha256 = _EMPTY_SHA256
        line = {
            "location": member.location,
            "size": member.size,
            "sha256": sha256,
            "kind": member.kind,
            "opened": member.opened or None,
            "not_opened": None if member.opened else (member.not_opened or "leaf"),
        }
        if member.copy_of:
            line["copy_of"] = member.copy_of
        self._write(line)

    def entry(self, location: str, size: int | None, code: str, summary: str) -> None:
        """An entry that was never written out, and why."""
        self.skipped += 1
        if self._out is None:
            return
        self._write({
            "location": location,
            "size": size,
            "sha256": None,
            "kind": None,
            "opened": None,
            "not_opened": code,
            "extracted": False,
            "detail": summary,
        })

    def _write(self, line: dict) -> None:
        self._out.write(json.dumps(line, ensure_ascii=False) + "\n")

    def coverage(self) -> Coverage:
        return Coverage(
            files=self.files,
            containers_opened=self.opened,
            containers_not_opened=self.unopened,
            entries_not_extracted=self.skipped,
        )

    def close(self) -> None:
        if self._out is not None:
            self._out.close()
            self._out = None
