"""Container images: OCI image layouts and ``docker save`` archives, layers applied.

Reads an image tar (or a directory already holding one unpacked) in either
layout:

* OCI: ``oci-layout``, ``index.json`` and ``blobs/sha256/<hex>``; indexes may nest.
* docker-save: ``manifest.json`` listing ``Config``, ``RepoTags`` and ``Layers``
  (``<id>/layer.tar`` in older Docker, blob paths in newer).

Every blob is checked against its digest; docker-save layers against the
config's ``rootfs.diff_ids``. Layers are applied in order into
``outdir/<name>/``, honouring whiteouts: ``.wh.<name>`` removes ``<name>`` from
lower layers and ``.wh..wh..opq`` empties its directory of lower-layer entries.
Only regular files and directories are created; symbolic and hard links are
not (a hard link's target is copied, since it is content), nor are device nodes.
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import json
import lzma
import os
import re
import shutil
import stat
import tarfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from scanner.formats._common import (
    Budget,
    LimitExceeded,
    Problem,
    safe_relpath,
    write_stream,
)
from scanner.model import Limits

WHITEOUT = ".wh."
OPAQUE = ".wh..wh..opq"
MAX_JSON = 16 * 1024 * 1024
INDEX_TYPES = {
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
}


@dataclass(frozen=True)
class ImageRoot:
    """One image's merged file system, ready to catalog and scan."""

    name: str  # repository, e.g. "docker.io/library/alpine", or "" when untagged
    tag: str  # tag, or the manifest digest when untagged
    root: Path
    layers: list[str] = field(default_factory=list)  # layer digests, bottom first
    os_release: dict[str, str] = field(default_factory=dict)
    #: path under ``root`` -> digest of the layer that wrote the file last
    origins: dict[str, str] = field(default_factory=dict)


class ImageError(Exception):
    """The image as a whole cannot be read; the message is one line."""


# --------------------------------------------------------------------------- sources


class _Source:
    """Files of the image, by normalized relative path."""

    def exists(self, name: str) -> bool:
        raise NotImplementedError

    def size(self, name: str) -> int:
        raise NotImplementedError

    def open(self, name: str) -> IO[bytes]:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def read_json(self, name: str):
        if not self.exists(name):
            raise ImageError(f"{name} is missing")
        if self.size(name) > MAX_JSON:
            raise ImageError(f"{name} is too large")
        with self.open(name) as fh:
            data = fh.read(MAX_JSON + 1)
        try:
            return json.loads(data)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ImageError(f"{name} is not valid JSON") from exc


class _TarSource(_Source):
    def __init__(self, path: Path):
        try:
            self.tar = tarfile.open(path, "r:")
        except (tarfile.TarError, OSError) as exc:
            raise ImageError(f"not a readable tar: {exc}") from exc
        self.members: dict[str, tarfile.TarInfo] = {}
        try:
            for info in self.tar:
                name = safe_relpath(info.name)
                if name is not None and info.isreg():
                    self.members[name] = info
        except (tarfile.TarError, OSError) as exc:
            raise ImageError(f"image tar is damaged: {exc}") from exc
        finally:
            self.tar.members = []  # the index above is all that is kept

    def exists(self, name: str) -> bool:
        return name in self.members

    def size(self, name: str) -> int:
        return self.members[name].size

    def open(self, name: str) -> IO[bytes]:
        fh = self.tar.extractfile(self.members[name])
        assert fh is not None
        return fh

    def close(self) -> None:
        self.tar.close()


class _DirSource(_Source):
    def __init__(self, root: Path):
        self.root = root

    def _path(self, name: str) -> Path | None:
        rel = safe_relpath(name)
        if rel is None:
            return None
        p = self.root / rel
        try:
            st = os.lstat(p)
        except OSError:
            return None
        return p if stat.S_ISREG(st.st_mode) else None

    def exists(self, name: str) -> bool:
        return self._path(name) is not None

    def size(self, name: str) -> int:
        p = self._path(name)
        assert p is not None
        return os.lstat(p).st_size

    def open(self, name: str) -> IO[bytes]:
        p = self._path(name)
        assert p is not None
        return open(p, "rb")


# --------------------------------------------------------------------------- hashing


class _HashingReader(io.RawIOBase):
    """Wraps a file object, hashing what is read through it."""

    def __init__(self, raw: IO[bytes]):
        self.raw = raw
        self.hash = hashlib.sha256()
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buf) -> int:  # noqa: ANN001
        data = self.raw.read(len(buf))
        n = len(data)
        buf[:n] = data
        self.hash.update(data)
        self.count += n
        return n

    def drain(self) -> None:
        while self.read(1024 * 1024):
            pass

    def digest(self) -> str:
        return "sha256:" + self.hash.hexdigest()


