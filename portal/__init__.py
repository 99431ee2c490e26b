"""Assay portal: the Flask application factory."""

from __future__ import annotations

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from portal import config as config_module
from portal import keys
from portal.extensions import csrf, db, htmx, limiter, login_manager, migrate


def create_app(config: dict | None = None) -> Flask:
    """Build the app from the environment, overridden by ``config`` (tests)."""
    app = Flask(__name__)
    app.config.from_mapping(config_module.from_env())
    if config:
        app.config.from_mapping(config)
    config_module.check_settings(app.config)
    keys.init_app(app)
    _trust_proxies(app, app.config["TRUSTED_PROXIES"])

    db.init_app(app)
    migrate.init_app(app, db, directory=str(_migrations_dir()), render_as_batch=True, compare_type=True)
    login_manager.init_app(app)
    csrf.init_app(app)
    htmx.init_app(app)
    limiter.init_app(app)

    from portal import blueprints, cli, models, security  # noqa: F401  (models: register tables)

    security.init_app(app)
    blueprints.init_app(app)
    cli.init_app(app)
    return app


def _trust_proxies(app: Flask, count: int) -> None:
    """Take the client's address and scheme from the headers of ``count`` reverse proxies.

    Off (0) by default: without a proxy that sets them, the headers come from the client and
    would let anyone choose the address the login limit and the audit log see.
    """
    if count:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=count, x_proto=count)


def _migrations_dir():
    from pathlib import Path

    return Path(__file__).resolve().parent.parent / "migrations"
