"""The flask commands this backend provides."""

import zipfile
from datetime import timedelta
from pathlib import Path

from portal import storage
from portal.models import Role, User
from portal.services import users
from portal.timeutil import utcnow

OSV = Path(__file__).resolve().parents[1] / "data" / "corpus" / "osv"


def test_users_create_and_ensure_admin(app, monkeypatch):
    runner = app.test_cli_runner()
    result = runner.invoke(args=["users", "create", "rev@example.com", "--role", "reviewer",
                                 "--password", "a long passphrase"])
    assert result.exit_code == 0, result.output
    assert User.query.filter_by(email="rev@example.com").one().role is Role.reviewer
    result = runner.invoke(args=["users", "create", "rev@example.com", "--password", "another passphrase"])
    assert result.exit_code != 0 and "already exists" in result.output

    monkeypatch.delenv("ASSAY_ADMIN_EMAIL", raising=False)
    monkeypatch.delenv("ASSAY_ADMIN_PASSWORD", raising=False)
    first = runner.invoke(args=["users", "ensure-admin"])
    password = first.output.split("password:")[1].split()[0]
    admin = User.query.filter_by(role=Role.operator).one()
    assert users.authenticate(admin.email, password) == admin
    again = runner.invoke(args=["users", "ensure-admin"])
    assert "exists" in again.output and password not in again.output


def test_ensure_admin_takes_the_environment(app, monkeypatch):
    monkeypatch.setenv("ASSAY_ADMIN_EMAIL", "boss@example.com")
    monkeypatch.setenv("ASSAY_ADMIN_PASSWORD", "boss passphrase 1")
    result = app.test_cli_runner().invoke(args=["users", "ensure-admin"])
    assert "password:" not in result.output
    assert users.authenticate("boss@example.com", "boss passphrase 1") is not None


def test_osv_import_folder_and_zip(app, tmp_path):
    app.config["OSV_DIR"] = str(tmp_path / "osv")
    runner = app.test_cli_runner()
    result = runner.invoke(args=["osv", "import", str(OSV / "PyPI")])
    assert result.exit_code == 0, result.output
    assert "PyPI: 166 record(s)" in result.output
    assert list((tmp_path / "osv" / "current" / "PyPI").glob("*.json"))
    archive = tmp_path / "all.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for record in sorted((OSV / "npm").glob("*.json"))[:3]:
            z.write(record, record.name)
    result = runner.invoke(args=["osv", "import", str(archive)])
    assert "npm: 3 record(s)" in result.output and "3 record(s) new or changed" in result.output
    assert (tmp_path / "osv" / "current" / "npm" / "all.zip").exists()

    from worker.jobs import osv_sources

    assert [p.name for p in osv_sources(tmp_path / "osv")] == ["PyPI", "npm", "all.zip"]


def test_storage_sweep_removes_old_orphans_only(app, factories):
    version = factories.version(package="pkg-c-clean.tar.gz")
    storage.put_bytes("packages/9/9/9/x/package", b"orphan")
    assert app.test_cli_runner().invoke(args=["storage", "sweep"]).output.startswith("Removed 0")
    from portal.services import sweeper

    later = utcnow() + timedelta(seconds=app.config["ORPHAN_MIN_AGE"] + 60)
    assert sweeper.find_orphans(later) == ["packages/9/9/9/x/package"]
    assert sweeper.sweep_orphans(later) == 1
    assert storage.head(version.package_key) is not None


def test_scans_drain_outbox(app, factories):
    result = app.test_cli_runner().invoke(args=["scans", "drain-outbox"])
    assert result.output.strip() == "Enqueued 0 scan(s)."
