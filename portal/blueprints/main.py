"""The front door and the health check."""

from __future__ import annotations

from flask import Blueprint, redirect, url_for
from flask_login import current_user

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
