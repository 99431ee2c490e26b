"""Dev-only dependencies: listed with their scope, blocking only when the policy says so.

A real npm lockfile in a seller package (.tar.gz), the real clamd and the OSV corpus
(minimist 0.0.8 has a critical advisory there).
"""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

from openpyxl import load_workbook

from scanner.pipeline import DEV_NOTE
from scanner.report import FINDINGS, write_report
from scanner.sbom import write_sbom


def lock(dev: bool) -> bytes:
    """package-lock.json v3 as npm 9 writes it, minimist a dev dependency or not."""
    entry = {"version": "0.0.8",
             "resolved": "https://registry.npmjs.org/minimist/-/minimist-0.0.8.tgz",
             "integrity": "sha512-x"}
    if dev:
        entry["dev"] = True
    return json.dumps({
        "name": "shop", "version": "1.0.0", "lockfileVersion": 3, "requires": True,
        "packages": {
            "": {"name": "shop", "version": "1.0.0", "devDependencies": {"minimist": "0.0.8"}},
            "node_modules/minimist": entry,
        },
    }, indent=2).encode()


def package(path: Path, files: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


def minimist(result):
    (finding,) = [f for f in result.findings if f.component and f.component.name == "minimist"
                  and "CVE-2021-44906" in (*f.ids, *f.aliases)]
    return finding


def test_a_dev_only_vulnerability_is_listed_and_does_not_block(tmp_path, scan_package_at):
    pkg = package(tmp_path / "shop.tar.gz", {"shop/package-lock.json": lock(dev=True)})

    result = scan_package_at(pkg)
    finding = minimist(result)
    assert finding.component.scope == "dev"
    assert not finding.blocking and finding.summary.startswith(DEV_NOTE)
    assert result.verdict == "approved"

    # the report says so on the row; the SBOM marks the component as not shipped
    ws = load_workbook(io.BytesIO(write_report(result, report_id="r", secret=b"k")))[FINDINGS]
    rows = [[c.value for c in row] for row in ws.iter_rows(min_row=2)]
    (row,) = [r for r in rows if r[0] == finding.id]
    assert "dev dependency" in row[2] and row[8] == "No"
    sbom = json.loads(write_sbom(result))
    (component,) = [c for c in sbom["components"] if c["name"] == "minimist"]
    assert component["scope"] == "excluded"

    # the operator's policy can make them block
    strict = scan_package_at(pkg, dev_blocks=True)
    assert minimist(strict).blocking and strict.verdict == "rejected"


def test_the_same_component_shipped_elsewhere_still_blocks(tmp_path, scan_package_at):
    installed = json.dumps({"name": "minimist", "version": "0.0.8"}).encode()
    pkg = package(tmp_path / "shop.tar.gz", {
        "shop/package-lock.json": lock(dev=True),
        "shop/dist/node_modules/minimist/package.json": installed,
    })  # fmt: skip
    result = scan_package_at(pkg)
    finding = minimist(result)
    assert finding.component.scope == "runtime" and finding.blocking
    assert result.verdict == "rejected"
