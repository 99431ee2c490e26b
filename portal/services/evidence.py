"""Evidence files of an appeal, checked before any is stored or shown to a reviewer.

The contract is narrow: :func:`receive` copies one uploaded file to a private
temporary file (bounded in size) and :func:`check_file` examines that file. It
returns what examined it, or raises :class:`EvidenceRefused` with one sentence
for the seller that names the file. It fails closed: when clamd cannot be
reached the file is refused with a request to try again later.

What is refused:

- executables and scripts, by content (ELF, PE/DOS, Mach-O, Java classes, a
  ``#!`` line, Windows shortcuts and installers) and by name (``.exe``,
  ``.bat``, ``.js``, ``.docm``, ...);
- macro-enabled Office documents: OOXML with a VBA project, macro sheets or
  ActiveX controls, or a macro-enabled content type; OLE documents with a VBA
  project;
- archives (zip, tar, compressed tar) that hold any of these, looked into to a
  bounded depth, member count and size; archives that cannot be looked into
  (encrypted, 7z, rar) are refused too;
- anything ClamAV (over clamd's INSTREAM) or Assay's YARA rules flag, or could
  not fully scan.

Accepted files are still only ever served as downloads (attachment,
``application/octet-stream``, ``nosniff``), never shown inline.
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import lzma
import re
import tarfile
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from scanner.engines.clamd import ClamdTimeout, ClamdUnreachable, Session, request
from scanner.engines.yara_rules import HEAD_BYTES, load_rules

#: How far into archives the checks look.
MAX_DEPTH = 3
MAX_MEMBERS = 10_000
#: Bytes inflated in all while looking into one file's archives.
MAX_INFLATED = 256 * 1024 * 1024
#: A nested archive or document is read into memory to be looked into; larger ones are refused.
MAX_NESTED = 50 * 1024 * 1024
#: clamd's answer about a 50 MB file comes well within this.
ANSWER_TIMEOUT = 120.0
_HEAD = 512

#: Names a reviewer's computer would run or open with macros, whatever the content.
RISKY_SUFFIXES = (
    ".exe", ".dll", ".com", ".scr", ".pif", ".cpl", ".msi", ".msp", ".msc", ".sys", ".drv",
    ".bat", ".cmd", ".ps1", ".psm1", ".vbs", ".vbe", ".js", ".jse", ".wsf", ".wsh", ".hta",
    ".lnk", ".url", ".reg", ".inf", ".jar", ".class", ".apk", ".app", ".dylib", ".so",
    ".sh", ".bash", ".command", ".elf", ".run", ".appimage", ".deb", ".rpm",
    ".docm", ".dotm", ".xlsm", ".xltm", ".xlam", ".xla", ".xlm", ".pptm", ".potm", ".ppsm",
    ".ppam", ".sldm", ".iso", ".img", ".vhd", ".vhdx",
)
_EXECUTABLE_MAGIC = {
    b"\x7fELF": "an ELF executable",
    b"MZ": "a Windows (PE/DOS) executable",
    b"\xfe\xed\xfa\xce": "a Mach-O executable",
    b"\xfe\xed\xfa\xcf": "a Mach-O executable",
    b"\xce\xfa\xed\xfe": "a Mach-O executable",
    b"\xcf\xfa\xed\xfe": "a Mach-O executable",
    b"\xca\xfe\xba\xbe": "a Mach-O or Java executable",
    b"#!": "a script",
    b"L\x00\x00\x00\x01\x14\x02\x00": "a Windows shortcut",
}
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
#: Storage names of VBA projects in OLE documents (UTF-16 in the directory).
_OLE_MACRO_NAMES = tuple(n.encode("utf-16-le") for n in ("_VBA_PROJECT", "VBA", "Macros"))
#: The class id of Windows Installer packages (.msi) in an OLE root entry.
_MSI_CLSID = bytes.fromhex("84100c0000000000c000000000000046")
_OOXML_MACRO_PART = re.compile(
    r"(^|/)vbaProject[^/]*\.bin$|(^|/)vbaData\.xml$|(^|/)(macrosheets|activeX)/", re.IGNORECASE)
_MACRO_WORDS = (b"macroenabled", b"vbaproject", b"macrosheet", b"activex")
_TAR_MAGIC_OFFSET = 257


class EvidenceRefused(ValueError):
    """The file may not be attached to an appeal; the message names it and says why."""


@dataclass(frozen=True)
class Received:
    """An uploaded file copied to a private temporary file."""

    path: Path
    size: int
    sha256: str


@dataclass(frozen=True)
class Checked:
    """What examined an accepted file: engine and rule versions, for the record."""

    engines: str


@contextmanager
def receive(name: str, stream: BinaryIO, *, max_bytes: int,
            directory: Path | None = None) -> Iterator[Received]:
    """Copy ``stream`` to a temporary file (removed on exit); refuse more than ``max_bytes``
    and an empty file."""
    if directory is not None:
        directory.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(prefix="evidence-", dir=directory) as tmp:
        digest, size = hashlib.sha256(), 0
        while chunk := stream.read(1024 * 1024):
            size += len(chunk)
            if size > max_bytes:
                raise EvidenceRefused(f"The evidence file {name} is larger than "
                                      f"{max_bytes // 2**20} MiB.")
            digest.update(chunk)
            tmp.write(chunk)
        tmp.flush()
        if size == 0:
            raise EvidenceRefused(f"The evidence file {name} is empty.")
        yield Received(Path(tmp.name), size, digest.hexdigest())


def check_file(name: str, path: Path, *, clamd: str | None) -> Checked:
    """Examine one evidence file; return what examined it or raise :class:`EvidenceRefused`.

    ``clamd`` is the daemon's address (``tcp://host:port`` or ``unix:///path``).
    """
    _check_name(name, name)
    with open(path, "rb") as f:
        _check_content(name, name, f, depth=0, budget=_Budget())
    clamav = _clamav(name, path, clamd)
    return Checked(f"{clamav}; YARA {_yara(name, path)}")


class _Budget:
    def __init__(self) -> None:
        self.members = 0
        self.inflated = 0

    def spend(self, file: str, members: int = 0, inflated: int = 0) -> None:
        self.members += members
        self.inflated += inflated
        if self.members > MAX_MEMBERS or self.inflated > MAX_INFLATED:
            raise EvidenceRefused(
                f"The evidence file {file} holds more files or data than can be checked "
                f"(at most {MAX_MEMBERS:,} files and {MAX_INFLATED // 2**20} MiB unpacked); "
                "attach fewer or smaller files.")


_RULE = "executables, scripts and macro-enabled documents cannot be attached to an appeal"


def _refuse(file: str, where: str, what: str, advice: str = _RULE) -> EvidenceRefused:
    """``where`` is the file itself or a path inside it (``file!/dir/member``)."""
    if where == file:
        return EvidenceRefused(f"The evidence file {file} is {what}; {advice}.")
    inner = where.removeprefix(file + "!/")
    return EvidenceRefused(f"The evidence file {file} holds {inner}, {what}; {advice}.")


def _check_name(file: str, where: str) -> None:
    if where.strip().lower().rstrip(".").endswith(RISKY_SUFFIXES):
        suffix = "." + where.strip().rstrip(".").rpartition(".")[2].lower()
        raise _refuse(file, where, f"a {suffix} file")


def _check_content(file: str, where: str, f: BinaryIO, *, depth: int, budget: _Budget) -> None:
    """Refuse executables and macro documents in ``f``, looking into archives it is."""
    f.seek(0)
    head = f.read(_HEAD)
    for magic, what in _EXECUTABLE_MAGIC.items():
        if head.startswith(magic):
            raise _refuse(file, where, what)
    if head.startswith(_OLE_MAGIC):
        _check_ole(file, where, f)
        return
    compressed = _decompressor(head)
    if compressed is not None or _is_tar(head):
        _check_tar_or_stream(file, where, f, compressed, depth=depth, budget=budget)
    f.seek(0)
    # Also a file that is something else as well as a zip (a zip appended to it).
    if zipfile.is_zipfile(f):
        _check_zip(file, where, f, depth=depth, budget=budget)
    if head.startswith((b"7z\xbc\xaf\x27\x1c", b"Rar!\x1a\x07")):
        raise _refuse(file, where, "an archive (7z or rar) that cannot be looked into",
                      "pack the evidence as a .zip file instead")


def _check_ole(file: str, where: str, f: BinaryIO) -> None:
    """An OLE compound document (old Office, .msi): refuse installers and VBA projects.

    The directory names are searched for in the whole file, which is bounded by the
    upload limit; a false alarm refuses a file, never accepts one.
    """
    f.seek(0)
    data = f.read(MAX_NESTED + 1)
    if _MSI_CLSID in data:
        raise _refuse(file, where, "a Windows installer")
    if any(name in data for name in _OLE_MACRO_NAMES):
        raise _refuse(file, where, "an Office document with macros")


def _check_zip(file: str, where: str, f: BinaryIO, *, depth: int, budget: _Budget) -> None:
    try:
        archive = zipfile.ZipFile(f)
    except (zipfile.BadZipFile, ValueError, EOFError) as exc:
        raise EvidenceRefused(f"The evidence file {file}: {where} is a damaged zip archive "
                              "that cannot be checked.") from exc
    with archive:
        infos = [i for i in archive.infolist() if not i.is_dir()]
        budget.spend(file, members=len(infos))
        if any(i.flag_bits & 0x1 for i in infos):
            raise _refuse(file, where, "a password-protected archive that cannot be looked into",
                          "attach it without a password")
        if any(_OOXML_MACRO_PART.search(i.filename) for i in infos):
            raise _refuse(file, where, "an Office document with macros or ActiveX controls")
        if "[Content_Types].xml" in archive.namelist():
            types = _read_member(file, archive, archive.getinfo("[Content_Types].xml"), budget)
            if any(word in types.lower() for word in _MACRO_WORDS):
                raise _refuse(file, where, "a macro-enabled Office document")
        for info in infos:
            inner = f"{where}!/{info.filename}"
            _check_name(file, inner)
            _check_member(file, inner, lambda i=info: archive.open(i), info.file_size,
                          depth=depth, budget=budget)


def _check_tar_or_stream(file: str, where: str, f: BinaryIO, compressed, *, depth: int,
                         budget: _Budget) -> None:
    """A tar (plain or compressed), or one compressed file. What is decompressed counts
    against the budget as it is read, so a small file that inflates without end is
    refused instead of being read through."""
    f.seek(0)
    source = f if compressed is None else _Counted(compressed(f), file, budget)
    try:
        archive = tarfile.open(fileobj=source, mode="r|" if compressed else "r:")
    except (tarfile.TarError, EOFError, OSError, lzma.LZMAError):
        archive = None
    if archive is None:
        if compressed is None:
            return  # tar magic but not a tar: nothing runnable recognised in it
        # One compressed file (not a tar): check what it decompresses to.
        f.seek(0)
        _check_member(file, where.removesuffix(".gz").removesuffix(".bz2").removesuffix(".xz"),
                      lambda: compressed(f), None, depth=depth, budget=budget)
        return
    try:
        with archive:
            for member in archive:
                budget.spend(file, members=1)
                if not member.isfile():
                    continue  # folders, links, devices and fifos carry no content
                inner = f"{where}!/{member.name}"
                _check_name(file, inner)
                _check_member(file, inner, lambda m=member: archive.extractfile(m), member.size,
                              depth=depth, budget=budget)
    except (tarfile.TarError, EOFError, OSError, lzma.LZMAError, zipfile.BadZipFile) as exc:
        raise EvidenceRefused(f"The evidence file {file}: {where} is a damaged archive that "
                              "cannot be checked.") from exc


class _Counted:
    """A decompressing reader whose output is charged to the budget as it is read."""

    def __init__(self, raw, file: str, budget: _Budget):
        self.raw, self.file, self.budget = raw, file, budget

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            chunks = []
            while chunk := self.read(1024 * 1024):
                chunks.append(chunk)
            return b"".join(chunks)
        data = self.raw.read(size)
        self.budget.spend(self.file, inflated=len(data))
        return data

    def close(self) -> None:
        self.raw.close()


def _check_member(file: str, inner: str, opener, size: int | None, *, depth: int,
                  budget: _Budget) -> None:
    """Check one member's head; read it whole when it is itself an archive or document."""
    with opener() as src:
        head = src.read(_HEAD)
        budget.spend(file, inflated=len(head))
        for magic, what in _EXECUTABLE_MAGIC.items():
            if head.startswith(magic):
                raise _refuse(file, inner, what)
        container = (head.startswith((_OLE_MAGIC, b"PK\x03\x04", b"7z\xbc\xaf", b"Rar!"))
                     or _decompressor(head) is not None or _is_tar(head))
        if not container:
            return
        if depth + 1 > MAX_DEPTH:
            raise _refuse(file, inner, f"an archive nested more than {MAX_DEPTH} levels deep",
                          "attach its files directly")
        if size is not None and size > MAX_NESTED:
            raise _too_large_inside(file, inner)
        rest = src.read(MAX_NESTED + 1 - len(head))
    data = head + rest
    budget.spend(file, inflated=len(rest))
    if len(data) > MAX_NESTED:
        raise _too_large_inside(file, inner)
    _check_content(file, inner, io.BytesIO(data), depth=depth + 1, budget=budget)


