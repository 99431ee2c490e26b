"""Reviewers: the appeal queue, the appeal page where each claim is decided, and
notifications. Any other role gets a 403 here."""

from __future__ import annotations

from flask import Blueprint, abort, flash, make_response, redirect, request, url_for
from flask_login import current_user, login_required

from portal.blueprints.rendering import render, safe_next, wants_fragment
from portal.services import reviews, sla
from portal.services.errors import ValidationError

bp = Blueprint("reviews", __name__, url_prefix="/reviews")
FILTERS = (("all", "All open"), ("overdue", "Overdue"), ("mine", "Assigned to me"),
           ("unassigned", "Unassigned"))


@bp.before_request
@login_required
def _reviewers_only():
    """Every page here is for reviewers and operators."""
    if not current_user.is_reviewer:
        abort(403)


@bp.app_context_processor
def _navigation():
    """``review_counts()`` for the navigation; only called where the nav is drawn."""
    return {"review_counts": lambda: reviews.queue_counts(current_user)}


@bp.get("/")
def queue():
    """The appeal queue: open appeals by due time; the table refreshes itself."""
    chosen = request.args.get("filter", "all")
    chosen = chosen if chosen in reviews.QUEUE_FILTERS else "all"
    rows = reviews.reviewer_queue(current_user, filter=chosen)
    return render("reviews/queue.html", "queue_table", rows=rows, chosen=chosen, filters=FILTERS)


@bp.post("/<int:appeal_id>/claim")
def claim(appeal_id: int):
    """Assign the appeal to me."""
    try:
        reviews.claim_appeal(current_user, appeal_id, address=request.remote_addr)
    except ValidationError as error:
        flash(str(error), "error")
    else:
        flash(f"Appeal #{appeal_id} is assigned to you.", "success")
    back = safe_next(request.form.get("next"))
    return redirect(back or url_for("reviews.appeal", appeal_id=appeal_id))


@bp.get("/<int:appeal_id>")
def appeal(appeal_id: int):
    """The appeal: findings with the seller's claims, evidence, components, scan details."""
    view = reviews.review_view(current_user, appeal_id)
    return render("reviews/appeal.html", "decision_panel", view=view, error=None)


@bp.post("/<int:appeal_id>/claims/<int:claim_id>")
def decide_claim(appeal_id: int, claim_id: int):
    """Accept or reject one claim with a note; an HTMX request gets its row back."""
    error = None
    try:
        reviews.decide_claim(current_user, appeal_id, claim_id, request.form.get("verdict", ""),
                             request.form.get("note", ""), address=request.remote_addr)
    except ValidationError as exc:
        error = str(exc)
    if not wants_fragment():
        flash(error or "Decision saved.", "error" if error else "success")
        return redirect(url_for("reviews.appeal", appeal_id=appeal_id))
    view = reviews.review_view(current_user, appeal_id)
    row = view.claim_row(claim_id)
    response = make_response(render("reviews/appeal.html", "claim_row", view=view, row=row,
                                    error=error))
    if error is None:
        response.headers["HX-Trigger"] = "claims-changed"
    return response


@bp.post("/<int:appeal_id>/decide")
def decide(appeal_id: int):
    """Close the appeal: Approved when every blocking finding is accepted, else Rejected."""
    try:
        decided = reviews.decide_appeal(current_user, appeal_id, request.form.get("comment", ""),
                                        address=request.remote_addr)
    except ValidationError as error:
        flash(str(error), "error")
    else:
        flash(f"Appeal #{appeal_id} {decided.decision.value}: the version is now "
              f"{decided.version.status.value}.", "success")
    return redirect(url_for("reviews.appeal", appeal_id=appeal_id))


@bp.get("/notifications")
def notifications():
    """Reminders about appeals due soon or overdue, newest first."""
    items = sla.list_notifications(current_user)
    return render("reviews/notifications.html", "notifications_list", items=items,
                  read_url=url_for("reviews.notifications_read"))


@bp.post("/notifications/read")
def notifications_read():
    """Mark every notification read."""
    sla.mark_read(current_user)
    return redirect(url_for("reviews.notifications"))
