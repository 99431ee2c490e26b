"""Flask CLI commands: ``flask users …``, ``flask osv import``, ``flask scans …``, ``flask storage …``."""

from __future__ import annotations

import os
import shutil
import time
import zipfile
from pathlib import Path

import click
from flask import current_app
from flask.cli import AppGroup

from portal.services.errors import ServiceError

users_cli = AppGroup("users", help="Accounts.")
osv_cli = AppGroup("osv", help="Vulnerability data (OSV).")
scans_cli = AppGroup("scans", help="Scans and the queue.")
storage_cli = AppGroup("storage", help="Object storage.")


def init_app(app) -> None:
    """Register the command groups on ``app``."""
    for group in (users_cli, osv_cli, scans_cli, storage_cli):
        app.cli.add_command(group)


@users_cli.command("create")
@click.argument("email")
@click.option("--role", type=click.Choice(["seller", "reviewer", "operator"]), default="seller",
              show_default=True)
@click.option("--name", default="", help="Display name (defaults to the email's local part).")
@click.option("--password", help="Asked for when not given.")
def create_user(email: str, role: str, name: str, password: str | None) -> None:
    """Create an account with ROLE."""
    from portal.services import users

    password = password or click.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        user = users.create_user(email, name, password, role)
    except ServiceError as exc:
        raise click.ClickException(exc.message) from None
    click.echo(f"Created {user.role.value} {user.email}.")


@users_cli.command("ensure-admin")
def ensure_admin() -> None:
    """Create the first operator unless one exists (ASSAY_ADMIN_EMAIL / ASSAY_ADMIN_PASSWORD)."""
    from portal.services import users

    try:
        user, generated = users.ensure_admin(os.environ.get("ASSAY_ADMIN_EMAIL") or None,
                                             os.environ.get("ASSAY_ADMIN_PASSWORD") or None)
    except ServiceError as exc:
        raise click.ClickException(exc.message) from None
    if generated:
        click.echo("Created the first operator account. Sign in with:")
        click.echo(f"  email:    {user.email}")
        click.echo(f"  password: {generated}")
        click.echo("Change it after signing in, or set ASSAY_ADMIN_PASSWORD before the first run.")
    else:
        click.echo(f"Operator account: {user.email} (exists; password unchanged).")


@osv_cli.command("import")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
def import_osv(path: Path) -> None:
    """Copy OSV data (an ``all.zip``, a JSON file or a folder of them) into OSV_DIR."""
    target = Path(current_app.config["OSV_DIR"])
    target.mkdir(parents=True, exist_ok=True)
    count = _import_osv(path, target)
    (target / ".imported").write_text(f"{time.time():.0f} {path}\n")
    click.echo(f"Imported {count} file(s) from {path} into {target}.")


def _import_osv(path: Path, target: Path) -> int:
    if path.is_dir():
        dest = target / path.name
        shutil.copytree(path, dest, dirs_exist_ok=True)
        return sum(1 for _ in dest.rglob("*.json"))
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:  # the scanner reads all.zip files as they are
            count = sum(1 for n in archive.namelist() if n.endswith(".json"))
        name = path.name if path.name != "all.zip" else f"{path.parent.name or 'osv'}-all.zip"
        shutil.copy2(path, target / name)
        return count
    if path.suffix == ".json":
        shutil.copy2(path, target / path.name)
        return 1
    raise click.ClickException(f"{path} is not an OSV zip, JSON file or folder.")


@scans_cli.command("drain-outbox")
def drain_outbox() -> None:
    """Enqueue scans kept in the outbox while Redis was unreachable."""
    from portal.services import scans

    click.echo(f"Enqueued {scans.drain_outbox()} scan(s).")


@scans_cli.command("reap")
def reap() -> None:
    """Re-queue scans whose worker stopped responding."""
    from portal.services import scans

    click.echo(f"Re-queued {scans.reap_stuck_scans()} scan(s).")
    scans.drain_outbox()


@storage_cli.command("sweep")
@click.option("--dry-run", is_flag=True, help="List the orphans without removing them.")
def sweep(dry_run: bool) -> None:
    """Remove stored objects no row refers to (older than ORPHAN_MIN_AGE)."""
    from portal.services import sweeper

    if dry_run:
        for key in sweeper.find_orphans():
            click.echo(key)
        return
    click.echo(f"Removed {sweeper.sweep_orphans()} orphaned object(s).")


@storage_cli.command("ensure-bucket")
def ensure_bucket() -> None:
    """Create the bucket if it does not exist."""
    from portal import storage

    storage.ensure_bucket()
    click.echo(f"Bucket {current_app.config['S3_BUCKET']} is ready.")
