"""Products: sellers release Approved versions as commercial-license software; association
blocks deleting the asset and modifying a published version in place; operators unpublish
with a note the seller reads."""

from __future__ import annotations

import io

import pytest

from portal.extensions import db
from portal.models import Asset, AuditEvent, Notification, Product, Role, VersionStatus
from portal.services import assets, products, state
from portal.services.errors import Forbidden, NotFound, ValidationError
from tests.portal.test_views_security import assert_csp_safe


@pytest.fixture
def seller(factories):
    return factories.user(name="Sam Seller")


def approved(factories, seller, name="tool", label="1.0"):
    return factories.version(factories.asset(seller, name=name), label=label,
                             status=VersionStatus.approved, package="pkg-c-clean.tar.gz")


def test_a_product_of_approved_versions_is_created_then_published(app, factories, seller):
    version = approved(factories, seller)
    product = products.create_product(seller, name="Tool Suite", summary="All our tools",
                                      price_note="per seat, yearly", version_ids=[version.id])
    assert (product.license_type, product.published) == ("Commercial license", False)
    assert product.versions == [version]
    products.publish(seller, product.id, address="10.0.0.2")
    assert product.published and product.published_at is not None
    assert [e.action for e in AuditEvent.query.order_by(AuditEvent.id)] == [
        "product.create", "product.publish"]


@pytest.mark.parametrize("status", [VersionStatus.draft, VersionStatus.scanning,
                                    VersionStatus.rejected, VersionStatus.reviewing])
def test_only_approved_versions_are_released(app, factories, seller, status):
    version = factories.version(factories.asset(seller), status=status)
    with pytest.raises(ValidationError, match="Only Approved versions"):
        products.create_product(seller, name="P", version_ids=[version.id])
    assert Product.query.count() == 0


def test_publishing_needs_every_version_approved_at_that_moment(app, factories, seller):
    one, two = approved(factories, seller, "a"), approved(factories, seller, "b")
    product = products.create_product(seller, name="P", version_ids=[one.id, two.id])
    two.status = VersionStatus.rejected  # a re-scan rejected it meanwhile
    db.session.commit()
    with pytest.raises(ValidationError, match="not approved now: b 1.0"):
        products.publish(seller, product.id)
    empty = products.create_product(seller, name="Empty")
    with pytest.raises(ValidationError, match="at least one"):
        products.publish(seller, empty.id)


def test_other_sellers_versions_and_products_are_not_found(app, factories, seller):
    other = factories.user()
    theirs = approved(factories, other)
    with pytest.raises(NotFound):
        products.create_product(seller, name="P", version_ids=[theirs.id])
    product = products.create_product(other, name="Theirs")
    with pytest.raises(NotFound):
        products.get_product(seller, product.id)
    with pytest.raises(Forbidden):
        products.create_product(factories.user(Role.reviewer), name="P")


def test_a_released_asset_cannot_be_deleted_and_a_published_version_not_modified(
        app, factories, seller):
    version = approved(factories, seller)
    product = products.create_product(seller, name="Tool Suite", version_ids=[version.id])
    assert "Tool Suite (not published)" in assets.deletion_blocker(version.asset)
    with pytest.raises(ValidationError, match="Released in the product Tool Suite"):
        assets.delete_asset(seller, version.asset_id)
    assert state.can(version, "submit")  # not published yet: Modify is allowed
    products.publish(seller, product.id)
    assert "add a new version" in state.refusal(version, "submit")
    with pytest.raises(ValidationError, match="add a new version"):
        assets.modify_version(seller, version.id, stream=io.BytesIO(b""), filename="a.zip")
    # removing a version needs the product unpublished first; then the asset can go
    with pytest.raises(ValidationError, match="Unpublish"):
        products.remove_version(seller, product.id, version.id)
    products.unpublish(seller, product.id)
    products.remove_version(seller, product.id, version.id)
    assert assets.deletion_blocker(version.asset) is None
    assets.delete_asset(seller, version.asset_id)
    assert Asset.query.count() == 0


def test_an_operator_unpublishes_with_a_note_and_the_seller_is_notified(app, factories, seller):
    version = approved(factories, seller)
    product = products.create_product(seller, name="P", version_ids=[version.id])
    products.publish(seller, product.id)
    operator = factories.user(Role.operator)
    assert [p.id for p in products.list_products(operator)] == [product.id]
    with pytest.raises(ValidationError, match="Say why"):
        products.unpublish(operator, product.id, "  ")
    products.unpublish(operator, product.id, "Trademark complaint; contact support.")
    assert not product.published and product.unpublished_note.startswith("Trademark")
    note = Notification.query.filter_by(user_id=seller.id).one()
    assert note.kind == "product_unpublished" and "Trademark complaint" in note.text
    event = AuditEvent.query.filter_by(action="product.unpublish").one()
    assert event.actor_id == operator.id and event.after["note"].startswith("Trademark")


def test_the_pages(client, auth, factories, seller):
    version = approved(factories, seller)
    auth.login_as(seller)
    page = client.get("/products/new").get_data(as_text=True)
    assert_csp_safe(page)
    assert "tool 1.0" in page
    refused = client.post("/products/new", data={"name": ""})
    assert refused.status_code == 422 and "Give the product a name" in refused.get_data(
        as_text=True)
    done = client.post("/products/new", data={"name": "Tool Suite", "version_id": [version.id],
                                              "price_note": "yearly"}, follow_redirects=True)
    html = done.get_data(as_text=True)
    assert "Product Tool Suite created" in html and "Commercial license" in html
    product = Product.query.one()
    published = client.post(f"/products/{product.id}/publish", follow_redirects=True)
    assert "The product is published." in published.get_data(as_text=True)
    detail = client.get(f"/assets/{version.asset_id}").get_data(as_text=True)
    assert "in <a" in detail and "Tool Suite</a> (published)" in detail
    assert "Released in the product Tool Suite (published)" in detail
    listing = client.get("/assets/").get_data(as_text=True)
    assert "in Tool Suite (published)" in listing


def test_reviewers_have_no_product_pages(client, auth, factories):
    auth.login_as(factories.user(Role.reviewer))
    assert client.get("/products/").status_code == 403
