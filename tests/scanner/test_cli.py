"""The command line contract: exit statuses, one-line errors, JSON keys, outputs."""

import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator

from scanner.cli import TerminalProgress

ROOT = Path(__file__).parents[2]
CORPUS = ROOT / "tests" / "data" / "corpus"
OSV = CORPUS / "osv"
CLEAN = CORPUS / "packages" / "pkg-c-clean.tar.gz"
PYTHON_APP = CORPUS / "packages" / "pkg-a-python-app.tar.gz"


def cli(*args, env=None):
    environ = {k: v for k, v in os.environ.items() if k != "ASSAY_SECRET_KEY"}
    return subprocess.run(
        [sys.executable, "-m", "scanner", *map(str, args)],
        check=False,
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
        env={**environ, **(env or {})},
    )


def assert_one_line_error(proc, *fragments):
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    for fragment in fragments:
        assert fragment in lines[0]
    assert proc.stdout == ""


def test_approved_exits_0():
    proc = cli("scan", CLEAN, "--osv", OSV)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("APPROVED")


def test_scan_is_the_default_command():
    assert cli(CLEAN, "--osv", OSV).returncode == 0


def test_rejected_exits_1_and_writes_every_output(tmp_path):
    out = tmp_path / "result.json"
    proc = cli(
        "scan",
        PYTHON_APP,
        "--osv",
        OSV,
        "--json",
        out,
        "--sbom",
        tmp_path / "b.cdx.json",
        "--report",
        tmp_path / "r.xlsx",
        env={"ASSAY_SECRET_KEY": "k" * 32},
    )
    assert proc.returncode == 1, proc.stderr
    result = json.loads(out.read_text())
    assert result["verdict"] == "rejected"

    sbom = (tmp_path / "b.cdx.json").read_text()
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(sbom) is None
    purls = {c["purl"] for c in json.loads(sbom)["components"]}
    assert purls == {c["purl"] for c in result["components"]}

    appeal = cli("appeal", tmp_path / "r.xlsx", "--secret", "k" * 32)
    assert appeal.returncode == 0, appeal.stderr
    claims = json.loads(appeal.stdout)
    assert claims == {
        "report_id": f"{result['package']['sha256']}@{result['scan']['started']}",
        "claims": [],
    }
    # The portal binds its reports with the key derived from the same secret: the CLI
    # reads them, and a report bound with the bare secret is refused.
    from portal.keys import report_key_for
    from scanner.model import ScanResult
    from scanner.report import write_report

    scanned = ScanResult.from_dict(result)
    (tmp_path / "p.xlsx").write_bytes(
        write_report(scanned, report_id="scan-7", secret=report_key_for("k" * 32)))
    assert cli("appeal", tmp_path / "p.xlsx", "--secret", "k" * 32).returncode == 0
    (tmp_path / "raw.xlsx").write_bytes(write_report(scanned, report_id="scan-7", secret="k" * 32))
    assert cli("appeal", tmp_path / "raw.xlsx", "--secret", "k" * 32).returncode == 2


def test_json_has_every_contract_key():
    proc = cli("scan", PYTHON_APP, "--osv", OSV, "--threshold", "7.0", "--json", "-")
    assert proc.returncode == 1, proc.stderr
    result = json.loads(proc.stdout)  # nothing but JSON on stdout
    assert result["verdict"] in ("approved", "rejected")
    assert set(result["package"]) >= {"name", "size", "sha256", "format"}
    component_keys = {"ecosystem", "name", "version", "purl", "location", "scope"}
    assert result["components"] and all(set(c) == component_keys for c in result["components"])
    assert {c["scope"] for c in result["components"]} <= {"runtime", "dev", "optional", "unknown"}
    # installed distributions are shipped code: their scope is runtime
    installed = [c for c in result["components"] if "site-packages/" in c["location"]]
    assert installed and {c["scope"] for c in installed} == {"runtime"}
    finding_keys = {
        "id",
        "type",
        "ids",
        "aliases",
        "component",
        "location",
        "cvss",
        "severity",
        "blocking",
        "signature",
    }
    for finding in result["findings"]:
        assert set(finding) >= finding_keys
        assert finding["type"] in ("virus", "vulnerability", "unscanned")
        assert isinstance(finding["blocking"], bool)
        assert finding["cvss"] is None or set(finding["cvss"]) == {"score", "vector", "source"}
        assert finding["component"] is None or set(finding["component"]) >= component_keys
    assert set(result["scan"]) >= {
        "policy",
        "threshold",
        "engines",
        "osv_records",
        "started",
        "finished",
    }


def test_threshold_changes_the_verdict():
    proc = cli("scan", PYTHON_APP, "--osv", OSV, "--threshold", "9.9", "--json", "-")
    result = json.loads(proc.stdout)
    assert not any(f["blocking"] for f in result["findings"])
    assert (proc.returncode, result["verdict"]) == (0, "approved")


def test_bad_package_name_is_a_one_line_error(tmp_path):
    package = tmp_path / "my package!.tar.gz"
    shutil.copy(CLEAN, package)
    assert_one_line_error(cli("scan", package, "--osv", OSV), "error:", "my package!")


def test_bad_format_is_a_one_line_error(tmp_path):
    package = tmp_path / "app.zip"
    package.write_text("not a zip at all\n" * 10)
    assert_one_line_error(cli("scan", package, "--osv", OSV), "error:")


def test_extension_outside_the_rules_is_a_one_line_error(tmp_path):
    package = tmp_path / "app.rar"
    shutil.copy(CLEAN, package)
    assert_one_line_error(cli("scan", package, "--osv", OSV), "error:")


@pytest.mark.parametrize(
    "args, fragment",
    [
        (("scan", "missing.tar.gz", "--osv", OSV), "package not found"),
        (("scan", CLEAN), "--osv"),
        (("scan", CLEAN, "--osv", "/nonexistent/osv"), "OSV data not found"),
        (("scan", CLEAN, "--osv", OSV, "--threshold", "11"), "threshold"),
        (("scan", CLEAN, "--osv", OSV, "--report", "r.xlsx"), "--secret"),
        (("frobnicate",), "error"),
        ((), "error"),
    ],
)
def test_usage_errors_exit_2_with_one_line(args, fragment):
    assert_one_line_error(cli(*args), fragment)


def test_appeal_refuses_a_foreign_or_broken_file(tmp_path):
    report = tmp_path / "r.xlsx"
    report.write_bytes(b"PK\x03\x04 this is no workbook")
    assert_one_line_error(cli("appeal", report, "--secret", "k"), "error:")
    assert_one_line_error(cli("appeal", tmp_path / "missing.xlsx", "--secret", "k"), "not found")
    assert_one_line_error(cli("appeal", report), "--secret")


def test_no_progress_display_when_stderr_is_not_a_terminal():
    proc = cli("scan", CLEAN, "--osv", OSV)
    assert proc.stderr == ""


def test_terminal_progress_rewrites_one_line():
    stream = io.StringIO()
    show = TerminalProgress(stream, interval=0)
    show("fetch", 0, 100)
    show("fetch", 100, 100)
    show("virus", 3, 4)
    show.close()
    text = stream.getvalue()
    assert text.count("\n") == 1 and text.endswith("\n")
    assert "[1/8] fetch" in text and "100%" in text and "[6/8] virus" in text and "3/4" in text
