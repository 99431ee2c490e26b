"""Direct uploads against the real S3 (SeaweedFS): completion that survives a storage
error, bytes stored per upload and per seller, and what the orphan sweeper leaves alone."""

from __future__ import annotations

import http.client
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import pytest

from portal import storage
from portal.extensions import db
from portal.models import Asset, AuditEvent, UploadSession, UploadState
from portal.services import sweeper, uploads
from portal.timeutil import utcnow
from tests.portal.test_uploads import (  # noqa: F401 - fixtures
    MIB,
    _no_pending_uploads,
    app_config,
    chunks,
    package,
    put,
    seller,
    send,
    start,
)


# --- a storage that fails the completion of multipart uploads on demand ---------------------

class FlakyStorage:
    """A proxy in front of the real S3 that answers 503 to CompleteMultipartUpload while
    ``failing`` is set; everything else goes through untouched."""

    def __init__(self, upstream: str):
        self.upstream = urlsplit(upstream).netloc
        self.failing = False
        self.refused = 0
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def _relay(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if proxy.failing and self.command == "POST" and "uploadId=" in self.path:
                    proxy.refused += 1
                    error = (b"<?xml version='1.0' encoding='UTF-8'?><Error><Code>"
                             b"ServiceUnavailable</Code><Message>Storage is down.</Message>"
                             b"</Error>")
                    return self._answer(503, [("Content-Type", "application/xml")], error)
                connection = http.client.HTTPConnection(proxy.upstream, timeout=60)
                try:
                    connection.request(self.command, self.path, body=body,
                                       headers=dict(self.headers.items()))
                    response = connection.getresponse()
                    data = response.read()
                    headers = [(k, v) for k, v in response.getheaders()
                               if k.lower() not in ("transfer-encoding", "connection",
                                                    "content-length")]
                    length = response.getheader("Content-Length") or "0"
                    self._answer(response.status, headers, data,
                                 length if self.command == "HEAD" else None)
                finally:
                    connection.close()

            def _answer(self, status, headers, data, length=None):
                self.send_response(status)
                for key, value in headers:
                    self.send_header(key, value)
                self.send_header("Content-Length", length or str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _relay

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.address = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def flaky(app, s3_service):
    """The proxy, which the portal talks to storage through; browsers go straight to it."""
    proxy = FlakyStorage(s3_service.address)
    app.config.update(S3_ENDPOINT=proxy.address, S3_PUBLIC_ENDPOINT=s3_service.address)
    yield proxy
    app.config.update(S3_ENDPOINT=s3_service.address, S3_PUBLIC_ENDPOINT="")
    proxy.close()


def test_a_storage_error_at_completion_keeps_the_upload_and_completing_again_records_it(
        client, seller, package, flaky):
    session = start(client, package).get_json()
    send(client, session, package)

    flaky.failing = True
    failed = client.post(session["urls"]["complete"])
    assert flaky.refused >= 1
    assert failed.status_code == 503, failed.get_json()
    assert "Nothing is lost" in failed.get_json()["error"]
    row = db.session.get(UploadSession, session["id"])
    db.session.refresh(row)
    assert row.state is UploadState.open and row.completing_since is None
    assert db.session.query(Asset).count() == 0
    resumed = client.get(session["urls"]["self"]).get_json()
    assert resumed["state"] == "open" and len(resumed["parts"]) == 3

    flaky.failing = False
    done = client.post(session["urls"]["complete"])
    assert done.status_code == 200, done.get_json()
    again = client.post(session["urls"]["complete"])  # the answer was lost: ask again
    assert again.status_code == 200, again.get_json()
    assert again.get_json()["version_id"] == done.get_json()["version_id"]
    assert db.session.query(Asset).count() == 1
    db.session.refresh(row)
    assert row.state is UploadState.completed
    assert storage.head(row.key).size == len(package)


def test_a_completion_that_stopped_after_joining_the_parts_is_finished_by_the_next(
        client, seller, package):
    session = start(client, package).get_json()
    send(client, session, package)
    row = db.session.get(UploadSession, session["id"])
    # Storage joined the parts, then the portal stopped before recording the package.
    storage.complete_multipart(row.key, row.s3_upload_id,
                               storage.list_parts(row.key, row.s3_upload_id))
    resumed = client.get(session["urls"]["self"]).get_json()
    assert resumed["state"] == "open" and len(resumed["parts"]) == 3  # nothing left to send
    done = client.post(session["urls"]["complete"])
    assert done.status_code == 200, done.get_json()
    assert db.session.query(Asset).count() == 1


def test_two_completions_at_once_do_not_both_join(client, seller, package):
    session = start(client, package).get_json()
    send(client, session, package)
    assert uploads._claim_completion(session["id"])  # another request is completing it
    busy = client.post(session["urls"]["complete"])
    assert busy.status_code == 422 and "being completed" in busy.get_json()["error"]
    cancel = client.post(session["urls"]["cancel"])
    assert cancel.status_code == 422 and "being completed" in cancel.get_json()["error"]
    row = db.session.get(UploadSession, session["id"])
    row.completing_since = utcnow() - uploads.COMPLETION_LEASE - timedelta(seconds=1)
    db.session.commit()  # that one crashed: its lease ran out
    assert client.post(session["urls"]["complete"]).status_code == 200


# --- bytes stored while an upload is open ----------------------------------------------------

def test_an_upload_storing_more_than_it_declared_is_aborted_at_the_next_part(
        client, seller, package):
    session = start(client, package).get_json()  # 12 MiB declared: 5 + 5 + 2
    send(client, session, package, numbers=[1])
    signed = client.post(f"{session['urls']['part']}/3").get_json()
    assert put(signed["url"], b"\0" * (20 * MIB)) == 200  # a presigned PUT takes any size
    refused = client.post(f"{session['urls']['part']}/2")
    assert refused.status_code == 422
    message = refused.get_json()["error"]
    assert "more than the file declared" in message and "Start the upload again" in message
    row = db.session.get(UploadSession, session["id"])
    db.session.refresh(row)
    assert row.state is UploadState.aborted and row.stored_bytes == 25 * MIB
    assert row.key not in {u.key for u in storage.list_multipart_uploads("packages/")}
    event = AuditEvent.query.filter_by(action="upload.overflow").one()
    assert event.after["stored"] == 25 * MIB and event.after["declared"] == len(package)
    later = client.post(session["urls"]["complete"])
    assert later.status_code == 422 and "more than the file declared" in later.get_json()["error"]


def test_the_periodic_job_measures_open_uploads_and_aborts_the_oversized(
        client, seller, package):
    from worker import jobs

    honest = start(client, package).get_json()
    send(client, honest, package, numbers=[1, 2])
    greedy = start(client, package, name="greedy").get_json()
    for number, size in ((1, 5 * MIB), (3, 14 * MIB)):  # part 3 should hold 2 MiB
        signed = client.post(f"{greedy['urls']['part']}/{number}").get_json()
        assert put(signed["url"], b"\1" * size) == 200
    assert jobs.watch_uploads() == 1
    assert db.session.get(UploadSession, greedy["id"]).state is UploadState.aborted
    row = db.session.get(UploadSession, honest["id"])
    assert row.state is UploadState.open and row.stored_bytes == 10 * MIB
    assert row.checked_at is not None


def test_a_seller_may_have_only_so_many_unfinished_uploads(app, client, seller, package):
    app.config.update(UPLOAD_MAX_OPEN=2)
    first = start(client, package, name="one").get_json()
    assert start(client, package, name="two").status_code == 201
    third = start(client, package, name="three")
    assert third.status_code == 422
    body = third.get_json()
    assert body["field"] == "package"
    assert "2 unfinished uploads" in body["error"] and "cancelled by itself" in body["error"]
    client.post(first["urls"]["cancel"])
    assert start(client, package, name="three").status_code == 201


def test_a_seller_s_unfinished_uploads_may_hold_only_so_many_bytes(app, client, seller,
                                                                    package):
    app.config.update(UPLOAD_MAX_OPEN_BYTES=20 * MIB)
    assert start(client, package, name="one").status_code == 201
    second = start(client, package, name="two")
    assert second.status_code == 422
    assert "would pass 20 MiB" in second.get_json()["error"]


# --- the orphan sweeper ----------------------------------------------------------------------

def _later(app):
    return utcnow() + timedelta(seconds=app.config["ORPHAN_MIN_AGE"] + 60)


def test_the_sweeper_never_removes_what_operators_stage_for_registration(app, seller):
    staged = f"packages/{seller.id}/incoming/app-2.0.tar.gz"  # as the register page says
    storage.put_bytes(staged, b"staged")
    storage.put_bytes("packages/9/9/9/x/package", b"orphan")
    assert sweeper.find_orphans(_later(app)) == ["packages/9/9/9/x/package"]
    sweeper.sweep_orphans(_later(app))
    assert storage.head(staged) is not None


def test_the_sweeper_spares_a_multipart_upload_completing_during_the_sweep(
        app, client, seller, package):
    session = start(client, package).get_json()
    send(client, session, package)
    row = db.session.get(UploadSession, session["id"])
    # The parts are joined; the row that will refer to the object is not committed yet.
    storage.complete_multipart(row.key, row.s3_upload_id,
                               storage.list_parts(row.key, row.s3_upload_id))
    assert row.key not in sweeper.find_orphans(_later(app))
    assert client.post(session["urls"]["complete"]).status_code == 200
    assert storage.head(row.key) is not None


def test_the_sweeper_spares_objects_younger_than_the_oldest_open_upload(
        app, client, seller, package):
    session = start(client, package).get_json()
    storage.put_bytes("packages/9/9/9/x/package", b"stored after the upload started")
    assert sweeper.find_orphans(_later(app)) == []
    client.post(session["urls"]["cancel"])
    assert sweeper.find_orphans(_later(app)) == ["packages/9/9/9/x/package"]