def _decompressor(raw: IO[bytes]) -> IO[bytes]:
    """The uncompressed stream of a layer blob, by magic bytes."""
    buffered = io.BufferedReader(raw, 1024 * 1024)  # type: ignore[arg-type]
    head = buffered.peek(6)[:6]
    if head.startswith(b"\x1f\x8b"):
        return gzip.GzipFile(fileobj=buffered)  # type: ignore[return-value]
    if head.startswith(b"BZh"):
        return bz2.BZ2File(buffered)  # type: ignore[return-value]
    if head.startswith(b"\xfd7zXZ\x00"):
        return lzma.LZMAFile(buffered)  # type: ignore[return-value]
    if head.startswith(b"\x28\xb5\x2f\xfd"):
        try:
            import zstandard
        except ImportError as exc:
            raise ImageError("zstd-compressed layer, and zstandard is not installed") from exc
        return zstandard.ZstdDecompressor().stream_reader(buffered, read_across_frames=True)
    return buffered


# --------------------------------------------------------------------------- manifests


@dataclass
class _Image:
    name: str
    tag: str
    manifest_digest: str
    config: dict
    layers: list[tuple[str, str, str]]  # (blob path, compressed digest or "", diff_id or "")


def _blob_path(digest: str) -> str | None:
    m = re.fullmatch(r"(sha256|sha512):([0-9a-f]{64,128})", digest or "")
    return f"blobs/{m.group(1)}/{m.group(2)}" if m else None


def _verified_json(src: _Source, digest: str, what: str):
    path = _blob_path(digest)
    if path is None or not src.exists(path):
        raise ImageError(f"{what} blob {digest or '(none)'} is missing")
    if src.size(path) > MAX_JSON:
        raise ImageError(f"{what} blob {digest} is too large")
    with src.open(path) as fh:
        data = fh.read(MAX_JSON + 1)
    algo = digest.split(":", 1)[0]
    if f"{algo}:" + hashlib.new(algo, data).hexdigest() != digest:
        raise ImageError(f"{what} blob {digest} does not match its digest")
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ImageError(f"{what} blob {digest} is not valid JSON") from exc


def _split_ref(ref: str) -> tuple[str, str]:
    """("docker.io/library/alpine", "3.19") from a reference; tag may be empty."""
    ref = ref.split("@", 1)[0]
    slash = ref.rfind("/")
    colon = ref.rfind(":")
    if colon > slash:
        return ref[:colon], ref[colon + 1 :]
    return ref, ""


def _oci_images(src: _Source) -> list[_Image]:
    index = src.read_json("index.json")
    images: list[_Image] = []
    missing: list[str] = []

    def walk(idx: dict, ref: str, depth: int) -> None:
        for desc in idx.get("manifests") or []:
            if not isinstance(desc, dict):
                continue
            digest = desc.get("digest", "")
            annotations = desc.get("annotations") or {}
            name = (
                annotations.get("io.containerd.image.name")
                or annotations.get("org.opencontainers.image.ref.name")
                or ref
            )
            path = _blob_path(digest)
            if path is None or not src.exists(path):
                missing.append(digest)
                continue
            media = desc.get("mediaType", "")
            doc = _verified_json(src, digest, "manifest")
            if media in INDEX_TYPES or doc.get("mediaType") in INDEX_TYPES or "manifests" in doc:
                if depth < 4:
                    walk(doc, name, depth + 1)
                continue
            config = _verified_json(src, (doc.get("config") or {}).get("digest", ""), "config")
            diff_ids = ((config.get("rootfs") or {}).get("diff_ids")) or []
            layers = []
            for i, layer in enumerate(doc.get("layers") or []):
                ldigest = layer.get("digest", "")
                lpath = _blob_path(ldigest)
                if lpath is None:
                    raise ImageError(f"layer digest {ldigest!r} is not valid")
                layers.append((lpath, ldigest, diff_ids[i] if i < len(diff_ids) else ""))
            repo, tag = _split_ref(name) if ":" in name or "/" in name else ("", name)
            images.append(_Image(repo, tag, digest, config, layers))

    walk(index, "", 0)
    if not images and missing:
        raise ImageError(f"manifest blob {missing[0]} is missing")
    return images


