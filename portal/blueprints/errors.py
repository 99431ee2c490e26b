"""Error pages: HTTP errors, CSRF failures and service errors that escape a view."""

from __future__ import annotations

from flask import Flask, current_app, render_template
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from portal.blueprints.rendering import filesize
from portal.services import errors as service_errors

TITLES = {
    400: "Bad request",
    403: "Not allowed",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "File too large",
    429: "Too many attempts",
}


def _page(code: int, message: str):
    title = TITLES.get(code, "Error")
    return render_template("errors/error.html", code=code, title=title, message=message), code


def http_error(error: HTTPException):
    """Any HTTP error as a page in the site's layout."""
    messages = {
        400: "The request could not be understood. Go back and try again.",
        403: "Your account cannot open this page.",
        404: "There is nothing here, or it is not yours to see.",
        405: "This address does not accept that kind of request.",
    }
    code = error.code or 500
    return _page(code, messages.get(code, error.description or "Something went wrong."))


def csrf_error(error: CSRFError):
    """The form's security token was missing or stale."""
    return _page(
        400,
        "This form has expired or was sent without its security token. "
        "Reload the page and submit it again.",
    )


def too_large(error: HTTPException):
    """The body exceeded MAX_CONTENT_LENGTH, i.e. the package exceeds the form upload limit."""
    limit = filesize(current_app.config["MAX_FORM_UPLOAD"])
    return _page(
        413,
        f"The package is larger than the {limit} that can be uploaded through this form. "
        "Choose a smaller package.",
    )


def rate_limited(error: HTTPException):
    """Too many login attempts from this address."""
    return _page(429, "Too many attempts from your address. Wait a minute and try again.")


def service_not_found(error: service_errors.NotFound):
    """A service refused to reveal a record: the same page as any missing address."""
    return _page(404, "There is nothing here, or it is not yours to see.")


def service_forbidden(error: service_errors.Forbidden):
    """A role check in a service failed."""
    return _page(403, str(error) or "Your account cannot do this.")


def init_app(app: Flask) -> None:
    """Register the handlers on ``app``."""
    app.register_error_handler(CSRFError, csrf_error)
    app.register_error_handler(413, too_large)
    app.register_error_handler(429, rate_limited)
    app.register_error_handler(HTTPException, http_error)
    app.register_error_handler(service_errors.NotFound, service_not_found)
    app.register_error_handler(service_errors.Forbidden, service_forbidden)
