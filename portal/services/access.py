"""Who may see and change which asset: the one place that looks an asset or version up
for an actor.

Sellers see their own assets; reviewers and operators see every asset. Anyone else gets
NotFound, exactly as for an asset that does not exist, so nobody learns what others own.
"""

from __future__ import annotations

from portal.extensions import db
from portal.models import Asset, AssetVersion, User
from portal.services.errors import Forbidden, NotFound


def may_see(actor: User | None, asset: Asset) -> bool:
    """The asset's owner, or any reviewer or operator."""
    return actor is not None and (asset.owner_id == actor.id or actor.is_reviewer)


def get_asset(actor: User, asset_id: int) -> Asset:
    """The asset if ``actor`` may see it; NotFound otherwise."""
    asset = db.session.get(Asset, asset_id)
    if asset is None or not may_see(actor, asset):
        raise NotFound("No such asset.")
    return asset


def get_version(actor: User, version_id: int) -> AssetVersion:
    """The version if ``actor`` may see its asset; NotFound otherwise."""
    version = db.session.get(AssetVersion, version_id)
    if version is None or not may_see(actor, version.asset):
        raise NotFound("No such version.")
    return version


def changeable_version(actor: User, version_id: int) -> AssetVersion:
    """A version the actor may change: only the owner changes packages (staff who may
    see it get Forbidden, everyone else NotFound)."""
    version = get_version(actor, version_id)
    if version.asset.owner_id != actor.id:
        raise Forbidden("Only the owner can change this version.")
    return version


def changeable_asset(actor: User, asset_id: int) -> Asset:
    """An asset the actor may add versions to: only its owner (staff who may see it get
    Forbidden, everyone else NotFound)."""
    asset = get_asset(actor, asset_id)
    if asset.owner_id != actor.id:
        raise Forbidden("Only the owner can add versions to this asset.")
    return asset


def own_version(actor: User | None, version_id: int) -> AssetVersion:
    """A version of the actor's own asset; NotFound for anyone else, staff included (pages
    only the owner has, such as the appeal page)."""
    version = db.session.get(AssetVersion, version_id)
    if version is None or actor is None or version.asset.owner_id != actor.id:
        raise NotFound("No such version.")
    return version