def _too_large_inside(file: str, inner: str) -> EvidenceRefused:
    return _refuse(file, inner, f"an archive or document of more than {MAX_NESTED // 2**20} MiB "
                   "that cannot be looked into inside another", "attach it directly")


def _read_member(file: str, archive: zipfile.ZipFile, info: zipfile.ZipInfo,
                 budget: _Budget) -> bytes:
    with archive.open(info) as src:
        data = src.read(4 * 1024 * 1024 + 1)
    budget.spend(file, inflated=len(data))
    return data


def _decompressor(head: bytes):
    if head.startswith(b"\x1f\x8b"):
        return lambda f: gzip.GzipFile(fileobj=f)
    if head.startswith(b"BZh"):
        return lambda f: bz2.BZ2File(f)
    if head.startswith(b"\xfd7zXZ\x00"):
        return lambda f: lzma.LZMAFile(f)
    return None


def _is_tar(head: bytes) -> bool:
    return head[_TAR_MAGIC_OFFSET:_TAR_MAGIC_OFFSET + 5] == b"ustar"


# --- the engines ------------------------------------------------------------------------

def _clamav(name: str, path: Path, address: str | None) -> str:
    later = EvidenceRefused(f"The evidence file {name} could not be checked for viruses right "
                            "now; try again later.")
    if not address:
        raise later
    try:
        version = request(address, "VERSION").strip()
        with Session(address, answer_timeout=ANSWER_TIMEOUT) as session:
            answer = session.scan_file(path)
    except (ClamdUnreachable, ClamdTimeout, OSError, ValueError) as exc:
        raise later from exc
    if answer.kind == "virus":
        raise EvidenceRefused(f"The evidence file {name} was refused: ClamAV found "
                              f"{answer.name} in it.")
    if answer.kind != "clean":
        raise EvidenceRefused(f"The evidence file {name} could not be fully checked for viruses "
                              f"({answer.reason or answer.name}); attach it unpacked, "
                              "unencrypted or smaller.")
    return version


def _yara(name: str, path: Path) -> str:
    rules = load_rules()
    with open(path, "rb") as f:
        head = f.read(HEAD_BYTES)
    try:
        matches = rules.match(path, head)
    except Exception as exc:  # yara.Error, OSError: fail closed
        raise EvidenceRefused(f"The evidence file {name} could not be checked against the "
                              "malware rules; try again later.") from exc
    if matches:
        raise EvidenceRefused(f"The evidence file {name} was refused: it matches the malware "
                              f"rule {matches[0].removeprefix('YARA.')}.")
    return rules.version
