"""Security headers, the Flask-Login user loader hook-up, and related request hooks."""


def init_app(app) -> None:
    """Install the hooks on ``app``."""
