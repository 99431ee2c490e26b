"""Products: a seller releases Approved versions as commercial-license software;
operators see every product and can unpublish one."""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required

from portal.services import products
from portal.services.errors import NotFound, ValidationError

bp = Blueprint("products", __name__, url_prefix="/products")


@bp.before_request
@login_required
def _sellers_and_operators():
    """Sellers keep their products here and operators oversee them; reviewers have no part."""
    if current_user.is_reviewer and not current_user.is_operator:
        abort(403)


def _version_id() -> int:
    try:
        return int(request.form.get("version_id", ""))
    except ValueError:
        raise NotFound("No such version.") from None


def _new_page(error: ValidationError | None = None, status: int = 200):
    return render_template("products/new.html", error=error, form=request.form,
                           approved=products.approved_versions(current_user)), status


@bp.get("/")
def index():
    """The seller's products (every product for operators)."""
    return render_template("products/index.html", products=products.list_products(current_user))


@bp.route("/new", methods=["GET", "POST"])
def new():
    """Create a product from Approved versions (not published yet)."""
    if request.method == "GET":
        return _new_page()
    try:
        product = products.create_product(
            current_user, name=request.form.get("name", ""),
            summary=request.form.get("summary", ""),
            price_note=request.form.get("price_note", ""),
            version_ids=request.form.getlist("version_id", type=int),
            address=request.remote_addr)
    except ValidationError as error:
        return _new_page(error, 422)
    flash(f"Product {product.name} created; publish it when it is ready.", "success")
    return redirect(url_for("products.detail", product_id=product.id))


@bp.get("/<int:product_id>")
def detail(product_id: int):
    """The product, its versions with their status, and what can be done with it."""
    product = products.get_product(current_user, product_id)
    return render_template("products/detail.html", product=product,
                           approved=products.approved_versions(current_user, exclude=product))


def _act(product_id: int, action, done: str):
    try:
        action()
    except ValidationError as error:
        flash(str(error), "error")
    else:
        flash(done, "success")
    return redirect(url_for("products.detail", product_id=product_id))


@bp.post("/<int:product_id>/versions")
def add_version(product_id: int):
    """Associate one more Approved version."""
    version_id = _version_id()
    return _act(product_id, lambda: products.add_version(
        current_user, product_id, version_id, address=request.remote_addr), "Version added.")


@bp.post("/<int:product_id>/versions/<int:version_id>/remove")
def remove_version(product_id: int, version_id: int):
    """Take a version off an unpublished product."""
    return _act(product_id, lambda: products.remove_version(
        current_user, product_id, version_id, address=request.remote_addr), "Version removed.")


@bp.post("/<int:product_id>/publish")
def publish(product_id: int):
    """Publish: every listed version must be Approved now."""
    return _act(product_id, lambda: products.publish(
        current_user, product_id, address=request.remote_addr), "The product is published.")


@bp.post("/<int:product_id>/unpublish")
def unpublish(product_id: int):
    """Unpublish (an operator gives the seller a note)."""
    return _act(product_id, lambda: products.unpublish(
        current_user, product_id, request.form.get("note", ""), address=request.remote_addr),
        "The product is unpublished.")
