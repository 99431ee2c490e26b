"""Appeal workbooks that must never reach openpyxl: macro-enabled ones and ones past the bounds.

Each workbook is a real report written by openpyxl, then changed with zipfile the way a
hostile seller would. Refusals come from the container check, before the workbook is
loaded: ``load_workbook`` is replaced by a function that fails the test.
"""

import io
import re
import time
import zipfile

import pytest

from scanner import report
from scanner.report import ReportError, read_appeal

from .test_report import BINDING_XML, FINDINGS_XML, REPORT_ID, SECRET, YES_ON_VULN, filled, issued

MACRO_MESSAGE = "contains macros, ActiveX controls or embedded objects"
WORKBOOK_TYPE = b"application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"
MACRO_WORKBOOK_TYPE = b"application/vnd.ms-excel.sheet.macroEnabled.main+xml"
VBA_TYPE = b"application/vnd.ms-office.vbaProject"
VBA_REL = b"http://schemas.microsoft.com/office/2006/relationships/vbaProject"
# The first bytes of a real vbaProject.bin: an OLE compound file.
VBA_BYTES = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(504) + b"Attribute VB_Name = \"Module1\""


@pytest.fixture(scope="module")
def appeal_file() -> bytes:
    return filled(issued(), **YES_ON_VULN)


@pytest.fixture
def never_loaded(monkeypatch):
    def load_workbook(*args, **kwargs):
        raise AssertionError("openpyxl was given a workbook the container check must refuse")

    monkeypatch.setattr(report, "load_workbook", load_workbook)


def changed(data: bytes, *, replace: dict | None = None, add: dict | None = None) -> bytes:
    """The workbook with parts rewritten (name -> function of the bytes) and parts added."""
    replace, add = replace or {}, add or {}
    src = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            body = src.read(info)
            dst.writestr(info.filename, replace.get(info.filename, lambda b: b)(body))
        for name, body in add.items():
            if callable(body):
                with dst.open(name, "w") as f:
                    body(f)
            else:
                dst.writestr(name, body)
    return out.getvalue()


def refusal(data: bytes, **kwargs) -> str:
    with pytest.raises(ReportError) as caught:
        read_appeal(data, secret=SECRET, report_id=REPORT_ID, **kwargs)
    return str(caught.value)


def with_override(part: bytes, content_type: bytes):
    def add(xml: bytes) -> bytes:
        entry = b'<Override PartName="' + part + b'" ContentType="' + content_type + b'"/>'
        return xml.replace(b"</Types>", entry + b"</Types>")
    return add


def with_relationship(rel_type: bytes, target: bytes):
    def add(xml: bytes) -> bytes:
        entry = b'<Relationship Id="rIdVba" Type="' + rel_type + b'" Target="' + target + b'"/>'
        return xml.replace(b"</Relationships>", entry + b"</Relationships>")
    return add


# --------------------------------------------------------------------------- macros


def test_the_report_itself_is_accepted(appeal_file):
    assert read_appeal(appeal_file, secret=SECRET, report_id=REPORT_ID,
                       filename="Shop backend-2.4.1-scan-report.xlsx").claims


def test_xlsx_with_a_vba_project_added_is_refused(appeal_file, never_loaded):
    # What Excel writes when a macro is added to the report and it is saved as .xlsm,
    # then renamed back to .xlsx.
    macro = changed(appeal_file, add={"xl/vbaProject.bin": VBA_BYTES}, replace={
        "[Content_Types].xml": lambda xml: with_override(b"/xl/vbaProject.bin", VBA_TYPE)(
            xml.replace(WORKBOOK_TYPE, MACRO_WORKBOOK_TYPE)),
        "xl/_rels/workbook.xml.rels": with_relationship(VBA_REL, b"vbaProject.bin"),
    })
    assert MACRO_MESSAGE in refusal(macro, filename="report.xlsx")


def test_a_vba_project_alone_is_refused(appeal_file, never_loaded):
    assert MACRO_MESSAGE in refusal(changed(appeal_file, add={"xl/vbaProject.bin": VBA_BYTES}))


def test_a_vba_project_anywhere_is_refused(appeal_file, never_loaded):
    assert MACRO_MESSAGE in refusal(changed(appeal_file,
                                            add={"docProps/sub/vbaProject.bin": VBA_BYTES}))


def test_a_vba_project_under_another_name_is_refused_by_its_content_type(appeal_file,
                                                                          never_loaded):
    disguised = changed(appeal_file, add={"xl/styles2.dat": VBA_BYTES}, replace={
        "[Content_Types].xml": with_override(b"/xl/styles2.dat", VBA_TYPE),
    })
    assert MACRO_MESSAGE in refusal(disguised)


def test_a_macro_enabled_workbook_content_type_is_refused(appeal_file, never_loaded):
    only_type = changed(appeal_file, replace={
        "[Content_Types].xml": lambda xml: xml.replace(WORKBOOK_TYPE, MACRO_WORKBOOK_TYPE)})
    assert MACRO_MESSAGE in refusal(only_type)


def test_a_vba_relationship_to_any_part_is_refused(appeal_file, never_loaded):
    related = changed(appeal_file, add={"xl/theme/extra.xml": b"<x/>"}, replace={
        "xl/_rels/workbook.xml.rels": with_relationship(VBA_REL, b"theme/extra.xml")})
    assert MACRO_MESSAGE in refusal(related)


