"""The seller's appeal of a rejected version: upload the filled-in report or use the web
form, follow the review, withdraw; evidence downloads for the seller and reviewers."""

from __future__ import annotations

import io
import re
import unicodedata
from urllib.parse import quote

from flask import Blueprint, Response, flash, redirect, request, send_file, url_for
from flask_login import current_user, login_required

from portal.blueprints.rendering import render
from portal.services import appeals
from portal.services.errors import ValidationError

bp = Blueprint("appeals", __name__, url_prefix="/appeals")
_ANSWER = re.compile(r"answer-([0-9A-Za-z]{1,64})\Z")


@bp.before_request
@login_required
def _signed_in():
    """Every page here belongs to a signed-in user."""


def _page(version_id: int, error: ValidationError | None = None, status: int = 200,
          source: str = ""):
    """The page; after a refusal, ``source`` names the form that was sent (report or form)."""
    view = appeals.seller_view(current_user, version_id)
    unclaimed = error is not None and error.field == "unclaimed"
    return render("appeals/page.html", "appeal_panel", view=view,
                  error=str(error) if error else None, unclaimed=unclaimed, source=source,
                  form=request.form), status


@bp.get("/versions/<int:version_id>")
def page(version_id: int):
    """The appeal page of a version: how to appeal, or where the appeal stands."""
    return _page(version_id)


@bp.post("/versions/<int:version_id>/report")
def upload(version_id: int):
    """Appeal with the filled-in security scan report and optional evidence files."""
    report = request.files.get("report")
    try:
        appeals.submit_appeal(
            current_user, version_id, report_stream=report.stream if report else None,
            report_name=report.filename if report else "", evidence_files=_evidence(),
            address=request.remote_addr, allow_unclaimed=_confirmed())
    except ValidationError as error:
        return _page(version_id, error, 422, "report")
    flash("Your appeal was submitted: a reviewer will decide it by the due date.", "submitted")
    return redirect(url_for("appeals.page", version_id=version_id))


@bp.post("/versions/<int:version_id>/claims")
def claims(version_id: int):
    """Appeal with the claims typed into the findings table."""
    try:
        appeals.submit_claims_form(current_user, version_id, _claims(request.form),
                                   evidence_files=_evidence(), address=request.remote_addr,
                                   allow_unclaimed=_confirmed())
    except ValidationError as error:
        return _page(version_id, error, 422, "form")
    flash("Your appeal was submitted: a reviewer will decide it by the due date.", "submitted")
    return redirect(url_for("appeals.page", version_id=version_id))


@bp.post("/<int:appeal_id>/withdraw")
def withdraw(appeal_id: int):
    """Take back an open appeal; the version is rejected again."""
    try:
        appeal = appeals.withdraw_appeal(current_user, appeal_id, address=request.remote_addr)
    except ValidationError as error:
        flash(str(error), "error")
        return redirect(url_for("assets.index"))
    flash("The appeal was withdrawn.", "success")
    return redirect(url_for("appeals.page", version_id=appeal.version_id))


@bp.get("/evidence/<int:evidence_id>")
def evidence(evidence_id: int):
    """Download one evidence file (its seller or a reviewer), never shown inline."""
    try:
        filename, stream = appeals.evidence_download(current_user, evidence_id)
    except ValidationError as error:  # a file stored before uploads were examined, refused now
        flash(str(error), "error")
        return redirect(url_for("reviews.queue" if current_user.is_reviewer else "assets.index"))
    response = Response(stream, mimetype="application/octet-stream")  # streamed, then closed
    response.headers.set("Content-Disposition", "attachment", **_download_names(filename))
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


@bp.get("/<int:appeal_id>/report")
def proof(appeal_id: int):
    """Download the appeal's report: written from the stored scan with the claims as stored."""
    filename, data = appeals.proof_download(current_user, appeal_id)
    return send_file(io.BytesIO(data), as_attachment=True, download_name=filename)


def _download_names(name: str) -> dict:
    """Content-Disposition file names, as ``send_file`` writes them (RFC 6266)."""
    try:
        name.encode("ascii")
    except UnicodeEncodeError:
        simple = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
        return {"filename": simple, "filename*": f"UTF-8''{quote(name, safe='!#$&+-.^_`|~')}"}
    return {"filename": name}


def _confirmed() -> bool:
    """The seller ticked "submit anyway" after being told the appeal cannot approve."""
    return request.form.get("confirm_unclaimed") == "yes"


def _evidence() -> list:
    return [(f.filename, f.stream) for f in request.files.getlist("evidence") if f.filename]


def _claims(form) -> list[appeals.ClaimInput]:
    """One claim per finding row of the web form (F, G from the list or typed, H)."""
    rows = []
    for key in form:
        match = _ANSWER.match(key)
        if match:
            fid = match.group(1)
            reason = form.get(f"reason_text-{fid}", "").strip() or form.get(f"reason-{fid}", "")
            rows.append(appeals.ClaimInput(fid, form.get(key, ""), reason,
                                           form.get(f"evidence-{fid}", "")))
    return rows
