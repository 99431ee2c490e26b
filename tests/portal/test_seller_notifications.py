"""Sellers have notifications too: what happened to their assets and products, with an
unread count in the navigation."""

from __future__ import annotations

from portal.models import Role, VersionStatus
from portal.services import products


def test_a_seller_reads_what_an_operator_did_to_their_product(client, auth, factories):
    seller = factories.user(name="Sam Seller")
    version = factories.version(factories.asset(seller), status=VersionStatus.approved)
    product = products.create_product(seller, name="Suite", version_ids=[version.id])
    products.publish(seller, product.id)
    products.unpublish(factories.user(Role.operator), product.id, "Licence text missing.")
    auth.login_as(seller)
    page = client.get("/assets/").get_data(as_text=True)
    assert 'href="/notifications"' in page and 'title="unread">1<' in page
    listing = client.get("/notifications").get_data(as_text=True)
    assert "Licence text missing." in listing and f'href="/products/{product.id}"' in listing
    assert "is-unread" in listing
    assert client.post("/notifications/read").status_code == 302
    listing = client.get("/notifications").get_data(as_text=True)
    assert "is-unread" not in listing
    assert 'title="unread"' not in client.get("/assets/").get_data(as_text=True)


def test_nothing_yet(client, auth, factories):
    auth.login_as(factories.user())
    assert "Messages about your assets and products" in client.get(
        "/notifications").get_data(as_text=True)
