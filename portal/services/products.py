"""Products: approved asset versions released as commercial-license software.

A seller creates a product, associates their Approved versions with it and publishes
it; publishing needs every associated version to be Approved at that moment. While a
product lists a version, the version's asset cannot be deleted, and a published
product's version cannot be modified in place (the seller adds a new version instead:
``state.refusal``). Operators see every product and can unpublish one with a note the
seller reads.
"""

from __future__ import annotations

from flask import url_for
from sqlalchemy import select

from portal.extensions import db
from portal.models import Asset, AssetVersion, Notification, Product, User, VersionStatus
from portal.models.product import LICENSE, product_versions
from portal.services import access
from portal.services.audit import record_event
from portal.services.errors import Forbidden, NotFound, ValidationError
from portal.timeutil import utcnow

MAX_NAME = 128
MAX_SUMMARY = 5000
MAX_PRICE_NOTE = 200
MAX_NOTE = 2000


def list_products(actor: User) -> list[Product]:
    """The actor's products (every product for operators), newest first."""
    stmt = select(Product).order_by(Product.id.desc())
    if not actor.is_operator:
        stmt = stmt.where(Product.owner_id == actor.id)
    return list(db.session.scalars(stmt))


def get_product(actor: User, product_id: int) -> Product:
    """The product for its seller or an operator; NotFound for anyone else."""
    product = db.session.get(Product, product_id)
    if product is None or actor is None or not (
            product.owner_id == actor.id or actor.is_operator):
        raise NotFound("No such product.")
    return product


def approved_versions(actor: User, exclude: Product | None = None) -> list[AssetVersion]:
    """The actor's Approved versions that could be added (to ``exclude``, those it lacks)."""
    listed = {v.id for v in exclude.versions} if exclude is not None else set()
    stmt = (select(AssetVersion).join(Asset).where(
        Asset.owner_id == actor.id, AssetVersion.status == VersionStatus.approved)
        .order_by(Asset.name, AssetVersion.id))
    return [v for v in db.session.scalars(stmt) if v.id not in listed]


def products_of(version_ids: list[int]) -> dict[int, list[Product]]:
    """version id -> the products listing it (for the asset pages)."""
    if not version_ids:
        return {}
    rows = db.session.execute(
        select(product_versions.c.version_id, Product)
        .join(Product, Product.id == product_versions.c.product_id)
        .where(product_versions.c.version_id.in_(version_ids))
        .order_by(Product.name)).all()
    out: dict[int, list[Product]] = {}
    for version_id, product in rows:
        out.setdefault(version_id, []).append(product)
    return out


def create_product(actor: User, *, name: str, summary: str = "", price_note: str = "",
                   version_ids: list[int] = (), address: str | None = None) -> Product:
    """A new, unpublished product of the actor's, with the Approved versions named."""
    _require_seller(actor)
    product = Product(owner_id=actor.id, name=_name(actor, name), description=_summary(summary),
                      license_type=LICENSE, price_note=_price_note(price_note))
    for version_id in dict.fromkeys(version_ids):
        product.versions.append(_associable(actor, version_id))
    db.session.add(product)
    record_event(actor, "product.create", product, after={
        "name": product.name, "versions": [v.id for v in product.versions]}, address=address)
    db.session.commit()
    return product


def add_version(actor: User, product_id: int, version_id: int, *,
                address: str | None = None) -> Product:
    """Associate one more Approved version of the actor's with their product."""
    product = _own(actor, product_id)
    version = _associable(actor, version_id)
    if version in product.versions:
        raise ValidationError(f"{product.name} already lists {_label(version)}.", "version")
    product.versions.append(version)
    record_event(actor, "product.add_version", product, after={"version": version.id},
                 address=address)
    db.session.commit()
    return product


