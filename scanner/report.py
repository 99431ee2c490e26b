"""The security scan report: an xlsx workbook a seller reads and fills in to appeal.

``write_report`` lays a :class:`ScanResult` out as DESIGN.md §6 describes: a
**Summary** sheet, a **Findings** sheet (one row per finding; columns A–E and I+
locked, F–H unlocked with drop-downs) and a very hidden **_binding** sheet that
ties the file to its scan.

``read_appeal`` reads a filled-in report back and returns the seller's claims
from columns F, G and H. It trusts nothing in the file: the container, its XML
and its size are checked before openpyxl sees it, and columns A–E must still be
exactly what the portal issued (an HMAC keyed with the server secret proves it).
Every refusal is a :class:`ReportError` whose message is one sentence meant for
the seller.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import re
import unicodedata
import warnings
import zipfile
from xml.parsers import expat
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone

from openpyxl import Workbook, load_workbook
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.comments import Comment
from openpyxl.styles import Alignment, Font, NamedStyle, PatternFill, Protection
from openpyxl.utils import get_column_letter
from openpyxl.workbook.defined_name import DefinedName
from openpyxl.workbook.protection import WorkbookProtection
from openpyxl.worksheet.datavalidation import DataValidation

from .model import Claim, Finding, ScanResult

__all__ = [
    "REASONS",
    "Appeal",
    "ReportError",
    "key_id",
    "read_appeal",
    "require_claims",
    "write_report",
]

#: Column G drop-down: VEX-style justifications. Free text is accepted too.
REASONS: tuple[str, ...] = (
    "Component not present",
    "Vulnerable code not present",
    "Vulnerable code not in execute path",
    "Vulnerable code cannot be controlled by adversary",
    "Inline mitigations already exist",
    "Signature false positive (file is benign)",
    "Test file / not shipped",
    "Other (explain in H)",
)
_OTHER = REASONS[-1]

FORMAT = "assay-report/1"
FINDINGS = "Findings"
SUMMARY = "Summary"
BINDING = "_binding"
LISTS = "_lists"
_REASONS_NAME = "AssayReasons"

#: Row 1 of the Findings sheet. A–H are checked on read; I+ are informational.
HEADERS: tuple[str, ...] = (
    "Finding ID",
    "Type",
    "Component / file",
    "Identifiers",
    "CVSS score",
    "False positive? (Yes/No)",
    "Reason",
    "Evidence / remarks",
    "Blocking",
    "Accepted false positive",
    "Severity",
    "CVSS vector",
    "CVSS source",
    "Location",
    "Fixed versions",
    "Package URL",
    "Detected by",
    "Summary",
    "References",
)
_WIDTHS = (20, 13, 34, 30, 10, 14, 34, 48, 12, 26, 11, 44, 20, 60, 20, 40, 18, 60, 50)
_WRAPPED = {3, 4, 7, 8, 10, 14, 15, 18, 19}
_BOUND_COLS = 5  # A–E are bound by the HMAC
_F, _G, _H = 6, 7, 8
_TYPE_LABELS = {"virus": "Virus", "vulnerability": "Vulnerability", "unscanned": "Unscanned"}

#: Longest text accepted in columns G and H.
MAX_TEXT = 4000
#: Most findings one report may hold (also bounds the rows read back).
MAX_FINDINGS = 100_000
#: Bounds on the unpacked workbook, checked before any XML is parsed.
MAX_UNPACKED_BYTES = 200 * 1024 * 1024
MAX_PART_BYTES = 128 * 1024 * 1024
MAX_MEMBERS = 1000
#: Bounds on what openpyxl is given to read: each costs time and memory in the web process.
#: A report has four sheets and 19 columns; 38,000 findings fill about a million cells.
MAX_SHEETS = 16
MAX_COLUMNS = 64
MAX_CELLS = 1_000_000
MAX_SHARED_STRINGS = 500_000
MAX_SHARED_CHARS = 32_000_000
#: Workbooks that may carry macros, refused by name as well as by content.
MACRO_SUFFIXES = (".xlsm", ".xltm", ".xlam")
_EXCEL_CELL_CHARS = 32_767
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
#: Parts never parsed as XML (images, printer settings); macro parts are refused by name.
_BINARY_SUFFIXES = (".bin", ".png", ".jpeg", ".jpg", ".gif", ".emf", ".wmf", ".tif", ".tiff",
                    ".bmp")
#: Parts of a macro-enabled workbook, ActiveX controls and embedded objects.
_MACRO_PART = re.compile(
    r"(^|/)vbaProject[^/]*\.bin$|(^|/)vbaData\.xml$"
    r"|^xl/(macrosheets|dialogsheets|activeX|embeddings)/",
    re.IGNORECASE,
)
#: Words in a content type or relationship type that name macros or active content.
_MACRO_WORDS = ("macroenabled", "vbaproject", "vbadata", "macrosheet", "activex", "oleobject")
_MACROS = (
    "The workbook contains macros, ActiveX controls or embedded objects, which a report never "
    "has; upload the report as an Excel Workbook (.xlsx) without macros: download it again, "
    "fill in columns F–H and save it as .xlsx."
)

_RESUBMIT = "download the report again and change only columns F–H"


class ReportError(ValueError):
    """The uploaded file is not an acceptable appeal; the message is for the seller."""


@dataclass(frozen=True)
class Appeal:
    report_id: str
    claims: tuple[Claim, ...]  # one per row with F/G/H filled in, in row order


# --------------------------------------------------------------------------- write


def write_report(
    result: ScanResult,
    *,
    report_id: str,
    secret: bytes | str,
    asset_name: str = "",
    version_label: str = "",
    accepted: Mapping[str, str] | None = None,
    claims: Mapping[str, Claim] | None = None,
    review: Mapping[str, str] | None = None,
    appeal_rows: Sequence[tuple[str, object]] = (),
) -> bytes:
    """Return the xlsx bytes of the security scan report of ``result``.

    ``report_id`` identifies this scan's report (read back by :func:`read_appeal`);
    ``accepted`` maps a finding id to text such as "accepted by X on DATE" for
    findings a reviewer already accepted as false positives. ``claims`` fills in
    F–H of the findings a seller disputed (as stored, not as uploaded); ``review``
    adds a reviewer's word on a finding to column J; ``appeal_rows`` are (label,
    value) lines about an appeal for the Summary sheet.
    """
    if not report_id or report_id != _canon(report_id):
        raise ValueError("report_id must be non-empty text without surrounding spaces")
    if len(result.findings) > MAX_FINDINGS:
        raise ValueError(f"a report holds at most {MAX_FINDINGS} findings")
    key = _key(secret)
    accepted = dict(accepted or {})
    password = _sheet_password(key, report_id)

    wb = Workbook()
    summary = wb.active
    summary.title = SUMMARY
    findings = wb.create_sheet(FINDINGS)
    _write_summary(summary, result, report_id, asset_name, version_label, accepted, appeal_rows)
    rows = _write_findings(findings, result.findings, accepted, claims or {}, review or {})
    _write_lists(wb.create_sheet(LISTS), wb)
    _write_binding(wb.create_sheet(BINDING), key, report_id, rows)

    for ws in wb.worksheets:
        ws.protection.sheet = True
        ws.protection.password = password
    # Filtering and resizing are harmless; sorting would reorder the bound rows.
    findings.protection.autoFilter = False
    findings.protection.formatColumns = False
    findings.protection.formatRows = False
    wb.security = WorkbookProtection(lockStructure=True)
    wb.security.workbookPassword = password
    wb.active = 0

    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


def _write_summary(
    ws, result: ScanResult, report_id: str, asset_name: str, version_label: str,
    accepted: Mapping[str, str], appeal_rows: Sequence[tuple[str, object]] = (),
) -> None:
    findings = result.findings
    scores = [f.cvss.score for f in findings if f.cvss is not None]
    blocking = sum(1 for f in findings if f.blocking and f.id not in accepted)
    rows: list[tuple[str, object]] = [
        ("Asset", asset_name),
        ("Version", version_label),
        ("Package", result.package.name),
        ("Size (bytes)", result.package.size),
        ("SHA-256", result.package.sha256),
        ("Format", result.package.format),
        ("Verdict", result.verdict.capitalize()),
        *((f"{label} findings", sum(1 for f in findings if f.type == kind))
          for kind, label in _TYPE_LABELS.items()),
        ("Blocking findings", blocking),
        ("Accepted false positives", sum(1 for f in findings if f.id in accepted)),
        ("Highest CVSS score", max(scores) if scores else "none"),
        ("CVSS threshold", result.scan.threshold),
        ("Policy", result.scan.policy),
        *((f"Engine: {name}", version) for name, version in sorted(result.scan.engines.items())),
        ("Vulnerability records", result.scan.osv_records),
        ("Scan started (UTC)", result.scan.started),
        ("Scan finished (UTC)", result.scan.finished),
        *appeal_rows,
        ("Report ID", report_id),
        ("Report generated (UTC)", datetime.now(timezone.utc).isoformat(timespec="seconds")),
    ]
    ws["A1"] = "Security scan report"
    ws["A1"].font = Font(bold=True, size=14)
    for offset, (label, value) in enumerate(rows, start=3):
        ws.cell(offset, 1, label).font = Font(bold=True)
        _put(ws, offset, 2, value)
    note = len(rows) + 4
    ws.cell(note, 1, "How to appeal").font = Font(bold=True)
    _put(ws, note, 2, (
        "On the Findings sheet, set column F to Yes for each finding you consider a false "
        "positive, choose or type a reason in column G and give your evidence in column H. "
        "Do not change, sort, add or remove anything else, then upload this file."
    ))
    ws.cell(note, 2).alignment = Alignment(wrap_text=True, vertical="top")
    ws.column_dimensions["A"].width = 26
    ws.column_dimensions["B"].width = 90


def _write_findings(ws, findings: Sequence[Finding], accepted: Mapping[str, str],
                    claims: Mapping[str, Claim], review: Mapping[str, str]) -> list[list]:
    """Lay out the Findings sheet; return the A–E values of each row as written."""
    styles = _register_styles(ws.parent)
    for col, title in enumerate(HEADERS, start=1):
        editable = col in (_F, _G, _H)
        ws.cell(1, col, title).style = styles["editable_header" if editable else "header"]
        ws.column_dimensions[get_column_letter(col)].width = _WIDTHS[col - 1]
    by_column = [
        styles["editable" if col in (_F, _G, _H) else "wrapped" if col in _WRAPPED else "data"]
        for col in range(1, len(HEADERS) + 1)
    ]

    bound = []
    for row, finding in enumerate(findings, start=2):
        values = _finding_values(finding, accepted.get(finding.id, ""),
                                 claims.get(finding.id), review.get(finding.id, ""))
        for col, value in enumerate(values, start=1):
            _put(ws, row, col, value).style = by_column[col - 1]
        bound.append([ws.cell(row, col).value for col in range(1, _BOUND_COLS + 1)])
        if finding.cvss is not None:
            comment = Comment(f"{finding.cvss.vector}\nsource: {finding.cvss.source}", "Assay")
            comment.width, comment.height = 320, 80
            ws.cell(row, 5).comment = comment

    last = len(findings) + 1
    ws.freeze_panes = "B2"
    ws.auto_filter.ref = f"A1:{get_column_letter(len(HEADERS))}{last}"
    if findings:
        _add_drop_downs(ws, last)
    return bound


def _register_styles(wb) -> dict[str, str]:
    """Named styles, registered once: far cheaper than per-cell style objects."""
    top = Alignment(vertical="top")
    wrap = Alignment(wrap_text=True, vertical="top")
    grey = PatternFill("solid", fgColor="D9D9D9")
    yellow = PatternFill("solid", fgColor="FFF2CC")
    bold = Font(bold=True)
    specs = {
        "header": NamedStyle("assay-header", font=bold, fill=grey, alignment=wrap),
        "editable_header": NamedStyle("assay-editable-header", font=bold, fill=yellow,
                                      alignment=wrap),
        "data": NamedStyle("assay-data", alignment=top),
        "wrapped": NamedStyle("assay-wrapped", alignment=wrap),
        "editable": NamedStyle("assay-editable", fill=yellow, alignment=wrap,
                               protection=Protection(locked=False)),
    }
    for style in specs.values():
        wb.add_named_style(style)
    return {key: style.name for key, style in specs.items()}


def _add_drop_downs(ws, last: int) -> None:
    yes_no = DataValidation(
        type="list", formula1='"Yes,No"', allow_blank=True,
        showErrorMessage=True, errorStyle="stop",
        errorTitle="False positive?", error="Choose Yes or No.",
        showInputMessage=True, promptTitle="False positive?",
        prompt="Yes if this finding is a false positive you want to appeal.",
    )
    reasons = DataValidation(
        # A defined name, not a cross-sheet range, keeps the list in the plain
        # dataValidation element that every spreadsheet program reads.
        type="list", formula1=_REASONS_NAME, allow_blank=True,
        # A reason outside the list is welcome: accept it without complaint.
        showErrorMessage=False, errorStyle="information",
        showInputMessage=True, promptTitle="Reason",
        prompt="Choose a justification or type your own.",
    )
    for dv, col in ((yes_no, "F"), (reasons, "G")):
        dv.add(f"{col}2:{col}{last}")
        ws.add_data_validation(dv)


def _finding_values(f: Finding, accepted: str, claim: Claim | None = None,
                    review: str = "") -> tuple:
    if f.type == "vulnerability" and f.component is not None:
        c = f.component
        what = f"{c.name} {c.version} ({c.ecosystem})"
        if c.scope != "runtime":
            what += f", {c.scope} dependency"
    else:
        what = f.location
    if f.type == "vulnerability":
        ident = ", ".join(f.ids)
        if f.aliases:
            ident += f" (aliases: {', '.join(f.aliases)})"
    else:
        ident = f.signature or f.engine or ""
    if accepted:
        blocking = "No (accepted)"
    else:
        blocking = "Yes" if f.blocking else "No"
    return (
        f.id,
        _TYPE_LABELS.get(f.type, f.type),
        what,
        ident,
        f.cvss.score if f.cvss is not None else None,
        ("Yes" if claim.false_positive else "No") if claim is not None else None,
        claim.reason if claim is not None else None,
        claim.evidence if claim is not None else None,
        blocking,
        "\n".join(text for text in (accepted, review) if text),
        f.severity or "",
        f.cvss.vector if f.cvss is not None else "",
        f.cvss.source if f.cvss is not None else "",
        f.location,
        ", ".join(f.fixed_versions),
        f.component.purl if f.component is not None else "",
        f.engine or "",
        f.summary,
        "\n".join(f.references),
    )


def _write_lists(ws, wb) -> None:
    for row, reason in enumerate(REASONS, start=1):
        ws.cell(row, 1, reason)
    ref = f"'{LISTS}'!$A$1:$A${len(REASONS)}"
    wb.defined_names.add(DefinedName(_REASONS_NAME, attr_text=ref))
    ws.sheet_state = "veryHidden"


def _write_binding(ws, key: bytes, report_id: str, rows: list[list]) -> None:
    """Store the report id, the finding ids and per-cell digests of A–E, plus their HMAC."""
    entries = [
        (row, _canon(values[0]), tuple(_cell_digests(key, report_id, row, values)))
        for row, values in enumerate(rows, start=2)
    ]
    lines = [
        ["format", FORMAT],
        ["report_id", report_id],
        ["rows", len(entries)],
        ["hmac", _binding_mac(key, report_id, entries)],
        ["key_id", key_id(key)],
        ["row", "finding_id",
         *(f"digest_{get_column_letter(c)}" for c in range(1, _BOUND_COLS + 1))],
        *([row, finding_id, *digests] for row, finding_id, digests in entries),
    ]
    for row, line in enumerate(lines, start=1):
        for col, value in enumerate(line, start=1):
            _put(ws, row, col, value)
    ws.sheet_state = "veryHidden"


def _put(ws, row: int, col: int, value):
    """Write a value as data, never as a formula, without characters XML cannot hold."""
    if isinstance(value, str):
        value = _clean(value)[:_EXCEL_CELL_CHARS] or None
    cell = ws.cell(row, col)
    cell.value = value
    if isinstance(value, str) and value.startswith("="):
        cell.data_type = "s"
    return cell


def _clean(text: str) -> str:
    text = ILLEGAL_CHARACTERS_RE.sub("", text)
    return text.replace("\r\n", "\n").replace("\r", "\n")


# --------------------------------------------------------------------------- binding


#: Label under which the report binding key is derived from an installation's secret.
BINDING_LABEL = b"assay/v1/report-binding"


def binding_key(secret: bytes | str) -> bytes:
    """The key an installation whose secret is ``secret`` binds its reports with.

    The secret itself signs nothing: each use gets a key of its own (HMAC-SHA256 under
    its label), so the portal's reports and the CLI's agree for the same secret.
    """
    return hmac.new(_key(secret), BINDING_LABEL, hashlib.sha256).digest()


def _key(secret: bytes | str) -> bytes:
    key = secret.encode() if isinstance(secret, str) else bytes(secret)
    if not key:
        raise ValueError("the report secret must not be empty")
    return key


def key_id(key: bytes | str) -> str:
    """A short public name of the key a report is bound with, recorded in the report.

    It tells a report issued under an earlier key (the secret changed since) from one whose
    binding was altered; it reveals nothing of the key.
    """
    return hmac.new(_key(key), b"key-id", hashlib.sha256).hexdigest()[:12]


def _sheet_password(key: bytes, report_id: str) -> str:
    # Sheet protection only guides a spreadsheet user; the HMAC is what proves A–E.
    message = b"sheet-protection\0" + report_id.encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()[:24]


def _canon(value) -> str:
    """One text form per cell value, stable across spreadsheet programs' save/load."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, (int, float)):
        # Spreadsheet programs keep 15 significant digits and may write 7.0 as 7.
        return format(value, ".15g")
    if isinstance(value, datetime):
        return value.isoformat()
    text = _clean(str(value))
    return unicodedata.normalize("NFC", text).strip()


