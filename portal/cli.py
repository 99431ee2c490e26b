"""Flask CLI commands (flask users …, flask osv …)."""


def init_app(app) -> None:
    """Register the command groups on ``app``."""
