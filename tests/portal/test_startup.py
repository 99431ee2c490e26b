"""No built-in secrets: every way of starting Assay refuses to run without ASSAY_SECRET_KEY and
the S3 credentials (tests excepted); sessions and reports use separate derived keys."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from flask import Flask
from flask.sessions import SecureCookieSessionInterface

from portal import create_app, keys
from portal.config import ConfigError
from scanner.report import key_id

ROOT = Path(__file__).resolve().parents[2]
SECRET = "s" * 40
S3 = {"ASSAY_S3_ACCESS_KEY": "access-key", "ASSAY_S3_SECRET_KEY": "a-strong-s3-secret"}
SECRET_NAMES = ("ASSAY_SECRET_KEY", "ASSAY_S3_ACCESS_KEY", "ASSAY_S3_SECRET_KEY")


@pytest.fixture
def bare_env(monkeypatch, tmp_path) -> dict:
    """The environment without any secret, data under tmp_path."""
    for name in SECRET_NAMES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ASSAY_VAR", str(tmp_path))
    return {k: v for k, v in os.environ.items() if k not in SECRET_NAMES}


@pytest.mark.parametrize("env, variable", [
    ({}, "ASSAY_SECRET_KEY is not set"),
    ({"ASSAY_SECRET_KEY": "dev-only-change-me", **S3}, "ASSAY_SECRET_KEY is too weak"),
    ({"ASSAY_SECRET_KEY": "short", **S3}, "ASSAY_SECRET_KEY is too weak"),
    ({"ASSAY_SECRET_KEY": SECRET}, "ASSAY_S3_ACCESS_KEY is not set"),
    ({"ASSAY_SECRET_KEY": SECRET, "ASSAY_S3_ACCESS_KEY": "assay"},
     "ASSAY_S3_SECRET_KEY is not set"),
    ({"ASSAY_SECRET_KEY": SECRET, "ASSAY_S3_ACCESS_KEY": "assay",
      "ASSAY_S3_SECRET_KEY": "assay-secret"}, "ASSAY_S3_SECRET_KEY is a well-known default"),
])
def test_the_app_refuses_to_start_without_its_secrets(bare_env, monkeypatch, env, variable):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=variable) as caught:
        create_app()
    if "ASSAY_SECRET_KEY" in variable:
        assert "secrets.token_hex(32)" in str(caught.value)
        assert "var/secrets.env" in str(caught.value)


def test_the_app_starts_with_its_secrets(bare_env, monkeypatch):
    for name, value in {"ASSAY_SECRET_KEY": SECRET, **S3}.items():
        monkeypatch.setenv(name, value)
    app = create_app()
    assert app.config["S3_ACCESS_KEY"] == "access-key"


def test_tests_need_no_secret(bare_env):
    first, second = create_app({"TESTING": True}), create_app({"TESTING": True})
    assert first.config["SECRET_KEY"] and first.config["REPORT_KEY"]
    assert first.config["SECRET_KEY"] != second.config["SECRET_KEY"]  # random, not built in


def test_sessions_and_reports_get_separate_keys_derived_from_the_secret(app_config):
    app = create_app({**app_config, "SECRET_KEY": SECRET})
    again = create_app({**app_config, "SECRET_KEY": SECRET})
    session_key, report_key = app.config["SECRET_KEY"], app.config["REPORT_KEY"]
    assert SECRET not in (session_key, report_key)
    assert bytes.fromhex(session_key) != report_key
    assert (again.config["SECRET_KEY"], again.config["REPORT_KEY"]) == (session_key, report_key)
    assert report_key == keys.report_key_for(SECRET)
    assert key_id(report_key) != key_id(SECRET)


def forged_session(secret: str, user_id: str) -> str:
    """A session cookie signed the way Flask signs it, with ``secret`` as the key."""
    forger = Flask("forger")
    forger.secret_key = secret
    return SecureCookieSessionInterface().get_signing_serializer(forger).dumps(
        {"_user_id": user_id, "_fresh": True})


def test_a_cookie_signed_with_the_raw_secret_opens_nothing(app_config, factories):
    app = create_app({**app_config, "SECRET_KEY": SECRET})
    user = factories.user()
    client = app.test_client()
    client.set_cookie("session", forged_session(SECRET, user.get_id()))
    assert client.get("/assets/").status_code == 302
    client.set_cookie("session", forged_session(app.config["SECRET_KEY"], user.get_id()))
    assert client.get("/assets/").status_code == 200  # the same cookie under the session key


# --- every way of starting ------------------------------------------------------------------

def procfile_command(name: str) -> list[str]:
    line = next(line for line in (ROOT / "Procfile").read_text().splitlines()
                if line.startswith(f"{name}:"))
    return shlex.split(line.split(":", 1)[1])


def run(args: list[str], env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def bin_path(name: str) -> str:
    return str(Path(sys.executable).with_name(name))


def assert_refused(result: subprocess.CompletedProcess) -> None:
    assert result.returncode != 0
    assert "ASSAY_SECRET_KEY is not set" in result.stderr + result.stdout


def test_the_worker_refuses_to_start_without_a_secret(bare_env):
    result = run([sys.executable, "-m", "worker", "--burst", "--no-scheduler"], bare_env)
    assert result.returncode == 2
    assert result.stderr.startswith("python -m worker: ASSAY_SECRET_KEY is not set")
    assert "Traceback" not in result.stderr


def test_the_flask_cli_refuses_to_start_without_a_secret(bare_env):
    assert_refused(run([bin_path("flask"), "--app", "portal", "db", "current"], bare_env))


def test_gunicorn_as_the_procfile_starts_it_refuses_without_a_secret(bare_env):
    web = procfile_command("web")
    assert web[0] == "gunicorn" and web[1] == "portal:create_app()"
    assert_refused(run([bin_path("gunicorn"), web[1], "--check-config"], bare_env))


def test_gunicorn_starts_with_the_secrets(bare_env):
    env = {**bare_env, "ASSAY_SECRET_KEY": SECRET, **S3}
    result = run([bin_path("gunicorn"), "portal:create_app()", "--check-config"], env)
    assert result.returncode == 0, result.stderr


def test_make_run_generates_every_secret(tmp_path):
    from ops.run import GENERATED_SECRETS, ensure_secrets

    values = ensure_secrets(tmp_path / "secrets.env")
    assert set(SECRET_NAMES) <= set(GENERATED_SECRETS)
    assert len(values["ASSAY_SECRET_KEY"]) >= 32
    assert values["ASSAY_S3_SECRET_KEY"] not in ("", "assay-secret")
    assert ensure_secrets(tmp_path / "secrets.env") == values  # kept across runs
