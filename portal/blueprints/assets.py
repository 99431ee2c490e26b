"""My Assets, Add Asset, the asset page with its versions, and the live scan badge."""

from __future__ import annotations

import io
from urllib.parse import quote

from flask import (
    Blueprint,
    current_app,
    flash,
    make_response,
    redirect,
    render_template,
    request,
    send_file,
    url_for,
)
from flask_login import current_user, login_required

from portal.blueprints.rendering import attach_error, render, wants_fragment
from portal.forms import AssetFilterForm, AssetForm, ConfirmForm, ModifyForm, VersionForm
from portal.services import access, assets, false_positives, scans, verdicts
from portal.services import requests as seller_requests
from portal.services.errors import Forbidden, NotFound, ServiceError, ValidationError

bp = Blueprint("assets", __name__, url_prefix="/assets")
PER_PAGE = 20


@bp.before_request
@login_required
def _signed_in():
    """Every page here belongs to a signed-in user."""


def _refused(error: ServiceError, asset_id: int):
    """A refused action: a 404 or 403 stays one, anything else is explained on the page."""
    if isinstance(error, (NotFound, Forbidden)):
        raise error
    flash(str(error), "error")
    return redirect(url_for("assets.detail", asset_id=asset_id))


def _download(filename: str, data) -> object:
    body = io.BytesIO(data) if isinstance(data, (bytes, bytearray)) else data
    return send_file(body, as_attachment=True, download_name=filename)


@bp.get("/")
def index():
    """My Assets: search, filter, sort and page through the seller's assets."""
    filters = AssetFilterForm(request.args)
    query = filters.query()
    page = assets.list_assets(current_user, **query, per_page=PER_PAGE)
    return render("assets/index.html", "assets_table", page=page, filters=filters, query=query)


@bp.get("/requests")
def requests():
    """My Assets' Requests tab: the seller's scan requests and appeals, newest first."""
    status = request.args.get("status", "")
    page = seller_requests.list_requests(current_user, status=status,
                                         page=request.args.get("page", 1, type=int),
                                         per_page=PER_PAGE)
    query = {"status": status if status in seller_requests.STATUSES else ""}
    return render("assets/requests.html", "requests_table", page=page, query=query,
                  statuses=seller_requests.STATUSES)


@bp.route("/new", methods=["GET", "POST"])
def new():
    """Add Asset: the asset, its first version and package; saved as draft or submitted."""
    form = AssetForm()
    if form.validate_on_submit():
        package = form.package.data
        try:
            version = assets.create_asset(
                current_user,
                name=form.name.data,
                kind=form.kind.data,
                description=form.description.data or "",
                version_label=form.version.data,
                stream=package.stream,
                filename=package.filename,
                submit=bool(form.submit_review.data),
                address=request.remote_addr,
            )
        except ValidationError as error:
            attach_error(form, error)
        else:
            submitted = bool(form.submit_review.data)
            flash("Submitted for review: the scan is queued." if submitted
                  else "Saved in your draft box.", "submitted" if submitted else "success")
            return redirect(url_for("assets.detail", asset_id=version.asset_id))
    return render_template("assets/new.html", form=form), 422 if form.errors else 200


@bp.get("/<int:asset_id>")
def detail(asset_id: int):
    """One asset and its Version information table."""
    asset = access.get_asset(current_user, asset_id)
    dropped = false_positives.dropped_acceptances(current_user, asset.id)
    return render("assets/detail.html", "versions_table", asset=asset, dropped=dropped,
                  rejections=verdicts.rejections(asset))


@bp.route("/<int:asset_id>/delete", methods=["GET", "POST"])
def delete(asset_id: int):
    """Confirm, then delete an asset with all its versions, reports and packages."""
    form = ConfirmForm()
    if form.validate_on_submit():
        try:
            assets.delete_asset(current_user, asset_id, address=request.remote_addr)
        except ServiceError as error:
            return _refused(error, asset_id)
        flash("The asset was deleted.", "success")
        return redirect(url_for("assets.index"))
    asset = access.get_asset(current_user, asset_id)
    return render_template("assets/delete.html", asset=asset, form=form)


