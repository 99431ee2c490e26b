"""The security scan report: real openpyxl round trips, as a seller would make them."""

import io
import os
import re
import zipfile

import defusedxml
import openpyxl
import pytest

from scanner import report
from scanner.model import Cvss, Finding
from scanner.report import REASONS, Appeal, ReportError, read_appeal, require_claims, write_report

from .report_fixtures import NO_VECTOR_ID, UNSCANNED_ID, VIRUS_ID, VULN_ID, scan_result

SECRET = "report-secret-for-tests"
REPORT_ID = "scan-0042"
ACCEPTED = {NO_VECTOR_ID: "accepted by reviewer@example.com on 2026-02-20"}
FINDINGS_XML = "xl/worksheets/sheet2.xml"
BINDING_XML = "xl/worksheets/sheet4.xml"


def issued(result=None, **kwargs) -> bytes:
    kwargs = {"report_id": REPORT_ID, "secret": SECRET, "asset_name": "Shop backend",
              "version_label": "2.4.1", "accepted": ACCEPTED, **kwargs}
    return write_report(result or scan_result(), **kwargs)


def edited(data: bytes, change) -> bytes:
    """Open, change and save the workbook with openpyxl, as a seller's spreadsheet program would."""
    wb = openpyxl.load_workbook(io.BytesIO(data))
    change(wb)
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


def filled(data: bytes, **cells) -> bytes:
    """Set cells of the Findings sheet, e.g. filled(data, F3="Yes", G3="...")."""

    def change(wb):
        for ref, value in cells.items():
            wb[report.FINDINGS][ref] = value

    return edited(data, change)


def rezipped(data: bytes, name: str, transform) -> bytes:
    """Rewrite one part of the xlsx zip, leaving the others byte for byte."""
    src = zipfile.ZipFile(io.BytesIO(data))
    assert name in src.namelist()
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            body = src.read(info)
            dst.writestr(info.filename, transform(body) if info.filename == name else body)
    return out.getvalue()


def appeal_of(data: bytes, **kwargs) -> Appeal:
    return read_appeal(data, secret=kwargs.pop("secret", SECRET),
                       report_id=kwargs.pop("report_id", REPORT_ID), **kwargs)


def refused(data: bytes, **kwargs) -> str:
    with pytest.raises(ReportError) as caught:
        appeal_of(data, **kwargs)
    return str(caught.value)


YES_ON_VULN = {"F3": "Yes", "G3": "Vulnerable code not in execute path",
               "H3": "full_load is never called; see src/config.py"}


# --------------------------------------------------------------------------- layout


@pytest.fixture(scope="module")
def book():
    return openpyxl.load_workbook(io.BytesIO(issued()))


def test_sheets_and_their_visibility(book):
    assert book.sheetnames == ["Summary", "Findings", "_lists", "_binding"]
    states = {ws.title: ws.sheet_state for ws in book.worksheets}
    assert states == {"Summary": "visible", "Findings": "visible",
                      "_lists": "veryHidden", "_binding": "veryHidden"}
    assert book.security.lockStructure
    assert all(ws.protection.sheet and ws.protection.password for ws in book.worksheets)


