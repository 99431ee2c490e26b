"""Typed models, one module per aggregate. Import them from here."""

from portal.models.advisory import AdvisoryFlag
from portal.models.appeal import (
    AcceptedFalsePositive, Appeal, AppealClaim, AppealDecision, AppealEvidence, ClaimVerdict,
)
from portal.models.asset import Asset, AssetKind, AssetVersion, VersionStatus
from portal.models.audit import AuditEvent
from portal.models.calendar import CalendarDay
from portal.models.notification import Notification
from portal.models.policy import PolicyVersion
from portal.models.product import Product, product_versions
from portal.models.scan import Scan, ScanComponent, ScanFinding, ScanState
from portal.models.upload import UploadSession, UploadState
from portal.models.user import Role, User

__all__ = [
    "AdvisoryFlag", "AcceptedFalsePositive", "Appeal", "AppealClaim", "AppealDecision", "AppealEvidence",
    "CalendarDay", "ClaimVerdict", "Notification", "PolicyVersion",
    "Asset", "AssetKind", "AssetVersion", "VersionStatus", "AuditEvent", "Product",
    "product_versions", "Scan", "ScanComponent", "ScanFinding", "ScanState", "Role", "User",
    "UploadSession", "UploadState",
]
