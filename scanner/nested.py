"""What the unpacker cannot open itself: format back ends, container images, copies, time.

:class:`Nested` is consulted by the unpacker for every file it has written. It
claims a file when

* the wall-clock limit for the whole unpack has passed (unpacking stops, with an
  ``unscanned`` finding),
* the file has the same content as one seen before: it is listed (so catalogers
  still see both locations) but neither opened again nor virus-scanned twice,
* the file is a container image (OCI layout or ``docker save`` tar): every image
  is applied into its own root and its files are listed as
  ``<image tar>!/<name:tag>/<path>``,
* the file is a format :mod:`scanner.formats` extracts (file systems, disk
  images, firmware...): it is extracted into a fresh directory of the scratch
  root and its files are listed as ``<container>!/<path>``,
* the file is one half of a block-based OTA partition (``<name>.transfer.list``
  and ``<name>.new.dat[.br]``, met in either order): once both are on disk the
  partition is rebuilt and listed as ``<transfer list>!/<name>.img``. New data
  whose transfer list never comes is opened on its own at the end
  (:meth:`Nested.finish`), as any other file would have been.

Files found this way go back through the unpacker, so an archive in a disk image
in a zip is opened like any other. Everything a back end reports it could not
open becomes an ``unscanned`` finding at its location. The back ends count
bytes and members against what is left of the unpacker's limits.

Files the unpacker opens itself (zip, tar, compressed streams) and leaf kinds
(ELF, PE, PDF) are never handed to a back end.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import stat
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from scanner import formats
from scanner.formats import carve
from scanner.model import NEST, Component, Finding
from scanner.unpack import HEAD_BYTES, Member, _mkdir, _text, unscanned
from scanner.virus import fingerprint

#: Kinds told by :func:`scanner.identify.sniff` that no back end opens.
LEAVES = frozenset({"elf", "pe", "pdf", "empty"})
IMAGE_FORMATS = frozenset({"oci-image", "docker-archive"})
#: An external tool gets this long at least, plus time in proportion to its input.
TOOL_SECONDS = 300
TOOL_BYTES_PER_SECOND = 10 * 1024 * 1024
HASH_CHUNK = 1024 * 1024


@dataclass
class Image:
    """One container image found in the package, as applied into its own root."""

    location: str  # "pkg.tar!/app.tar!/registry.example/app:1.0"
    name: str
    tag: str
    layers: list[str]
    os_release: dict[str, str]
    origins: dict[str, str] = field(default_factory=dict, repr=False)  # path -> layer digest

    def summary(self) -> dict:
        """The image as the JSON result lists it."""
        return {
            "location": self.location,
            "name": self.name,
            "tag": self.tag,
            "os": self.os_release.get("PRETTY_NAME", ""),
            "os_id": self.os_release.get("ID", ""),
            "os_version": self.os_release.get("VERSION_ID", ""),
            "layers": list(self.layers),
        }


class Nested:
    """The unpacker's helper for one package (see the module docstring)."""

    def __init__(self, unpacker, images: list | None = None,
                 contents: dict[str, bytes] | None = None):
        self.u = unpacker
        self.images = images if images is not None else []
        self.deadline = time.monotonic() + unpacker.limits.max_unpack_seconds
        self.late = False
        self.extractable = formats.extractable()
        self.digests: dict[tuple[int, bytes], str] = {}  # (size, sha256) -> first location
        self.contents = contents if contents is not None else {}  # location -> sha256
        self.rebuilt: set[Path] = set()  # transfer lists of the OTA partitions rebuilt
        # OTA new data whose transfer list has not come -> (location, depth, size)
        self.unpaired: dict[Path, tuple[str, int, int]] = {}
        #: The format :func:`scanner.formats.detect` told of the file last offered to
        #: :meth:`claim`, or None: what the unpacker lists a file it keeps as.
        self.format: str | None = None

    def claim(
        self, path: Path, location: str, kind: str | None, depth: int, size: int,
        digest: bytes | None = None, head: bytes | None = None, tail: bytes | None = None,
    ) -> Iterator[Member | Finding] | None:
        """The members and findings of a file the unpacker should not handle itself, or None.

        ``digest``, ``head`` and ``tail`` are the file's sha256, first 64 KiB and last
        512 bytes, when the unpacker had them while writing it.
        """
        self.format = None
        if self.late or time.monotonic() > self.deadline:
            return self._too_late(path, location, kind, depth, size)
        if kind is None and (halves := formats.ota_partition(path)) is not None:
            return self._ota_blocks(path, location, depth, size, *halves)
        copy = self._copy_of(path, location, size, digest)
        if copy:
            return iter([
                Member(path, location, size, depth, False, copy_of=copy, kind=kind,
                       not_opened="copy")
            ])
        if kind in LEAVES or (kind is not None and kind != "tar"):
            if carve.wanted(location, kind, None, size):  # a kernel's vmlinux
                return self._carve(path, location, kind, depth, size, head)
            return None
        fmt = formats.detect(path, head=head, tail=tail, size=size)
        if kind == "tar":
            if fmt in IMAGE_FORMATS:
                return self._images(path, location, fmt, depth, size)
            return None
        self.format = fmt
        if fmt in self.extractable:
            return self._extract(fmt, path, location, depth, size)
        if carve.wanted(location, kind, fmt, size, head):
            return self._carve(path, location, fmt, depth, size, head)
        return None

    # -- limits -----------------------------------------------------------------

    def _too_late(
        self, path: Path, location: str, kind: str | None, depth: int, size: int
    ) -> Iterator:
        if not self.late:
            self.late = True
            self.u.stopped = True
            seconds = self.u.limits.max_unpack_seconds
            yield unscanned(
                location,
                "unpack-time",
                f"unpacking took longer than {seconds:g} seconds: {location} and anything"
                " after it was not examined",
            )
        yield Member(path, location, size, depth, False, kind=kind, not_opened="time")

    def _limits(self):
        """The unpacker's limits, shrunk to what the package has left."""
        u, lim = self.u, self.u.limits
        # Absolute: an image is bounded by the scratch space left, not by the package's
        # size (a few MB of files in a 64 MB file system deflate to kilobytes).
        left = lim.max_total_bytes - u.total
        return dataclasses.replace(
            lim,
            max_total_bytes=max(0, int(left)),
            max_members=max(0, lim.max_members - u.count),
        )

    def _timeout(self, size: int) -> float:
        wanted = TOOL_SECONDS + size / TOOL_BYTES_PER_SECOND
        return max(1.0, min(wanted, self.deadline - time.monotonic()))

    def _box(self) -> Path:
        self.u.boxes += 1
        box = self.u.scratch / f"c{self.u.boxes:06d}"
        _mkdir(box)
        return box

    def _deep(self, location: str, depth: int) -> Iterator[Finding]:
        limit = self.u.limits.max_depth
        if depth + 1 > limit:
            yield unscanned(
                location,
                "depth",
                f"nesting deeper than {limit} levels: {location} was not opened",
            )

    # -- copies -----------------------------------------------------------------

    def _copy_of(self, path: Path, location: str, size: int, digest: bytes | None = None) -> str:
        """The location of an earlier file with the same content, or "".

        Each file is known by its size and sha256 from its arrival on: the
        scan removes files once it is done with them, so an earlier file is
        never read again.
        """
        if not size:
            return ""
        key = (size, digest if digest is not None else _sha256(path))
        self.contents[location] = key[1]
        earlier = self.digests.setdefault(key, location)
        return "" if earlier == location else earlier

    # -- back ends --------------------------------------------------------------

    def _extract(self, fmt: str, path: Path, location: str, depth: int, size: int) -> Iterator:
        deep = list(self._deep(location, depth))
        yield from deep
        yield Member(
            path, location, size, depth, not deep, kind=fmt,
            opened="" if deep else fmt, not_opened="depth" if deep else "",
        )
        if not deep:
            yield from self._contents(fmt, path, location, depth, size)

    def _contents(self, fmt: str, path: Path, location: str, depth: int, size: int) -> Iterator:
        if self.u.stopped:
            return
        box = self._box()
        problems = formats.extract(
            fmt, path, box, limits=self._limits(), timeout=self._timeout(size)
        )
        yield from _problems(location, problems)
        yield from self._walk(box, location + NEST, depth + 1)

    def _carve(
        self, path: Path, location: str, kind: str | None, depth: int, size: int,
        head: bytes | None,
    ) -> Iterator:
        """A kernel, dump or blob: a leaf, then the containers carved out of it."""
        yield Member(
            path, location, size, depth, False, head=None if head is None else head[:HEAD_BYTES],
            kind=kind, opened="carve",
        )
        if self.u.stopped or depth + 2 > self.u.limits.max_depth:
            return
        if carve.nesting(location) >= carve.MAX_NESTING:
            return
        box = self._box()
        deadline = time.monotonic() + self._timeout(size)

        def extract(fmt, image, outdir, limits, timeout):
            return formats.extract(fmt, image, outdir, limits=limits, timeout=timeout)

        def limits():  # what is left, inflated bytes included: a stream costs work too
            lim = self._limits()
            work = max(0, int(self.u.limits.max_inflated_bytes - self.u.inflated))
            return dataclasses.replace(lim, max_total_bytes=min(lim.max_total_bytes, work))

        for found in carve.carve(path, box, limits, deadline, extract):
            if self.u.stopped:
                return
            if found.tree:  # a file system, opened: its files
                where = location + NEST + found.label
                yield from _problems(where, found.problems)
                yield from self._walk(found.path, where + NEST, depth + 2)
            else:  # a stream or archive, as a member the unpacker opens
                yield from _problems(location + NEST + found.label, found.problems)
                yield from self._walk(found.path, location + NEST, depth + 1)

    def _ota_blocks(
        self, path: Path, location: str, depth: int, size: int, listing, data
    ) -> Iterator:
        """A block-based OTA's transfer list or new data; the partition once both are here."""
        copy = self._copy_of(path, location, size)
        # the partition is rebuilt from its transfer list once both halves are here
        opens = not copy and listing is not None and data is not None
        yield Member(
            path, location, size, depth, False, copy_of=copy, kind="android-transfer-list",
            opened="android-transfer-list" if opens else "",
            not_opened="copy" if copy else "" if opens else "paired",
        )
        if listing is None:  # new data whose transfer list has not come (yet)
            if not copy:
                self.unpaired[path] = (location, depth, size)
            return
        if data is None or listing in self.rebuilt:
            return
        self.rebuilt.add(listing)
        self.unpaired.pop(data, None)
        name = _text(path.name)  # the transfer list is the container, beside its new data
        where = location
        if location.endswith(name):
            where = location[: -len(name)] + _text(listing.name)
        deep = list(self._deep(where, depth))
        yield from deep
        if not deep:
            size = listing.stat().st_size + data.stat().st_size
            yield from self._contents("android-transfer-list", listing, where, depth, size)

    def finish(self) -> Iterator[Member | Finding]:
        """Open, as any file, the OTA new data whose transfer list never came."""
        for path, (location, depth, size) in list(self.unpaired.items()):
            del self.unpaired[path]
            if self.u.stopped:
                return
            if self.late or time.monotonic() > self.deadline:
                self.late = True
                seconds = self.u.limits.max_unpack_seconds
                yield unscanned(
                    location,
                    "unpack-time",
                    f"unpacking took longer than {seconds:g} seconds: {location} was not opened",
                )
                continue
            fmt = formats.detect(path)
            if fmt in self.extractable:
                deep = list(self._deep(location, depth))
                yield from deep
                if not deep:
                    yield from self._contents(fmt, path, location, depth, size)

    def _images(self, path: Path, location: str, fmt: str, depth: int, size: int) -> Iterator:
        deep = list(self._deep(location, depth))
        yield from deep
        yield Member(
            path, location, size, depth, not deep, kind=fmt,
            opened="" if deep else fmt, not_opened="depth" if deep else "",
        )
        if deep or self.u.stopped:
            return
        box = self._box()
        roots, problems = formats.apply_oci(path, box, self._limits())
        yield from _problems(location, problems)
        if not roots:  # an image that could not be applied is still an image: it fails closed
            self.images.append(Image(location, "", "", [], {}))
        used: set[str] = set()
        for root in roots:
            label = _unique(_label(root), used)
            image = Image(
                location + NEST + label,
                root.name,
                root.tag,
                list(root.layers),
                dict(root.os_release),
                dict(root.origins),
            )
            self.images.append(image)
            yield from self._walk(root.root, image.location + "/", depth + 1)

    def _walk(self, base: Path, prefix: str, depth: int) -> Iterator:
        """Every regular file under ``base``, in name order, back through the unpacker."""
        for rel, path, size in _files(base):
            if self.u.stopped:
                return
            self.u.count += 1
            if self.u.count > self.u.limits.max_members:
                self.u.stopped = True
                where = prefix[: -len(NEST)] if prefix.endswith(NEST) else prefix.rstrip("/")
                yield unscanned(
                    where,
                    "members",
                    f"more than {self.u.limits.max_members} members: the rest of {where}"
                    " and anything after it was not examined",
                )
                return
            self.u.total += _on_disk(path, size)  # holes of sparse images cost nothing
            self.u.inflated += size
            yield from self.u._nested(path, prefix + rel, depth, size)


