"""Blueprints: thin views. ``init_app`` registers them all."""


def init_app(app) -> None:
    """Register every blueprint and the error handlers on ``app``."""