def _mac(key: bytes, payload) -> str:
    data = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
    return hmac.new(key, data, hashlib.sha256).hexdigest()


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def _cell_digests(key: bytes, report_id: str, row: int, values: Sequence) -> list[str]:
    return [
        _mac(key, ["cell", FORMAT, report_id, row, col, _canon(value)])[:32]
        for col, value in enumerate(values[:_BOUND_COLS], start=1)
    ]


def _binding_mac(key: bytes, report_id: str, entries) -> str:
    """HMAC over the report id and, per finding row, its id and the digests of A–E."""
    return _mac(key, ["binding", FORMAT, report_id,
                      [[row, fid, list(digests)] for row, fid, digests in entries]])


@dataclass(frozen=True)
class _Binding:
    report_id: str
    entries: tuple[tuple[int, str, tuple[str, ...]], ...]


# --------------------------------------------------------------------------- read


def read_appeal(
    data: bytes,
    *,
    secret: bytes | str,
    report_id: str | None = None,
    max_bytes: int = 10 * 1024 * 1024,
    require_yes: bool = True,
    filename: str | None = None,
) -> Appeal:
    """Read the seller's claims from a filled-in report, or raise :class:`ReportError`.

    The file must be a report issued with ``secret`` (and, when given, for
    ``report_id``) whose columns A–E, rows and header are unchanged. With
    ``require_yes`` at least one finding must be marked Yes (see
    :func:`require_claims`). ``filename``, the name the file was uploaded
    under, refuses a macro-enabled workbook by its name too.

    Macro-enabled workbooks, ActiveX controls and embedded objects are refused,
    and the workbook is bounded (members, part sizes, sheets, rows, columns,
    cells, shared strings) before openpyxl reads it.
    """
    key = _key(secret)
    _check_container(data, max_bytes, filename)
    with _openpyxl_quirks_tolerated():
        try:
            wb = load_workbook(io.BytesIO(data), read_only=True, keep_links=False)
        except Exception as exc:  # openpyxl raises many types for a damaged file
            raise ReportError(
                "The file could not be opened as an xlsx workbook; upload the report as downloaded."
            ) from exc
        try:
            binding = _read_binding(wb, key)
            if report_id is not None and binding.report_id != report_id:
                raise ReportError(
                    "This report belongs to another scan; download the report of the latest scan "
                    "and fill that one in."
                )
            rows = _read_rows(wb, key, binding)
        finally:
            wb.close()
    appeal = Appeal(binding.report_id, tuple(_claims(rows)))
    if require_yes:
        require_claims(appeal)
    return appeal


