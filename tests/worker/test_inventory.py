"""The worker keeps the inventory of what a scan examined, and who may download it."""

from __future__ import annotations

import gzip
import json

import pytest
from flask import g

from portal import storage
from portal.extensions import db
from portal.models import Role, VersionStatus
from portal.services import scans, sweeper
from portal.services.errors import NotFound
from tests.worker.test_jobs import _add, _work

EICAR_SHA256 = "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f"


def test_a_scan_stores_its_inventory_for_the_seller_reviewers_and_operators(
    app, factories, redis_conn, client, auth
):
    seller = factories.user()
    version = _add(seller, "pkg-d-eicar-nested.zip")
    _work(redis_conn)
    db.session.refresh(version)
    scan = version.latest_scan
    assert version.status is VersionStatus.rejected, scan.error
    assert scan.inventory_key == storage.inventory_key(
        seller.id, version.asset_id, version.id, scan.id)
    assert scan.inventory_key.endswith("/inventory.jsonl.gz")
    assert scan.inventory_key in sweeper.known_keys()  # never swept as an orphan

    auth.login_as(seller)
    response = client.get(f"/assets/versions/{version.id}/inventory")
    assert response.status_code == 200
    assert response.mimetype == "application/gzip"
    assert "app-1.0-inventory.jsonl.gz" in response.headers["Content-Disposition"]
    lines = [json.loads(x) for x in gzip.decompress(response.data).decode().splitlines()]
    by_location = {line["location"]: line for line in lines}
    package = lines[0]
    assert (package["location"], package["kind"], package["opened"]) == (
        "pkg-d-eicar-nested.zip", "zip", "zip")
    assert package["sha256"] == version.package_sha256
    extras = by_location["pkg-d-eicar-nested.zip!/acme-docs-bundle-1.0/assets/extras.zip"]
    assert (extras["opened"], extras["size"]) == ("zip", 328)
    payload = by_location[extras["location"] + "!/inner/payload.zip"]
    assert (payload["kind"], payload["opened"]) == ("zip", "zip")
    eicar = [x for x in lines if x["location"].startswith(payload["location"] + "!/")]
    assert [(x["sha256"], x["not_opened"]) for x in eicar] == [(EICAR_SHA256, "leaf")]
    summary = json.loads(storage.get_bytes(scan.summary_key, 1024**2))
    assert summary["coverage"]["files"] == len(lines)
    assert summary["coverage"]["containers_opened"] == 3

    page = client.get(f"/assets/{version.asset_id}")
    assert f"/assets/versions/{version.id}/inventory".encode() in page.data

    for role in (Role.reviewer, Role.operator):
        _sign_in(auth, factories.user(role))
        response = client.get(f"/assets/versions/{version.id}/inventory")
        assert response.status_code == 200
        assert gzip.decompress(response.data).decode().splitlines()[0] == json.dumps(package)
    _sign_in(auth, factories.user())
    assert client.get(f"/assets/versions/{version.id}/inventory").status_code == 404


def _sign_in(auth, user) -> None:
    g.pop("_login_user", None)  # the test's app context outlives one request: forget the cache
    auth.login_as(user)


def test_a_scan_without_an_inventory_offers_none(app, factories):
    seller = factories.user()
    version = factories.version(factories.asset(seller))
    scans.complete_scan(factories.scan(version).id, _result(), "r", "s", "j")
    db.session.refresh(version)
    assert version.latest_scan.inventory_key is None
    with pytest.raises(NotFound, match="no inventory"):
        scans.inventory_download(seller, version.id)


def _result():
    from tests.portal.test_services_scans import _result as result

    return result()