@bp.route("/<int:asset_id>/versions/new", methods=["GET", "POST"])
def new_version(asset_id: int):
    """Add a version to an asset: label and package; saved as draft or submitted."""
    form = VersionForm()
    asset = access.changeable_asset(current_user, asset_id)
    if form.validate_on_submit():
        package = form.package.data
        try:
            version = assets.add_version(
                current_user, asset_id, version_label=form.version.data, stream=package.stream,
                filename=package.filename, submit=bool(form.submit_review.data),
                address=request.remote_addr)
        except ValidationError as error:
            attach_error(form, error)
        else:
            submitted = bool(form.submit_review.data)
            flash(f"Version {version.label} " + ("submitted for review: the scan is queued."
                  if submitted else "saved as a draft."), "submitted" if submitted else "success")
            return redirect(url_for("assets.detail", asset_id=asset_id))
    return render_template("assets/new_version.html", form=form, asset=asset), (
        422 if form.errors else 200)


@bp.route("/versions/<int:version_id>/modify", methods=["GET", "POST"])
def modify(version_id: int):
    """Upload a new package for a version and submit it for scanning again."""
    form = ModifyForm()
    if form.validate_on_submit():
        package = form.package.data
        try:
            version = assets.modify_version(
                current_user,
                version_id,
                stream=package.stream,
                filename=package.filename,
                address=request.remote_addr,
            )
        except ValidationError as error:
            attach_error(form, error)
        else:
            flash("New package uploaded: the scan is queued.", "submitted")
            return redirect(url_for("assets.detail", asset_id=version.asset_id))
    version = access.get_version(current_user, version_id)
    return render_template("assets/modify.html", form=form, version=version), (
        422 if form.errors else 200
    )


@bp.post("/versions/<int:version_id>/submit")
def submit(version_id: int):
    """Send a draft version for review (scanning)."""
    version = access.get_version(current_user, version_id)
    try:
        assets.submit_version(current_user, version_id, address=request.remote_addr)
    except ServiceError as error:
        return _refused(error, version.asset_id)
    flash("Submitted for review: the scan is queued.", "submitted")
    return redirect(url_for("assets.detail", asset_id=version.asset_id))


@bp.get("/versions/<int:version_id>/status")
def status(version_id: int):
    """The version's page: its live status badge and what changed since the scan before; a
    polling badge that finishes tells the page to refresh once."""
    version = access.get_version(current_user, version_id)
    badge = scans.badge(version)
    # The full page compares with the scan before; a poll only needs the badge.
    changes = None if wants_fragment() else verdicts.comparison(version)
    response = make_response(
        render("scans/status.html", "scan_status", version=version, badge=badge, changes=changes)
    )
    if wants_fragment() and not badge.every:
        response.headers["HX-Trigger"] = "scan-finished"
    return response


@bp.get("/versions/<int:version_id>/report")
def report(version_id: int):
    """The security scan report (xlsx) of the version's latest scan."""
    return _download(*scans.report_download(current_user, version_id))


@bp.get("/versions/<int:version_id>/inventory")
def inventory(version_id: int):
    """What the version's latest scan examined: one JSON line per file, gzip-compressed."""
    name, stream = scans.inventory_download(current_user, version_id)
    # the object's bytes are passed on as they come: nothing needs the request context
    response = current_app.response_class(_chunks(stream), mimetype="application/gzip")
    response.headers.set("Content-Disposition", "attachment", **_file_name_options(name))
    return response


def _file_name_options(name: str) -> dict:
    """Content-Disposition options for ``name``, quoted as ``send_file`` quotes them."""
    try:
        name.encode("ascii")
    except UnicodeEncodeError:
        return {
            "filename": name.encode("ascii", "ignore").decode(),
            "filename*": "UTF-8''" + quote(name, safe="!#$&+-.^_`|~"),
        }
    return {"filename": name}


def _chunks(stream):
    with stream:
        yield from stream


@bp.get("/versions/<int:version_id>/sbom")
def sbom(version_id: int):
    """The CycloneDX SBOM (JSON) of the version's latest scan."""
    return _download(*scans.sbom_download(current_user, version_id))
