"""Virus and malware scanning of a package's unpacked files: ClamAV and YARA.

Every member — the package itself, each container and each file inside — is
scanned by ClamAV (clamd over its socket, or ``clamscan`` when no daemon is
configured) with Assay's own signatures, and matched against Assay's YARA
rules with yara-python. Anything an engine could not examine is an
``unscanned`` finding: fail closed, never clean.
"""

from __future__ import annotations

import hashlib
import queue
import subprocess
import threading
import time
from collections.abc import Container, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import yara

from .engines import clamscan
from .engines.clamav import (
    CLAMAV_MAX_FILE,
    LIMIT_PREFIX,
    SIGNATURE_DIR,
    Answer,
    database_files,
    limits_for,
)
from .engines.clamd import ClamdTimeout, ClamdUnreachable, Session, request
from .engines.yara_rules import HEAD_BYTES, MATCH_TIMEOUT, RuleSet, load_rules
from .model import NEST, Finding, Progress, Settings

#: Parallel clamd sessions: clamd scans on its own threads, so a few
#: connections keep it busy while each one waits for an answer.
CLAMD_CONNECTIONS = 3
YARA_THREADS = 2
#: Files waiting for each engine; beyond this the caller's stream waits.
QUEUE = 64
#: Compressed streams: no YARA rule can match their bytes, and every file in
#: them is matched on its own once unpacked.
COMPRESSED_MAGIC = (b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00", b"\x28\xb5\x2f\xfd")


class Member(Protocol):
    """What :func:`scan_members` needs of an unpacked file (see ``scanner.unpack.Member``)."""

    path: Path
    location: str
    size: int
    depth: int
    container: bool


@dataclass(frozen=True)
class _Hit:
    """An engine's answers about one member (none: clean)."""

    index: int
    engine: str  # "clamav" | "yara"
    answers: tuple[Answer, ...]


def scan_members(
    members: Iterable[Member],
    settings: Settings,
    progress: Progress | None = None,
    *,
    covered: Container[str] = frozenset(),
) -> tuple[list[Finding], dict[str, str]]:
    """Scan every member; return the virus and unscanned findings and the engine versions.

    Findings are blocking, located by the member's location, and deduplicated:
    one signature on one location is one finding whichever engine saw it, and a
    hit on a container is dropped when the same signature is found on a file
    inside it. ``progress`` is called from the calling thread only.

    ``members`` may be a stream: each file is scanned as soon as it arrives,
    while the unpacker writes the next ones. Containers wait for the end of the
    stream; one whose location is then in ``covered`` (the unpacker read every
    byte of it into members, each scanned here on its own) is not read again,
    so ClamAV does not unpack what Assay already did. Any other container is
    scanned whole, as every other file is.
    """
    limit = min(settings.limits.max_scan_file_bytes, CLAMAV_MAX_FILE)
    rules = load_rules(tuple(settings.signature_dirs))
    engines = {"yara": rules.version, "signatures": _signature_version()}
    run = _Run(progress)
    clamav = _ClamdScan(settings) if settings.clamd else _ClamscanScan(settings, limit)
    try:
        engines["clamav"] = clamav.version()
        run.go(members, clamav, rules, limit, covered)
    finally:
        clamav.close()
    findings = run.too_large + run.findings(clamav.unavailable)
    return _dedupe(findings, run.members), engines


class _Run:
    """Scans the members on worker threads and gathers their answers on the calling thread."""

    def __init__(self, progress: Progress | None):
        self.members: list[Member] = []
        self.too_large: list[Finding] = []
        self.hits: list[_Hit] = []
        self.events: queue.Queue[_Hit] = queue.Queue()
        self.progress = progress
        self.pending: dict[int, int] = {}  # index -> engine answers still due
        self.done = 0
        self.total: int | None = None  # None while a stream is still arriving

    def go(self, members: Iterable[Member], clamav, rules: RuleSet, limit: int, covered) -> None:
        # Bounded hand-off queues: the caller's stream waits when the engines fall behind.
        clamav_queue: queue.Queue[int | None] = queue.Queue(QUEUE)
        yara_queue: queue.Queue[int | None] = queue.Queue(QUEUE)
        later: list[int] = []  # containers, decided once the stream has ended
        batch: list[int] = []  # for a ClamAV back end that scans in one go
        if isinstance(members, (list, tuple)):  # not a stream: the total is known from the start
            self.total = len(members)
            self.done = sum(1 for m in members if m.size > limit)
        self._report(force=True)
        # Separate pools, so YARA keeps pace with ClamAV instead of queueing behind it.
        with (
            ThreadPoolExecutor(clamav.threads, "assay-clamav") as clamav_pool,
            ThreadPoolExecutor(YARA_THREADS, "assay-yara") as yara_pool,
        ):
            if clamav.streams:
                work = lambda i: clamav.scan(self.members[i].path, i, self.events.put)
                _drain(clamav_pool, clamav.threads, clamav_queue, work)
            _drain(yara_pool, YARA_THREADS, yara_queue, lambda i: self._yara(rules, i))

            def send(i: int) -> None:
                self.pending[i] = 2  # ClamAV and YARA answers due
                if clamav.streams:
                    clamav_queue.put(i)
                else:
                    batch.append(i)
                yara_queue.put(i)

            try:
                for member in members:
                    i = len(self.members)
                    self.members.append(member)
                    if member.size > limit:
                        # an oversized container was opened: each file inside it is scanned
                        if not member.container:
                            self.too_large.append(_too_large(member))
                        if self.total is None:
                            self.done += 1
                    elif member.container:
                        later.append(i)
                    else:
                        send(i)
                    self._collect(block=False)
                for i in later:
                    if self.members[i].location in covered:
                        self.done += 1
                    else:
                        send(i)
            finally:
                for _ in range(clamav.threads if clamav.streams else 0):
                    clamav_queue.put(None)
                for _ in range(YARA_THREADS):
                    yara_queue.put(None)
            if not clamav.streams:
                clamav.submit(clamav_pool, self.members, batch, self.events.put)
            while self.pending:
                self._collect(block=True)
        self._report(force=True)

    def _collect(self, block: bool) -> None:
        """Take in the answers that have arrived (at least one when ``block``)."""
        while True:
            try:
                hit = self.events.get(block=block)
            except queue.Empty:
                return
            block = False
            if hit.answers:
                self.hits.append(hit)
            self.pending[hit.index] -= 1
            if not self.pending[hit.index]:
                del self.pending[hit.index]
                self.done += 1
                self._report()

    def _yara(self, rules: RuleSet, index: int) -> None:
        path = self.members[index].path
        try:
            answers = tuple(Answer("virus", name) for name in _yara_match(rules, path))
        except yara.TimeoutError:
            answers = (Answer("unscanned", None, f"YARA did not finish within {MATCH_TIMEOUT}s"),)
        except Exception as exc:  # yara.Error, OSError: fail closed
            answers = (Answer("unscanned", None, f"YARA could not scan the file: {exc}"),)
        self.events.put(_Hit(index, "yara", answers))

    _last = 0.0

    def _report(self, force: bool = False) -> None:
        now = time.monotonic()
        if self.progress and (force or now - self._last >= 0.25):
            self._last = now
            total = len(self.members) if self.total is None else self.total
            self.progress("virus", self.done, total)

    def findings(self, unavailable: str | None) -> list[Finding]:
        out: list[Finding] = []
        missed = 0
        for hit in self.hits:
            member = self.members[hit.index]
            for answer in hit.answers:
                if answer.kind == "virus":
                    out.append(_virus(member.location, answer.name, hit.engine))
                elif answer.kind == "unscanned" and (gap := _gap(member, hit.engine, answer)):
                    out.append(gap)
                elif answer.kind == "unavailable":
                    missed += 1
        if missed:
            root = _root(self.members)
            out.append(_unscanned(
                root, "clamav", "unavailable",
                f"ClamAV unavailable ({unavailable}): {missed} of {len(self.members)} "
                "files were not scanned for viruses",
            ))
        return out


def _drain(pool: ThreadPoolExecutor, threads: int, indexes: queue.Queue, work) -> None:
    """Run ``work(i)`` on ``threads`` threads of ``pool`` for each index put on the queue.

    Each thread stops at a ``None``. Threads pull indexes rather than holding a
    future per file: a package can hold hundreds of thousands of files.
    """

    def loop() -> None:
        while (i := indexes.get()) is not None:
            work(i)

    for _ in range(threads):
        pool.submit(loop)


def _yara_match(rules: RuleSet, path: Path) -> list[str]:
    with open(path, "rb") as f:
        head = f.read(HEAD_BYTES)
    if head.startswith(COMPRESSED_MAGIC):
        return []
    return rules.match(path, head)


class _ClamdScan:
    """ClamAV through a clamd daemon, a few INSTREAM sessions in parallel."""

    streams = True  # each file is scanned as it comes
    threads = CLAMD_CONNECTIONS

    def __init__(self, settings: Settings):
        self.address = settings.clamd
        self.unavailable: str | None = None
        self.down = threading.Event()
        self.sessions: queue.Queue[Session] = queue.Queue()
        for _ in range(CLAMD_CONNECTIONS):
            self.sessions.put(Session(self.address))

    def version(self) -> str:
        try:
            return request(self.address, "VERSION").strip()
        except OSError as exc:
            self._went_down(exc)
            return f"unavailable ({self.unavailable})"

    def _went_down(self, exc: BaseException) -> None:
        self.unavailable = f"clamd at {self.address}: {exc.__cause__ or exc}"
        self.down.set()

    def close(self) -> None:
        while not self.sessions.empty():
            self.sessions.get().close()

    def scan(self, path: Path, index: int, put) -> None:
        try:
            answer = self._answer(path)
        except Exception as exc:  # an answer is always due, or the run would wait forever
            answer = Answer("unscanned", None, f"ClamAV scan failed: {exc!r}")
        put(_Hit(index, "clamav", () if answer.kind == "clean" else (answer,)))

    def _answer(self, path: Path) -> Answer:
        if self.down.is_set():
            return Answer("unavailable")
        session = self.sessions.get()
        try:
            return session.scan_file(path)
        except ClamdUnreachable as exc:
            self._went_down(exc)
            return Answer("unavailable")
        except ClamdTimeout as exc:
            return Answer("unscanned", None, f"ClamAV timed out: {exc}")
        except OSError as exc:
            return Answer("unscanned", None, f"ClamAV could not scan the file: {exc}")
        finally:
            self.sessions.put(session)


class _ClamscanScan:
    """ClamAV through ``clamscan`` on one worker thread, in large batches."""

    streams = False  # all files at once, when the stream has ended
    threads = 1

    def __init__(self, settings: Settings, max_file: int):
        self.settings = settings
        self.limits = limits_for(max_file)
        self.unavailable: str | None = None

    def version(self) -> str:
        try:
            return clamscan.version()
        except (OSError, subprocess.SubprocessError, clamscan.ClamscanMissing) as exc:
            self.unavailable = f"clamscan: {exc}"
            return f"unavailable ({self.unavailable})"

    def submit(self, pool, members, indexes, put) -> None:
        pool.submit(self._scan, members, indexes, put)

    def close(self) -> None:
        pass

    def _scan(self, members, indexes, put) -> None:
        if self.unavailable:
            for i in indexes:
                put(_Hit(i, "clamav", (Answer("unavailable"),)))
            return
        answered: set[int] = set()

        def on_answer(i: int, answer: Answer) -> None:
            answered.add(i)
            put(_Hit(i, "clamav", () if answer.kind == "clean" else (answer,)))

        try:
            clamscan.scan(
                [(i, members[i].path) for i in indexes], self.limits, on_answer,
                extra_dirs=self.settings.signature_dirs, scratch_dir=self.settings.scratch_dir,
            )
        except Exception as exc:  # every file still gets an answer: unscanned
            for i in indexes:
                if i not in answered:
                    on_answer(i, Answer("unscanned", None, f"clamscan failed: {exc}"))


def fingerprint(*parts: str) -> str:
    """A stable finding id: the same finding on a rescan keeps it."""
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:32]


