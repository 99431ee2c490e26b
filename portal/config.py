"""Settings from the environment, with safe defaults for one machine."""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path

from scanner.model import MEMORY_DIR


def _int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


def _ints(name: str, default: str) -> tuple[int, ...]:
    return tuple(int(part) for part in os.environ.get(name, default).split(",") if part.strip())


def from_env() -> dict:
    """Build the Flask config mapping from environment variables."""
    var = Path(os.environ.get("ASSAY_VAR", "var")).resolve()
    return {
        "ASSAY_VAR": str(var),
        # No defaults for secrets: check_settings refuses to start without them (outside tests).
        "SECRET_KEY": os.environ.get("ASSAY_SECRET_KEY", ""),
        "SQLALCHEMY_DATABASE_URI": os.environ.get("DATABASE_URL", f"sqlite:///{var / 'assay.db'}"),
        "REDIS_URL": os.environ.get("REDIS_URL", "redis://127.0.0.1:6390/0"),
        "S3_ENDPOINT": os.environ.get("ASSAY_S3_ENDPOINT", "http://127.0.0.1:8333"),
        # Where browsers reach storage for direct uploads (presigned URLs); empty: S3_ENDPOINT.
        "S3_PUBLIC_ENDPOINT": os.environ.get("ASSAY_S3_PUBLIC_ENDPOINT", ""),
        "S3_ACCESS_KEY": os.environ.get("ASSAY_S3_ACCESS_KEY", ""),
        "S3_SECRET_KEY": os.environ.get("ASSAY_S3_SECRET_KEY", ""),
        "S3_BUCKET": os.environ.get("ASSAY_S3_BUCKET", "assay"),
        "S3_REGION": os.environ.get("ASSAY_S3_REGION", "us-east-1"),
        "CLAMD_ADDRESS": os.environ.get("ASSAY_CLAMD", "tcp://127.0.0.1:3310"),
        "OSV_DIR": os.environ.get("ASSAY_OSV_DIR", str(var / "osv")),
        # Snapshots of the OSV data kept by digest (past verdicts are re-verified on them).
        "OSV_KEEP": _int("ASSAY_OSV_KEEP", 5),
        # ``flask osv sync`` fetches <OSV_URL>/<Ecosystem>/all.zip for each of OSV_ECOSYSTEMS;
        # the worker runs it daily when OSV_ECOSYSTEMS is set (empty: offline, no sync).
        "OSV_URL": os.environ.get("ASSAY_OSV_URL",
                                  "https://osv-vulnerabilities.storage.googleapis.com"),
        "OSV_ECOSYSTEMS": tuple(e.strip() for e in os.environ.get("ASSAY_OSV_ECOSYSTEMS", "")
                                .split(",") if e.strip()),
        "OSV_SYNC_INTERVAL": _int("ASSAY_OSV_SYNC_INTERVAL", 24 * 3600),
        "SCRATCH_DIR": os.environ.get("ASSAY_SCRATCH_DIR", str(var / "scratch")),
        # Small files of a scan go to this memory file system while it has room; "" turns it off.
        "SCAN_MEMORY_DIR": os.environ.get("ASSAY_SCAN_MEMORY_DIR", str(MEMORY_DIR)),
        "TIMEZONE": os.environ.get("ASSAY_TIMEZONE", "Asia/Shanghai"),
        "COUNTRY": os.environ.get("ASSAY_COUNTRY", "CN"),
        "CVSS_THRESHOLD": float(os.environ.get("ASSAY_CVSS_THRESHOLD", "7.0")),
        # Whether vulnerabilities of dev-only dependencies block (until an operator sets a policy).
        "DEV_BLOCKS": os.environ.get("ASSAY_DEV_BLOCKS", "0") == "1",
        "MAX_FORM_UPLOAD": _int("ASSAY_MAX_FORM_UPLOAD", 1024**3),
        "MAX_PACKAGE_SIZE": _int("ASSAY_MAX_PACKAGE_SIZE", 20 * 1024**3),
        "DIRECT_UPLOAD_THRESHOLD": _int("ASSAY_DIRECT_UPLOAD_THRESHOLD", 1024**3),
        "UPLOAD_PART_SIZE": _int("ASSAY_UPLOAD_PART_SIZE", 64 * 1024**2),
        "UPLOAD_URL_EXPIRY": _int("ASSAY_UPLOAD_URL_EXPIRY", 3600),
        "UPLOAD_ABANDONED_AFTER": _int("ASSAY_UPLOAD_ABANDONED_AFTER", 24 * 3600),
        # Unfinished direct uploads one seller may have at once, and the bytes they may hold.
        "UPLOAD_MAX_OPEN": _int("ASSAY_UPLOAD_MAX_OPEN", 3),
        "UPLOAD_MAX_OPEN_BYTES": _int("ASSAY_UPLOAD_MAX_OPEN_BYTES", 40 * 1024**3),
        "SCAN_TIMEOUT": _int("ASSAY_SCAN_TIMEOUT", 6 * 3600),
        "SCAN_STUCK_AFTER": _int("ASSAY_SCAN_STUCK_AFTER", 600),
        "SCAN_HEARTBEAT": _int("ASSAY_SCAN_HEARTBEAT", 15),
        # A scan whose stage and progress stay the same this long is stopped, failed and not
        # retried (0: never). Above clamd's 5 min per file, twice over for two large files in
        # flight, and above the unpacking of a large nested image, which reports no progress.
        "SCAN_STALL_AFTER": _int("ASSAY_SCAN_STALL_AFTER", 1800),
        "SCAN_MAX_ATTEMPTS": _int("ASSAY_SCAN_MAX_ATTEMPTS", 3),
        "SCAN_RETRY_BACKOFF": _ints("ASSAY_SCAN_RETRY_BACKOFF", "30,300"),
        "ORPHAN_MIN_AGE": _int("ASSAY_ORPHAN_MIN_AGE", 3600),
        # Days an accepted false positive keeps settling later scans of its asset (0: forever).
        "ACCEPTANCE_EXPIRY_DAYS": _int("ASSAY_ACCEPTANCE_EXPIRY_DAYS", 0),
        "ADMIN_EMAIL": os.environ.get("ASSAY_ADMIN_EMAIL", "admin@assay.example"),
        "RATELIMIT_STORAGE_URI": os.environ.get("ASSAY_RATELIMIT_STORAGE", "memory://"),
        "LOGIN_RATE_LIMIT": os.environ.get("ASSAY_LOGIN_RATE_LIMIT", "10 per minute"),
        # Reverse proxies in front of web whose X-Forwarded-For/-Proto are believed; 0: none.
        "TRUSTED_PROXIES": _int("ASSAY_TRUSTED_PROXIES", 0),
        "SMTP_HOST": os.environ.get("ASSAY_SMTP_HOST", ""),
        "SMTP_PORT": _int("ASSAY_SMTP_PORT", 25),
        "MAIL_FROM": os.environ.get("ASSAY_MAIL_FROM", "assay@localhost"),
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SESSION_COOKIE_SECURE": os.environ.get("ASSAY_SECURE_COOKIES", "0") == "1",
        "REMEMBER_COOKIE_HTTPONLY": True,
        "REMEMBER_COOKIE_SAMESITE": "Lax",
        "REMEMBER_COOKIE_DURATION": timedelta(days=_int("ASSAY_REMEMBER_DAYS", 14)),
        # How long a password reset link works.
        "PASSWORD_RESET_HOURS": _int("ASSAY_RESET_HOURS", 24),
        "SQLALCHEMY_ENGINE_OPTIONS": {"pool_pre_ping": True},
    }