def require_claims(appeal: Appeal) -> None:
    """Refuse an appeal in which no finding is marked as a false positive."""
    if not any(claim.false_positive for claim in appeal.claims):
        raise ReportError(
            "Mark at least one finding as a false positive: set column F to Yes and give a "
            "reason in column G."
        )


def _check_container(data: bytes, max_bytes: int, filename: str | None = None) -> None:
    """Refuse, before any workbook parsing, what is not a small, safe, macro-free xlsx zip."""
    if len(data) > max_bytes:
        raise ReportError(
            f"The file is {len(data) / 2**20:.1f} MB, more than the {max_bytes / 2**20:.1f} MB "
            "a report may be."
        )
    if filename is not None and filename.strip().lower().endswith(MACRO_SUFFIXES):
        raise ReportError(_MACROS)
    if data.startswith(_OLE_MAGIC):
        raise ReportError(
            "This is an old-format (.xls) or password-protected workbook; save the report as an "
            "unencrypted .xlsx file and upload that."
        )
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, ValueError, EOFError) as exc:
        raise ReportError(
            "The file is not an xlsx workbook; upload the security scan report (.xlsx)."
        ) from exc
    with archive:
        infos = archive.infolist()
        names = {info.filename for info in infos}
        if "[Content_Types].xml" not in names or not any(n.startswith("xl/") for n in names):
            raise ReportError(
                "The file is a zip archive but not an xlsx workbook; upload the security scan "
                "report (.xlsx)."
            )
        _check_sizes(infos)
        if any(info.flag_bits & 0x1 for info in infos):
            raise ReportError(
                "The workbook is password-protected; save the report without a password to "
                "open and upload that."
            )
        if any(_MACRO_PART.search(info.filename) for info in infos):
            raise ReportError(_MACROS)
        tally = _Tally()
        # [Content_Types].xml first: a macro-enabled workbook is named as such before
        # anything else about it is.
        for info in sorted(infos, key=lambda i: i.filename != "[Content_Types].xml"):
            if _is_xml_part(info.filename):
                _check_xml_part(archive, info, tally)


