"""Object storage: the only module in the portal that talks S3 (through ``minio``).

Keys are built here from database ids and random upload ids only: nothing a
seller types ever becomes part of a key.
"""

from __future__ import annotations

import hashlib
import io
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import BinaryIO, Iterator
from urllib.parse import urlsplit

from flask import current_app
from minio import Minio
from minio.datatypes import Part
from minio.error import S3Error

#: Size of one multipart part; memory held per upload is about one part.
PART_SIZE = 8 * 1024 * 1024
CHUNK = 1024 * 1024
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MISSING = ("NoSuchKey", "NoSuchObject", "NoSuchBucket", "ResourceNotFound")


class TooLarge(Exception):
    """The stream went past ``max_bytes``; nothing was stored."""


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    last_modified: datetime | None  # naive UTC


# --- keys ---------------------------------------------------------------------

def new_upload_id() -> str:
    """A random id that keeps every upload of a version under its own key."""
    return secrets.token_hex(8)


def package_key(owner_id: int, asset_id: int, version_id: int, upload_id: str) -> str:
    """Where a version's package lives."""
    return f"packages/{int(owner_id)}/{int(asset_id)}/{int(version_id)}/{upload_id}/package"


def scan_prefix(owner_id: int, asset_id: int, version_id: int, scan_id: int) -> str:
    """The folder of one scan's outputs."""
    return f"scans/{int(owner_id)}/{int(asset_id)}/{int(version_id)}/{int(scan_id)}/"


def appeal_prefix(owner_id: int, asset_id: int, version_id: int, upload_id: str) -> str:
    """The folder of one appeal's files: the filled-in report and the evidence."""
    return f"appeals/{int(owner_id)}/{int(asset_id)}/{int(version_id)}/{upload_id}/"


def report_key(owner_id: int, asset_id: int, version_id: int, scan_id: int) -> str:
    return scan_prefix(owner_id, asset_id, version_id, scan_id) + "report.xlsx"


def sbom_key(owner_id: int, asset_id: int, version_id: int, scan_id: int) -> str:
    return scan_prefix(owner_id, asset_id, version_id, scan_id) + "sbom.cdx.json"


def summary_key(owner_id: int, asset_id: int, version_id: int, scan_id: int) -> str:
    return scan_prefix(owner_id, asset_id, version_id, scan_id) + "summary.json"


def inventory_key(owner_id: int, asset_id: int, version_id: int, scan_id: int) -> str:
    """What the scan examined: gzip-compressed JSON lines (see :mod:`scanner.inventory`)."""
    return scan_prefix(owner_id, asset_id, version_id, scan_id) + "inventory.jsonl.gz"


# --- client -------------------------------------------------------------------

def client() -> Minio:
    """A ``minio`` client for the configured endpoint (cheap to build)."""
    cfg = current_app.config
    url = urlsplit(cfg["S3_ENDPOINT"])
    return Minio(
        url.netloc, access_key=cfg["S3_ACCESS_KEY"], secret_key=cfg["S3_SECRET_KEY"],
        secure=url.scheme == "https", region=cfg["S3_REGION"],
    )


def bucket() -> str:
    return current_app.config["S3_BUCKET"]


def ensure_bucket() -> None:
    """Create the bucket if it does not exist yet."""
    c = client()
    if not c.bucket_exists(bucket()):
        try:
            c.make_bucket(bucket())
        except S3Error as exc:  # another process made it first
            if exc.code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                raise


# --- objects ------------------------------------------------------------------

class _HashingReader:
    """Wraps a stream: hashes what passes through and refuses more than ``max_bytes``."""

    def __init__(self, stream: BinaryIO, max_bytes: int):
        self._stream = stream
        self._max = max_bytes
        self.size = 0
        self.sha256 = hashlib.sha256()

    def read(self, n: int = -1) -> bytes:
        n = CHUNK if n is None or n < 0 else min(n, CHUNK)
        data = self._stream.read(n)
        self.size += len(data)
        if self.size > self._max:
            raise TooLarge(f"more than {self._max} bytes")
        self.sha256.update(data)
        return data


def put_stream(key: str, stream: BinaryIO, *, max_bytes: int,
               content_type: str = "application/octet-stream") -> tuple[int, str]:
    """Store ``stream`` under ``key`` in parts; return (size, sha256 hex).

    Memory stays around one part. Raises :class:`TooLarge` past ``max_bytes``;
    then the multipart upload is aborted and nothing is stored.
    """
    reader = _HashingReader(stream, max_bytes)
    client().put_object(bucket(), key, reader, length=-1, part_size=PART_SIZE,
                        content_type=content_type)
    return reader.size, reader.sha256.hexdigest()