def _files(base: Path) -> Iterator[tuple[str, Path, int]]:
    """(relative location, path, size) of the regular files under ``base``; links never followed."""
    stack = [(base, "")]
    while stack:
        directory, rel_dir = stack.pop()
        try:
            entries = sorted(os.scandir(directory), key=lambda e: e.name)
        except OSError:
            continue
        subdirs = []
        for entry in entries:
            rel = f"{rel_dir}{_text(entry.name)}"
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if stat.S_ISDIR(st.st_mode):
                subdirs.append((Path(entry.path), rel + "/"))
            elif stat.S_ISREG(st.st_mode):
                yield rel, Path(entry.path), st.st_size
        stack.extend(reversed(subdirs))


def _problems(location: str, problems: Iterable[formats.Problem]) -> Iterator[Finding]:
    for problem in problems:
        where = location + NEST + _text(problem.path) if problem.path else location
        yield unscanned(where, f"extract:{problem.reason}", f"{problem.reason}: {where}")


def _label(root: formats.ImageRoot) -> str:
    if root.name and root.tag:
        return f"{root.name}:{root.tag}"
    return root.name or root.tag or "image"


def _unique(label: str, used: set[str]) -> str:
    name, n = label, 1
    while name in used:
        n += 1
        name = f"{label}#{n}"
    used.add(name)
    return name