def _check_sizes(infos: list[zipfile.ZipInfo]) -> None:
    """Bound the members before any is inflated: their number and declared sizes.

    zipfile never inflates a member past its declared size (it stops and fails
    the CRC), so the declared sizes bound what reading costs.
    """
    if len(infos) > MAX_MEMBERS or sum(i.file_size for i in infos) > MAX_UNPACKED_BYTES:
        raise ReportError(
            "The workbook unpacks to far more data than a report holds; upload the report "
            "as downloaded."
        )
    for info in infos:
        if info.file_size > MAX_PART_BYTES:
            raise ReportError(
                f"A part of the workbook ({info.filename[:100]}) unpacks to "
                f"{info.file_size / 2**20:.0f} MB, more than the {MAX_PART_BYTES // 2**20} MB a "
                "report's part may be; upload the report as downloaded."
            )


def _is_xml_part(name: str) -> bool:
    """Every part is parsed as XML except binary ones outside the parts openpyxl reads."""
    lower = name.lower()
    if lower.startswith("xl/worksheets/") and not lower.startswith("xl/worksheets/_rels/"):
        return not lower.endswith(".bin")  # printer settings, which Excel adds on save
    if lower.endswith("/"):
        return False
    return not lower.endswith(_BINARY_SUFFIXES)


