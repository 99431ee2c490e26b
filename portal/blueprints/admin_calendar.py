"""Operators: the SLA figures and the working-day calendar overrides."""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, request, url_for
from flask_login import current_user, login_required

from portal.blueprints.rendering import render
from portal.services import sla
from portal.services.errors import ValidationError

bp = Blueprint("admin_calendar", __name__, url_prefix="/admin/calendar")


@bp.before_request
@login_required
def _operators_only():
    """Every page here is for operators."""
    if not current_user.is_operator:
        abort(403)


def _page(error: str | None = None, status: int = 200):
    view = sla.overview(current_user)
    return render("admin/calendar.html", "calendar_table", view=view, error=error,
                  form=request.form), status


@bp.get("/")
def index():
    """SLA figures, the days ahead as the SLA counts them, and the overrides."""
    return _page()


@bp.post("/")
def set_day():
    """Add a holiday or a make-up working day (or change an existing override)."""
    working = request.form.get("working") == "1"
    try:
        row = sla.set_calendar_day(current_user, request.form.get("day", ""), working,
                                   request.form.get("note", ""), address=request.remote_addr)
    except ValidationError as error:
        return _page(str(error), 422)
    kind = "a make-up working day" if row.working else "a holiday"
    flash(f"{row.day:%Y-%m-%d} is now {kind}; open appeals' due dates were updated.", "success")
    return redirect(url_for("admin_calendar.index"))


@bp.post("/<int:day_id>/delete")
def delete_day(day_id: int):
    """Remove an override: the country's calendar applies to that day again."""
    sla.delete_calendar_day(current_user, day_id, address=request.remote_addr)
    flash("The override was removed; open appeals' due dates were updated.", "success")
    return redirect(url_for("admin_calendar.index"))
