"""The scan pipeline: one package file in, one :class:`ScanResult` out (DESIGN §5).

fetch (hash) → identify → unpack → catalog → match → virus → verdict. The
``report`` stage belongs to the caller, which writes the outputs it wants.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import queue
import shutil
import stat
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from scanner import native, nested
from scanner.catalog import Cataloged, catalog
from scanner.identify import identify
from scanner.inventory import Inventory
from scanner.model import (
    NEST,
    Finding,
    PackageInfo,
    Progress,
    ScanError,
    ScanInfo,
    ScanResult,
    Settings,
)
from scanner.osv import OsvDatabase
from scanner.unpack import PAIRED_SUFFIXES, Member, Unpacked, iter_unpack, unlink_quietly
from scanner.virus import Finished, local_clamd, reads_our_files, scan_members

CHUNK = 1024 * 1024
#: Members unpacked but not yet taken by the virus engines; beyond this unpacking waits.
FEED = 256
#: Bytes of files written but not yet scanned (containers aside); beyond this
#: unpacking waits, so scratch space stays bounded whatever the package size...
IN_FLIGHT = 256 * 1024 * 1024
#: ...except that this many files may always be in flight, whatever their size,
#: so that large files are scanned side by side (one per core) instead of in turn.
IN_FLIGHT_FILES = 2
#: Small files are handed to the engines in batches of up to this many...
BATCH = 32
#: ...files under this size; a larger file (or a container) is handed over at once.
BATCH_FILE = 256 * 1024
_TYPE_ORDER = {"virus": 0, "unscanned": 1, "vulnerability": 2}


def scan_package(
    path: Path,
    settings: Settings,
    progress: Progress | None = None,
    *,
    name: str | None = None,
    osv: OsvDatabase | None = None,
) -> ScanResult:
    """Scan one package file and decide its verdict.

    ``name`` is the seller's file name (defaults to ``path.name``); it is what the
    name rules apply to and what locations start with. ``osv`` lets a long-lived
    caller load the vulnerability data once; otherwise ``settings.osv_paths`` is read.
    Raises :class:`ScanError` when the package cannot be scanned at all. The scratch
    directory is removed whatever happens.
    """
    path = Path(path)
    name = name or path.name
    report = _reporter(progress)
    started = _now()
    if osv is None:
        if not settings.osv_paths:
            raise ScanError("no vulnerability data configured (OSV paths)")
        osv = OsvDatabase.load(settings.osv_paths)

    size, sha256 = _fetch(path, report)
    report("identify", 0, 1)
    fmt = identify(path, name)
    report("identify", 1, 1)

    scratch = Path(tempfile.mkdtemp(prefix="assay-scan-", dir=settings.scratch_dir))
    memory = None
    inventory = None
    try:
        inventory = Inventory(settings.inventory)
        memory = _memory_scratch(settings)
        # Members go to the virus engines as soon as they are on disk, so
        # unpacking, cataloging and virus scanning overlap.
        virus = _VirusScan(settings)
        try:
            # unpack reports bytes of the package read; so do the bounds around it.
            report("unpack", 0, size)
            unpacked = _unpack(
                path, scratch, memory, settings, name, progress, virus, inventory, sha256
            )
            report("unpack", size, size)
            refused = nested.refuse_without_images(settings.kind, unpacked.images)
            if refused:
                raise ScanError(refused)

            report("catalog", 0, 1)
            _test_stall("catalog")
            components = nested.with_layers(catalog(unpacked, settings.limits), unpacked.images)
            components = sorted(components, key=_component_key)
            report("catalog", 1, 1)

            report("match", 0, len(components))
            vulnerabilities = osv.match(components, settings.threshold)
            # libraries known only by the version string compiled into a binary
            vulnerabilities += native.match(components, settings.threshold)
            vulnerabilities = dev_only(vulnerabilities, settings.dev_blocks)
            report("match", len(components), len(components))

            report("virus", 0, len(unpacked.members))
            virus_findings, engines = virus.result(report)
        except BaseException:
            virus.abandon()  # before the scratch directory goes
            raise
        # one scan per content; a copy's location gets the findings of its original
        virus_findings = nested.copy_findings(virus_findings, unpacked.members)
        report("virus", len(unpacked.members), len(unpacked.members))
    finally:
        if inventory is not None:
            inventory.close()
        if memory is not None:
            _remove(memory)
        _remove(scratch)

    report("verdict", 0, 1)
    # an accepted virus or unscanned finding must never cover other bytes at its location
    bound = nested.bind_content(
        [*unpacked.findings, *virus_findings], unpacked.contents, (name, sha256)
    )
    findings = tuple(sorted([*bound, *vulnerabilities], key=_finding_key))
    result = ScanResult(
        verdict=verdict(findings),
        package=PackageInfo(name=name, size=size, sha256=sha256, format=fmt),
        components=tuple(components),
        findings=findings,
        scan=ScanInfo(
            policy=settings.policy,
            threshold=settings.threshold,
            engines={**engines, "osv": osv.snapshot, "native": native.database().snapshot},
            osv_records=osv.records,
            started=started,
            finished=_now(),
        ),
        images=tuple(image.summary() for image in unpacked.images),
        coverage=inventory.coverage(),
    )
    report("verdict", 1, 1)
    return result


#: For tests only, off unless set: the stage named in this environment variable blocks
#: (in C, where Python cannot interrupt it) instead of running, as a stalled reader would.
TEST_STALL_STAGE = "ASSAY_TEST_STALL_STAGE"


def _test_stall(stage: str) -> None:
    """Block for an hour at ``stage`` when :data:`TEST_STALL_STAGE` names it (tests only)."""
    if os.environ.get(TEST_STALL_STAGE) == stage:
        time.sleep(3600)


def _memory_scratch(settings: Settings) -> Path | None:
    """A scratch directory for small files on ``settings.memory_dir``, or None.

    Not used when that directory is missing or not writable, or when a clamd on
    this machine, which reads the scan's files itself, cannot read it there.
    """
    base = settings.memory_dir
    if base is None or not os.path.isdir(base) or not os.access(base, os.W_OK | os.X_OK):
        return None
    try:
        memory = Path(tempfile.mkdtemp(prefix="assay-scan-", dir=base))
    except OSError:
        return None
    if settings.clamd and local_clamd(settings.clamd) and not reads_our_files(
        settings.clamd, memory
    ):
        _remove(memory)
        return None
    return memory


def _unpack(
    path: Path, scratch: Path, memory: Path | None, settings: Settings, name: str, progress, virus,
    inventory: Inventory, sha256: str,
) -> Unpacked:
    """Unpack the package, handing each member to ``virus`` as soon as it is on disk.

    Each member, and each entry never written out, goes to ``inventory`` as it comes;
    ``sha256`` is the package's own.

    Each member is offered to the catalogers on arrival. A file is removed as
    soon as nothing needs it any more: scanned (or a copy, never scanned), not
    kept for the catalogers, and for a container, once its members have all
    come (they follow it directly: their locations start with its own).
    """
    unpacked = Cataloged(root=scratch)
    feed = unpacked.feed
    items = iter_unpack(
        path, scratch, settings.limits, name=name, progress=progress,
        images=unpacked.images, covered=virus.covered, memory_dir=memory,
        contents=unpacked.contents, skipped=inventory.entry,
    )
    contents = unpacked.contents
    opened: list[Member] = []  # containers whose members are still coming, innermost last
    for item in items:
        if isinstance(item, Member):
            while opened and not item.location.startswith(opened[-1].location + NEST):
                virus.put(Finished(opened.pop()))
            unpacked.members.append(item)
            if item.depth:
                digest = contents.get(item.location)
                inventory.file(item, digest.hex() if digest is not None else None)
            else:
                inventory.file(item, sha256)
            keep = feed.offer(item) or item.depth == 0 or item.path.name.endswith(PAIRED_SUFFIXES)
            if item.copy_of:  # one scan per content
                if not keep:
                    unlink_quietly(item.path)
                continue
            if not keep:
                virus.doom(item)
            virus.put(item)
            if item.container:
                opened.append(item)
        else:
            unpacked.findings.append(item)
    while opened:
        virus.put(Finished(opened.pop()))
    virus.close()
    return unpacked


class _VirusScan:
    """:func:`scan_members` on a thread of its own, fed through a bounded queue.

    Progress is relayed to the calling thread (:meth:`result`), which is the
    only one that calls the caller's progress callback.
    """

    _END = object()

    def __init__(self, settings: Settings):
        self.covered: set[str] = set()
        self.queue: queue.Queue = queue.Queue(FEED)
        # Files are removed once scanned only where the engines scan as they go (clamd).
        self.bounded = bool(settings.clamd)
        self.doomed: set[int] = set()  # ids of the members to remove once released
        self.in_flight = 0  # bytes put and not yet released (containers aside)
        self.files_in_flight = 0  # files put and not yet released (containers aside)
        self.released = threading.Condition()
        self.batch: list[Member | Finished] = []  # small files not yet handed over
        self.latest: tuple[int, int] | None = None
        self.outcome: tuple | None = None
        self.error: BaseException | None = None
        self.stopping = False
        self.thread = threading.Thread(
            target=self._run, args=(settings,), name="assay-virus", daemon=True
        )
        self.thread.start()

    def _run(self, settings: Settings) -> None:
        try:
            self.outcome = scan_members(
                self._members(), settings, self._progress, covered=self.covered,
                release=self._release,
            )
        except BaseException as exc:  # handed to the calling thread
            self.error = exc

    def _members(self):
        while (batch := self.queue.get()) is not self._END:
            if not self.stopping:
                yield from batch

    def _progress(self, _stage: str, done: int, total: int) -> None:
        self.latest = (done, total)

    def doom(self, member: Member) -> None:
        """Remove ``member``'s file once the engines are done with it."""
        if self.bounded:
            self.doomed.add(id(member))

    def _release(self, member: Member) -> None:
        """The engines are done with ``member`` (called on their threads)."""
        if id(member) in self.doomed:
            self.doomed.discard(id(member))
            unlink_quietly(member.path)
        if self.bounded and not member.container:
            with self.released:
                self.in_flight -= member.size
                self.files_in_flight -= 1
                self.released.notify_all()

    def put(self, member: Member | Finished) -> None:
        """Hand over one member; waits while the engines are behind.

        Small files go in batches (one hand-off for up to :data:`BATCH` of them);
        anything else, and a batch that is full, goes at once.
        """
        if self.bounded and isinstance(member, Member) and not member.container:
            with self.released:
                if self._full(member):
                    self._flush()  # what waits in the batch must be scanned to be released
                while self._full(member) and self.thread.is_alive() and not self.stopping:
                    self.released.wait(0.5)
                self.in_flight += member.size
                self.files_in_flight += 1
        self.batch.append(member)
        small = isinstance(member, Member) and not member.container and member.size < BATCH_FILE
        if not small or len(self.batch) >= BATCH:
            self._flush()

    def _full(self, member: Member) -> bool:
        """Whether ``member`` must wait for files in flight to be released."""
        return (
            self.files_in_flight >= IN_FLIGHT_FILES
            and self.in_flight + member.size > IN_FLIGHT
        )

    def _flush(self) -> None:
        if self.batch:
            batch, self.batch = self.batch, []
            self._hand(batch)

    def _hand(self, item) -> None:
        while self.thread.is_alive():
            try:
                self.queue.put(item, timeout=0.5)
                return
            except queue.Full:
                continue
        # the scan thread has ended (an error): result() raises it

    def close(self) -> None:
        """No more members."""
        self._flush()
        self._hand(self._END)

    def abandon(self) -> None:
        """Stop scanning (the package will not be judged); wait for the engines to let go."""
        self.stopping = True
        self.close()
        self.thread.join()

    def result(self, report) -> tuple[list[Finding], dict[str, str]]:
        """Wait for the scan, relaying its progress; its findings and engine versions."""
        while self.thread.is_alive():
            self.thread.join(0.25)
            if self.latest is not None:
                report("virus", *self.latest)
        if self.error is not None:
            raise self.error
        return self.outcome