def put_bytes(key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
    """Store a small object held in memory (reports, SBOMs, summaries)."""
    client().put_object(bucket(), key, io.BytesIO(data), length=len(data), content_type=content_type)


def fetch_to_file(key: str, path: Path, progress=None) -> tuple[int, str]:
    """Stream the object to ``path``, hashing as it goes; return (size, sha256 hex).

    ``progress(done, total)`` is called after each chunk when given.
    """
    info = head(key)
    if info is None:
        raise FileNotFoundError(f"no object {key}")
    digest, size, total = hashlib.sha256(), 0, info.size
    with open_stream(key) as chunks, open(path, "wb") as out:
        for chunk in chunks:
            out.write(chunk)
            digest.update(chunk)
            size += len(chunk)
            if progress is not None:
                progress(size, total)
    return size, digest.hexdigest()


def get_bytes(key: str, max_bytes: int, offset: int = 0) -> bytes:
    """Read at most ``max_bytes`` of the object from ``offset`` (a ranged GET)."""
    response = client().get_object(bucket(), key, offset=offset, length=max_bytes)
    try:
        return response.read(max_bytes)
    finally:
        response.close()
        response.release_conn()


class _Stream:
    """Iterates an object in chunks and releases the connection when closed."""

    def __init__(self, response):
        self._response = response

    def __iter__(self) -> Iterator[bytes]:
        yield from self._response.stream(CHUNK)

    def close(self) -> None:
        self._response.close()
        self._response.release_conn()

    def __enter__(self) -> "_Stream":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_stream(key: str) -> _Stream:
    """An iterable of the object's bytes in chunks; close it (or use ``with``)."""
    return _Stream(client().get_object(bucket(), key))


def delete(key: str) -> None:
    """Remove the object; a missing one is not an error."""
    try:
        client().remove_object(bucket(), key)
    except S3Error as exc:
        if exc.code not in _MISSING:
            raise


def list_keys(prefix: str = "") -> Iterator[ObjectInfo]:
    """Every object under ``prefix``, recursively."""
    for obj in client().list_objects(bucket(), prefix=prefix, recursive=True):
        if obj.is_dir:
            continue
        yield ObjectInfo(obj.object_name, obj.size or 0, _naive_utc(obj.last_modified))


def head(key: str) -> ObjectInfo | None:
    """Size and time of the object, or None when it does not exist."""
    try:
        stat = client().stat_object(bucket(), key)
    except S3Error as exc:
        if exc.code in _MISSING:
            return None
        raise
    return ObjectInfo(key, stat.size or 0, _naive_utc(stat.last_modified))


def _naive_utc(moment: datetime | None) -> datetime | None:
    if moment is None or moment.tzinfo is None:
        return moment
    return moment.astimezone(timezone.utc).replace(tzinfo=None)


# --- multipart uploads from the browser ------------------------------------------
#
# The browser PUTs each part to a presigned URL; the portal only creates, lists,
# completes and aborts. ``minio`` exposes these S3 calls as private methods only.

@dataclass(frozen=True)
class StoredPart:
    number: int
    size: int
    etag: str
    last_modified: datetime | None = None  # naive UTC


@dataclass(frozen=True)
class PendingUpload:
    key: str
    upload_id: str
    initiated: datetime | None  # naive UTC


def package_upload_key(owner_id: int, token: str) -> str:
    """Where a package uploaded for a new asset lives (its ids do not exist yet)."""
    return f"{seller_prefix(owner_id)}uploads/{token}/package"


def seller_prefix(owner_id: int) -> str:
    """The folder of everything a seller's packages are stored under."""
    return f"packages/{int(owner_id)}/"


def public_client() -> Minio:
    """A client for the address browsers reach storage at (only used to sign URLs)."""
    cfg = current_app.config
    url = urlsplit(cfg.get("S3_PUBLIC_ENDPOINT") or cfg["S3_ENDPOINT"])
    return Minio(
        url.netloc, access_key=cfg["S3_ACCESS_KEY"], secret_key=cfg["S3_SECRET_KEY"],
        secure=url.scheme == "https", region=cfg["S3_REGION"],
    )


def create_multipart(key: str) -> str:
    """Start a multipart upload at ``key``; returns its upload id."""
    return client()._create_multipart_upload(bucket(), key, {})


def presign_part(key: str, upload_id: str, part_number: int, expires: timedelta) -> str:
    """A URL the browser PUTs one part's bytes to, valid for ``expires``."""
    return public_client().get_presigned_url(
        "PUT", bucket(), key, expires=expires,
        extra_query_params={"uploadId": upload_id, "partNumber": str(int(part_number))},
    )


def list_parts(key: str, upload_id: str) -> list[StoredPart]:
    """The parts storage holds for the upload, by number then age. Raises NoSuchUpload when gone.

    A part sent twice replaces the first on S3 and MinIO; SeaweedFS lists both.
    """
    parts, marker = [], None
    while True:
        result = client()._list_parts(bucket(), key, upload_id, max_parts=1000,
                                      part_number_marker=marker)
        parts += result.parts
        if not result.is_truncated or not result.next_part_number_marker:
            break
        marker = result.next_part_number_marker
    return [StoredPart(p.part_number, p.size or 0, p.etag, _naive_utc(p.last_modified))
            for p in sorted(parts, key=lambda p: (p.part_number, p.last_modified or _EPOCH))]


def complete_multipart(key: str, upload_id: str, parts: list[StoredPart]) -> None:
    """Join ``parts`` (as listed by :func:`list_parts`) into the object at ``key``."""
    client()._complete_multipart_upload(
        bucket(), key, upload_id, [Part(p.number, p.etag) for p in parts])


def abort_multipart(key: str, upload_id: str) -> None:
    """Drop the upload and its stored parts; an upload already gone is not an error."""
    try:
        client()._abort_multipart_upload(bucket(), key, upload_id)
    except S3Error as exc:
        if exc.code not in ("NoSuchUpload", *_MISSING):
            raise


def list_multipart_uploads(prefix: str) -> Iterator[PendingUpload]:
    """Multipart uploads under ``prefix`` that were neither completed nor aborted."""
    key_marker = upload_marker = None
    while True:
        result = client()._list_multipart_uploads(
            bucket(), prefix=prefix, key_marker=key_marker, upload_id_marker=upload_marker)
        for upload in result.uploads:
            yield PendingUpload(upload.object_name, upload.upload_id or "",
                                _naive_utc(upload.initiated_time))
        if not result.is_truncated or not result.next_key_marker:
            return
        key_marker = result.next_key_marker
        upload_marker = getattr(result, "next_upload_id_marker", None)


def read_head(key: str, n: int) -> bytes:
    """The first ``n`` bytes of the object (fewer when it is shorter)."""
    return get_bytes(key, n)
