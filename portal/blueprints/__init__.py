"""Blueprints: thin views. ``init_app`` registers them all."""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    """Register every blueprint and the error handlers on ``app``."""
    from portal.blueprints import (
        admin, admin_calendar, admin_policy, appeals, assets, auth, errors, main, products,
        rendering, reviews, uploads,
    )

    rendering.init_app(app)
    errors.init_app(app)
    app.register_blueprint(main.bp)
    app.register_blueprint(auth.bp)
    app.register_blueprint(assets.bp)
    app.register_blueprint(products.bp)
    app.register_blueprint(admin.bp)
    app.register_blueprint(appeals.bp)
    app.register_blueprint(reviews.bp)
    app.register_blueprint(admin_calendar.bp)
    app.register_blueprint(admin_policy.bp)
    app.register_blueprint(uploads.bp)
