"""Flask CLI commands: ``flask users …``, ``flask osv import|sync``, ``flask scans …``, ``flask storage …``."""

from __future__ import annotations

import os
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
@click.argument("paths", nargs=-1, required=True,
                type=click.Path(exists=True, path_type=Path))
def import_osv(paths: tuple[Path, ...]) -> None:
    """Switch to a new snapshot of OSV data holding PATHS: ``all.zip`` files, JSON files or
    folders of them (a folder of ecosystem folders too). Ecosystems not named keep their data."""
    from portal.services import advisories

    try:
        result = advisories.import_osv(list(paths))
    except ServiceError as exc:
        raise click.ClickException(f"{exc.message} (the data in use is unchanged)") from None
    _echo_import(result)


def _echo_import(result) -> None:
    for eco in result.imported:
        info = result.ecosystems[eco]
        click.echo(f"{eco}: {info.records} record(s), newest modified {info.modified or '-'}")
    state = "unchanged, already kept" if result.unchanged else "new"
    click.echo(f"Snapshot in use: {result.snapshot} ({state}); "
               f"{len(result.changed)} record(s) new or changed.")


@osv_cli.command("sync")
def sync_osv() -> None:
    """Download the configured ecosystems' ``all.zip`` (ASSAY_OSV_URL, ASSAY_OSV_ECOSYSTEMS)
    when changed, and switch to a snapshot holding them."""
    from portal.services import advisories

    if not current_app.config["OSV_ECOSYSTEMS"]:
        raise click.ClickException("No ecosystems to sync: set ASSAY_OSV_ECOSYSTEMS "
                                   "(e.g. PyPI,npm,Maven,Go).")
    outcomes = advisories.sync_osv()
    for outcome in outcomes:
        click.echo(f"{outcome.ecosystem}: {outcome.outcome}"
                   + (f" ({outcome.message})" if outcome.message else ""))
    if any(o.outcome == "failed" for o in outcomes):
        raise click.ClickException("Some ecosystems failed; their data in use is unchanged.")


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
