"""Keys derived from ASSAY_SECRET_KEY: one for sessions (and CSRF tokens), one for reports.

The operator sets one secret; each use gets its own key, derived with HMAC-SHA256 under a
distinct label, so a key that leaks from one use (a report's binding, say) says nothing
about the other. ``create_app`` replaces ``SECRET_KEY`` by the session key and puts the
report key in ``REPORT_KEY``; the secret itself is not kept in the config.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from flask import Flask, current_app

from scanner.report import binding_key

SESSION_LABEL = b"assay/v1/session"


def derive(secret: str | bytes, label: bytes) -> bytes:
    """The 32-byte key for ``label`` derived from ``secret``."""
    raw = secret.encode() if isinstance(secret, str) else bytes(secret)
    return hmac.new(raw, label, hashlib.sha256).digest()


def report_key_for(secret: str | bytes) -> bytes:
    """The key reports are bound with, for the installation whose secret is ``secret``
    (the scanner's CLI derives the same one)."""
    return binding_key(secret)


def init_app(app: Flask) -> None:
    """Replace the configured secret by the derived keys (a random secret under TESTING)."""
    secret = app.config.get("SECRET_KEY") or secrets.token_hex(32)  # check_settings ran first
    app.config["SECRET_KEY"] = derive(secret, SESSION_LABEL).hex()
    app.config["REPORT_KEY"] = report_key_for(secret)


def report_key() -> bytes:
    """The current app's report binding key."""
    return current_app.config["REPORT_KEY"]
