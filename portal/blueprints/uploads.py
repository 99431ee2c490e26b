"""Direct uploads: JSON endpoints the browser's uploader drives, and the operators' page
that registers a package already in the bucket.

Every POST needs the CSRF token in the ``X-CSRFToken`` header. An upload is only
ever visible to the seller who started it: anyone else gets a 404.
"""

from __future__ import annotations

from flask import Blueprint, abort, flash, jsonify, redirect, render_template, request, url_for
from flask_login import current_user
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from portal.blueprints.errors import http_error
from portal.blueprints.rendering import attach_error
from portal.extensions import login_manager
from portal.forms import RegisterObjectForm
from portal.services import uploads
from portal.services.errors import Forbidden, NotFound, ValidationError

bp = Blueprint("uploads", __name__, url_prefix="/uploads")


@bp.before_request
def _signed_in():
    """JSON callers get a 401 rather than the login page."""
    if not current_user.is_authenticated:
        if request.endpoint == "uploads.register":
            return login_manager.unauthorized()
        return _error(401, "Your session has ended: log in again, then resume the upload.")
    return None


def _error(code: int, message: str, field: str | None = None):
    return jsonify(error=message, field=field), code


@bp.errorhandler(ValidationError)
def _refused(error: ValidationError):
    return _error(422, str(error), error.field)


@bp.errorhandler(uploads.StorageBusy)
def _storage_busy(error: uploads.StorageBusy):
    return _error(503, str(error))


@bp.errorhandler(NotFound)
@bp.errorhandler(Forbidden)
def _not_found(error):
    return _error(404, "No such upload.")


@bp.errorhandler(CSRFError)
def _no_token(error):
    return _error(400, "The security token is missing or stale: reload the page.")


@bp.errorhandler(HTTPException)
def _http(error: HTTPException):
    if request.endpoint == "uploads.register":
        return http_error(error)  # a page, like everywhere else
    return _error(error.code or 500, error.description or "The request failed.")


def _session_json(body: dict, status: int = 200):
    session_id = body["id"]
    body["urls"] = {
        "self": url_for("uploads.show", session_id=session_id),
        "part": url_for("uploads.sign", session_id=session_id, number=0).removesuffix("/0"),
        "complete": url_for("uploads.complete", session_id=session_id),
        "cancel": url_for("uploads.cancel", session_id=session_id),
    }
    return jsonify(body), status


@bp.post("")
def start():
    """Open a direct upload for Add Asset (asset fields) or Modify (``version_id``)."""
    data = request.get_json(silent=True) or {}
    session = uploads.start_upload(
        current_user, context=data, filename=data.get("filename"), size=data.get("size"),
        address=request.remote_addr)
    return _session_json(uploads.describe(session), 201)


@bp.get("/<int:session_id>")
def show(session_id: int):
    """The upload and the parts storage already holds (what a resumed upload skips)."""
    return _session_json(uploads.resume_info(current_user, session_id))


@bp.post("/<int:session_id>/parts/<int:number>")
def sign(session_id: int, number: int):
    """A presigned URL for one part."""
    return jsonify(uploads.sign_part(current_user, session_id, number))


@bp.post("/<int:session_id>/complete")
def complete(session_id: int):
    """Join the parts, check the package, record it; answers where to go next."""
    version = uploads.complete_upload(current_user, session_id, address=request.remote_addr)
    scanning = version.status.value == "scanning"
    flash("Uploaded. Submitted for review: the scan is queued." if scanning
          else "Uploaded. Saved in your draft box.", "submitted" if scanning else "success")
    return jsonify(asset_id=version.asset_id, version_id=version.id,
                   status=version.status.value,
                   location=url_for("assets.detail", asset_id=version.asset_id))


@bp.post("/<int:session_id>/cancel")
def cancel(session_id: int):
    """Abort the upload; storage drops the parts."""
    uploads.cancel_upload(current_user, session_id, address=request.remote_addr)
    return jsonify(cancelled=True)


@bp.route("/register", methods=["GET", "POST"])
def register():
    """Operators: record a package uploaded to the bucket with other tools as a seller's asset."""
    if not current_user.is_operator:
        abort(403)
    form = RegisterObjectForm()
    if form.validate_on_submit():
        try:
            version = uploads.register_existing_object(
                current_user, seller_id=form.seller_id.data, key=form.key.data,
                name=form.name.data, kind=form.kind.data, version_label=form.version.data,
                description=form.description.data or "", filename=form.filename.data,
                submit=bool(form.submit_review.data), address=request.remote_addr)
        except ValidationError as error:
            attach_error(form, error)
        else:
            flash("The stored package was registered.", "success")
            return redirect(url_for("assets.detail", asset_id=version.asset_id))
    return render_template("uploads/register.html", form=form), 422 if form.errors else 200
