"""What Assay tells ClamAV, and how it reads ClamAV's answers.

One table of limits serves clamd (``clamd.conf`` options, written by
``ops.clamd``) and ``clamscan`` (command-line flags), so the daemon and the
fallback scan under the same rules. Every limit is explicit: ClamAV's defaults
skip large files silently and call them clean.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

#: Assay's own signature directory, shipped with the scanner.
SIGNATURE_DIR = Path(__file__).resolve().parent.parent / "signatures"

#: Where Debian's freshclam keeps the official ClamAV data.
OFFICIAL_DB_DIR = Path("/var/lib/clamav")

#: File suffixes ClamAV loads from a database directory (Assay ships a few of them).
CLAMAV_DB_SUFFIXES = (
    ".cvd", ".cld", ".cud", ".cdb", ".cfg", ".crb", ".fp", ".sfp", ".hdb", ".hsb", ".hdu",
    ".hsu", ".ldb", ".ldu", ".mdb", ".mdu", ".msb", ".msu", ".ndb", ".ndu", ".ign", ".ign2",
    ".idb", ".pdb", ".gdb", ".wdb", ".cbc", ".info", ".yar", ".yara", ".imp", ".pwdb",
)
OFFICIAL_SUFFIXES = (".cvd", ".cld", ".cud")

#: ClamAV cannot scan one file of 2 GiB or more.
CLAMAV_MAX_FILE = 2 * 1024**3 - 1

#: Limits, as clamd.conf option -> value in bytes / count / milliseconds.
LIMITS: dict[str, int] = {
    "MaxScanSize": 4000 * 1024**2,  # ClamAV's ceiling; a container plus all it holds
    "MaxFileSize": CLAMAV_MAX_FILE,
    "MaxRecursion": 16,
    "MaxFiles": 100_000,
    "MaxScanTime": 300_000,
    "MaxEmbeddedPE": 40 * 1024**2,
    "MaxHTMLNormalize": 40 * 1024**2,
    "MaxHTMLNoTags": 8 * 1024**2,
    "MaxScriptNormalize": 20 * 1024**2,
    "MaxZipTypeRcg": 1024**2,
    "MaxPartitions": 50,
    "MaxIconsPE": 100,
    "MaxRecHWP3": 16,
    "PCREMatchLimit": 100_000,
    "PCRERecMatchLimit": 2_000,
    # Logical signatures with a regex are skipped silently above this size.
    "PCREMaxFileSize": CLAMAV_MAX_FILE,
}

#: clamd-only: the largest INSTREAM clamd accepts (it must hold any file we send).
STREAM_MAX_LENGTH = 4000 * 1024**2

CLAMSCAN_FLAGS = {
    "MaxScanSize": "--max-scansize",
    "MaxFileSize": "--max-filesize",
    "MaxRecursion": "--max-recursion",
    "MaxFiles": "--max-files",
    "MaxScanTime": "--max-scantime",
    "MaxEmbeddedPE": "--max-embeddedpe",
    "MaxHTMLNormalize": "--max-htmlnormalize",
    "MaxHTMLNoTags": "--max-htmlnotags",
    "MaxScriptNormalize": "--max-scriptnormalize",
    "MaxZipTypeRcg": "--max-ziptypercg",
    "MaxPartitions": "--max-partitions",
    "MaxIconsPE": "--max-iconspe",
    "MaxRecHWP3": "--max-rechwp3",
    "PCREMatchLimit": "--pcre-match-limit",
    "PCRERecMatchLimit": "--pcre-recmatch-limit",
    "PCREMaxFileSize": "--pcre-max-filesize",
}

#: Alerts that turn a skipped or unreadable file into an answer instead of "OK".
#: Broken-executable alerts stay off: ordinary toolchains ship odd ELF/PE files.
ALERTS = {
    "AlertExceedsMax": "--alert-exceeds-max",
    "AlertEncrypted": "--alert-encrypted",
    "HeuristicAlerts": "--heuristic-alerts",
}

LIMIT_PREFIX = "Heuristics.Limits.Exceeded"
ENCRYPTED_PREFIX = "Heuristics.Encrypted"


def limits_for(max_file_bytes: int | None = None) -> dict[str, int]:
    """The limits table, with MaxFileSize lowered to ``max_file_bytes`` when smaller."""
    limits = dict(LIMITS)
    if max_file_bytes is not None:
        limits["MaxFileSize"] = max(1, min(limits["MaxFileSize"], max_file_bytes))
        limits["PCREMaxFileSize"] = min(limits["PCREMaxFileSize"], limits["MaxFileSize"])
    return limits


def clamscan_args(limits: dict[str, int]) -> list[str]:
    args = [f"{CLAMSCAN_FLAGS[name]}={value}" for name, value in limits.items()]
    return args + [f"{flag}=yes" for flag in ALERTS.values()]


def database_files(directory: Path) -> list[Path]:
    """The ClamAV database files directly in ``directory`` (ClamAV does not recurse)."""
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if p.is_file() and p.suffix in CLAMAV_DB_SUFFIXES)


def official_files(directory: Path = OFFICIAL_DB_DIR) -> list[Path]:
    return [p for p in database_files(directory) if p.suffix in OFFICIAL_SUFFIXES]


@dataclass(frozen=True)
class Answer:
    """ClamAV's answer about one file.

    ``kind`` is "clean", "virus" (``name`` is the signature) or "unscanned"
    (``name`` is ClamAV's heuristic name when it gave one, ``reason`` says why).
    """

    kind: str
    name: str | None = None
    reason: str = ""


CLEAN = Answer("clean")


def signature_name(raw: str) -> str:
    """ClamAV's name without the suffix it adds to third-party signatures.

    ``YARA.Assay_WebShell_PHP.UNOFFICIAL`` -> ``YARA.Assay_WebShell_PHP``, the name
    the yara-python path uses too, so one rule on one file is reported once.
    """
    return raw.removesuffix(".UNOFFICIAL")


def classify(name: str) -> Answer:
    """Turn a ``FOUND`` name into a virus or, for limit and encryption alerts, a gap."""
    name = signature_name(name)
    if name.startswith(LIMIT_PREFIX):
        limit = name[len(LIMIT_PREFIX):].lstrip(".") or "limit"
        reason = f"ClamAV stopped at its {limit} limit: content not fully scanned"
        return Answer("unscanned", name, reason)
    if name.startswith(ENCRYPTED_PREFIX):
        what = name[len(ENCRYPTED_PREFIX):].lstrip(".") or "content"
        return Answer("unscanned", name, f"encrypted {what}: content cannot be scanned")
    return Answer("virus", name)


def parse_reply(reply: str) -> Answer:
    """Parse one clamd/clamscan result text: ``OK``, ``<name> FOUND`` or ``<message> ERROR``."""
    reply = reply.strip()
    if reply in ("OK", "Empty file"):  # clamscan's word for a zero-byte file
        return CLEAN
    if reply.endswith(" FOUND"):
        return classify(reply[: -len(" FOUND")].strip())
    if reply.endswith(" ERROR"):
        return Answer("unscanned", None, f"ClamAV error: {reply[: -len(' ERROR')].strip()}")
    return Answer("unscanned", None, f"unexpected ClamAV answer: {reply[:200]!r}")
