"""Errors the services raise. Their messages are written for the person using the portal."""

from __future__ import annotations


class ServiceError(Exception):
    """Base of every user-facing service error; ``message`` is safe to show."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class NotFound(ServiceError):
    """The thing does not exist, or the actor may not know that it does (a 404)."""

    def __init__(self, message: str = "Not found."):
        super().__init__(message)


class Forbidden(ServiceError):
    """The actor knows the thing exists but may not do this to it (a 403)."""

    def __init__(self, message: str = "You are not allowed to do that."):
        super().__init__(message)


class ValidationError(ServiceError):
    """Input was refused; ``field`` names the form field it belongs to, if any."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


class InvalidTransition(ServiceError):
    """The state machine does not allow this event from the current status."""