def _virus(location: str, signature: str, engine: str) -> Finding:
    return Finding(
        id=fingerprint("virus", signature, location), type="virus", location=location,
        blocking=True, signature=signature, engine=engine,
        summary=f"{signature} found by {'ClamAV' if engine == 'clamav' else 'YARA'}",
    )


def _unscanned(
    location: str, engine: str, code: str, summary: str, *, signature: str | None = None
) -> Finding:
    return Finding(
        id=fingerprint("unscanned", engine, code, location), type="unscanned",
        location=location, blocking=True, signature=signature, engine=engine, summary=summary,
    )


def _gap(member: Member, engine: str, answer: Answer) -> Finding | None:
    """An engine's "could not scan" answer about one member, or None when nothing was missed.

    ClamAV opens archives itself and may stop at a limit inside a container
    the unpacker has opened. Every file in such a container is scanned on its
    own (and the unpacker reports whatever it could not extract), so that
    alert is no gap; anywhere else a limit alert is.
    """
    if member.container and answer.name and answer.name.startswith(LIMIT_PREFIX):
        return None
    code = answer.name or "error"
    return _unscanned(member.location, engine, code, answer.reason, signature=answer.name)


def _too_large(member: Member) -> Finding:
    return _unscanned(
        member.location, "clamav", "size",
        f"file over 2 GiB cannot be scanned ({member.size} bytes)",
    )