def remove_version(actor: User, product_id: int, version_id: int, *,
                   address: str | None = None) -> Product:
    """Take a version off an unpublished product (a published one is unpublished first)."""
    product = _own(actor, product_id)
    version = next((v for v in product.versions if v.id == version_id), None)
    if version is None:
        raise NotFound("This product does not list that version.")
    if product.published:
        raise ValidationError("Unpublish the product before removing a version from it: "
                              "buyers see what a published product lists.")
    product.versions.remove(version)
    record_event(actor, "product.remove_version", product, before={"version": version.id},
                 address=address)
    db.session.commit()
    return product


def publish(actor: User, product_id: int, *, address: str | None = None) -> Product:
    """Publish the product: it must list at least one version, every one Approved now."""
    product = _own(actor, product_id)
    if product.published:
        raise ValidationError("This product is published already.")
    if not product.versions:
        raise ValidationError("Add at least one Approved version before publishing.")
    pending = [_label(v) for v in product.versions if v.status is not VersionStatus.approved]
    if pending:
        raise ValidationError("Every version must be Approved to publish; not approved now: "
                              + ", ".join(pending) + ".")
    product.published, product.published_at = True, utcnow()
    product.unpublished_note = product.unpublished_at = None
    record_event(actor, "product.publish", product, before={"published": False},
                 after={"published": True, "versions": [v.id for v in product.versions]},
                 address=address)
    db.session.commit()
    return product


def unpublish(actor: User, product_id: int, note: str = "", *,
              address: str | None = None) -> Product:
    """Take a product down: its seller may; an operator may with a note the seller reads
    (and is notified of)."""
    product = get_product(actor, product_id)
    note = (note or "").strip()
    by_operator = product.owner_id != actor.id
    if not product.published:
        raise ValidationError("This product is not published.")
    if by_operator and not note:
        raise ValidationError("Say why the product is unpublished: the seller reads this note.",
                              "note")
    if len(note) > MAX_NOTE:
        raise ValidationError(f"Keep the note under {MAX_NOTE} characters.", "note")
    product.published = False
    product.unpublished_at = utcnow()
    product.unpublished_note = note if by_operator else None
    if by_operator:
        db.session.add(Notification(
            user_id=product.owner_id, kind="product_unpublished",
            text=f"Your product {product.name} was unpublished by an operator: {note}",
            link=url_for("products.detail", product_id=product.id)))
    record_event(actor, "product.unpublish", product, before={"published": True},
                 after={"published": False, "note": note}, address=address)
    db.session.commit()
    return product


def _own(actor: User, product_id: int) -> Product:
    product = get_product(actor, product_id)
    if product.owner_id != actor.id:
        raise Forbidden("Only the seller who made this product can change it.")
    return product


def _associable(actor: User, version_id: int) -> AssetVersion:
    version = access.own_version(actor, int(version_id))
    if version.status is not VersionStatus.approved:
        raise ValidationError(f"Only Approved versions can be released; {_label(version)} is "
                              f"{version.status.value}.", "version")
    return version


def _require_seller(actor: User) -> None:
    if actor is None or actor.is_reviewer:
        raise Forbidden("Products are made by sellers, from their own approved versions.")


def _name(actor: User, name: str | None) -> str:
    name = " ".join((name or "").split())
    if not name:
        raise ValidationError("Give the product a name.", "name")
    if len(name) > MAX_NAME:
        raise ValidationError(f"Keep the name under {MAX_NAME} characters.", "name")
    taken = db.session.scalar(select(Product.id).where(Product.owner_id == actor.id,
                                                       Product.name == name))
    if taken is not None:
        raise ValidationError(f"You already have a product named {name}.", "name")
    return name


def _summary(summary: str | None) -> str:
    summary = (summary or "").strip()
    if len(summary) > MAX_SUMMARY:
        raise ValidationError(f"Keep the summary under {MAX_SUMMARY} characters.", "summary")
    return summary


def _price_note(note: str | None) -> str:
    note = " ".join((note or "").split())
    if len(note) > MAX_PRICE_NOTE:
        raise ValidationError(f"Keep the price note under {MAX_PRICE_NOTE} characters.",
                              "price_note")
    return note


def _label(version: AssetVersion) -> str:
    return f"{version.asset.name} {version.label}"
