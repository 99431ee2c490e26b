"""Rows for tests, made directly through the models (no rules applied)."""

from __future__ import annotations

import hashlib
import io
import itertools
from pathlib import Path

from portal import storage
from portal.extensions import db
from portal.models import (
    Asset, AssetKind, AssetVersion, Product, Role, Scan, ScanState, User, VersionStatus,
)
from portal.services.users import hash_password
from portal.timeutil import utcnow

PASSWORD = "correct horse battery"
PACKAGES = Path(__file__).resolve().parents[1] / "data" / "corpus" / "packages"
_hash_cache: dict[str, str] = {}


class Factories:
    """``factories.user()``, ``.asset(owner)``, ``.version(asset)``, ``.scan(version)``, …"""

    def __init__(self):
        self._seq = itertools.count(1)

    def user(self, role: Role | str = Role.seller, *, email: str | None = None,
             name: str | None = None, password: str = PASSWORD, active: bool = True) -> User:
        n = next(self._seq)
        email = email or f"{Role(role).value}{n}@example.com"
        if password not in _hash_cache:  # argon2 is slow on purpose: hash each password once
            _hash_cache[password] = hash_password(password)
        user = User(email=email, name=name or f"User {n}", password_hash=_hash_cache[password],
                    role=Role(role), active=active)
        return self._save(user)

    def asset(self, owner: User | None = None, *, name: str | None = None,
              kind: AssetKind | str = AssetKind.binary, description: str = "") -> Asset:
        owner = owner or self.user()
        asset = Asset(owner_id=owner.id, name=name or f"asset-{next(self._seq)}",
                      kind=AssetKind(kind), description=description)
        return self._save(asset)

    def version(self, asset: Asset | None = None, *, label: str | None = None,
                status: VersionStatus | str = VersionStatus.draft,
                package: bytes | str | None = None, package_name: str = "app.zip") -> AssetVersion:
        """A version; ``package`` (bytes, or a corpus file name) is uploaded to S3."""
        asset = asset or self.asset()
        version = AssetVersion(asset_id=asset.id, label=label or f"1.{next(self._seq)}",
                               status=VersionStatus(status))
        if status != VersionStatus.draft:
            version.submitted_at = utcnow()
        self._save(version)
        if package is not None:
            self.upload(version, package, package_name)
        return version

    def upload(self, version: AssetVersion, package: bytes | str, package_name: str = "app.zip"):
        """Store ``package`` in S3 as the version's package."""
        if isinstance(package, str):
            package_name = package
            package = (PACKAGES / package).read_bytes()
        key = storage.package_key(version.asset.owner_id, version.asset_id, version.id,
                                  storage.new_upload_id())
        storage.put_stream(key, io.BytesIO(package), max_bytes=len(package) + 1)
        version.package_key, version.package_name = key, package_name
        version.package_size = len(package)
        version.package_sha256 = hashlib.sha256(package).hexdigest()
        db.session.commit()
        return version

    def scan(self, version: AssetVersion, *, state: ScanState | str = ScanState.queued,
             **columns) -> Scan:
        scan = Scan(version_id=version.id, state=ScanState(state),
                    package_key=version.package_key or "packages/missing",
                    package_sha256=version.package_sha256, **columns)
        return self._save(scan)

    def product(self, owner: User, versions: list[AssetVersion], *, published: bool = True) -> Product:
        product = Product(owner_id=owner.id, name=f"product-{next(self._seq)}",
                          published=published)
        product.versions.extend(versions)
        return self._save(product)

    @staticmethod
    def _save(row):
        db.session.add(row)
        db.session.commit()
        return row
