"""Every route, every role, every owner.

``ROUTES`` has one entry per URL rule and method of the app. The tests walk Flask's URL map
and, for each entry, check that

- an anonymous visitor is sent to the login page (an HTMX request gets ``HX-Redirect`` to it;
  the JSON endpoints of direct uploads answer 401, which the uploader and ``app.js`` handle);
- a signed-in user whose role may not use it gets a 403;
- a seller naming another seller's object gets a 404, and the object's owner does not;
- a state-changing request without a CSRF token, or with another user's, gets a 400;

and that a refused request leaves no audit event behind. A rule with no entry fails
``test_every_rule_has_an_entry``: add one below when you add a route.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta

import pytest
from flask import g

from portal import storage
from portal.extensions import db
from portal.models import (
    AcceptedFalsePositive, Appeal, AppealClaim, AppealEvidence, AuditEvent, CalendarDay, Product,
    Role,
    ScanState, UploadSession, VersionStatus,
)
from portal.timeutil import utcnow
from scanner.model import Finding, PackageInfo, ScanInfo, ScanResult

PUBLIC, SIGNED_IN, SELLER, REVIEWER, OPERATOR = (
    "public", "signed in", "owner", "reviewer", "operator")
STATE_CHANGING = {"POST", "PUT", "PATCH", "DELETE"}


@dataclass(frozen=True)
class Route:
    """How to use one (endpoint, method).

    ``who``: ``public``; ``signed in`` (any role); ``owner`` (the seller who owns the object the
    URL names; reviewers and operators may use some of these too); ``reviewer`` (reviewers and
    operators); ``operator``.
    ``args``: the URL arguments from a seller's rows (``World``), the user's own or another's.
    ``changes``: the request changes state (it must carry the user's CSRF token).
    ``anonymous``: ``login`` (redirect; ``HX-Redirect`` for HTMX) or ``401`` (JSON endpoints).
    """

    who: str
    args: Callable[[World], dict] = lambda world: {}
    changes: bool = False
    anonymous: str = "login"


@dataclass
class World:
    """One seller's rows: an asset with a rejected version under appeal, a draft, an upload."""

    seller: object
    asset: object
    version: object
    draft: object
    scan: object
    appeal: object
    claim: object
    evidence: object
    upload: object


def _asset(w):
    return {"asset_id": w.asset.id}


def _version(w):
    return {"version_id": w.version.id}


def _draft(w):
    return {"version_id": w.draft.id}


def _appeal(w):
    return {"appeal_id": w.appeal.id}


def _upload(w):
    return {"session_id": w.upload.id}


ROUTES: dict[tuple[str, str], Route] = {
    # public: the front door, health, static files, signing in and out of an account
    ("main.index", "GET"): Route(PUBLIC),
    ("main.healthz", "GET"): Route(PUBLIC),
    ("static", "GET"): Route(PUBLIC, lambda w: {"filename": "assay.css"}),
    ("auth.login", "GET"): Route(PUBLIC),
    ("auth.login", "POST"): Route(PUBLIC, changes=True),
    ("auth.register", "GET"): Route(PUBLIC),
    ("auth.register", "POST"): Route(PUBLIC, changes=True),
    ("auth.forgot_password", "GET"): Route(PUBLIC),
    ("auth.forgot_password", "POST"): Route(PUBLIC, changes=True),
    ("auth.reset_password", "GET"): Route(PUBLIC, lambda w: {"token": "not-a-token"}),
    ("auth.reset_password", "POST"): Route(PUBLIC, lambda w: {"token": "not-a-token"},
                                           changes=True),
    # any signed-in user
    ("auth.logout", "POST"): Route(SIGNED_IN, changes=True),
    ("auth.account", "GET"): Route(SIGNED_IN),
    ("auth.change_password", "POST"): Route(SIGNED_IN, changes=True),
    ("assets.index", "GET"): Route(SIGNED_IN),
    ("assets.requests", "GET"): Route(SIGNED_IN),
    ("main.notifications", "GET"): Route(SIGNED_IN),
    ("main.notifications_read", "POST"): Route(SIGNED_IN, changes=True),
    ("assets.new", "GET"): Route(SIGNED_IN),
    ("assets.new", "POST"): Route(SIGNED_IN, changes=True),
    ("products.index", "GET"): Route(SIGNED_IN),
    ("products.new", "GET"): Route(SIGNED_IN),
    ("products.new", "POST"): Route(SIGNED_IN, changes=True),
    ("uploads.start", "POST"): Route(SIGNED_IN, changes=True, anonymous="401"),
    # a seller's own objects
    ("assets.detail", "GET"): Route(SELLER, _asset),
    ("assets.delete", "GET"): Route(SELLER, _asset),
    ("assets.delete", "POST"): Route(SELLER, _asset, changes=True),
    ("products.detail", "GET"): Route(SELLER, lambda w: _product(w)),
    ("products.add_version", "POST"): Route(SELLER, lambda w: _product(w), changes=True),
    ("products.remove_version", "POST"): Route(
        SELLER, lambda w: {**_product(w), "version_id": w.version.id}, changes=True),
    ("products.publish", "POST"): Route(SELLER, lambda w: _product(w), changes=True),
    ("products.unpublish", "POST"): Route(SELLER, lambda w: _product(w), changes=True),
    ("assets.new_version", "GET"): Route(SELLER, _asset),
    ("assets.new_version", "POST"): Route(SELLER, _asset, changes=True),
    ("assets.modify", "GET"): Route(SELLER, _version),
    ("assets.modify", "POST"): Route(SELLER, _version, changes=True),
    ("assets.report", "GET"): Route(SELLER, _version),
    ("assets.sbom", "GET"): Route(SELLER, _version),
    ("assets.inventory", "GET"): Route(SELLER, _version),
    ("assets.status", "GET"): Route(SELLER, _version),
    ("assets.submit", "POST"): Route(SELLER, _draft, changes=True),
    ("appeals.page", "GET"): Route(SELLER, _version),
    ("appeals.upload", "POST"): Route(SELLER, _version, changes=True),
    ("appeals.claims", "POST"): Route(SELLER, _version, changes=True),
    ("appeals.withdraw", "POST"): Route(SELLER, _appeal, changes=True),
    ("appeals.proof", "GET"): Route(SELLER, _appeal),
    ("appeals.evidence", "GET"): Route(SELLER, lambda w: {"evidence_id": w.evidence.id}),
    ("uploads.show", "GET"): Route(SELLER, _upload, anonymous="401"),
    ("uploads.sign", "POST"): Route(SELLER, lambda w: {"session_id": w.upload.id, "number": 1},
                                    changes=True, anonymous="401"),
    ("uploads.complete", "POST"): Route(SELLER, _upload, changes=True, anonymous="401"),
    ("uploads.cancel", "POST"): Route(SELLER, _upload, changes=True, anonymous="401"),
    # reviewers (and operators)
    ("reviews.queue", "GET"): Route(REVIEWER),
    ("reviews.appeal", "GET"): Route(REVIEWER, _appeal),
    ("reviews.claim", "POST"): Route(REVIEWER, _appeal, changes=True),
    ("reviews.decide_claim", "POST"): Route(
        REVIEWER, lambda w: {"appeal_id": w.appeal.id, "claim_id": w.claim.id}, changes=True),
    ("reviews.decide", "POST"): Route(REVIEWER, _appeal, changes=True),
    ("reviews.notifications", "GET"): Route(REVIEWER),
    ("reviews.notifications_read", "POST"): Route(REVIEWER, changes=True),
    # operators
    ("admin.user_list", "GET"): Route(OPERATOR),
    ("admin.user_create", "POST"): Route(OPERATOR, changes=True),
    ("admin.user_role", "POST"): Route(OPERATOR, lambda w: {"user_id": w.seller.id},
                                       changes=True),
    ("admin.user_active", "POST"): Route(OPERATOR, lambda w: {"user_id": w.seller.id},
                                         changes=True),
    ("admin.user_reset", "POST"): Route(OPERATOR, lambda w: {"user_id": w.seller.id},
                                        changes=True),
    ("admin.scan_list", "GET"): Route(OPERATOR),
    ("admin.scan_retry", "POST"): Route(OPERATOR, lambda w: {"scan_id": w.scan.id},
                                        changes=True),
    ("admin.audit", "GET"): Route(OPERATOR),
    ("admin.data", "GET"): Route(OPERATOR),
    ("admin.version_rescan", "POST"): Route(OPERATOR, _version, changes=True),
    ("admin.rescan_all", "POST"): Route(OPERATOR, changes=True),
    ("admin.scan_reverify", "POST"): Route(OPERATOR, lambda w: {"scan_id": w.scan.id},
                                           changes=True),
    ("admin.acceptances", "GET"): Route(OPERATOR, _asset),
    ("admin.acceptance_revoke", "POST"): Route(
        OPERATOR, lambda w: {"acceptance_id": _acceptance(w)}, changes=True),
    ("admin.audit_export", "GET"): Route(OPERATOR),
    ("admin_calendar.index", "GET"): Route(OPERATOR),
    ("admin_calendar.set_day", "POST"): Route(OPERATOR, changes=True),
    ("admin_calendar.delete_day", "POST"): Route(OPERATOR, lambda w: {"day_id": _calendar_day()},
                                                 changes=True),
    ("admin_policy.index", "GET"): Route(OPERATOR),
    ("admin_policy.save", "POST"): Route(OPERATOR, changes=True),
    ("uploads.register", "GET"): Route(OPERATOR),
    ("uploads.register", "POST"): Route(OPERATOR, changes=True),
}

#: Known defects: (endpoint, method, check) -> why. Each is an xfail(strict=True).
DEFECTS: dict[tuple[str, str, str], str] = {}


def _methods(rule) -> list[str]:
    return sorted(rule.methods - {"HEAD", "OPTIONS"})


def test_every_rule_has_an_entry(app):
    """A new route needs an entry in ROUTES; an entry for a removed route goes too."""
    present = {(rule.endpoint, m) for rule in app.url_map.iter_rules() for m in _methods(rule)}
    missing = sorted(present - ROUTES.keys())
    assert not missing, (
        "add an entry to ROUTES in tests/portal/test_routes_walk.py for each of "
        + ", ".join(f"{endpoint} {method}" for endpoint, method in missing)
        + " (who may use it, how to build its URL from a seller's rows, whether it changes state)")
    stale = sorted(ROUTES.keys() - present)
    assert not stale, f"ROUTES lists routes the app no longer has: {stale}"


def test_state_changing_methods_are_marked():
    for (endpoint, method), route in ROUTES.items():
        if method in STATE_CHANGING:
            assert route.changes, f"{endpoint} {method} changes state: mark it changes=True"


# --- rows ---------------------------------------------------------------------------------

def _acceptance(w) -> int:
    row = AcceptedFalsePositive(asset_id=w.asset.id, fingerprint=secrets.token_hex(8),
                                accepted_by_name="Rita Reviewer", note="")
    db.session.add(row)
    db.session.commit()
    return row.id


FINDING = Finding(id="f" * 16, type="unscanned", location="app.zip!/payload.bin", blocking=True,
                  engine="unpack", summary="encrypted")
SUMMARY = ScanResult("rejected", PackageInfo("app.zip", 22, "ab" * 32, "zip"), (), (FINDING,),
                     ScanInfo("assay-test", 7.0, {"clamav": "test"}, 0, "t0", "t1"))


def _product(w) -> dict:
    row = Product(owner_id=w.seller.id, name=f"product-{secrets.token_hex(4)}")
    db.session.add(row)
    db.session.commit()
    return {"product_id": row.id}


def _calendar_day() -> int:
    row = CalendarDay(day=date(2031, 5, 6), working=False, note="test")
    db.session.add(row)
    db.session.commit()
    return row.id


def _world(factories, seller=None) -> World:
    seller = seller or factories.user(Role.seller)
    asset = factories.asset(seller)
    version = factories.version(asset, status=VersionStatus.reviewing,
                                package=b"PK\x05\x06" + b"\0" * 18)
    prefix = storage.scan_prefix(seller.id, asset.id, version.id, 0)
    scan = factories.scan(version, state=ScanState.done, verdict="rejected",
                          report_key=prefix + "report.xlsx", sbom_key=prefix + "sbom.json",
                          summary_key=prefix + "summary.json",
                          inventory_key=prefix + "inventory.jsonl.gz", finished_at=utcnow())
    storage.put_bytes(scan.report_key, b"report")
    storage.put_bytes(scan.sbom_key, b"{}")
    storage.put_bytes(scan.summary_key, json.dumps(SUMMARY.to_dict()).encode())
    storage.put_bytes(scan.inventory_key, gzip.compress(b"{}\n"))
    draft = factories.version(asset, package=b"PK\x05\x06" + b"\0" * 18)
    appeal_prefix = storage.appeal_prefix(seller.id, asset.id, version.id, storage.new_upload_id())
    appeal = Appeal(version_id=version.id, scan_id=scan.id, seller_id=seller.id,
                    proof_key=appeal_prefix + "proof.xlsx", proof_name="proof.xlsx",
                    due_at=utcnow() + timedelta(days=3))
    claim = AppealClaim(appeal=appeal, finding_fingerprint=FINDING.id, reason="not reachable")
    evidence = AppealEvidence(appeal=appeal, key=appeal_prefix + "evidence.txt",
                              filename="evidence.txt", size=4,
                              sha256=hashlib.sha256(b"note").hexdigest())
    storage.put_bytes(appeal.proof_key, b"proof")
    storage.put_bytes(evidence.key, b"note")
    key = storage.package_upload_key(seller.id, storage.new_upload_id())
    upload = UploadSession(owner_id=seller.id, version_id=draft.id, key=key,
                           s3_upload_id=storage.create_multipart(key), filename="big.zip",
                           size=10 * 1024**2, part_size=8 * 1024**2)
    db.session.add_all([appeal, claim, evidence, upload])
    db.session.commit()
    return World(seller, asset, version, draft, scan, appeal, claim, evidence, upload)


@pytest.fixture
def world(factories) -> World:
    """Rows of one seller."""
    return _world(factories)


@pytest.fixture
def worlds(factories) -> tuple[World, World]:
    """Rows of the seller under test and of another seller."""
    return _world(factories), _world(factories)


# --- requests -----------------------------------------------------------------------------

def _url(key: tuple[str, str], world: World) -> str:
    from flask import url_for

    return url_for(key[0], **ROUTES[key].args(world))


def _sign_in(client, user) -> None:
    """``user`` (None: nobody) becomes the client's session user."""
    g.pop("_login_user", None)  # the test's request context would keep the previous user
    with client.session_transaction() as session:
        session.clear()
        if user is not None:
            session["_user_id"] = user.get_id()
            session["_fresh"] = True


def _send(client, method: str, url: str, **kwargs):
    g.pop("_login_user", None)
    return client.open(url, method=method, **kwargs)


def _events() -> int:
    db.session.expire_all()
    return db.session.query(AuditEvent).count()


def _cases(keys, check: str) -> list:
    cases = []
    for key in keys:
        endpoint, method, *rest = key if isinstance(key[0], str) else (*key[0], *key[1:])
        reason = DEFECTS.get((endpoint, method, check))
        marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
        cases.append(pytest.param(key, marks=marks,
                                  id="-".join([endpoint, method, *map(str, rest)])))
    return cases


# --- anonymous ----------------------------------------------------------------------------

ANONYMOUS = [key for key, route in ROUTES.items() if route.who != PUBLIC]


@pytest.mark.parametrize("key", _cases(ANONYMOUS, "anonymous"))
def test_anonymous_visitors_are_sent_to_login(client, world, key):
    route, url = ROUTES[key], _url(key, world)
    before = _events()
    response = _send(client, key[1], url)
    if route.anonymous == "401":
        assert response.status_code == 401, response.status_code
        assert "log in again" in response.get_json()["error"]
    else:
        assert response.status_code == 302, response.status_code
        assert response.headers["Location"].startswith("/auth/login")
    assert _events() == before


@pytest.mark.parametrize("key", _cases(ANONYMOUS, "htmx"))
def test_anonymous_htmx_requests_get_hx_redirect_to_login(client, world, key):
    route, url = ROUTES[key], _url(key, world)
    response = _send(client, key[1], url, headers={"HX-Request": "true"})
    assert response.status_code == 401, response.status_code
    if route.anonymous == "401":  # not htmx: the uploader itself goes to the login page
        assert "log in again" in response.get_json()["error"]
    else:
        assert response.headers["HX-Redirect"].startswith("/auth/login")
        assert "<html" not in response.get_data(as_text=True)


# --- roles --------------------------------------------------------------------------------

WRONG_ROLES = {REVIEWER: [Role.seller], OPERATOR: [Role.seller, Role.reviewer]}
ROLE_CASES = [(key, role) for key, route in ROUTES.items()
              for role in WRONG_ROLES.get(route.who, [])]


@pytest.mark.parametrize("case", _cases(ROLE_CASES, "role"))
def test_a_role_that_may_not_use_a_route_gets_403(client, factories, world, case):
    key, role = case
    user = factories.user(role)
    url = _url(key, world)
    before = _events()
    _sign_in(client, user)
    response = _send(client, key[1], url)
    assert response.status_code == 403, response.status_code
    assert _events() == before


# --- owners -------------------------------------------------------------------------------

OWNED = [key for key, route in ROUTES.items() if route.who == SELLER]


@pytest.mark.parametrize("key", _cases(OWNED, "owner"))
def test_another_sellers_object_is_not_found(client, worlds, key):
    mine, theirs = worlds
    before = _events()
    _sign_in(client, mine.seller)
    response = _send(client, key[1], _url(key, theirs))
    assert response.status_code == 404, response.status_code
    assert _events() == before
    if key[1] == "GET":  # the same address of the seller's own object is there
        response = _send(client, "GET", _url(key, mine))
        assert response.status_code not in (403, 404), response.status_code
        response.close()


# --- CSRF ---------------------------------------------------------------------------------

CHANGING = [key for key, route in ROUTES.items() if route.changes]


class TestCsrf:
    @pytest.fixture
    def app_config(self, app_config):
        return {**app_config, "WTF_CSRF_ENABLED": True}

    @staticmethod
    def _token(client, user) -> str:
        _sign_in(client, user)
        html = _send(client, "GET", "/auth/login" if user is None else "/auth/account")
        return re.search(r'<meta name="csrf-token" content="([^"]+)"',
                         html.get_data(as_text=True)).group(1)

    def _user(self, factories, world, route):
        return {PUBLIC: None, SIGNED_IN: world.seller, SELLER: world.seller,
                REVIEWER: factories.user(Role.reviewer),
                OPERATOR: factories.user(Role.operator)}[route.who]

    @pytest.mark.parametrize("key", _cases(CHANGING, "csrf"))
    def test_a_state_change_needs_the_users_own_token(self, app, client, factories, worlds,
                                                       key):
        mine, theirs = worlds
        route, url = ROUTES[key], _url(key, mine)
        stranger = app.test_client()
        their_token = self._token(stranger, theirs.seller)
        self._token(client, self._user(factories, mine, route))  # the user's own session
        before = _events()
        for headers, data in (({}, {}), ({"X-CSRFToken": their_token},
                                         {"csrf_token": their_token})):
            response = _send(client, key[1], url, headers=headers, data=data)
            assert response.status_code == 400, response.status_code
            assert "security token" in response.get_data(as_text=True)
        assert _events() == before
