"""Direct uploads against the real S3 (SeaweedFS): the test plays the browser, PUTting
each part to the presigned URL the portal signed."""

from __future__ import annotations

import gzip
import io
import os
import tarfile
import urllib.request
from datetime import timedelta

import pytest

from portal import storage
from portal.extensions import db
from portal.models import (
    Asset,
    AssetVersion,
    AuditEvent,
    Role,
    Scan,
    UploadSession,
    UploadState,
    VersionStatus,
)
from portal.services import uploads
from portal.timeutil import utcnow

MIB = 1024**2
PART = 5 * MIB


def tar_gz(size: int) -> bytes:
    """A .tar.gz of about ``size`` bytes (random data barely compresses)."""
    raw = io.BytesIO()
    payload = os.urandom(size)
    with tarfile.open(fileobj=raw, mode="w") as tar:
        info = tarfile.TarInfo("app/blob.bin")
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    return gzip.compress(raw.getvalue(), compresslevel=1)


@pytest.fixture(scope="module")
def package() -> bytes:
    return tar_gz(12 * MIB)  # three parts: 5 MiB, 5 MiB and the rest


@pytest.fixture
def app_config(app_config):
    return {**app_config, "UPLOAD_PART_SIZE": PART}


@pytest.fixture(autouse=True)
def _no_pending_uploads(app):
    yield
    with app.app_context():
        for pending in storage.list_multipart_uploads("packages/"):
            storage.abort_multipart(pending.key, pending.upload_id)


@pytest.fixture
def seller(factories, auth):
    user = factories.user()
    auth.login_as(user)
    return user


def switch_to(auth, user) -> None:
    """Sign in as ``user`` (and forget the user Flask-Login cached for this test's context)."""
    from flask import g

    auth.login_as(user)
    g.pop("_login_user", None)


def put(url: str, data: bytes) -> int:
    request = urllib.request.Request(url, data=data, method="PUT")
    with urllib.request.urlopen(request, timeout=60) as response:
        return response.status