def _docker_images(src: _Source) -> list[_Image]:
    manifest = src.read_json("manifest.json")
    if not isinstance(manifest, list):
        raise ImageError("manifest.json is not a list of images")
    images = []
    for entry in manifest:
        if not isinstance(entry, dict):
            continue
        config_name = safe_relpath(str(entry.get("Config", "")))
        if config_name is None:
            raise ImageError("manifest.json names no config")
        config = src.read_json(config_name)
        hexname = re.search(r"([0-9a-f]{64})(\.json)?$", config_name)
        if hexname:
            with src.open(config_name) as fh:
                if hashlib.sha256(fh.read(MAX_JSON + 1)).hexdigest() != hexname.group(1):
                    raise ImageError(f"config {config_name} does not match its digest")
        diff_ids = ((config.get("rootfs") or {}).get("diff_ids")) or []
        layers = []
        for i, lname in enumerate(entry.get("Layers") or []):
            rel = safe_relpath(str(lname))
            if rel is None:
                raise ImageError(f"layer path {lname!r} is not valid")
            m = re.fullmatch(r"blobs/(sha256)/([0-9a-f]{64})", rel)
            blob_digest = f"{m.group(1)}:{m.group(2)}" if m else ""
            layers.append((rel, blob_digest, diff_ids[i] if i < len(diff_ids) else ""))
        digest = "sha256:" + hexname.group(1) if hexname else ""
        # several tags of one image share one root; the first names it
        tags = [t for t in entry.get("RepoTags") or [] if isinstance(t, str)]
        repo, tag = _split_ref(tags[0]) if tags else ("", "")
        images.append(_Image(repo, tag, digest, config, layers))
    return images


# --------------------------------------------------------------------------- layers


class _Layer:
    """Applies one layer tar onto ``root``."""

    def __init__(
        self,
        root: Path,
        budget: Budget,
        label: str,
        problems: list[Problem],
        origins: dict[str, str] | None = None,
    ):
        self.root = root
        self.budget = budget
        self.label = label
        self.problems = problems
        self.added: set[str] = set()
        self.origins = {} if origins is None else origins

    def apply(self, stream: IO[bytes]) -> None:
        with tarfile.open(fileobj=stream, mode="r|") as tar:
            for info in tar:
                self._member(tar, info)

    def _member(self, tar: tarfile.TarFile, info: tarfile.TarInfo) -> None:
        rel = safe_relpath(info.name)
        if rel is None:
            self.problems.append(Problem(f"{self.label}/{info.name}", "path leaves the image root"))
            return
        parent, _, base = rel.rpartition("/")
        if base == OPAQUE:
            self._clear(parent)
            return
        if base.startswith(WHITEOUT):
            target = f"{parent}/{base[len(WHITEOUT):]}" if parent else base[len(WHITEOUT) :]
            if target not in self.added:
                _remove(self.root / target)
            return
        if info.isdir():
            self._make_dirs(rel)
        elif info.isreg():
            self._write(rel, tar.extractfile(info), info.size, info.mode)
        elif info.islnk():
            self._hardlink(rel, info)
        # symbolic links, devices and FIFOs: nothing to scan, nothing created
        self.added.add(rel)

    def _make_dirs(self, rel: str) -> Path:
        path = self.root
        for part in rel.split("/"):
            path = path / part
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                path.mkdir()
                continue
            if not stat.S_ISDIR(st.st_mode):
                os.unlink(path)  # a lower layer's file is replaced by a directory
                path.mkdir()
        return path

    def _prepare(self, rel: str) -> Path:
        parent, _, base = rel.rpartition("/")
        directory = self._make_dirs(parent) if parent else self.root
        dst = directory / base
        if os.path.lexists(dst):
            _remove(dst)
        return dst

    def _write(self, rel: str, fh: IO[bytes] | None, size: int, mode: int) -> None:
        reason = self.budget.file_fits(size)
        if reason:
            self.problems.append(Problem(f"{self.label}/{rel}", reason))
            return
        dst = self._prepare(rel)
        write_stream(fh or io.BytesIO(), dst, size, self.budget, 0o755 if mode & 0o111 else 0o644)
        self.origins[rel] = self.label

    def _hardlink(self, rel: str, info: tarfile.TarInfo) -> None:
        target = safe_relpath(info.linkname)
        src = self.root / target if target else None
        if src is None or not src.is_file() or src.is_symlink():
            return  # a link to nothing in the image has no content
        if target == rel:
            return
        size = os.lstat(src).st_size
        reason = self.budget.file_fits(size)
        if reason:
            self.problems.append(Problem(f"{self.label}/{rel}", reason))
            return
        dst = self._prepare(rel)
        with open(src, "rb") as fh:
            write_stream(fh, dst, size, self.budget, 0o755 if info.mode & 0o111 else 0o644)
        self.origins[rel] = self.label

    def _clear(self, rel_dir: str) -> None:
        directory = self.root / rel_dir if rel_dir else self.root
        if not directory.is_dir() or directory.is_symlink():
            return
        self._clear_below(directory, rel_dir)

    def _clear_below(self, directory: Path, rel_dir: str) -> None:
        for entry in list(os.scandir(directory)):
            rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
            if rel not in self.added:
                _remove(Path(entry.path))
            elif entry.is_dir(follow_symlinks=False):
                self._clear_below(Path(entry.path), rel)


def _remove(path: Path) -> None:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(path)
    else:
        os.unlink(path)


# --------------------------------------------------------------------------- public


