"""Upload throughput: the portal's direct path against a plain ``minio`` client, same S3.

For each generated package (sizes from ``ASSAY_BENCH_SIZES``, default ``100m,1g``;
``5g`` works too):

- portal: the flow the browser's uploader runs, driven from Python — ``start_upload``,
  a presigned URL per 64 MiB part, three parts PUT in parallel, then ``complete_upload``
  (which lists the parts, joins them, reads the first bytes back and records the asset);
- direct: ``Minio.fput_object`` of the same file with the same part size (the client
  also sends three parts at a time).

The ratio recorded is portal throughput / direct throughput (target >= 0.8). Nothing
here asserts a time.
"""

from __future__ import annotations

import os
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from unittest import mock

import pytest

from ops.services import s3_client
from tests.conftest import S3_BUCKET

from .packages import mixed_package

pytestmark = pytest.mark.bench

SIZES = [s.strip() for s in os.environ.get("ASSAY_BENCH_SIZES", "100m,1g").split(",") if s.strip()]
PART = 64 * 1024**2
PARALLEL = 3
MB = 1024**2


@pytest.fixture(scope="module")
def portal_app(services_env, _databases):
    """The portal on a fresh, migrated database, pointed at the session's S3."""
    from flask_migrate import upgrade

    from portal import create_app, storage

    env = {**services_env, "DATABASE_URL": _databases.new("assay_bench_upload")}
    with mock.patch.dict(os.environ, env):
        app = create_app({"RATELIMIT_ENABLED": False, "UPLOAD_PART_SIZE": PART})
    with app.app_context():
        upgrade()
        storage.ensure_bucket()
    return app


@pytest.fixture(scope="module")
def seller(portal_app):
    from portal.services import users

    with portal_app.app_context():
        return users.create_user("bench@example.com", "Bench Seller", "bench-password-1",
                                 "seller").id


def _put(url: str, path: Path, offset: int, length: int) -> None:
    with path.open("rb") as f:
        f.seek(offset)
        body = f.read(length)
    request = urllib.request.Request(url, data=body, method="PUT")
    with urllib.request.urlopen(request, timeout=600) as response:
        response.read()


def portal_upload(app, seller_id: int, path: Path, label: str) -> tuple[float, str]:
    """The direct path from start to recorded asset; returns (seconds, object key)."""
    from portal.extensions import db
    from portal.models import User
    from portal.services import uploads

    size = path.stat().st_size
    with app.app_context():
        actor = db.session.get(User, seller_id)
        began = time.perf_counter()
        session = uploads.start_upload(actor, context={
            "name": f"bench-{label}", "kind": "binary", "version_label": "1.0",
            "submit": False}, filename="bench.tar.gz", size=size)
        sid, part_size, count = session.id, session.part_size, session.part_count

        def send(number: int) -> None:
            with app.app_context():
                signed = uploads.sign_part(db.session.get(User, seller_id), sid, number)
            _put(signed["url"], path, (number - 1) * part_size, signed["size"])

        with ThreadPoolExecutor(PARALLEL) as pool:
            list(pool.map(send, range(1, count + 1)))
        version = uploads.complete_upload(actor, sid)
        seconds = time.perf_counter() - began
        return seconds, version.package_key


def _warm(path: Path) -> None:
    with path.open("rb") as f:
        while f.read(16 * MB):
            pass


def direct_upload(s3_service, path: Path, key: str) -> float:
    client = s3_client(s3_service.address, s3_service.extra["access_key"],
                       s3_service.extra["secret_key"])
    began = time.perf_counter()
    client.fput_object(S3_BUCKET, key, str(path), part_size=PART, num_parallel_uploads=PARALLEL)
    return time.perf_counter() - began


@pytest.mark.parametrize("size", SIZES)
def test_upload_vs_direct(size, portal_app, seller, s3_service, bench_record):
    from portal import storage

    package = mixed_package(size)
    _warm(package)  # both sides read the file from the page cache alike
    megabytes = package.stat().st_size / MB
    direct_key = f"bench/direct-{size}"
    direct = direct_upload(s3_service, package, direct_key)
    portal, key = portal_upload(portal_app, seller, package, size)
    with portal_app.app_context():
        assert storage.head(key).size == package.stat().st_size
        storage.delete(key)
        storage.delete(direct_key)

    ratio = direct / portal  # throughput ratio: portal MB/s over direct MB/s
    print(
        f"\n[{size}] package {megabytes:.0f} MB, {PART // MB} MiB parts, {PARALLEL} in parallel\n"
        f"  direct minio fput_object: {direct:7.2f} s  {megabytes / direct:7.1f} MB/s\n"
        f"  portal direct path:       {portal:7.2f} s  {megabytes / portal:7.1f} MB/s\n"
        f"  ratio portal / direct = {ratio:.2f}"
    )
    bench_record(f"upload_vs_direct_ratio_{size}", round(ratio, 3), "x")
    bench_record(f"upload_portal_mb_s_{size}", round(megabytes / portal, 1), "MB/s")
    bench_record(f"upload_direct_mb_s_{size}", round(megabytes / direct, 1), "MB/s")