def test_findings_header_and_rows(book):
    ws = book["Findings"]
    header = [c.value for c in ws[1]]
    assert header[:8] == ["Finding ID", "Type", "Component / file", "Identifiers", "CVSS score",
                          "False positive? (Yes/No)", "Reason", "Evidence / remarks"]
    assert "Blocking" in header and "CVSS vector" in header and "Accepted false positive" in header
    assert all(c.font.b for c in ws[1])
    assert ws.freeze_panes == "B2"
    assert ws.auto_filter.ref == f"A1:{openpyxl.utils.get_column_letter(len(header))}5"

    rows = {r[0]: dict(zip(header, r)) for r in ws.iter_rows(min_row=2, values_only=True)}
    assert list(rows) == [VIRUS_ID, VULN_ID, NO_VECTOR_ID, UNSCANNED_ID]

    virus = rows[VIRUS_ID]
    assert virus["Type"] == "Virus"
    assert virus["Component / file"] == "app.tar.gz!/bin/tools.zip!/helper.exe"
    assert virus["Identifiers"] == "Win.Test.EICAR_HDB-1"
    assert virus["CVSS score"] is None and virus["Blocking"] == "Yes"

    vuln = rows[VULN_ID]
    assert vuln["Type"] == "Vulnerability"
    assert vuln["Component / file"] == "PyYAML 5.3 (PyPI)"
    assert vuln["Identifiers"] == "GHSA-6757-jp84-gxfx, PYSEC-2020-96 (aliases: CVE-2020-1747)"
    assert vuln["CVSS score"] == 9.8
    assert vuln["CVSS vector"] == "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"
    assert vuln["CVSS source"] == "GHSA-6757-jp84-gxfx"
    assert vuln["Severity"] == "CRITICAL"
    assert vuln["Fixed versions"] == "5.3.1"
    assert vuln["Package URL"] == "pkg:pypi/pyyaml@5.3"
    assert "github.com/yaml/pyyaml/pull/386" in vuln["References"]
    comment = ws.cell(3, 5).comment
    assert "CVSS:3.1/AV:N" in comment.text and "GHSA-6757-jp84-gxfx" in comment.text

    no_vector = rows[NO_VECTOR_ID]
    assert no_vector["CVSS score"] is None and no_vector["CVSS vector"] is None
    assert no_vector["Severity"] == "MODERATE"
    assert no_vector["Accepted false positive"] == ACCEPTED[NO_VECTOR_ID]
    assert no_vector["Blocking"] == "No (accepted)"
    assert ws.cell(4, 5).comment is None

    unscanned = rows[UNSCANNED_ID]
    assert unscanned["Type"] == "Unscanned"
    assert unscanned["Identifiers"] == "Heuristics.Limits.Exceeded.MaxFileSize"
    assert unscanned["Blocking"] == "Yes"


def test_only_f_to_h_are_editable(book):
    ws = book["Findings"]
    for row in ws.iter_rows(min_row=1, max_row=5):
        for cell in row:
            editable = cell.row > 1 and cell.column_letter in "FGH"
            assert cell.protection.locked is not editable, cell.coordinate
    assert ws.protection.sort, "sorting would reorder the bound rows"
    assert not ws.protection.autoFilter


def test_drop_downs_on_f_and_g(book):
    ws = book["Findings"]
    by_range = {str(dv.sqref): dv for dv in ws.data_validations.dataValidation}
    yes_no, reasons = by_range["F2:F5"], by_range["G2:G5"]
    assert yes_no.type == "list" and yes_no.formula1 == '"Yes,No"' and yes_no.showErrorMessage
    assert reasons.type == "list" and not reasons.showErrorMessage
    assert reasons.errorStyle == "information"
    sheet, cells = next(book.defined_names[reasons.formula1].destinations)
    listed = [c.value for row in book[sheet][cells] for c in row]
    assert tuple(listed) == REASONS


def test_summary_sheet(book):
    ws = book["Summary"]
    values = {r[0]: r[1] for r in ws.iter_rows(min_row=2, values_only=True) if r[0]}
    assert values["Asset"] == "Shop backend"
    assert values["Version"] == "2.4.1"
    assert values["Package"] == "shop-backend(2)"
    assert values["Size (bytes)"] == 48_213_771
    assert values["SHA-256"] == "5d41402abc4b2a76b9719d911017c592" * 2
    assert values["Format"] == "tar.gz"
    assert values["Verdict"] == "Rejected"
    assert values["Virus findings"] == 1
    assert values["Vulnerability findings"] == 2
    assert values["Unscanned findings"] == 1
    assert values["Blocking findings"] == 3
    assert values["Accepted false positives"] == 1
    assert values["Highest CVSS score"] == 9.8
    assert values["CVSS threshold"] == 7.0
    assert values["Policy"] == "assay-2026.1"
    assert values["Engine: clamav"] == "ClamAV 1.4.3/27000"
    assert values["Engine: yara"] == "4.5.4"
    assert values["Engine: osv"] == "sha256:abc123"
    assert values["Vulnerability records"] == 412_337
    assert values["Scan started (UTC)"] == "2026-03-02T08:00:00Z"
    assert values["Scan finished (UTC)"] == "2026-03-02T08:03:41Z"
    assert values["Report ID"] == REPORT_ID
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", values["Report generated (UTC)"])
    assert "column F" in values["How to appeal"]