def chunks(data: bytes, part_size: int) -> dict[int, bytes]:
    return {i // part_size + 1: data[i:i + part_size] for i in range(0, len(data), part_size)}


def start(client, data: bytes, **fields):
    body = {"filename": "app-1_0.tar.gz", "size": len(data), "name": "big-app",
            "kind": "binary", "version_label": "1.0", "description": "Big", "submit": True,
            **fields}
    return client.post("/uploads", json=body)


def send(client, session: dict, data: bytes, numbers=None) -> None:
    parts = chunks(data, session["part_size"])
    for number in numbers or parts:
        signed = client.post(f"{session['urls']['part']}/{number}").get_json()
        assert signed["size"] == len(parts[number])
        assert put(signed["url"], parts[number]) == 200


def test_multipart_upload_in_parts_is_submitted(client, seller, package):
    response = start(client, package)
    assert response.status_code == 201, response.get_json()
    session = response.get_json()
    assert session["part_count"] == 3 and session["part_size"] == PART
    send(client, session, package)

    done = client.post(session["urls"]["complete"], json={})
    assert done.status_code == 200, done.get_json()
    body = done.get_json()
    assert body["status"] == "scanning"
    assert body["location"] == f"/assets/{body['asset_id']}"

    version = db.session.get(AssetVersion, body["version_id"])
    assert version.asset.owner_id == seller.id and version.asset.name == "big-app"
    assert version.package_name == "app-1_0.tar.gz" and version.package_size == len(package)
    assert version.package_key.startswith(f"packages/{seller.id}/uploads/")
    assert storage.head(version.package_key).size == len(package)
    assert storage.get_bytes(version.package_key, 1024) == package[:1024]
    assert db.session.query(Scan).filter_by(version_id=version.id).count() == 1
    row = db.session.get(UploadSession, session["id"])
    assert row.state is UploadState.completed
    assert client.get(f"/assets/{body['asset_id']}").status_code == 200


def test_save_as_draft_is_respected(client, seller, package):
    session = start(client, package, submit=False).get_json()
    send(client, session, package)
    body = client.post(session["urls"]["complete"]).get_json()
    assert body["status"] == "draft"
    assert db.session.query(Scan).count() == 0


def test_an_interrupted_upload_resumes_with_the_parts_storage_holds(client, seller, package):
    session = start(client, package).get_json()
    send(client, session, package, numbers=[1, 3])  # the tab closed before part 2

    resumed = client.get(session["urls"]["self"]).get_json()
    assert [p["number"] for p in resumed["parts"]] == [1, 3]
    assert resumed["part_count"] == 3 and resumed["state"] == "open"
    send(client, session, package, numbers=[2])
    assert client.post(session["urls"]["complete"]).status_code == 200


def test_a_tampered_part_list_is_ignored_and_a_missing_part_explained(client, seller, package):
    session = start(client, package).get_json()
    send(client, session, package, numbers=[1, 2])
    claims = {"parts": [{"number": n, "etag": "0" * 32} for n in (1, 2, 3)]}

    refused = client.post(session["urls"]["complete"], json=claims)
    assert refused.status_code == 422
    assert refused.get_json()["error"] == (
        "1 of 3 parts have not been uploaded yet (first missing: part 3). "
        "Resume the upload to send them.")
    assert db.session.get(UploadSession, session["id"]).state is UploadState.open

    # A part of the wrong size is refused too, and can be sent again.
    signed = client.post(f"{session['urls']['part']}/3").get_json()
    put(signed["url"], b"short")
    refused = client.post(session["urls"]["complete"], json=claims)
    assert refused.status_code == 422
    assert "Part 3 holds 5 bytes instead of" in refused.get_json()["error"]

    send(client, session, package, numbers=[3])
    done = client.post(session["urls"]["complete"], json=claims)
    assert done.status_code == 200, (done.get_json(), storage.list_parts(
        db.session.get(UploadSession, session["id"]).key,
        db.session.get(UploadSession, session["id"]).s3_upload_id))
    version = db.session.scalars(db.select(AssetVersion)).one()
    assert storage.get_bytes(version.package_key, len(package)) == package


def test_part_numbers_outside_the_upload_are_refused(client, seller, package):
    session = start(client, package).get_json()
    for number in (0, 4):
        response = client.post(f"{session['urls']['part']}/{number}")
        assert response.status_code in (404, 422)
    assert client.post(f"{session['urls']['part']}/4").get_json()["error"] == (
        "This upload has parts 1 to 3.")


@pytest.mark.parametrize("size, message", [
    (20 * 1024**3 + 1, "The package is larger than 20 GiB, the largest package accepted."),
    (0, "The package file is empty."),
])
def test_an_over_size_or_empty_declared_size_is_refused(client, seller, size, message):
    response = client.post("/uploads", json={"filename": "app.zip", "size": size, "name": "x",
                                             "kind": "binary", "version_label": "1"})
    assert response.status_code == 422
    assert response.get_json() == {"error": message, "field": "package"}
    assert db.session.query(UploadSession).count() == 0
    assert not list(storage.list_multipart_uploads(f"packages/{seller.id}/"))


def test_the_size_limit_is_configurable(app, client, seller):
    app.config["MAX_PACKAGE_SIZE"] = 10 * MIB
    response = start(client, b"x" * (11 * MIB))
    assert response.get_json()["error"] == (
        "The package is larger than 10 MiB, the largest package accepted.")


@pytest.mark.parametrize("field, value, message", [
    ("filename", "app.exe", "The package must be a .zip, .tar or .tar.gz (.tgz) file."),
    ("name", "bad name!", 'The name may contain only letters, digits, "-", "_", "(" and ")"'),
])
def test_names_are_checked_before_any_byte_is_sent(client, seller, field, value, message):
    response = start(client, b"x" * MIB, **{field: value})
    assert response.status_code == 422
    assert response.get_json()["error"].startswith(message)


def test_a_wrong_format_is_refused_after_completion_and_removed(client, seller):
    data = os.urandom(6 * MIB)
    session = start(client, data, filename="app.zip").get_json()
    send(client, session, data)

    refused = client.post(session["urls"]["complete"])
    assert refused.status_code == 422
    assert "zip" in refused.get_json()["error"].lower()
    row = db.session.get(UploadSession, session["id"])
    assert row.state is UploadState.aborted
    assert storage.head(row.key) is None
    assert db.session.query(Asset).count() == 0


def test_cancel_aborts_the_upload_and_its_parts(client, seller, package):
    session = start(client, package).get_json()
    send(client, session, package, numbers=[1])
    assert client.post(session["urls"]["cancel"]).get_json() == {"cancelled": True}
    row = db.session.get(UploadSession, session["id"])
    assert row.state is UploadState.aborted
    assert not [u for u in storage.list_multipart_uploads("packages/") if u.key == row.key]
    again = client.post(f"{session['urls']['part']}/2")
    assert again.status_code == 422
    assert "cancelled" in again.get_json()["error"]


def test_abandoned_uploads_are_aborted_by_the_job(app, client, seller, package):
    from worker import jobs

    session = start(client, package).get_json()
    send(client, session, package, numbers=[1])
    fresh = start(client, package, name="fresh-app").get_json()
    row = db.session.get(UploadSession, session["id"])
    row.updated_at = utcnow() - timedelta(days=2)
    db.session.commit()
    # A multipart upload no session knows about (a crash between the two writes).
    stray_key = storage.package_upload_key(seller.id, "stray")
    storage.create_multipart(stray_key)

    assert jobs.run_abort_abandoned_uploads() == 1  # the stray one is not a day old yet
    assert db.session.get(UploadSession, session["id"]).state is UploadState.aborted
    assert db.session.get(UploadSession, fresh["id"]).state is UploadState.open
    pending = {u.key for u in storage.list_multipart_uploads("packages/")}
    assert row.key not in pending and stray_key in pending

    assert uploads.abort_abandoned(older_than=timedelta(0)) >= 2
    pending = {u.key for u in storage.list_multipart_uploads("packages/")}
    assert stray_key not in pending
    resumed = client.get(session["urls"]["self"])
    assert resumed.status_code == 200 and resumed.get_json()["state"] == "aborted"


def test_modify_through_a_direct_upload(client, factories, auth, package):
    owner = factories.user()
    asset = factories.asset(owner, name="tool")
    version = factories.version(asset, status=VersionStatus.rejected, package=b"PK\x05\x06"
                                + b"\0" * 18, package_name="old.zip")
    old_key = version.package_key
    auth.login_as(owner)
    session = client.post("/uploads", json={"filename": "new.tar.gz", "size": len(package),
                                            "version_id": version.id}).get_json()
    assert f"packages/{owner.id}/{asset.id}/{version.id}/" in db.session.get(
        UploadSession, session["id"]).key
    send(client, session, package)
    body = client.post(session["urls"]["complete"]).get_json()
    assert body["version_id"] == version.id and body["status"] == "scanning"
    db.session.expire_all()
    version = db.session.get(AssetVersion, version.id)
    assert version.package_name == "new.tar.gz" and version.package_sha256 is None
    assert storage.head(old_key) is None
    assert db.session.query(AuditEvent).filter_by(action="version.modify").count() == 1


def test_the_worker_fills_in_the_hash(client, seller, package):
    import hashlib

    session = start(client, package).get_json()
    send(client, session, package)
    version = db.session.get(AssetVersion, client.post(session["urls"]["complete"])
                             .get_json()["version_id"])
    uploads.record_sha256(version.id, version.package_key, hashlib.sha256(package).hexdigest())
    db.session.expire_all()
    assert version.package_sha256 == hashlib.sha256(package).hexdigest()
    assert version.latest_scan.package_sha256 == version.package_sha256


def test_uploads_belong_to_their_owner(client, factories, auth, seller, package):
    from flask import g

    session = start(client, package).get_json()
    switch_to(auth, factories.user())
    sid = session["id"]
    for method, path in [("get", f"/uploads/{sid}"), ("post", f"/uploads/{sid}/parts/1"),
                         ("post", f"/uploads/{sid}/complete"), ("post", f"/uploads/{sid}/cancel")]:
        response = getattr(client, method)(path)
        assert response.status_code == 404, path
        assert response.get_json() == {"error": "No such upload.", "field": None}
    # Not even a reviewer or operator sees a seller's upload in progress.
    switch_to(auth, factories.user(Role.operator))
    assert client.get(f"/uploads/{sid}").status_code == 404
    auth.logout()
    g.pop("_login_user", None)
    assert client.get(f"/uploads/{sid}").status_code == 401
    assert db.session.get(UploadSession, sid).state is UploadState.open


def test_modify_of_someone_elses_version_is_not_found(client, factories, seller):
    version = factories.version(factories.asset(factories.user()))
    response = client.post("/uploads", json={"filename": "a.zip", "size": 10,
                                             "version_id": version.id})
    assert response.status_code == 404


# --- operators register a stored package -------------------------------------------

@pytest.fixture
def operator(factories, auth):
    user = factories.user(Role.operator)
    auth.login_as(user)
    return user


def register_form(seller_id: int, key: str, **fields) -> dict:
    return {"seller_id": seller_id, "key": key, "name": "registered", "kind": "binary",
            "version": "2.0", "submit_review": "Register and scan", **fields}


def test_an_operator_registers_an_object_under_the_sellers_prefix(client, factories, operator,
                                                                  package):
    owner = factories.user()
    key = f"packages/{owner.id}/incoming/app-2_0.tar.gz"
    storage.put_stream(key, io.BytesIO(package), max_bytes=len(package))
    response = client.post("/uploads/register", data=register_form(owner.id, key))
    assert response.status_code == 302, response.get_data(as_text=True)
    asset = db.session.scalars(db.select(Asset)).one()
    assert asset.owner_id == owner.id and asset.name == "registered"
    version = asset.versions[0]
    assert version.package_key == key and version.package_name == "app-2_0.tar.gz"
    assert version.package_size == len(package) and version.status is VersionStatus.scanning
    event = db.session.query(AuditEvent).filter_by(action="asset.create").one()
    assert event.actor_id == operator.id


@pytest.mark.parametrize("where, message", [
    ("other", "The object key must lie under packages/{seller}/"),
    ("dots", "The object key must lie under packages/{seller}/"),
    ("missing", "There is no object at packages/{seller}/nothing.tar.gz"),
])
def test_registration_elsewhere_is_refused(client, factories, operator, package, where, message):
    owner, other = factories.user(), factories.user()
    keys = {"other": f"packages/{other.id}/app.tar.gz",
            "dots": f"packages/{owner.id}/../{other.id}/app.tar.gz",
            "missing": f"packages/{owner.id}/nothing.tar.gz"}
    storage.put_stream(keys["other"], io.BytesIO(package), max_bytes=len(package))
    response = client.post("/uploads/register", data=register_form(owner.id, keys[where]))
    assert response.status_code == 422
    assert message.format(seller=owner.id) in response.get_data(as_text=True)
    assert db.session.query(Asset).count() == 0


def test_registration_checks_the_format(client, factories, operator):
    owner = factories.user()
    key = f"packages/{owner.id}/junk.zip"
    storage.put_stream(key, io.BytesIO(os.urandom(4096)), max_bytes=4096)
    response = client.post("/uploads/register", data=register_form(owner.id, key))
    assert response.status_code == 422
    assert storage.head(key) is not None  # the operator's object is left alone


def test_only_operators_register(client, factories, seller):
    assert client.get("/uploads/register").status_code == 403


# --- CSRF ------------------------------------------------------------------------------

def test_the_json_endpoints_need_the_csrf_header(app, client, seller, package):
    import re

    app.config["WTF_CSRF_ENABLED"] = True
    body = {"filename": "a.tar.gz", "size": len(package), "name": "csrf-app", "kind": "binary",
            "version_label": "1"}
    refused = client.post("/uploads", json=body)
    assert refused.status_code == 400
    assert "security token" in refused.get_json()["error"]
    page = client.get("/assets/new").get_data(as_text=True)
    token = re.search(r'<meta name="csrf-token" content="([^"]+)"', page).group(1)
    assert client.post("/uploads", json=body, headers={"X-CSRFToken": token}).status_code == 201