def apply_oci(
    path_or_dir: Path, outdir: Path, limits: Limits
) -> tuple[list[ImageRoot], list[Problem]]:
    """Apply every image in an OCI/docker-save tar (or its unpacked directory).

    Each image lands in ``outdir/<safe name>/``. Problems name what was not
    applied: a blob that does not match its digest, a missing or unreadable
    layer, a member over the limits. Never raises for bad input.
    """
    try:
        return _apply_all(Path(path_or_dir), Path(outdir), limits)
    except Exception as exc:  # noqa: BLE001 - fail closed: anything unread is a problem
        return [], [Problem("", f"image could not be read: {type(exc).__name__}: {exc}")]


def _apply_all(
    path_or_dir: Path, outdir: Path, limits: Limits
) -> tuple[list[ImageRoot], list[Problem]]:
    problems: list[Problem] = []
    try:
        src: _Source = _DirSource(path_or_dir) if path_or_dir.is_dir() else _TarSource(path_or_dir)
    except ImageError as exc:
        return [], [Problem("", str(exc))]
    try:
        try:
            if src.exists("index.json"):
                images = _oci_images(src)
            elif src.exists("manifest.json"):
                images = _docker_images(src)
            else:
                raise ImageError("neither index.json nor manifest.json: not a container image")
        except ImageError as exc:
            return [], [Problem("", str(exc))]
        if not images:
            return [], [Problem("", "the image index lists no image")]
        size = _source_size(path_or_dir)
        budget = Budget(limits, size)
        roots = []
        used: set[str] = set()
        for image in images:
            roots.append(_apply_image(src, image, outdir, budget, used, problems))
        return roots, problems
    finally:
        src.close()


def _source_size(path: Path) -> int:
    if path.is_dir():
        return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())
    return path.stat().st_size


def _dir_name(image: _Image, used: set[str]) -> str:
    label = f"{image.name}:{image.tag}" if image.name and image.tag else image.name or image.tag
    label = label or image.manifest_digest or "image"
    base = re.sub(r"[^A-Za-z0-9._-]+", "_", label).strip("._") or "image"
    name, n = base[:200], 1
    while name in used:
        n += 1
        name = f"{base[:190]}-{n}"
    used.add(name)
    return name


def _apply_image(
    src: _Source, image: _Image, outdir: Path, budget: Budget, used: set[str], problems: list[Problem]
) -> ImageRoot:
    root = outdir / _dir_name(image, used)
    root.mkdir(parents=True)
    digests = []
    origins: dict[str, str] = {}
    for blob, digest, diff_id in image.layers:
        label = digest or diff_id or blob
        digests.append(label)
        try:
            _apply_layer(src, blob, digest, diff_id, root, budget, label, problems, origins)
        except LimitExceeded as exc:
            problems.append(Problem(label, str(exc)))
        except ImageError as exc:
            problems.append(Problem(label, str(exc)))
        except (tarfile.TarError, OSError, EOFError, lzma.LZMAError, zlib.error, ValueError) as exc:
            problems.append(Problem(label, f"layer could not be read: {exc}"))
        except Exception as exc:  # noqa: BLE001 - zstandard.ZstdError and the like
            problems.append(Problem(label, f"layer could not be read: {type(exc).__name__}: {exc}"))
    tag = image.tag or image.manifest_digest
    return ImageRoot(image.name, tag, root, digests, os_release(root), origins)


def _apply_layer(
    src: _Source,
    blob: str,
    digest: str,
    diff_id: str,
    root: Path,
    budget: Budget,
    label: str,
    problems: list[Problem],
    origins: dict[str, str] | None = None,
) -> None:
    if not src.exists(blob):
        raise ImageError(f"layer {blob} is missing")
    with src.open(blob) as fh:
        outer = _HashingReader(fh)
        inner_stream = _decompressor(outer)
        inner = _HashingReader(inner_stream)
        _Layer(root, budget, label, problems, origins).apply(io.BufferedReader(inner, 1024 * 1024))
        inner.drain()
        outer.drain()
    if digest and outer.digest() != digest:
        problems.append(Problem(label, "layer blob does not match its digest"))
    if diff_id and inner.digest() != diff_id:
        problems.append(Problem(label, "layer content does not match the config's diff_id"))


def os_release(root: Path) -> dict[str, str]:
    """``/etc/os-release`` (or ``/usr/lib/os-release``) of a root as a dict."""
    for rel in ("etc/os-release", "usr/lib/os-release"):
        path = root / rel
        try:
            if os.path.islink(path) or not path.is_file() or path.stat().st_size > 65536:
                continue
            text = path.read_text("utf-8", "replace")
        except OSError:
            continue
        return _parse_os_release(text)
    return {}


def _parse_os_release(text: str) -> dict[str, str]:
    values = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        values[key.strip()] = value
    return values
