"""The worker binds each report with the report key (not the session key) and records its key
id; after ASSAY_SECRET_KEY changes, a report downloaded before is refused with a clear reason."""

from __future__ import annotations

import io

import openpyxl
import pytest

from portal import create_app
from portal.extensions import db
from portal.models import User, VersionStatus
from portal.services import appeals, scans
from portal.services.errors import ValidationError
from scanner.report import key_id
from tests.portal.test_appeals import REASON, filled
from tests.worker.test_jobs import _add, _work


def binding_head(data: bytes) -> dict:
    sheet = openpyxl.load_workbook(io.BytesIO(data))["_binding"]
    return {row[0]: row[1] for row in sheet.iter_rows(max_row=5, max_col=2, values_only=True)}


def appeal_with(app, seller_id: int, version_id: int, data: bytes):
    with app.app_context():
        seller = db.session.get(User, seller_id)
        return appeals.submit_appeal(seller, version_id, report_stream=io.BytesIO(data)).id


def test_a_report_from_before_the_secret_changed_is_refused_as_such(app, app_config, factories,
                                                                    redis_conn):
    seller = factories.user()
    version = _add(seller, "pkg-d-eicar-nested.zip")
    _work(redis_conn)
    db.session.refresh(version)
    assert version.status is VersionStatus.rejected
    report = scans.report_download(seller, version.id)[1]
    assert binding_head(report)["key_id"] == key_id(app.config["REPORT_KEY"])
    assert binding_head(report)["key_id"] != key_id(bytes.fromhex(app.config["SECRET_KEY"]))
    data = filled(report, F2="Yes", G2=REASON, H2="a test file, not a virus")

    rotated = create_app({**app_config, "SECRET_KEY": "the secret after a rotation"})
    with pytest.raises(ValidationError) as caught:
        appeal_with(rotated, seller.id, version.id, data)
    assert str(caught.value) == (
        "This report was issued before the portal's keys changed (or by another portal); "
        "download a fresh report from the asset page and fill it in again.")

    assert appeal_with(create_app(app_config), seller.id, version.id, data)  # same secret: filed