class _Tally:
    """What the XML parts of one workbook add up to, against the bounds of a report."""

    def __init__(self) -> None:
        self.cells = 0
        self.sheets = 0
        self.strings = 0
        self.chars = 0


class _Refusal(Exception):
    """Raised inside an expat handler: carries the ReportError out of the parser."""

    def __init__(self, error: ReportError):
        super().__init__(str(error))
        self.error = error


def _check_xml_part(archive: zipfile.ZipFile, info: zipfile.ZipInfo, tally: _Tally) -> None:
    """Parse one XML part with expat and refuse DTDs (so no entities) outright.

    Worksheets are bounded in rows, row numbers, columns, cells and dimension
    (openpyxl pads the gaps between row numbers with empty rows); the shared
    strings in count and length; the workbook in sheets; content types and
    relationships may not name macros or ActiveX controls. Handlers run at C
    speed for everything else, so checking costs little next to reading.
    """
    name = info.filename
    parser = expat.ParserCreate(namespace_separator="}")

    def refuse_dtd(*_):
        raise _Refusal(ReportError(
            "The workbook contains XML declarations (DTD or entities) that a report never has; "
            "upload the report as downloaded."
        ))

    parser.StartDoctypeDeclHandler = refuse_dtd
    parser.EntityDeclHandler = refuse_dtd
    handler = _part_handler(name, tally)
    if handler is not None:
        parser.StartElementHandler = handler
    if name.lower().startswith("xl/sharedstrings"):
        parser.CharacterDataHandler = _shared_text(tally)
    try:
        with archive.open(info) as src:
            while chunk := src.read(1024 * 1024):
                parser.Parse(chunk, False)
            parser.Parse(b"", True)
    except _Refusal as refusal:
        raise refusal.error from None
    except (zipfile.BadZipFile, EOFError, OSError, RuntimeError, NotImplementedError,
            expat.ExpatError) as exc:
        raise ReportError(
            f"The workbook is damaged ({name[:100]} cannot be read); upload the report as "
            "downloaded."
        ) from exc


