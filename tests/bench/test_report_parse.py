"""Reading an appeal workbook in the web process: how long one request spends on it.

Three figures, recorded and not asserted:

- a normal filled-in report (200 findings, three claims);
- the largest genuine report an appeal accepts: as many findings as fit in the
  10 MB upload limit while staying under the one-million-cell bound;
- the worst crafted workbook the container check lets through to openpyxl: a report
  whose Findings sheet is padded to just under the cell bound, with just under the
  shared-string bound (openpyxl reads it all before the padding is refused).
"""

from __future__ import annotations

import io
import time
import zipfile

import openpyxl
import pytest

from scanner import report
from scanner.model import Cvss, Finding
from scanner.report import ReportError, read_appeal, write_report
from tests.scanner.report_fixtures import scan_result

pytestmark = pytest.mark.bench

SECRET = "bench-secret"
MAX_APPEAL_BYTES = 10 * 1024 * 1024  # portal.services.appeals.MAX_REPORT_BYTES
LARGEST = 37_000  # findings: 26 cells each (19 on Findings, 7 on the binding) < 1,000,000


def findings(n: int) -> tuple[Finding, ...]:
    return tuple(
        Finding(id=f"{i:032x}", type="vulnerability",
                location=f"app.tar.gz!/lib/module-{i}/m{i}.jar!/META-INF/maven/org.example/"
                         "lib/pom.properties",
                blocking=i % 2 == 0, ids=(f"GHSA-{i:04d}-xxxx-yyyy",), aliases=(f"CVE-2020-{i}",),
                cvss=Cvss(5.0 + (i % 50) / 10, "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N",
                          f"GHSA-{i:04d}-xxxx-yyyy"),
                summary=f"A vulnerability summary {i} of a realistic length. " * 4,
                references=(f"https://nvd.nist.gov/vuln/detail/CVE-2020-{i}",))
        for i in range(n)
    )


def timed(data: bytes, **kwargs) -> float:
    started = time.perf_counter()
    try:
        read_appeal(data, secret=SECRET, report_id="scan-1", max_bytes=MAX_APPEAL_BYTES, **kwargs)
    except ReportError:
        pass  # the crafted workbook is refused after openpyxl has read it: the time counts
    return time.perf_counter() - started


def test_normal_report(bench_record):
    data = write_report(scan_result(findings(200)), report_id="scan-1", secret=SECRET)
    wb = openpyxl.load_workbook(io.BytesIO(data))
    for row in (2, 3, 4):
        wb["Findings"][f"F{row}"] = "Yes"
        wb["Findings"][f"G{row}"] = "Component not present"
        wb["Findings"][f"H{row}"] = "Removed from the build; see the attached lockfile."
    out = io.BytesIO()
    wb.save(out)
    bench_record("appeal_parse_seconds_normal_200_findings", round(timed(out.getvalue()), 3), "s")


def test_largest_genuine_report(bench_record):
    data = write_report(scan_result(findings(LARGEST)), report_id="scan-1", secret=SECRET)
    assert len(data) <= MAX_APPEAL_BYTES
    seconds = timed(data, require_yes=False)
    bench_record("appeal_parse_seconds_largest_genuine", round(seconds, 3), "s",
                 findings=LARGEST, megabytes=round(len(data) / 2**20, 2))


def test_worst_crafted_workbook_that_reaches_openpyxl(bench_record):
    base = write_report(scan_result(findings(200)), report_id="scan-1", secret=SECRET)
    room = report.MAX_CELLS - 200 * 26 - 200  # leave the Summary's cells some room
    cols = 60
    rows = b"".join(b'<row r="%d">%s</row>' % (r, b'<c t="s"><v>0</v></c>' * cols)
                    for r in range(300, 300 + room // cols))
    strings = (b'<sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
               + b"".join(b"<si><t>%d %s</t></si>" % (i, b"x" * 40)
                          for i in range(report.MAX_SHARED_STRINGS - 1))
               + b"</sst>")
    src = zipfile.ZipFile(io.BytesIO(base))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            body = src.read(info)
            if info.filename == "xl/worksheets/sheet2.xml":  # Findings: read in full
                body = body.replace(b"</sheetData>", rows + b"</sheetData>")
            if info.filename == "[Content_Types].xml":
                body = body.replace(b"</Types>", b'<Override PartName="/xl/sharedStrings.xml" '
                                    b'ContentType="application/vnd.openxmlformats-officedocument'
                                    b'.spreadsheetml.sharedStrings+xml"/></Types>')
            dst.writestr(info.filename, body)
        dst.writestr("xl/sharedStrings.xml", strings)
    data = out.getvalue()
    assert len(data) <= MAX_APPEAL_BYTES
    bench_record("appeal_parse_seconds_worst_crafted", round(timed(data), 3), "s",
                 megabytes=round(len(data) / 2**20, 2))