def _root(members: list[Member]) -> str:
    return min(members, key=lambda m: m.depth).location if members else ""


def _inside(location: str, container: Member) -> bool:
    if container.depth == 0:
        return location != container.location
    return location.startswith(container.location + NEST)


def _dedupe(findings: list[Finding], members: list[Member]) -> list[Finding]:
    """One finding per id, none on a container already explained by a file inside it."""
    unique: dict[str, Finding] = {}
    for f in sorted(findings, key=lambda f: f.engine != "clamav"):
        unique.setdefault(f.id, f)  # ClamAV's report wins over YARA's on the same rule
    by_location = {m.location: m for m in members}
    kept = []
    for f in unique.values():
        member = by_location.get(f.location)
        if f.signature and member is not None and member.container and any(
            g.signature == f.signature and _inside(g.location, member) for g in unique.values()
        ):
            continue
        kept.append(f)
    return sorted(kept, key=lambda f: (f.location, f.type, f.signature or "", f.id))


_signature_cache: dict[tuple, str] = {}


def _signature_version() -> str:
    """A digest of Assay's ClamAV signature files, to record which set a scan used."""
    files = database_files(SIGNATURE_DIR)
    key = tuple((p.name, p.stat().st_mtime_ns) for p in files)
    if key not in _signature_cache:
        digest = hashlib.sha256()
        for path in files:
            digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
        _signature_cache[key] = f"assay sha256:{digest.hexdigest()[:12]} ({len(files)} files)"
    return _signature_cache[key]