def _part_handler(name: str, tally: _Tally):
    lower = name.lower()
    if lower == "[content_types].xml":
        return _content_types_handler
    if lower.endswith(".rels"):
        return _relationships_handler
    if lower.startswith("xl/worksheets/") and "/_rels/" not in lower:
        return _SheetCheck(name, tally).start
    if lower.startswith("xl/sharedstrings"):
        return _shared_strings_handler(tally)
    if lower == "xl/workbook.xml":
        return _workbook_handler(tally)
    return None


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def _content_types_handler(tag: str, attrs: dict) -> None:
    if _local(tag) in ("Default", "Override") and _names_macros(attrs.get("ContentType", "")):
        raise _Refusal(ReportError(_MACROS))


def _relationships_handler(tag: str, attrs: dict) -> None:
    if _local(tag) == "Relationship" and _names_macros(attrs.get("Type", "")):
        raise _Refusal(ReportError(_MACROS))


def _names_macros(text: str) -> bool:
    folded = text.lower()
    return any(word in folded for word in _MACRO_WORDS)


def _workbook_handler(tally: _Tally):
    def start(tag: str, attrs: dict) -> None:
        if _local(tag) == "sheet":
            tally.sheets += 1
            if tally.sheets > MAX_SHEETS:
                raise _Refusal(ReportError(
                    f"The workbook has more than {MAX_SHEETS} sheets, far more than a report "
                    f"has; {_RESUBMIT}."
                ))
    return start


def _shared_strings_handler(tally: _Tally):
    def start(tag: str, attrs: dict) -> None:
        if _local(tag) == "si":
            tally.strings += 1
            if tally.strings > MAX_SHARED_STRINGS:
                raise _Refusal(ReportError(
                    f"The workbook holds more than {MAX_SHARED_STRINGS:,} different texts, far "
                    f"more than a report does; {_RESUBMIT}."
                ))
    return start


