"""The YARA rules ClamAV cannot run, compiled once and matched with yara-python.

ClamAV loads the rule files at the top of a signature directory and runs them
on every file it scans, but it skips rules that use modules (``import "pe"``)
or have no strings. yara-python runs exactly what ClamAV leaves out: rule files
in subdirectories (ClamAV does not recurse) and any top-level file with an
import or a rule without strings (:func:`clamav_skips`). A rule is thus
matched once per file, by one engine, instead of twice.

Rule files that import a module are matched on executables only (PE, ELF,
Mach-O): loading a module costs more per file than all the other rules
together, and the executable-format modules have nothing to say elsewhere.

yara-python maps a file into memory whole. Files over :data:`WHOLE_FILE` are
matched instead in windows of :data:`WINDOW` bytes that overlap by
:data:`OVERLAP`, so memory stays bounded whatever the file size (ClamAV, which
runs the rules it supports too, still reads such a file whole). On those files
a match longer than the overlap that straddles two windows, or a condition on
``filesize`` or on offsets past the first window, is not seen by yara-python;
module rules see the first window.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import yara

from .clamav import SIGNATURE_DIR

#: A match on a large file must not hold a worker forever.
MATCH_TIMEOUT = 120
RULE_SUFFIXES = (".yar", ".yara")
IMPORT = re.compile(rb'^\s*import\s+"', re.MULTILINE)
COMMENT = re.compile(rb"/\*.*?\*/|//[^\n]*", re.DOTALL)
RULE = re.compile(rb"\brule\s+\w+\s*(:[\w\s]*)?\{")
STRINGS = re.compile(rb"\bstrings\s*:")
EXECUTABLE_MAGIC = (
    b"MZ", b"\x7fELF",
    b"\xfe\xed\xfa\xce", b"\xfe\xed\xfa\xcf", b"\xce\xfa\xed\xfe", b"\xcf\xfa\xed\xfe",
    b"\xca\xfe\xba\xbe",
)
#: Enough of a file's start to recognise what :func:`RuleSet.match` needs.
HEAD_BYTES = 8
#: Larger files are matched in overlapping windows (see the module docstring).
WHOLE_FILE = 64 * 1024**2
WINDOW = 32 * 1024**2
OVERLAP = 1024**2


@dataclass(frozen=True)
class RuleSet:
    plain: yara.Rules | None  # rule files without imports: every file
    modules: yara.Rules | None  # rule files with imports: executables only
    count: int
    digest: str  # sha256 over the rule files' names and content

    @property
    def version(self) -> str:
        return f"{yara.__version__} ({self.count} rules, sha256:{self.digest[:12]})"

    def match(self, path: Path, head: bytes, timeout: int = MATCH_TIMEOUT) -> list[str]:
        """Signature names (``YARA.<rule>``) of the rules that match ``path``.

        ``head`` is the file's first bytes (at least :data:`HEAD_BYTES`).
        Raises ``yara.Error`` (``yara.TimeoutError`` included) when it cannot tell.
        """
        executable = head.startswith(EXECUTABLE_MAGIC)
        if os.stat(path).st_size > WHOLE_FILE:
            return self._match_windows(path, executable, timeout)
        matches = []
        if self.plain is not None:
            matches += self.plain.match(str(path), timeout=timeout)
        if self.modules is not None and executable:
            matches += self.modules.match(str(path), timeout=timeout)
        return sorted({f"YARA.{m.rule}" for m in matches})

    def _match_windows(self, path: Path, executable: bool, timeout: int) -> list[str]:
        """Match a large file window by window, within ``timeout`` seconds in all."""
        deadline = time.monotonic() + timeout
        matches = []
        with open(path, "rb") as f:
            offset = 0
            while data := os.pread(f.fileno(), WINDOW, offset):
                for rules, wanted in ((self.plain, True), (self.modules, executable and not offset)):
                    if rules is not None and wanted:
                        left = int(deadline - time.monotonic())
                        if left < 1:
                            raise yara.TimeoutError(f"no answer within {timeout}s")
                        matches += rules.match(data=data, timeout=left)
                if len(data) < WINDOW:
                    break
                offset += WINDOW - OVERLAP
        return sorted({f"YARA.{m.rule}" for m in matches})


def rule_files(extra_dirs: tuple[Path, ...] = ()) -> list[Path]:
    """The rule files yara-python runs: those ClamAV does not load or cannot run.

    Taken from Assay's signature directory and ``extra_dirs``, recursively.
    """
    files: list[Path] = []
    for directory in (SIGNATURE_DIR, *extra_dirs):
        directory = Path(directory)
        found = sorted(p for p in directory.rglob("*") if p.suffix in RULE_SUFFIXES and p.is_file())
        files += [p for p in found if p.parent != directory or clamav_skips(p.read_bytes())]
    return files


def clamav_skips(text: bytes) -> bool:
    """Whether ClamAV would leave out some rule of this rule file: an import, or no strings.

    In doubt (a rule counted without its ``strings:``), it does.
    """
    text = COMMENT.sub(b"", text)
    return bool(IMPORT.search(text)) or len(RULE.findall(text)) > len(STRINGS.findall(text))


_cache: dict[tuple, RuleSet] = {}
_lock = threading.Lock()


def load_rules(extra_dirs: tuple[Path, ...] = ()) -> RuleSet:
    """The compiled rules; recompiled only when a rule file changes."""
    files = rule_files(extra_dirs)
    key = tuple((str(p), p.stat().st_mtime_ns, p.stat().st_size) for p in files)
    with _lock:
        if key not in _cache:
            _cache.clear()
            _cache[key] = compile_rules(files)
        return _cache[key]


def compile_rules(files: list[Path]) -> RuleSet:
    """A :class:`RuleSet` of ``files`` (one namespace per file)."""
    digest = hashlib.sha256()
    plain, modules = {}, {}
    for path in files:
        text = path.read_bytes()
        digest.update(path.name.encode() + b"\0" + text + b"\0")
        # One namespace per file, so two files may both define a rule of the same name.
        (modules if IMPORT.search(text) else plain)[str(path)] = str(path)
    compiled = [yara.compile(filepaths=group) if group else None for group in (plain, modules)]
    count = sum(sum(1 for _ in rules) for rules in compiled if rules is not None)
    return RuleSet(plain=compiled[0], modules=compiled[1], count=count, digest=digest.hexdigest())
