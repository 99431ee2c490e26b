"""Assay's YARA rules, compiled once and matched with yara-python.

ClamAV runs the rules it understands too, but it skips rules that use modules
(``import "pe"``) or have no strings; yara-python runs every rule.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from pathlib import Path

import yara

from .clamav import SIGNATURE_DIR

#: A match on a large file must not hold a worker forever.
MATCH_TIMEOUT = 120
RULE_SUFFIXES = (".yar", ".yara")


@dataclass(frozen=True)
class RuleSet:
    rules: yara.Rules
    count: int
    digest: str  # sha256 over the rule files' names and content

    @property
    def version(self) -> str:
        return f"{yara.__version__} ({self.count} rules, sha256:{self.digest[:12]})"

    def match(self, path: Path, timeout: int = MATCH_TIMEOUT) -> list[str]:
        """Signature names (``YARA.<rule>``) of the rules that match ``path``.

        Raises ``yara.Error`` (``yara.TimeoutError`` included) when it cannot tell.
        """
        return sorted({f"YARA.{m.rule}" for m in self.rules.match(str(path), timeout=timeout)})


def rule_files(extra_dirs: tuple[Path, ...] = ()) -> list[Path]:
    """Every rule file in Assay's signature directory (recursively) and in ``extra_dirs``."""
    files: list[Path] = []
    for directory in (SIGNATURE_DIR, *extra_dirs):
        found = Path(directory).rglob("*")
        files += sorted(p for p in found if p.suffix in RULE_SUFFIXES and p.is_file())
    return files


_cache: dict[tuple, RuleSet] = {}
_lock = threading.Lock()


def load_rules(extra_dirs: tuple[Path, ...] = ()) -> RuleSet:
    """The compiled rules; recompiled only when a rule file changes."""
    files = rule_files(extra_dirs)
    key = tuple((str(p), p.stat().st_mtime_ns, p.stat().st_size) for p in files)
    with _lock:
        if key not in _cache:
            _cache.clear()
            _cache[key] = _compile(files)
        return _cache[key]


def _compile(files: list[Path]) -> RuleSet:
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    # One namespace per file, so two files may both define a rule of the same name.
    rules = yara.compile(filepaths={str(p): str(p) for p in files})
    return RuleSet(rules=rules, count=sum(1 for _ in rules), digest=digest.hexdigest())