def _shared_text(tally: _Tally):
    def text(data: str) -> None:
        tally.chars += len(data)
        if tally.chars > MAX_SHARED_CHARS:
            raise _Refusal(ReportError(
                f"The texts of the workbook add up to more than {MAX_SHARED_CHARS:,} characters, "
                f"far more than a report holds; {_RESUBMIT}."
            ))
    return text


class _SheetCheck:
    """Bounds one worksheet's rows, row numbers, cells per row, columns and dimension."""

    def __init__(self, name: str, tally: _Tally):
        self.name, self.tally = name[:100], tally
        self.rows = 0
        self.in_row = 0

    def start(self, tag: str, attrs: dict) -> None:
        local = _local(tag)
        if local == "c":
            self.cell(attrs.get("r"))
        elif local == "row":
            self.rows += 1
            self.in_row = 0
            r = attrs.get("r")
            most = _max_rows()
            if self.rows > most or (r is not None and not _number_within(r, most)):
                raise self.refusal("more rows than a report holds")
        elif local == "dimension":
            self.dimension(attrs.get("ref", ""))

    def cell(self, ref: str | None) -> None:
        self.in_row += 1
        self.tally.cells += 1
        if self.tally.cells > MAX_CELLS:
            raise self.refusal(f"more than {MAX_CELLS:,} cells in all, far more than a report "
                               "holds")
        column = self.in_row if ref is None else _column_of(ref)
        if not 1 <= column <= MAX_COLUMNS:
            raise self.refusal(f"cells beyond column {get_column_letter(MAX_COLUMNS)}, far "
                               "past the columns of a report")

    def dimension(self, ref: str) -> None:
        last = ref.rpartition(":")[2]
        match = _CELL_REF.fullmatch(last)
        if match is None:
            return  # openpyxl's reader ignores a dimension it cannot use; so do we
        if not (_number_within(match.group(2), _max_rows())
                and _column_of(last) <= MAX_COLUMNS):
            raise self.refusal(f"a size ({last}) far past the rows and columns of a report")

    def refusal(self, what: str) -> _Refusal:
        return _Refusal(ReportError(
            f"A sheet of the workbook ({self.name}) has {what}; upload the report as downloaded."
        ))


_CELL_REF = re.compile(r"\$?([A-Za-z]{1,3})\$?([0-9]+)")


def _column_of(ref: str) -> int:
    """The column number of a cell reference such as ``AB12``; 0 when it is not one."""
    match = _CELL_REF.fullmatch(ref)
    if match is None:
        return 0
    number = 0
    for letter in match.group(1).upper():
        number = number * 26 + ord(letter) - 64
    return number


def _max_rows() -> int:
    """Rows a sheet of a report may have: the findings, plus the Summary's and binding's own."""
    return MAX_FINDINGS + 64


def _number_within(text: str, most: int) -> bool:
    return text.isdigit() and 1 <= int(text) <= most


