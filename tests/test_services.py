"""The service starters of ops.services: each starts, answers, and stops leaving no process."""

from __future__ import annotations

import io
import os
import socket
from pathlib import Path

import pytest
import redis
import sqlalchemy

from ops import services


def assert_gone(service: services.Service) -> None:
    assert service.proc.poll() is not None
    assert not services.group_alive(service.proc.pid)


def test_redis_starts_answers_and_stops(tmp_path):
    service = services.start_redis(tmp_path)
    try:
        assert service.address.startswith("redis://127.0.0.1:")
        with redis.Redis.from_url(service.address) as client:
            assert client.ping()
            client.set("k", "v")
            assert client.get("k") == b"v"
    finally:
        service.stop()
    assert_gone(service)


def test_redis_restarts_on_the_same_address(tmp_path):
    service = services.start_redis(tmp_path)
    try:
        service.stop()
        with pytest.raises(redis.ConnectionError), redis.Redis.from_url(service.address) as c:
            c.ping()
        service.restart()
        with redis.Redis.from_url(service.address) as client:
            assert client.ping()
    finally:
        service.stop()
    assert_gone(service)


def test_s3_stores_and_deletes_objects_with_its_credentials(tmp_path):
    service = services.start_s3(tmp_path, access_key="assay-test", secret_key="s3cret-for-tests")
    try:
        assert service.extra == {"access_key": "assay-test", "secret_key": "s3cret-for-tests",
                                 "ports": service.extra["ports"]}
        client = services.s3_client(service.address, "assay-test", "s3cret-for-tests")
        client.make_bucket("packages")
        client.put_object("packages", "a/b.tar", io.BytesIO(b"payload"), 7)
        response = client.get_object("packages", "a/b.tar")
        try:
            assert response.read() == b"payload"
        finally:
            response.close()
            response.release_conn()
        client.remove_object("packages", "a/b.tar")
        assert list(client.list_objects("packages", recursive=True)) == []
        stranger = services.s3_client(service.address, "assay-test", "wrong-secret")
        with pytest.raises(Exception, match="SignatureDoesNotMatch|AccessDenied|InvalidAccessKey"):
            stranger.list_buckets()
    finally:
        service.stop()
    assert_gone(service)


def test_s3_refuses_a_busy_port_instead_of_moving(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(services.PortBusyError, match=str(port)):
            services.start_s3(tmp_path / "s3", port=port)
        ports = services.free_s3_ports() | {"filer.port": port}
        with pytest.raises(services.PortBusyError, match=f"filer.port {port}"):
            services.start_s3(tmp_path / "s3", ports=ports)
    assert not (tmp_path / "s3" / "weed.log").exists()


def test_redis_refuses_a_busy_port(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(services.PortBusyError):
            services.start_redis(tmp_path, port=taken.getsockname()[1])


def test_postgres_cluster_serves_a_database_and_is_removed(tmp_path):
    service = services.start_postgres(tmp_path)
    try:
        assert service.address.startswith("postgresql+psycopg://assay:")
        assert service.address.endswith("/assay")
        engine = sqlalchemy.create_engine(service.address)
        with engine.connect() as conn:
            assert conn.execute(sqlalchemy.text("select 1")).scalar() == 1
        engine.dispose()
        other = services.create_database(service, "assay_other")
        engine = sqlalchemy.create_engine(other)
        with engine.connect() as conn:
            assert conn.execute(sqlalchemy.text("select current_database()")).scalar() == (
                "assay_other")
        engine.dispose()
    finally:
        service.stop()
    assert_gone(service)
    assert services.port_is_free(service.extra["port"])
    cluster = tmp_path / "cluster"
    if cluster.is_file():  # as root the cluster lives in its own temporary directory
        assert not Path(cluster.read_text().strip()).exists()


def test_database_url_matches_the_run(database_url, database_kind):
    prefix = "postgresql+psycopg://" if database_kind == "postgresql" else "sqlite:///"
    assert database_url.startswith(prefix)


def test_browser_is_debian_chromium_headless(browser, chromium_path):
    page = browser.new_page()
    try:
        page.set_content("<h1>Assay</h1>")
        assert page.inner_text("h1") == "Assay"
        assert page.screenshot()[:8] == b"\x89PNG\r\n\x1a\n"
    finally:
        page.close()
    assert chromium_path == os.environ.get("ASSAY_CHROMIUM", "/usr/bin/chromium")