def test_binding_sheet(book):
    ws = book["_binding"]
    head = {r[0]: r[1] for r in ws.iter_rows(max_row=4, values_only=True)}
    assert head["format"] == report.FORMAT
    assert head["report_id"] == REPORT_ID
    assert head["rows"] == 4
    assert re.fullmatch(r"[0-9a-f]{64}", head["hmac"])
    assert [ws["A5"].value, ws["B5"].value] == ["key_id", report.key_id(SECRET)]
    ids = [r[1] for r in ws.iter_rows(min_row=7, values_only=True)]
    assert ids == [VIRUS_ID, VULN_ID, NO_VECTOR_ID, UNSCANNED_ID]


def test_key_id_is_short_public_and_follows_the_key():
    assert re.fullmatch(r"[0-9a-f]{12}", report.key_id(SECRET))
    assert report.key_id(SECRET) == report.key_id(SECRET.encode())
    assert report.key_id(SECRET) != report.key_id("another-installation")
    assert report.key_id(SECRET) not in SECRET.encode().hex()


def test_text_that_looks_like_a_formula_stays_text():
    odd = Finding(id="=1+1", type="virus", location="=HYPERLINK(\"http://x\")\x07.exe",
                  blocking=True, signature="Eicar\x00", summary="line\r\nbreak")
    data = issued(scan_result((odd,)))
    ws = openpyxl.load_workbook(io.BytesIO(data))["Findings"]
    assert ws["A6"].value == "=1+1" and ws["A6"].data_type == "s"
    assert ws["C6"].value == "=HYPERLINK(\"http://x\").exe"
    assert ws["D6"].value == "Eicar"
    data = filled(data, F6="Yes", G6="Signature false positive (file is benign)")
    claims = appeal_of(data).claims
    assert [c.finding_id for c in claims] == ["=1+1"]


# --------------------------------------------------------------------------- round trips


def test_seller_fills_f_to_h_and_the_claims_come_back():
    data = filled(
        issued(),
        F2=" y ", G2="signature FALSE positive (file is benign)",
        H2="vendor tool, hash on VirusTotal",
        F3="YES", G3="Vulnerable code not in execute path", H3="full_load is never called",
        F4="no",
        F5="Yes", G5="the archive holds sample data only", H5=12345,
    )
    appeal = appeal_of(data)
    assert appeal.report_id == REPORT_ID
    got = [(c.finding_id, c.false_positive, c.reason, c.evidence, c.row) for c in appeal.claims]
    assert got == [
        (VIRUS_ID, True, "Signature false positive (file is benign)",
         "vendor tool, hash on VirusTotal", 2),
        (VULN_ID, True, "Vulnerable code not in execute path", "full_load is never called", 3),
        (NO_VECTOR_ID, False, "", "", 4),
        (UNSCANNED_ID, True, "the archive holds sample data only", "12345", 5),
    ]


def test_rows_left_blank_are_omitted():
    appeal = appeal_of(filled(issued(), **YES_ON_VULN))
    assert [c.finding_id for c in appeal.claims] == [VULN_ID]


def test_report_id_is_optional_when_reading():
    appeal = read_appeal(filled(issued(), **YES_ON_VULN), secret=SECRET.encode())
    assert appeal.report_id == REPORT_ID


def test_several_saves_keep_the_binding():
    data = filled(issued(), **YES_ON_VULN)
    data = filled(data, H3="full_load is never called; updated")
    data = edited(data, lambda wb: None)
    assert appeal_of(data).claims[0].evidence == "full_load is never called; updated"