@contextmanager
def _openpyxl_quirks_tolerated() -> Iterator[None]:
    """Silence the notices openpyxl gives about parts it drops while reading.

    Spreadsheet programs add extensions (Excel writes data validations as an
    ``x14`` extension once edited) that openpyxl does not read; they never
    touch the values this module reads, so the notice is noise here. Like any
    ``catch_warnings``, this is process-wide while the file is read.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=r".* extension is not supported and will be removed",
            category=UserWarning, module=r"openpyxl\.",
        )
        warnings.filterwarnings(
            "ignore", message=r"Workbook contains no default style",
            category=UserWarning, module=r"openpyxl\.",
        )
        yield


def _sheet(wb, name: str):
    if name not in wb.sheetnames:
        raise ReportError(
            f"The workbook has no {name} sheet, so it is not an Assay security scan report; "
            f"{_RESUBMIT}."
        )
    ws = wb[name]
    ws.reset_dimensions()  # never trust the stored dimension: rows past it would be skipped
    return ws


def _read_binding(wb, key: bytes) -> _Binding:
    if BINDING not in wb.sheetnames:
        raise ReportError(
            "The workbook has no binding to a scan, so it is not an Assay security scan report; "
            f"{_RESUBMIT}."
        )
    ws = _sheet(wb, BINDING)
    rows = [tuple(_canon(v) for v in r)
            for r in ws.iter_rows(max_col=2 + _BOUND_COLS, values_only=True)]
    damaged = ReportError(
        f"The report's hidden binding to its scan is damaged; {_RESUBMIT}."
    )
    try:
        # Reports issued before key ids were recorded have four lines above the row header.
        header = next(i for i in (4, 5) if rows[i][0] == "row")
        head = {rows[i][0]: rows[i][1] for i in range(header)}
        count = int(head["rows"])
        first = header + 1
        if head["format"] != FORMAT or not 0 <= count <= MAX_FINDINGS or len(rows) < first + count:
            raise damaged
        entries = tuple(
            (int(r[0]), r[1], tuple(r[2:2 + _BOUND_COLS])) for r in rows[first:first + count]
        )
    except (IndexError, KeyError, ValueError, StopIteration) as exc:
        raise damaged from exc
    report_id = head["report_id"]
    if not _same(_binding_mac(key, report_id, entries), head["hmac"]):
        if not _same(head.get("key_id", ""), key_id(key)):
            raise ReportError(
                "This report was issued before the portal's keys changed (or by another portal); "
                "download a fresh report from the asset page and fill it in again."
            )
        raise ReportError(
            "This report could not be verified: it was not issued by this portal or its hidden "
            f"binding was changed; {_RESUBMIT}."
        )
    return _Binding(report_id, entries)


def _read_rows(wb, key: bytes, binding: _Binding) -> list[tuple[int, str, tuple]]:
    """Check the Findings sheet against the binding; return (row, finding id, F–H) per finding."""
    ws = _sheet(wb, FINDINGS)
    sheet = list(ws.iter_rows(max_col=_H, values_only=True))
    header = tuple(_canon(v) for v in (sheet[0] if sheet else ()))
    if header != HEADERS[:_H]:
        raise ReportError(
            f"Row 1 (the header of the Findings sheet) was changed; {_RESUBMIT}."
        )
    expected = [fid for _, fid, _ in binding.entries]
    found = {}
    for index, values in enumerate(sheet[1:], start=2):
        found.setdefault(_canon(values[0]), index)
    out = []
    for row, fid, digests in binding.entries:
        values = sheet[row - 1] if row - 1 < len(sheet) else (None,) * _H
        if _canon(values[0]) != fid:
            raise ReportError(_row_moved_message(row, fid, _canon(values[0]), expected, found))
        actual = _cell_digests(key, binding.report_id, row, values)
        for col, (want, got) in enumerate(zip(digests, actual), start=1):
            if not _same(want, got):
                raise ReportError(
                    f"Row {row}, column {get_column_letter(col)} was changed, but only columns "
                    f"F–H may be edited; {_RESUBMIT}."
                )
        out.append((row, fid, tuple(values[_F - 1:_H])))
    first_free = len(binding.entries) + 2
    for index, values in enumerate(sheet[first_free - 1:], start=first_free):
        if any(_canon(v) for v in values[:_BOUND_COLS]):
            raise ReportError(
                f"Row {index} was added below the findings, but rows may not be added; "
                f"{_RESUBMIT}."
            )
        if any(_canon(v) for v in values):
            raise ReportError(
                f"Row {index} holds no finding; fill in columns F–H only on the rows of findings."
            )
    return out


def _row_moved_message(row, want, got, expected, found) -> str:
    if not got:
        what = f"finding {want} is missing (a row was removed or an empty row inserted)"
    elif got in expected:
        what = f"it should hold finding {want}: rows were sorted, moved or removed"
    elif want in found:
        what = f"a row was inserted above finding {want}"
    else:
        what = f"column A was changed (it should hold finding {want})"
    return f"Row {row}: {what}; only columns F–H may be edited, so {_RESUBMIT}."


def _claims(rows) -> Iterator[Claim]:
    for row, fid, (f, g, h) in rows:
        answer, reason, evidence = _canon(f), _canon(g), _canon(h)
        if not (answer or reason or evidence):
            continue
        for col, text in (("G", reason), ("H", evidence)):
            if len(text) > MAX_TEXT:
                raise ReportError(
                    f"Row {row}, column {col}: the text is {len(text)} characters long; keep it "
                    f"under {MAX_TEXT} and attach longer evidence as a separate file."
                )
        false_positive = _yes_no(row, answer)
        reason = _known_reason(reason)
        if false_positive and not reason:
            raise ReportError(
                f"Row {row}, column G: give a reason for each finding marked Yes."
            )
        if false_positive and reason == _OTHER and not evidence:
            raise ReportError(
                f"Row {row}, column H: explain the reason, since column G says “{_OTHER}”."
            )
        yield Claim(fid, false_positive, reason, evidence, row)


def _yes_no(row: int, answer: str) -> bool:
    word = answer.casefold()
    if word in ("yes", "y"):
        return True
    if word in ("no", "n"):
        return False
    if not word:
        raise ReportError(
            f"Row {row}, column F: choose Yes or No, since columns G–H of this row are filled in."
        )
    shown = answer if len(answer) <= 40 else answer[:40] + "…"
    raise ReportError(f"Row {row}, column F: “{shown}” is not Yes or No.")


def _known_reason(reason: str) -> str:
    folded = re.sub(r"\s+", " ", reason).casefold()
    for known in REASONS:
        if known.casefold() == folded:
            return known
    return reason