def _on_disk(path: Path, size: int) -> int:
    try:
        return min(size, path.lstat().st_blocks * 512)
    except OSError:
        return size


def _sha256(path: Path) -> bytes:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(HASH_CHUNK):
            digest.update(chunk)
    return digest.digest()


# -- after the unpack: what the pipeline does with images and copies -------------


def in_image(location: str, images: Iterable[Image]) -> tuple[Image, str] | None:
    """The image a location lies in and the path inside its root, or None."""
    for image in images:
        prefix = image.location + "/"
        if location.startswith(prefix):
            return image, location[len(prefix) :].split(NEST, 1)[0]
    return None


def with_layers(components: Iterable[Component], images: list[Image]) -> list[Component]:
    """Components found in an image, their location naming the layer the file came from."""
    if not images:
        return list(components)
    out = []
    for c in components:
        found = in_image(c.location, images)
        layer = found[0].origins.get(found[1]) if found else None
        out.append(dataclasses.replace(c, location=f"{c.location} (layer {layer})") if layer else c)
    return out


def to_scan(members: Iterable[Member]) -> list[Member]:
    """The members the virus engines must read: one of each content."""
    return [m for m in members if not m.copy_of]


def copy_findings(findings: list[Finding], members: Iterable[Member]) -> list[Finding]:
    """A virus found in a file is found in each of its copies too, at the copy's location."""
    copies: dict[str, list[str]] = {}
    for m in members:
        if m.copy_of:
            copies.setdefault(m.copy_of, []).append(m.location)
    if not copies:
        return findings
    out = list(findings)
    for f in findings:
        for location in copies.get(f.location, ()):
            if f.type == "virus":
                fid = fingerprint("virus", f.signature or "", location)
            else:
                fid = fingerprint(f.id, location)
            out.append(dataclasses.replace(f, id=fid, location=location))
    return out


