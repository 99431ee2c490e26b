"""Operator pages: users and roles, scans that failed, were retried or got stuck, and the
audit trail."""

from __future__ import annotations

from flask import (
    Blueprint, Response, abort, flash, redirect, render_template, request, stream_with_context,
    url_for,
)
from flask_login import current_user, login_required

from portal.blueprints.rendering import attach_error, render
from portal.forms import ROLE_CHOICES, RoleForm, UserCreateForm
from portal.services import access, advisories, audit_trail, false_positives, scans, signatures, users
from portal.services.errors import NotFound, ServiceError, ValidationError

bp = Blueprint("admin", __name__, url_prefix="/admin")


@bp.before_request
@login_required
def _operators_only():
    """Every page here is for operators."""
    if not current_user.is_operator:
        abort(403)


def _user_list(create_form: UserCreateForm, status: int = 200, issued=None):
    return render_template(
        "admin/users.html",
        users=users.list_users(),
        create_form=create_form,
        role_choices=ROLE_CHOICES,
        pending_resets=users.pending_resets(),
        issued=issued,
    ), status


@bp.get("/users")
def user_list():
    """Every account, with forms to create staff, change roles and deactivate."""
    return _user_list(UserCreateForm())


@bp.post("/users")
def user_create():
    """Create a reviewer or operator account."""
    form = UserCreateForm()
    if form.validate_on_submit():
        try:
            user = users.create_user(
                form.email.data,
                form.name.data,
                form.password.data,
                form.role.data,
                actor=current_user,
                address=request.remote_addr,
            )
        except ValidationError as error:
            attach_error(form, error)
        else:
            flash(f"Created {user.email} as {user.role.value}.", "success")
            return redirect(url_for("admin.user_list"))
    return _user_list(form, 422)


@bp.post("/users/<int:user_id>/role")
def user_role(user_id: int):
    """Change an account's role."""
    form = RoleForm()
    if form.validate_on_submit():
        _apply(users.set_role, user_id, form.role.data, done="Role changed.")
    else:
        flash("Choose a valid role.", "error")
    return redirect(url_for("admin.user_list"))


@bp.post("/users/<int:user_id>/active")
def user_active(user_id: int):
    """Deactivate an account (it can no longer sign in) or reactivate it."""
    active = request.form.get("active") == "1"
    _apply(
        users.set_active,
        user_id,
        active,
        done="Account reactivated." if active else "Account deactivated.",
    )
    return redirect(url_for("admin.user_list"))


@bp.post("/users/<int:user_id>/reset")
def user_reset(user_id: int):
    """Give an account a one-time link to set a new password, shown here once."""
    try:
        issued = users.issue_reset(
            current_user, user_id,
            lambda token: url_for("auth.reset_password", token=token, _external=True),
            address=request.remote_addr,
        )
    except NotFound:
        raise
    except ServiceError as error:
        flash(str(error), "error")
        return redirect(url_for("admin.user_list"))
    # Rendered, not redirected: the link must not travel through the session cookie.
    return _user_list(UserCreateForm(formdata=None), issued=issued)


def _apply(change, user_id: int, value, *, done: str) -> None:
    try:
        change(current_user, user_id, value, address=request.remote_addr)
    except NotFound:
        raise
    except ServiceError as error:
        flash(str(error), "error")
    else:
        flash(done, "success")


@bp.get("/scans")
def scan_list():
    """Scans that failed, were retried or are stuck past their deadline."""
    rows = scans.list_scans_for_operator()
    return render("admin/scans.html", "scans_table", scans=rows)


@bp.get("/data")
def data():
    """What the verdicts rest on: clamd's signatures, the vulnerability data, the engines
    the newest scan ran with."""
    return render_template("admin/data.html", view=signatures.data_view(),
                           osv=advisories.osv_view())


@bp.post("/scans/<int:scan_id>/reverify")
def scan_reverify(scan_id: int):
    """Match a past scan's stored components again on the vulnerability data it used."""
    try:
        outcome = advisories.reverify_scan(current_user, scan_id, address=request.remote_addr)
    except ValidationError as error:
        flash(f"Scan #{scan_id} cannot be re-verified: {error}", "error")
        return redirect(url_for("assets.detail", asset_id=advisories.asset_of_scan(scan_id)))
    flash(_reverified_text(outcome), "success" if outcome.holds else "error")
    return redirect(url_for("assets.detail", asset_id=outcome.scan.version.asset_id))