#: The shortest ASSAY_SECRET_KEY accepted; ``make run`` generates 64 hex digits.
MIN_SECRET_LENGTH = 32
#: Values that shipped as defaults once: anyone can read them, so they protect nothing.
KNOWN_SECRETS = frozenset({"dev-only-change-me", "assay-secret"})
GENERATE = 'python -c "import secrets; print(secrets.token_hex(32))"'


class ConfigError(RuntimeError):
    """A setting the portal cannot run without is missing or unsafe; the message says which."""


def check_settings(config: Mapping) -> None:
    """Refuse to run without a strong secret key and S3 credentials (tests excepted).

    There are no built-in values: a default secret lets anyone forge a session cookie or a
    report binding, and a default S3 key opens every stored package.
    """
    if config.get("TRUSTED_PROXIES", 0) < 0:
        raise ConfigError("ASSAY_TRUSTED_PROXIES must be 0 (no proxy) or the number of proxies.")
    if config.get("TESTING"):
        return
    secret = config.get("SECRET_KEY") or ""
    if not secret or secret in KNOWN_SECRETS or len(secret) < MIN_SECRET_LENGTH:
        problem = "is not set" if not secret else "is too weak"
        raise ConfigError(
            f"ASSAY_SECRET_KEY {problem}: set it to at least {MIN_SECRET_LENGTH} random "
            f"characters, the same in every web and worker process, e.g. the output of {GENERATE} "
            "(`make run` keeps one in var/secrets.env)."
        )
    for setting, variable in (("S3_ACCESS_KEY", "ASSAY_S3_ACCESS_KEY"),
                              ("S3_SECRET_KEY", "ASSAY_S3_SECRET_KEY")):
        value = config.get(setting) or ""
        if not value or value in KNOWN_SECRETS:
            problem = "is not set" if not value else "is a well-known default"
            raise ConfigError(
                f"{variable} {problem}: set ASSAY_S3_ACCESS_KEY and ASSAY_S3_SECRET_KEY to the "
                "credentials of the S3 service (`make run` generates both into var/secrets.env "
                "and starts its storage with them)."
            )