def test_whole_number_scores_survive_a_save():
    seven = Finding(id="77", type="vulnerability", location="x", blocking=True, ids=("CVE-1",),
                    cvss=Cvss(7.0, "CVSS:3.1/AV:N/AC:H/PR:N/UI:N/S:U/C:H/I:H/A:N", "CVE-1"))
    data = filled(issued(scan_result((seven,))), F6="Yes", G6="Component not present")
    assert openpyxl.load_workbook(io.BytesIO(data))["Findings"]["E6"].value == 7
    assert appeal_of(data).claims[0].finding_id == "77"


@pytest.mark.parametrize("written", [b"9.8", b"9.8000000000000007", b"9.80000000000000"])
def test_a_score_as_other_programs_write_it_still_verifies(written):
    def rewrite(xml: bytes) -> bytes:
        cell = rb'(<c r="E3"[^>]*><v>)[^<]*(</v>)'
        xml, count = re.subn(cell, rb"\g<1>" + written + rb"\g<2>", xml)
        assert count == 1
        return xml

    data = rezipped(filled(issued(), **YES_ON_VULN), FINDINGS_XML, rewrite)
    assert len(appeal_of(data).claims) == 1


def test_data_validation_extensions_written_by_excel_are_tolerated():
    x14 = (
        b'<extLst><ext uri="{CCE6A557-97BC-4b89-ADB6-D9C93CAAB3DF}" '
        b'xmlns:x14="http://schemas.microsoft.com/office/spreadsheetml/2009/9/main">'
        b'<x14:dataValidations count="0" '
        b'xmlns:xm="http://schemas.microsoft.com/office/excel/2006/main"/></ext></extLst>'
    )
    data = rezipped(filled(issued(), **YES_ON_VULN), FINDINGS_XML,
                    lambda xml: xml.replace(b"</worksheet>", x14 + b"</worksheet>"))
    with pytest.warns(UserWarning, match="extension is not supported"):
        openpyxl.load_workbook(io.BytesIO(data))
    assert len(appeal_of(data).claims) == 1


# --------------------------------------------------------------------------- tampering


def test_changed_cell_in_a_to_e_is_named():
    message = refused(filled(issued(), C3="PyYAML 5.4 (PyPI)", **YES_ON_VULN))
    assert message.startswith("Row 3, column C was changed")
    assert "F–H" in message


def test_changed_score_is_named():
    assert refused(filled(issued(), E3=6.9, **YES_ON_VULN)).startswith("Row 3, column E")


def test_changed_finding_id_is_named():
    message = refused(filled(issued(), A5="0000000000000000", **YES_ON_VULN))
    assert message.startswith("Row 5: column A was changed")


def test_removed_row():
    data = edited(filled(issued(), **YES_ON_VULN), lambda wb: wb["Findings"].delete_rows(2))
    message = refused(data)
    assert message.startswith("Row 2:") and "sorted, moved or removed" in message


def test_removed_last_row():
    data = edited(filled(issued(), **YES_ON_VULN), lambda wb: wb["Findings"].delete_rows(5))
    assert refused(data).startswith(f"Row 5: finding {UNSCANNED_ID} is missing")


def test_added_row_at_the_end():
    def add(wb):
        wb["Findings"].append(["deadbeefdeadbeef", "Virus", "x", "y", None, "Yes", "Other", "z"])

    message = refused(edited(filled(issued(), **YES_ON_VULN), add))
    assert message.startswith("Row 6 was added")


def test_inserted_row():
    def insert(wb):
        ws = wb["Findings"]
        ws.insert_rows(3)
        for col, value in enumerate(["feedfacefeedface", "Virus", "x", "y"], start=1):
            ws.cell(3, col, value)

    message = refused(edited(filled(issued(), **YES_ON_VULN), insert))
    assert message.startswith(f"Row 3: a row was inserted above finding {VULN_ID}")


