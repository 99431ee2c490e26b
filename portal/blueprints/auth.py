"""Accounts: seller registration, login (rate-limited), logout, password change and resets."""

from __future__ import annotations

from flask import (
    Blueprint, abort, current_app, flash, redirect, render_template, request, url_for,
)
from flask_login import current_user, login_required, login_user, logout_user

from portal.blueprints.rendering import attach_error, safe_next
from portal.extensions import limiter
from portal.forms import (
    ForgotPasswordForm, LoginForm, PasswordChangeForm, RegisterForm, ResetPasswordForm,
)
from portal.services import users
from portal.services.errors import NotFound, ValidationError
from portal.services.mail import mail_configured

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
    """Sign out everywhere (a POST with the CSRF token, so no page can log a user out by a
    link): every session and remember cookie of this account stops working."""
    users.end_sessions(current_user._get_current_object(), address=request.remote_addr)
    logout_user()
    flash("You are signed out.", "info")
    return redirect(url_for("auth.login"))


@bp.get("/account")
@login_required
def account():
    """The signed-in user's account: who they are, and a form to change the password."""
    return render_template("auth/account.html", form=PasswordChangeForm())


@bp.post("/account/password")
@login_required
@limiter.limit(_login_limit)
def change_password():
    """Change the password; every other session of this account ends, this one goes on."""
    form = PasswordChangeForm()
    if form.validate_on_submit():
        remember = request.cookies.get(current_app.config.get("REMEMBER_COOKIE_NAME",
                                                              "remember_token")) is not None
        try:
            user = users.change_password(current_user._get_current_object(), form.current.data,
                                         form.password.data, address=request.remote_addr)
        except ValidationError as error:
            attach_error(form, error)
        else:
            login_user(user, remember=remember)  # this browser goes on with the new version
            flash("Password changed. Every other session of this account has been ended.",
                  "success")
            return redirect(url_for("auth.account"))
    return render_template("auth/account.html", form=form), 422


def _reset_link(token: str) -> str:
    return url_for("auth.reset_password", token=token, _external=True)


@bp.route("/forgot", methods=["GET", "POST"])
@limiter.limit(_login_limit, methods=["POST"])
def forgot_password():
    """Ask for a reset link by email (only offered when the portal can send mail)."""
    if not mail_configured():
        abort(404)
    form = ForgotPasswordForm()
    if form.validate_on_submit():
        users.request_reset(form.email.data, _reset_link, address=request.remote_addr)
        # The same answer whether or not the address has an account.
        flash("If an account uses that address, a link to set a new password is on its way. "
              f"It works once, for {current_app.config['PASSWORD_RESET_HOURS']} hours.", "info")
        return redirect(url_for("auth.login"))
    return render_template("auth/forgot.html", form=form), 422 if form.errors else 200


@bp.route("/reset/<token>", methods=["GET", "POST"])
@limiter.limit(_login_limit, methods=["POST"])
def reset_password(token: str):
    """Set a new password with a one-time reset link."""
    try:
        reset = users.reset_for_token(token)
    except NotFound as error:
        return render_template("auth/reset_invalid.html", message=error.message), 404
    form = ResetPasswordForm()
    if form.validate_on_submit():
        try:
            users.complete_reset(token, form.password.data, address=request.remote_addr)
        except NotFound as error:
            return render_template("auth/reset_invalid.html", message=error.message), 404
        except ValidationError as error:
            attach_error(form, error)
        else:
            logout_user()
            flash("Your password is set, and every earlier session has been ended. "
                  "Log in with the new password.", "success")
            return redirect(url_for("auth.login"))
    return render_template("auth/reset.html", form=form, user=reset.user), (
        422 if form.errors else 200)