@pytest.mark.parametrize("part", [
    "xl/macrosheets/sheet1.xml", "xl/dialogsheets/sheet1.xml", "xl/activeX/activeX1.xml",
    "xl/embeddings/oleObject1.bin",
])
def test_macro_sheets_activex_and_embedded_objects_are_refused(appeal_file, never_loaded, part):
    body = b'<xm:macrosheet xmlns:xm="http://schemas.microsoft.com/office/excel/2006/main"/>'
    assert MACRO_MESSAGE in refusal(changed(appeal_file, add={part: body}))


def test_an_excel_4_macro_sheet_is_refused_by_its_content_type(appeal_file, never_loaded):
    xlm = changed(appeal_file, add={"xl/worksheets/sheet9.xml": b"<worksheet/>"}, replace={
        "[Content_Types].xml": with_override(b"/xl/worksheets/sheet9.xml",
                                             b"application/vnd.ms-excel.macrosheet+xml")})
    assert MACRO_MESSAGE in refusal(xlm)


@pytest.mark.parametrize("name", ["report.xlsm", "REPORT.XLTM", "report.xlam ", "a.b.xlsm"])
def test_macro_enabled_file_names_are_refused(appeal_file, never_loaded, name):
    assert MACRO_MESSAGE in refusal(appeal_file, filename=name)


# --------------------------------------------------------------------------- bounds


def test_a_zip_bomb_sheet_is_refused_before_inflating(appeal_file, never_loaded):
    def spaces(f):
        block = b" " * 2**20
        for _ in range(report.MAX_PART_BYTES // 2**20 + 1):
            f.write(block)

    bomb = changed(appeal_file, add={"xl/worksheets/sheet5.xml": spaces})
    assert len(bomb) < 1024 * 1024
    started = time.perf_counter()
    message = refusal(bomb)
    assert "(xl/worksheets/sheet5.xml) unpacks to 129 MB, more than the 128 MB" in message
    assert time.perf_counter() - started < 1.0  # nothing was inflated


def test_a_million_shared_strings_are_refused(appeal_file, never_loaded):
    def strings(f):
        f.write(b'<?xml version="1.0"?><sst xmlns="http://schemas.openxmlformats.org/'
                b'spreadsheetml/2006/main" count="1000000" uniqueCount="1000000">')
        for block in range(100):
            f.write(b"".join(b"<si><t>%d</t></si>" % (block * 10_000 + i) for i in range(10_000)))
        f.write(b"</sst>")

    many = changed(appeal_file, add={"xl/sharedStrings.xml": strings})
    assert len(many) < 10 * 1024 * 1024
    assert "holds more than 500,000 different texts" in refusal(many)


def test_shared_strings_of_excessive_length_are_refused(appeal_file, never_loaded):
    def long_strings(f):
        f.write(b'<sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">')
        for _ in range(40):
            f.write(b"<si><t>" + b"x" * 1_000_000 + b"</t></si>")
        f.write(b"</sst>")

    long = changed(appeal_file, add={"xl/sharedStrings.xml": long_strings})
    assert "add up to more than 32,000,000 characters" in refusal(long)


def test_a_huge_dimension_is_refused(appeal_file, never_loaded):
    huge = changed(appeal_file, replace={FINDINGS_XML: lambda xml: re.sub(
        rb'<dimension ref="[^"]*"', b'<dimension ref="A1:XFD1048576"', xml)})
    message = refusal(huge)
    assert f"({FINDINGS_XML}) has a size (XFD1048576) far past the rows and columns" in message


def test_a_cell_far_to_the_right_is_refused(appeal_file, never_loaded):
    far = b'<row r="60"><c r="XFD60" t="inlineStr"><is><t>x</t></is></c></row>'
    wide = changed(appeal_file, replace={
        FINDINGS_XML: lambda xml: xml.replace(b"</sheetData>", far + b"</sheetData>")})
    assert "has cells beyond column BL" in refusal(wide)


def test_too_many_cells_are_refused(appeal_file, never_loaded):
    row = b"".join(b"<c/>" for _ in range(50))
    rows = b"".join(b'<row r="%d">%s</row>' % (r, row) for r in range(100, 100 + 20_001))
    crowded = changed(appeal_file, replace={
        BINDING_XML: lambda xml: xml.replace(b"</sheetData>", rows + b"</sheetData>")})
    assert "more than 1,000,000 cells in all" in refusal(crowded)


def test_too_many_sheets_are_refused(appeal_file, never_loaded):
    def more_sheets(xml: bytes) -> bytes:
        extra = b"".join(b'<sheet name="S%d" sheetId="%d" r:id="rId%d"/>' % (i, i, i)
                         for i in range(10, 30))
        return xml.replace(b"</sheets>", extra + b"</sheets>")

    sheets = changed(appeal_file, replace={"xl/workbook.xml": more_sheets})
    assert "has more than 16 sheets" in refusal(sheets)


def test_a_part_openpyxl_would_read_under_another_suffix_is_still_checked(appeal_file,
                                                                         never_loaded):
    # A worksheet renamed so that it does not end in .xml is still parsed first.
    doctype = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "b">]><worksheet/>'
    assert "XML declarations (DTD or entities)" in refusal(
        changed(appeal_file, add={"xl/worksheets/sheet9.dat": doctype}))