def test_reordered_rows():
    def swap(wb):
        ws = wb["Findings"]
        for col in range(1, ws.max_column + 1):
            a, b = ws.cell(2, col), ws.cell(3, col)
            a.value, b.value = b.value, a.value

    message = refused(edited(filled(issued(), **YES_ON_VULN), swap))
    assert message.startswith(f"Row 2: it should hold finding {VIRUS_ID}: rows were sorted")


def test_note_below_the_findings_is_refused():
    message = refused(filled(issued(), H9="see attached", **YES_ON_VULN))
    assert message.startswith("Row 9 holds no finding")


def test_changed_header():
    message = refused(filled(issued(), F1="Accepted?", **YES_ON_VULN))
    assert message.startswith("Row 1 (the header")


def test_altered_binding_hmac():
    def alter(wb):
        ws = wb["_binding"]
        ws["B4"] = ("0" if ws["B4"].value[0] != "0" else "1") + ws["B4"].value[1:]

    message = refused(edited(filled(issued(), **YES_ON_VULN), alter))
    assert message.startswith("This report could not be verified")


def test_binding_rewritten_to_match_a_changed_row():
    # Copy the digests of row 2 over row 3's: the HMAC over the binding catches it.
    def alter(wb):
        ws = wb["_binding"]
        for col in range(3, 8):
            ws.cell(8, col).value = ws.cell(7, col).value

    assert refused(edited(filled(issued(), **YES_ON_VULN), alter)).startswith(
        "This report could not be verified")


def test_wrong_secret_says_the_keys_changed():
    """A report issued under another key is not called tampered with: the keys changed."""
    message = refused(filled(issued(), **YES_ON_VULN), secret="another-installation")
    assert message.startswith("This report was issued before the portal's keys changed")
    assert "download a fresh report" in message


def without_key_id(wb):
    """The binding as reports were laid out before they recorded their key id."""
    wb["_binding"].delete_rows(5)


def test_report_without_key_id_still_verifies():
    data = edited(filled(issued(), **YES_ON_VULN), without_key_id)
    assert [c.finding_id for c in appeal_of(data).claims if c.false_positive] == [VULN_ID]


def test_report_without_key_id_under_another_key_says_the_keys_changed():
    data = edited(filled(issued(), **YES_ON_VULN), without_key_id)
    assert refused(data, secret="another-installation").startswith(
        "This report was issued before the portal's keys changed")


def test_report_of_another_scan():
    message = refused(filled(issued(), **YES_ON_VULN), report_id="scan-0043")
    assert message.startswith("This report belongs to another scan")


def test_missing_binding_sheet():
    data = edited(filled(issued(), **YES_ON_VULN), lambda wb: wb.remove(wb["_binding"]))
    assert "no binding to a scan" in refused(data)


def test_missing_findings_sheet():
    data = edited(filled(issued(), **YES_ON_VULN), lambda wb: wb.remove(wb["Findings"]))
    assert "no Findings sheet" in refused(data)


def test_binding_sheet_damaged():
    data = edited(filled(issued(), **YES_ON_VULN), lambda wb: wb["_binding"].delete_rows(1, 3))
    assert "binding to its scan is damaged" in refused(data)


# --------------------------------------------------------------------------- not a report


@pytest.mark.parametrize("data, expected", [
    (os.urandom(4096), "is not an xlsx workbook"),
    (b"Finding ID,Type\n3f1c,Virus\n", "is not an xlsx workbook"),
    (b"", "is not an xlsx workbook"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(4088), "old-format (.xls)"),
], ids=["random", "csv", "empty", "xls"])
def test_not_an_xlsx(data, expected):
    assert expected in refused(data)


def test_a_zip_that_is_not_a_workbook():
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        z.writestr("META-INF/MANIFEST.MF", "Manifest-Version: 1.0\n")
    assert "zip archive but not an xlsx workbook" in refused(out.getvalue())


