"""The front door, the health check and every user's notifications."""

from __future__ import annotations

from flask import Blueprint, redirect, url_for
from flask_login import current_user, login_required

from portal.blueprints.rendering import render
from portal.services import sla

bp = Blueprint("main", __name__)


@bp.get("/")
def index():
    """Send a signed-in user to their assets, anyone else to the login page."""
    if current_user.is_authenticated:
        return redirect(url_for("assets.index"))
    return redirect(url_for("auth.login"))


@bp.get("/healthz")
def healthz():
    """Liveness for a process supervisor or load balancer: the web process answers."""
    return {"status": "ok"}


@bp.get("/notifications")
@login_required
def notifications():
    """The user's notifications, newest first (sellers: re-scan verdicts, products
    unpublished; reviewers: appeals due soon or overdue)."""
    return render("reviews/notifications.html", "notifications_list",
                  items=sla.list_notifications(current_user),
                  read_url=url_for("main.notifications_read"))


@bp.post("/notifications/read")
@login_required
def notifications_read():
    """Mark every notification read."""
    sla.mark_read(current_user)
    return redirect(url_for("main.notifications"))
