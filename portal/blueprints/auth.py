"""Accounts: seller registration, login (rate-limited) and logout."""

from __future__ import annotations

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required, login_user, logout_user

from portal.blueprints.rendering import attach_error, safe_next
from portal.extensions import limiter
from portal.forms import LoginForm, RegisterForm
from portal.services import users
from portal.services.errors import ValidationError

bp = Blueprint("auth", __name__, url_prefix="/auth")


def _login_limit() -> str:
    return current_app.config["LOGIN_RATE_LIMIT"]


@bp.route("/register", methods=["GET", "POST"])
def register():
    """Create a seller account and sign it in."""
    if current_user.is_authenticated:
        return redirect(url_for("main.index"))
    form = RegisterForm()
    if form.validate_on_submit():
        try:
            user = users.register_seller(
                form.email.data, form.name.data, form.password.data, address=request.remote_addr
            )
        except ValidationError as error:
            attach_error(form, error)
        else:
            login_user(user)
            flash("Welcome to Assay. Add your first asset to have it scanned.", "success")
            return redirect(url_for("assets.index"))
    return render_template("auth/register.html", form=form), 422 if form.errors else 200


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(_login_limit, methods=["POST"])
def login():
    """Sign in with email and password."""
    if current_user.is_authenticated:
        return redirect(url_for("main.index"))
    form = LoginForm()
    if form.validate_on_submit():
        user = users.authenticate(form.email.data, form.password.data)
        if user is not None and login_user(user, remember=form.remember.data):
            return redirect(safe_next(request.args.get("next")) or url_for("main.index"))
        form.form_errors.append("Wrong email or password, or the account is deactivated.")
    return render_template("auth/login.html", form=form), 422 if form.errors else 200


@bp.post("/logout")
@login_required
def logout():
    """Sign out (a POST with the CSRF token, so no page can log a user out by a link)."""
    logout_user()
    flash("You are signed out.", "info")
    return redirect(url_for("auth.login"))