def test_a_truncated_workbook():
    data = filled(issued(), **YES_ON_VULN)
    assert "not an xlsx workbook" in refused(data[: len(data) // 2])


def test_a_workbook_with_a_corrupted_part():
    data = filled(issued(), **YES_ON_VULN)
    broken = rezipped(data, FINDINGS_XML, lambda xml: xml[: len(xml) // 2])
    assert "workbook is damaged" in refused(broken)


def test_oversized_file_is_refused_before_parsing(monkeypatch):
    def never(*args, **kwargs):
        raise AssertionError("parsed an oversized file")

    monkeypatch.setattr(report.zipfile, "ZipFile", never)
    message = refused(b"PK" + bytes(2 * 1024 * 1024), max_bytes=1024 * 1024)
    assert message.startswith("The file is 2.0 MB, more than the 1.0 MB")


def test_zip_bomb_is_refused(monkeypatch):
    monkeypatch.setattr(report, "MAX_UNPACKED_BYTES", 4 * 1024 * 1024)
    data = filled(issued(), **YES_ON_VULN)
    bomb = io.BytesIO(data)
    with zipfile.ZipFile(bomb, "a", zipfile.ZIP_DEFLATED) as z:
        z.writestr("xl/media/padding.bin", bytes(8 * 1024 * 1024))
    assert len(bomb.getvalue()) < 100_000
    assert "unpacks to far more data" in refused(bomb.getvalue())


def test_too_many_rows_are_refused(monkeypatch):
    monkeypatch.setattr(report, "MAX_FINDINGS", 10)
    rows = b"".join(b'<row r="%d"><c r="H%d" t="inlineStr"><is><t>x</t></is></c></row>' % (i, i)
                    for i in range(10, 100))
    data = rezipped(filled(issued(), **YES_ON_VULN), FINDINGS_XML,
                    lambda xml: xml.replace(b"</sheetData>", rows + b"</sheetData>"))
    assert "more rows than a report holds" in refused(data)


def test_a_row_number_beyond_excel_limits_is_refused():
    far = b'<row r="99999999999"><c r="H1" t="inlineStr"><is><t>x</t></is></c></row>'
    data = rezipped(filled(issued(), **YES_ON_VULN), FINDINGS_XML,
                    lambda xml: xml.replace(b"</sheetData>", far + b"</sheetData>"))
    assert "more rows than a report holds" in refused(data)


BILLION_LAUGHS = (
    b'<?xml version="1.0"?>\n<!DOCTYPE lolz [\n <!ENTITY lol "lol">\n'
    + b"".join(b' <!ENTITY lol%d "%s">\n' % (i, (b"&lol%d;" % (i - 1) if i > 1 else b"&lol;") * 10)
               for i in range(1, 10))
    + b"]>\n"
)
EXTERNAL_ENTITY = (
    b'<?xml version="1.0"?>\n<!DOCTYPE x [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>\n'
)


def _with_doctype(doctype: bytes, reference: bytes):
    cell = b'<row r="40"><c r="H40" t="inlineStr"><is><t>' + reference + b"</t></is></c></row>"

    def inject(xml: bytes) -> bytes:
        xml = re.sub(rb"^<\?xml[^>]*\?>\s*", b"", xml)
        return doctype + xml.replace(b"</sheetData>", cell + b"</sheetData>")

    return inject


@pytest.mark.parametrize("doctype, reference", [
    (BILLION_LAUGHS, b"&lol9;"), (EXTERNAL_ENTITY, b"&xxe;"),
], ids=["billion-laughs", "external-entity"])
def test_dangerous_xml_is_refused(doctype, reference):
    data = rezipped(filled(issued(), **YES_ON_VULN), FINDINGS_XML,
                    _with_doctype(doctype, reference))
    assert "XML declarations (DTD or entities)" in refused(data)


def test_dangerous_xml_in_any_part_is_refused():
    data = rezipped(filled(issued(), **YES_ON_VULN), "[Content_Types].xml",
                    lambda xml: BILLION_LAUGHS + re.sub(rb"^<\?xml[^>]*\?>\s*", b"", xml))
    assert "XML declarations (DTD or entities)" in refused(data)


def test_openpyxl_itself_parses_with_defusedxml():
    # A second line of defence behind the pre-check: openpyxl uses defusedxml when installed.
    assert openpyxl.DEFUSEDXML
    data = rezipped(filled(issued(), **YES_ON_VULN), FINDINGS_XML,
                    _with_doctype(BILLION_LAUGHS, b"&lol9;"))
    with pytest.raises(ValueError) as caught:
        openpyxl.load_workbook(io.BytesIO(data))
    assert isinstance(caught.value.__cause__, defusedxml.EntitiesForbidden)


# --------------------------------------------------------------------------- the seller's answers


def test_f_must_be_yes_or_no():
    message = refused(filled(issued(), F3="Maybe", G3="Component not present"))
    assert message == "Row 3, column F: “Maybe” is not Yes or No."


def test_yes_needs_a_reason():
    message = refused(filled(issued(), F3="Yes", H3="trust me"))
    assert message == "Row 3, column G: give a reason for each finding marked Yes."


def test_reason_without_an_answer():
    message = refused(filled(issued(), G2="Test file / not shipped", **YES_ON_VULN))
    assert message.startswith("Row 2, column F: choose Yes or No")


def test_other_needs_an_explanation():
    message = refused(filled(issued(), F3="Yes", G3="other (explain in h)"))
    assert message.startswith("Row 3, column H: explain the reason")


@pytest.mark.parametrize("column", ["G", "H"])
def test_over_long_text(column):
    cells = {**YES_ON_VULN, f"{column}3": "x" * (report.MAX_TEXT + 1)}
    message = refused(filled(issued(), **cells))
    assert message.startswith(f"Row 3, column {column}: the text is 4001 characters long")


def test_nothing_marked_yes():
    data = filled(issued(), F2="No", F3="No")
    assert refused(data).startswith("Mark at least one finding as a false positive")
    appeal = appeal_of(data, require_yes=False)
    assert [c.false_positive for c in appeal.claims] == [False, False]
    with pytest.raises(ReportError, match="Mark at least one finding"):
        require_claims(appeal)


def test_untouched_report_has_no_claims():
    assert refused(issued()).startswith("Mark at least one finding")
    assert appeal_of(issued(), require_yes=False).claims == ()


def test_report_without_findings():
    clean = scan_result()
    clean = type(clean)(verdict="approved", package=clean.package, components=(),
                        findings=(), scan=clean.scan)
    data = issued(clean)
    assert appeal_of(data, require_yes=False) == Appeal(REPORT_ID, ())
    assert refused(data).startswith("Mark at least one finding")


def test_secret_must_not_be_empty():
    with pytest.raises(ValueError):
        issued(secret=b"")
    with pytest.raises(ValueError):
        issued(report_id=" padded ")


def test_password_protected_workbook_parts_are_refused():
    data = bytearray(filled(issued(), **YES_ON_VULN))
    start = zipfile.ZipFile(io.BytesIO(bytes(data))).start_dir
    at = data.find(b"PK\x01\x02", start)
    while at != -1:  # set the "encrypted" flag of every central directory entry
        data[at + 8] |= 0x1
        at = data.find(b"PK\x01\x02", at + 4)
    assert "password-protected" in refused(bytes(data))


def test_a_large_report_round_trips():
    many = tuple(
        Finding(id=f"{i:016x}", type="vulnerability", location=f"app.tar.gz!/lib/m{i}.jar",
                blocking=i % 2 == 0, ids=(f"GHSA-{i:04d}-xxxx-yyyy",),
                cvss=Cvss(5.0 + (i % 50) / 10, "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N",
                          f"GHSA-{i:04d}-xxxx-yyyy"),
                summary="A vulnerability summary of a realistic length. " * 4)
        for i in range(2000)
    )
    data = filled(issued(scan_result(many)), F2004="Yes", G2004="Component not present")
    assert [c.row for c in appeal_of(data).claims] == [2004]