def bind_content(
    findings: Iterable[Finding], contents: dict[str, bytes], package: tuple[str, str]
) -> list[Finding]:
    """Virus and unscanned findings with the sha256 of the bytes they are about in their id.

    A finding about a file is bound to that file's content; one about something
    that was never written out (an entry that could not be extracted, the rest of
    an archive) to the innermost container holding it, and at the top to the
    package (``package``: its name and sha256 hex). So an accepted false positive
    never covers other bytes at the same location. Vulnerability ids stay as they are.
    """
    name, package_sha256 = package
    out = []
    for f in findings:
        if f.type not in ("virus", "unscanned"):
            out.append(f)
            continue
        digest = _content_of(f.location, contents, name) or package_sha256
        out.append(dataclasses.replace(f, id=fingerprint(f.id, "sha256", digest)))
    return out


def _content_of(location: str, contents: dict[str, bytes], package_name: str) -> str:
    """The sha256 (hex) of the file at ``location`` or of its innermost known container."""
    where = location
    while where and where != package_name:
        digest = contents.get(where)
        if digest is not None:
            return digest.hex()
        where = where.rpartition(NEST)[0]
    return ""


def refuse_without_images(kind: str, images: list[Image]) -> str | None:
    """Why a Docker image package cannot be accepted, or None."""
    if kind == "docker" and not images:
        return (
            "this Docker image package holds no container image (an OCI or docker save"
            " .tar): upload one, or add the asset as a binary package"
        )
    return None


__all__ = [
    "Image",
    "bind_content",
    "Nested",
    "copy_findings",
    "in_image",
    "refuse_without_images",
    "to_scan",
    "with_layers",
]
