"""Rendering helpers shared by the blueprints: fragment-or-page and template filters."""

from __future__ import annotations

import unicodedata
from datetime import UTC, datetime
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from flask import Flask, current_app, render_template, request
from jinja2_fragments.flask import render_block

from portal import forms


def wants_fragment() -> bool:
    """True for an HTMX request that swaps part of a page.

    A history-restore request (back button after a cache miss) and a boosted request want the
    whole page, so they are answered like a plain browser request.
    """
    headers = request.headers
    return (
        headers.get("HX-Request") == "true"
        and headers.get("HX-History-Restore-Request") != "true"
        and headers.get("HX-Boosted") != "true"
    )


def render(template: str, block: str, **context) -> str:
    """The named block of ``template`` for an HTMX request, the full page otherwise."""
    if wants_fragment():
        return render_block(template, block, **context)
    return render_template(template, **context)


def filesize(size: int | None) -> str:
    """Bytes as a short human figure (binary units, like the file managers sellers use)."""
    if size is None:
        return "—"
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            if unit == "B":
                return f"{int(value)} B"
            return f"{value:.1f}".removesuffix(".0") + f" {unit}"
        value /= 1024
    return f"{size} B"


def localtime(moment: datetime | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
    """A naive-UTC database time shown in the marketplace's time zone."""
    if moment is None:
        return "—"
    zone = ZoneInfo(current_app.config.get("TIMEZONE", "UTC"))
    return moment.replace(tzinfo=UTC).astimezone(zone).strftime(fmt)


def timezone_label() -> str:
    """The marketplace time zone as an offset, e.g. GMT+08:00."""
    zone = ZoneInfo(current_app.config.get("TIMEZONE", "UTC"))
    offset = datetime.now(zone).strftime("%z")
    return f"GMT{offset[:3]}:{offset[3:]}"


def status_badge(version):
    """The live badge of a version (a presentation read, no side effects)."""
    from portal.services import scans

    return scans.badge(version)


def deletion_blocker(asset) -> str | None:
    """Why ``asset`` cannot be deleted, or None."""
    from portal.services import assets

    return assets.deletion_blocker(asset)


def query_args(query: dict, **changes) -> dict:
    """``query`` with ``changes`` applied, minus empty values: arguments for a clean URL."""
    merged = {**query, **changes}
    return {key: value for key, value in merged.items() if value not in ("", None)}


def report_scan(version):
    """The newest completed scan of ``version`` that has a report, or None."""
    from portal.services import scans

    return scans.latest_report_scan(version)


def signature_warning() -> str | None:
    """The operators' banner while clamd has no official database (or does not answer)."""
    from portal.services import signatures

    return signatures.warning()


def unread_notifications() -> int:
    """How many of the signed-in user's notifications are unread."""
    from flask_login import current_user

    from portal.services import sla

    return sla.unread_count(current_user)


def products_using(version) -> list:
    """The products that list ``version`` (a presentation read)."""
    from portal.services import products

    return products.products_of([version.id]).get(version.id, [])


def modify_blocker(version) -> str | None:
    """Why ``version`` cannot get a new package now, or None."""
    from portal.services import state

    return state.refusal(version, "submit")


def init_app(app: Flask) -> None:
    """Register the filters and globals the templates use."""
    app.jinja_env.filters["filesize"] = filesize
    app.jinja_env.filters["localtime"] = localtime
    app.jinja_env.globals.update(
        status_badge=status_badge,
        products_using=products_using,
        signature_warning=signature_warning,
        unread_notifications=unread_notifications,
        deletion_blocker=deletion_blocker,
        modify_blocker=modify_blocker,
        report_scan=report_scan,
        timezone_label=timezone_label,
        query_args=query_args,
        name_pattern=forms.NAME_PATTERN_HTML,
        name_hint=forms.NAME_HINT,
        package_hint=forms.PACKAGE_HINT,
        package_accept=forms.PACKAGE_ACCEPT,
    )


#: Service argument names that a form calls differently.
FIELD_ALIASES = {"version_label": "version", "stream": "package", "filename": "package"}


def attach_error(form, error) -> None:
    """Show a service ``ValidationError`` next to its field, or above the form."""
    field = getattr(error, "field", None)
    field = FIELD_ALIASES.get(field, field)
    if field and field in form:
        form[field].errors = [*form[field].errors, str(error)]
    else:
        form.form_errors.append(str(error))


def safe_next(target: str | None) -> str | None:
    """A ``next`` address only if it is a path on this site (no open redirect).

    Control and format characters are refused first: browsers drop tabs and newlines from a
    ``Location`` (``/\\t/evil.example`` becomes ``//evil.example``), and a newline cannot go in
    a header at all. Backslashes are refused because browsers read them as slashes.
    """
    if not target or len(target) > 2000 or "\\" in target:
        return None
    if any(unicodedata.category(char)[0] in "CZ" and char != " " for char in target):
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return None
    return target
