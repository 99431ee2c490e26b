"""Swift and iOS: Package.resolved pins on branches and revisions, CocoaPods' Podfile.lock."""

from __future__ import annotations

import zipfile
from pathlib import Path

from .test_catalog import found, purls, scan

SWIFT = Path(__file__).parents[1] / "data" / "lockfiles" / "swift"
OSV = Path(__file__).parents[1] / "data" / "corpus" / "osv"


def test_package_resolved_v3_with_branch_and_revision_pins(tmp_path):
    at = "App/App.xcodeproj/project.xcworkspace/xcshareddata/swiftpm/Package.resolved"
    components = scan(tmp_path, {at: (SWIFT / "Package.resolved").read_bytes()})
    assert found(components) == {
        ("SwiftURL", "github.com/apple/swift-argument-parser", "1.2.2", at),
        ("SwiftURL", "github.com/apple/swift-nio", "e9eb4b1a01e1e4a5d7c9a2f1b8c6a2d3e4f5a6b7", at),
        ("SwiftURL", "github.com/apple/swift-log", "32e8d724467f8fe623624570367e3d50c5638e46", at),
    }  # not the local package
    assert (
        "pkg:swift/github.com/apple/swift-nio@e9eb4b1a01e1e4a5d7c9a2f1b8c6a2d3e4f5a6b7"
        in purls(components)
    )


def test_podfile_lock(tmp_path):
    at = "ios/Podfile.lock"
    components = scan(tmp_path, {at: (SWIFT / "Podfile.lock").read_bytes()})
    assert found(components) == {
        ("CocoaPods", "Alamofire", "5.6.2", at),
        ("CocoaPods", "AppCenter", "4.2.0", at),
        ("CocoaPods", "AppCenter/Analytics", "4.2.0", at),
        ("CocoaPods", "AppCenter/Core", "4.2.0", at),
        ("CocoaPods", "AppCenter/Crashes", "4.2.0", at),
        ("CocoaPods", "GoogleUtilities/Environment", "7.10.0", at),
        ("CocoaPods", "KeychainAccess", "4.2.1", at),
        ("CocoaPods", "PromisesObjC", "2.1.1", at),
        ("CocoaPods", "SnapKit", "5.6.0", at),
    }
    assert {
        "pkg:cocoapods/Alamofire@5.6.2",
        "pkg:cocoapods/AppCenter@4.2.0#Analytics",
        "pkg:cocoapods/GoogleUtilities@7.10.0#Environment",
    } <= purls(components)
    assert {c.scope for c in components} == {"runtime"}


def test_malformed_swift_metadata_is_skipped(tmp_path):
    components = scan(
        tmp_path,
        {
            "a/Podfile.lock": "PODS:\n  - (1.0)\n  - Name ()\n  - Other (http://x/y)\nDEPENDENCIES:\n  - X (1.0)\n",
            "b/Podfile.lock": b"\xff\xfe\x00garbage\n",
            "c/Podfile.lock": "DEPENDENCIES:\n  - Alamofire (5.6.2)\n",
            "d/Package.resolved": '{"pins": [{"location": "https://github.com/a/b", "state": "x"}]}',
            "e/Package.resolved": '{"pins": [',
        },
    )
    assert components == []


def test_ios_sources_through_the_scan(tmp_path, clamd):
    from scanner.model import Settings
    from scanner.osv import OsvDatabase
    from scanner.pipeline import scan_package

    package = tmp_path / "ios_app.zip"
    with zipfile.ZipFile(package, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.write(SWIFT / "Podfile.lock", "MyApp/Podfile.lock")
        zf.write(SWIFT / "Package.resolved", "MyApp/MyApp.xcworkspace/xcshareddata/swiftpm/Package.resolved")
    settings = Settings(osv_paths=(OSV,), clamd=clamd.address, scratch_dir=tmp_path)
    result = scan_package(package, settings, osv=OsvDatabase.load([OSV]))
    got = {(c.ecosystem, c.name, c.version, c.location) for c in result.components}
    assert ("CocoaPods", "AppCenter/Core", "4.2.0", "ios_app.zip!/MyApp/Podfile.lock") in got
    assert (
        "SwiftURL",
        "github.com/apple/swift-log",
        "32e8d724467f8fe623624570367e3d50c5638e46",
        "ios_app.zip!/MyApp/MyApp.xcworkspace/xcshareddata/swiftpm/Package.resolved",
    ) in got
    assert len(result.components) == 12
    assert result.verdict == "approved"
