"""Security headers, the Flask-Login user loader hook-up, and related request hooks."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Flask, Response, current_app, flash, redirect, request, session
from flask_login import login_url
from jinja2 import StrictUndefined

from portal.extensions import login_manager

#: Only self-hosted scripts and styles; nothing inline, no framing, forms post to us only.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "frame-ancestors 'none'; form-action 'self'; base-uri 'self'"
)

SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=()",
}

#: Room for the other form fields (name, description, CSRF token) around the package.
FORM_OVERHEAD = 1024 * 1024


def init_app(app: Flask) -> None:
    """Install the hooks on ``app``."""
    app.jinja_env.undefined = StrictUndefined
    # A form upload may be at most MAX_FORM_UPLOAD; anything larger is refused with a 413 page
    # before the body is read.
    if app.config.get("MAX_CONTENT_LENGTH") is None:  # Flask's default is None: no limit
        app.config["MAX_CONTENT_LENGTH"] = app.config["MAX_FORM_UPLOAD"] + FORM_OVERHEAD

    login_manager.login_view = "auth.login"
    login_manager.login_message = "Please log in to continue."
    login_manager.login_message_category = "info"
    login_manager.user_loader(_load_user)
    login_manager.unauthorized_handler(_unauthorized)

    app.extensions["assay_csp"] = content_security_policy(app)
    app.after_request(_set_headers)


def content_security_policy(app: Flask) -> str:
    """The policy, with the storage address browsers upload packages to in ``connect-src``."""
    url = urlsplit(app.config.get("S3_PUBLIC_ENDPOINT") or app.config.get("S3_ENDPOINT") or "")
    if not url.scheme or not url.netloc:
        return CONTENT_SECURITY_POLICY
    return f"{CONTENT_SECURITY_POLICY}; connect-src 'self' {url.scheme}://{url.netloc}"


def _load_user(session_id: str):
    from portal.services.users import user_for_session

    return user_for_session(session_id)


def _unauthorized() -> Response:
    """Send an anonymous user to the login page, coming back here afterwards.

    An HTMX request (a polling badge, say) gets ``HX-Redirect`` rather than a redirect: htmx
    would follow a redirect itself and swap the whole login page into the element. It comes
    back to the page the browser shows, not to the fragment's address.
    """
    message = (login_manager.login_message_category, login_manager.login_message)
    if message not in session.get("_flashes", []):  # several polls may end at once: say it once
        flash(message[1], message[0])
    if request.headers.get("HX-Request") != "true":
        return redirect(login_url(login_manager.login_view, next_url=request.url))
    page = request.headers.get("HX-Current-URL") or request.url
    response = Response("Your session has ended: log in again.", 401, mimetype="text/plain")
    response.headers["HX-Redirect"] = login_url(login_manager.login_view, next_url=page)
    return response


def _set_headers(response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    response.headers["Content-Security-Policy"] = current_app.extensions["assay_csp"]
    if request.endpoint != "static":
        # Pages answer HTMX requests with a fragment and others with the full page:
        # caches must keep the two apart, and nothing personal may be stored.
        response.vary.add("HX-Request")
        response.headers.setdefault("Cache-Control", "no-store")
    return response
