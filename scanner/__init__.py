"""Assay's scanning library: package in, verdict, findings and outputs out.

Usable without the portal: ``python -m scanner scan PACKAGE --osv PATH``.
``scan_package`` and ``OsvDatabase`` are loaded on first use so that importing
the types in :mod:`scanner.model` stays cheap.
"""

from scanner.model import (
    STAGES,
    Claim,
    Component,
    Coverage,
    Cvss,
    Finding,
    Limits,
    PackageInfo,
    Progress,
    ScanError,
    ScanInfo,
    ScanResult,
    Settings,
)

__all__ = [
    "STAGES",
    "Claim",
    "Component",
    "Coverage",
    "Cvss",
    "Finding",
    "Limits",
    "OsvDatabase",
    "PackageInfo",
    "Progress",
    "ScanError",
    "ScanInfo",
    "ScanResult",
    "Settings",
    "scan_package",
]


def __getattr__(name: str):
    if name == "scan_package":
        from scanner.pipeline import scan_package

        return scan_package
    if name == "OsvDatabase":
        from scanner.osv import OsvDatabase

        return OsvDatabase
    raise AttributeError(f"module 'scanner' has no attribute {name!r}")