def _reverified_text(outcome) -> str:
    head = f"Scan #{outcome.scan.id} re-verified on {outcome.snapshot}: "
    if outcome.holds:
        return head + f"the verdict ({outcome.scan.verdict}) still holds."
    changes = [f"now {outcome.verdict}, was {outcome.scan.verdict}"]
    if outcome.missing:
        changes.append("no longer found: " + ", ".join(outcome.missing))
    if outcome.new:
        changes.append("found now: " + ", ".join(outcome.new))
    return head + "it does not hold (" + "; ".join(changes) + ")."


@bp.post("/versions/<int:version_id>/rescan")
def version_rescan(version_id: int):
    """Re-scan one Approved version; it stays Approved unless the verdict blocks."""
    try:
        scan = scans.rescan_version(current_user, version_id, address=request.remote_addr)
    except ValidationError as error:
        flash(str(error), "error")
        version = access.get_version(current_user, version_id)
        return redirect(url_for("assets.detail", asset_id=version.asset_id))
    flash("Re-scan queued: the version stays Approved unless the new verdict blocks.", "submitted")
    return redirect(url_for("assets.detail", asset_id=scan.version.asset_id))


@bp.post("/rescans")
def rescan_all():
    """Re-scan every Approved version (after new advisories or signatures)."""
    count = scans.rescan_approved(current_user, address=request.remote_addr)
    flash(f"{count} Approved version{'s' if count != 1 else ''} queued for a re-scan.",
          "success")
    return redirect(url_for("admin.data"))


@bp.post("/scans/<int:scan_id>/retry")
def scan_retry(scan_id: int):
    """Start a failed scan over (a new scan of the same package)."""
    try:
        scan = scans.retry_scan(current_user, scan_id, address=request.remote_addr)
    except NotFound:
        raise
    except ServiceError as error:
        flash(str(error), "error")
    else:
        flash(
            f"Scan #{scan.id} queued for {scan.version.asset.name} {scan.version.label}.", "success"
        )
    return redirect(url_for("admin.scan_list"))


@bp.get("/assets/<int:asset_id>/acceptances")
def acceptances(asset_id: int):
    """Every remembered acceptance of an asset, with a form to revoke one in force."""
    asset, rows = false_positives.list_acceptances(current_user, asset_id)
    return render_template("admin/acceptances.html", asset=asset, rows=rows, error=None,
                           failed_id=None, reason="")


@bp.post("/acceptances/<int:acceptance_id>/revoke")
def acceptance_revoke(acceptance_id: int):
    """Revoke a remembered acceptance: later scans of the asset block on the finding again."""
    try:
        row = false_positives.revoke_acceptance(current_user, acceptance_id,
                                                request.form.get("reason", ""),
                                                address=request.remote_addr)
    except ValidationError as error:
        asset_id = false_positives.acceptance_asset_id(acceptance_id)
        asset, rows = false_positives.list_acceptances(current_user, asset_id)
        return render_template("admin/acceptances.html", asset=asset, rows=rows,
                               error=str(error), failed_id=acceptance_id,
                               reason=request.form.get("reason", "")), 422
    flash("The acceptance was revoked: later scans of this asset block on that finding again.",
          "success")
    return redirect(url_for("admin.acceptances", asset_id=row.asset_id))


def _audit_page(query, errors: list[str], page_number=1):
    if errors:  # show no events rather than an unfiltered list that looks filtered
        page = audit_trail.EventPage([], 0, 1, 1, audit_trail.PER_PAGE, query)
    else:
        page = audit_trail.list_events(current_user, query, page=page_number)
    return render("admin/audit.html", "audit_table", page=page, query=query.args(),
                  errors=errors, choices=audit_trail.filter_choices(current_user),
                  system=audit_trail.SYSTEM), 422 if errors else 200


@bp.get("/audit")
def audit():
    """The audit trail: who did what to which object, when and from where; newest first."""
    query, errors = audit_trail.parse_query(request.args)
    return _audit_page(query, errors, request.args.get("page"))


@bp.get("/audit.csv")
def audit_export():
    """The audit trail with the page's filters as a CSV file, streamed."""
    query, errors = audit_trail.parse_query(request.args)
    if errors:
        return _audit_page(query, errors)
    lines = audit_trail.export_csv(current_user, query)
    response = Response(stream_with_context(lines), mimetype="text/csv")
    response.headers.set("Content-Disposition", "attachment",
                         filename=f"assay-audit-{audit_trail.export_stamp()}.csv")
    return response