#: Starts the summary of a vulnerability in a dev-only dependency.
DEV_NOTE = "Dev-only dependency (the lockfile's dev scope, not shipped): does not block. "


def dev_only(findings: list[Finding], dev_blocks: bool) -> list[Finding]:
    """Vulnerabilities of dev-only dependencies, reported; blocking only when the policy
    says so (``dev_blocks``), and then like any other."""
    if dev_blocks:
        return findings
    out = []
    for f in findings:
        if f.component is not None and f.component.scope == "dev":
            f = dataclasses.replace(f, blocking=False, summary=DEV_NOTE + f.summary)
        out.append(f)
    return out


def verdict(findings) -> str:
    """Rejected if any virus, any unscanned content, or any blocking vulnerability."""
    for finding in findings:
        if finding.type in ("virus", "unscanned") or finding.blocking:
            return "rejected"
    return "approved"


def _fetch(path: Path, report) -> tuple[int, str]:
    """Size and sha256 of the package, read in chunks."""
    try:
        total = path.stat().st_size
        digest = hashlib.sha256()
        done = 0
        report("fetch", 0, total)
        with path.open("rb") as handle:
            while chunk := handle.read(CHUNK):
                digest.update(chunk)
                done += len(chunk)
                if done % (256 * CHUNK) < CHUNK:
                    report("fetch", done, total)
    except OSError as exc:
        raise ScanError(f"cannot read the package: {exc.strerror or exc}") from exc
    report("fetch", done, total)
    return done, digest.hexdigest()


def _reporter(progress: Progress | None):
    def report(stage: str, done: int, total: int) -> None:
        if progress is not None:
            progress(stage, done, total)

    return report


def _component_key(component):
    return (component.ecosystem, component.name.lower(), component.version, component.location)


def _finding_key(finding: Finding):
    score = finding.cvss.score if finding.cvss else -1.0
    return (
        not finding.blocking,
        -score,
        _TYPE_ORDER.get(finding.type, 3),
        finding.location,
        finding.id,
    )


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _remove(scratch: Path) -> None:
    """Remove the scratch tree, even where unpacking left read-only directories."""

    def retry(func, target, _exc):
        try:
            os.chmod(os.path.dirname(target), stat.S_IRWXU)
            os.chmod(target, stat.S_IRWXU)
        except OSError:
            pass
        try:
            func(target)
        except OSError:
            pass

    if sys.version_info >= (3, 12):
        shutil.rmtree(scratch, onexc=retry)
    else:
        shutil.rmtree(scratch, onerror=retry)
