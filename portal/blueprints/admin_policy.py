"""Operators: the scan policy (CVSS threshold, whether dev-only dependencies block)."""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required

from portal.services import policy
from portal.services.errors import ValidationError

bp = Blueprint("admin_policy", __name__, url_prefix="/admin/policy")


@bp.before_request
@login_required
def _operators_only():
    """Every page here is for operators."""
    if not current_user.is_operator:
        abort(403)


def _page(error: ValidationError | None = None, status: int = 200):
    return render_template("admin/policy.html", current=policy.current_policy(),
                           history=policy.history(), error=error, form=request.form), status


@bp.get("/")
def index():
    """The policy in force, a form to change it and the versions saved before."""
    return _page()


@bp.post("/")
def save():
    """Save a new policy version; scans started from now on run under it."""
    try:
        saved = policy.update_policy(
            current_user, request.form.get("threshold", ""), request.form.get("dev_blocks") == "1",
            request.form.get("note", ""), address=request.remote_addr)
    except ValidationError as error:
        return _page(error, 422)
    flash(f"Policy version {saved.version} is in force: scans started from now on run under it. "
          "Verdicts already given stay as they are until a package is scanned again.", "success")
    return redirect(url_for("admin_policy.index"))
