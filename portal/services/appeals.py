"""Appeals, the seller's side: a rejected seller disputes findings of the latest scan.

A seller appeals the latest scan of a rejected version, either with the filled-in
security scan report (columns F–H, verified by ``scanner.report.read_appeal``) or
with the same claims typed into the web form. Nothing from a refused submission is
kept: the file is checked in memory first, and objects stored before a later
refusal are removed again.

This is the seller's side; reviewers decide in ``portal.services.reviews`` and what
they accept is remembered in ``portal.services.false_positives``.
"""

from __future__ import annotations

import re
import tempfile
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterable

from flask import current_app

from portal import storage
from portal.extensions import db
from portal.models import (
    Appeal, AppealClaim, AppealDecision, AppealEvidence, AssetVersion, Scan, ScanFinding,
    ScanState, User,
)
from portal.services import access, false_positives, reports, sla, state
from portal.services.audit import record_event
from portal.services.errors import Forbidden, NotFound, ValidationError
from portal.services.evidence import EvidenceRefused, check_file, receive
from portal.services.reports import report_id
from portal.timeutil import utcnow
from scanner.report import MAX_TEXT, REASONS, ReportError, read_appeal

#: The most a filled-in report may be (the reader refuses more with its own message).
MAX_REPORT_BYTES = 10 * 1024 * 1024
MAX_EVIDENCE_FILES = 10
MAX_EVIDENCE_BYTES = 50 * 1024 * 1024
_OTHER = REASONS[-1]
_XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@dataclass(frozen=True)
class ClaimInput:
    """One finding's F/G/H as the web form sends it."""

    finding_id: str  # the finding's fingerprint (column A)
    answer: str  # "Yes", "No" or ""
    reason: str = ""
    evidence: str = ""




@dataclass(frozen=True)
class FindingRow:
    finding: ScanFinding
    claim: AppealClaim | None
    accepted_before: bool  # remembered from an earlier appeal of this asset

    @property
    def open_blocking(self) -> bool:
        """Blocking and not accepted earlier: the version is approved only if it is disputed
        and accepted."""
        settled = self.accepted_before or bool(self.finding.accepted_note)
        return self.finding.blocking and not settled

    @property
    def prominent(self) -> bool:
        """Disputed, or blocking and not yet accepted: what the appeal turns on."""
        return self.claim is not None or self.open_blocking


@dataclass(frozen=True)
class SellerView:
    version: AssetVersion
    scan: Scan | None
    appeal: Appeal | None  # the open appeal, else the newest on this scan
    rows: list[FindingRow]
    refusal: str | None  # why a new appeal cannot be filed now
    due: sla.Due | None
    reasons: tuple[str, ...] = REASONS

    @property
    def open_blocking(self) -> int:
        """How many findings an appeal must dispute (and have accepted) to approve."""
        return sum(row.open_blocking for row in self.rows)


def seller_view(actor: User, version_id: int) -> SellerView:
    """The appeal page of a version for its owner: findings, the current appeal, its due
    date, or why no appeal can be filed."""
    version = access.own_version(actor, version_id)
    scan = _latest_done_scan(version)
    appeal = _current_appeal(version, scan)
    refusal = _appeal_refusal(version, scan)
    due = sla.due_status(appeal.due_at) if appeal is not None and appeal.is_open else None
    return SellerView(version, scan, appeal, finding_rows(scan, appeal), refusal, due)


def submit_appeal(actor: User, version_id: int, *, report_stream: BinaryIO | None,
                  report_name: str = "report.xlsx",
                  evidence_files: Iterable[tuple[str, BinaryIO]] = (),
                  address: str | None = None, allow_unclaimed: bool = True) -> Appeal:
    """Appeal with the filled-in report of the version's latest scan.

    The file must be that scan's report, unchanged in A–E, with at least one Yes
    and a reason for each Yes; otherwise ValidationError (field ``report``) with
    the reader's message naming the row and column, and nothing is stored.
    Unless ``allow_unclaimed`` (the seller confirmed it), an appeal that leaves a
    blocking finding undisputed is refused (field ``unclaimed``): it cannot approve.
    """
    version, scan = _appealable(actor, version_id)
    data = _read_report(report_stream)
    try:
        parsed = read_appeal(data, secret=current_app.config["REPORT_KEY"],
                             report_id=report_id(scan), max_bytes=MAX_REPORT_BYTES,
                             filename=report_name)
    except ReportError as exc:
        raise ValidationError(str(exc), "report") from None
    claims = [_claim_row(scan, c.finding_id, c.false_positive, c.reason, c.evidence)
              for c in _first_per_finding(parsed.claims)]
    _check_unclaimed(scan, claims, allow_unclaimed)
    proof = (data, _clean_name(report_name) or "report.xlsx")
    return _file(actor, version, scan, claims, evidence_files, proof, address)


def submit_claims_form(actor: User, version_id: int, claims: list[ClaimInput], *,
                       evidence_files: Iterable[tuple[str, BinaryIO]] = (),
                       address: str | None = None, allow_unclaimed: bool = True) -> Appeal:
    """Appeal with claims typed into the findings table: the same checks and the same
    stored claims as a filled-in report."""
    version, scan = _appealable(actor, version_id)
    rows = [_form_claim(scan, c) for c in claims]
    rows = [r for r in rows if r is not None]
    if not any(r.false_positive for r in rows):
        raise ValidationError("Mark at least one finding as a false positive (Yes) and give "
                              "a reason.", "claims")
    _check_unclaimed(scan, rows, allow_unclaimed)
    return _file(actor, version, scan, rows, evidence_files, None, address)


def unclaimed_blocking(scan: Scan, claims: Iterable[AppealClaim]) -> list[ScanFinding]:
    """The blocking findings of ``scan`` that ``claims`` leave undisputed (not accepted
    earlier either): while one is left, the appeal can only be rejected."""
    disputed = {c.finding_fingerprint for c in claims if c.false_positive}
    return [row.finding for row in finding_rows(scan, None)
            if row.open_blocking and row.finding.fingerprint not in disputed]


def _check_unclaimed(scan: Scan, claims: list[AppealClaim], allowed: bool) -> None:
    left = [] if allowed else unclaimed_blocking(scan, claims)
    if not left:
        return
    names = "; ".join(_finding_label(f) for f in left[:5])
    if len(left) > 5:
        names += f"; and {len(left) - 5} more"
    one = len(left) == 1
    raise ValidationError(
        f"{len(left)} blocking finding{'' if one else 's'} {'is' if one else 'are'} not disputed "
        f"({names}). An appeal is accepted only if every blocking finding is accepted as a false "
        "positive, so this one cannot approve the version. Dispute "
        f"{'it' if one else 'them'} too, fix the package (Modify), or confirm below to submit "
        "anyway.", "unclaimed")


def withdraw_appeal(actor: User, appeal_id: int, *, address: str | None = None) -> Appeal:
    """The seller takes back an open appeal; the version is rejected again."""
    appeal = get_appeal(actor, appeal_id)
    if appeal.version.asset.owner_id != actor.id:
        raise Forbidden("Only the seller who appealed can withdraw the appeal.")
    if not appeal.is_open:
        raise ValidationError("This appeal was already decided or withdrawn.")
    appeal.decision, appeal.decided_at = AppealDecision.withdrawn, utcnow()
    state.move(appeal.version, "withdraw", actor=actor, address=address)
    record_event(actor, "appeal.withdraw", appeal, before={"decision": None},
                 after={"decision": "withdrawn"}, address=address)
    db.session.commit()
    return appeal


def get_appeal(actor: User, appeal_id: int) -> Appeal:
    """The appeal for its seller or any reviewer; NotFound for anyone else."""
    appeal = db.session.get(Appeal, appeal_id)
    if appeal is None or actor is None:
        raise NotFound("No such appeal.")
    if not actor.is_reviewer and appeal.version.asset.owner_id != actor.id:
        raise NotFound("No such appeal.")
    return appeal


def evidence_download(actor: User, evidence_id: int) -> tuple[str, storage._Stream]:
    """(file name, open stream) of an evidence file, for its seller or a reviewer.

    A file stored before evidence was examined on upload is examined now, once; a
    refused one is never served (ValidationError with the reason).
    """
    evidence = db.session.get(AppealEvidence, evidence_id)
    if evidence is None:
        raise NotFound("No such file.")
    get_appeal(actor, evidence.appeal_id)
    if evidence.scanned_at is None:
        _examine_stored(evidence)
    return evidence.filename, storage.open_stream(evidence.key)


def proof_download(actor: User, appeal_id: int) -> tuple[str, bytes]:
    """(file name, xlsx bytes) of the appeal's report: written from the stored scan with
    the claims as stored (F–H) and the review so far, never the file the seller uploaded."""
    appeal = get_appeal(actor, appeal_id)
    version = appeal.version
    name = f"{version.asset.name}-{version.label}-appeal-{appeal.id}-report.xlsx"
    return _clean_name(name.replace("/", "_")), reports.scan_report(appeal.scan, appeal)


def _latest_done_scan(version: AssetVersion) -> Scan | None:
    scan = version.latest_scan
    return scan if scan is not None and scan.state is ScanState.done else None


def _current_appeal(version: AssetVersion, scan: Scan | None) -> Appeal | None:
    appeals = [a for a in version.appeals if scan is not None and a.scan_id == scan.id]
    open_ = [a for a in appeals if a.is_open]
    return (open_ or appeals or [None])[-1]


def _appeal_refusal(version: AssetVersion, scan: Scan | None) -> str | None:
    reason = state.refusal(version, "appeal")
    if reason is not None:
        return reason
    if scan is None or not scan.report_key:
        return "The latest scan of this version has no report to appeal."
    return None


def _appealable(actor: User, version_id: int) -> tuple[AssetVersion, Scan]:
    version = access.own_version(actor, version_id)
    scan = _latest_done_scan(version)
    reason = _appeal_refusal(version, scan)
    if reason is not None:
        raise ValidationError(reason)
    return version, scan


def _first_per_finding(claims):
    seen: set[str] = set()
    for claim in claims:
        if claim.finding_id not in seen:
            seen.add(claim.finding_id)
            yield claim


def _read_report(stream: BinaryIO | None) -> bytes:
    data = stream.read(MAX_REPORT_BYTES + 1) if stream is not None else b""
    if not data:
        raise ValidationError("Choose the filled-in security scan report (.xlsx) to upload.",
                              "report")
    if len(data) > MAX_REPORT_BYTES:
        raise ValidationError(f"The file is more than {MAX_REPORT_BYTES / 2**20:.1f} MB, the most "
                              "a report may be; upload the report as downloaded.", "report")
    return data


def _claim_row(scan: Scan, fingerprint: str, false_positive: bool, reason: str,
               evidence: str) -> AppealClaim:
    finding = next((f for f in scan.findings if f.fingerprint == fingerprint), None)
    if finding is None:
        raise ValidationError("The claims name a finding that is not in this version's latest "
                              "scan; download the report again.", "report")
    return AppealClaim(finding_fingerprint=fingerprint, finding=finding,
                       false_positive=false_positive, reason=reason, evidence=evidence)


def _form_claim(scan: Scan, claim: ClaimInput) -> AppealClaim | None:
    """Check one row of the form the way the report reader checks a row of the sheet."""
    answer, reason = claim.answer.strip().casefold(), _canonical_reason(claim.reason)
    evidence = (claim.evidence or "").strip()
    if not (answer or reason or evidence):
        return None
    row = _claim_row(scan, claim.finding_id, answer in ("yes", "y"), reason, evidence)
    name = _finding_label(row.finding)
    if answer not in ("yes", "y", "no", "n"):
        raise ValidationError(f"Finding {name}: choose Yes or No under “False positive?”.",
                              "claims")
    if max(len(reason), len(evidence)) > MAX_TEXT:
        raise ValidationError(f"Finding {name}: keep the reason and evidence under {MAX_TEXT} "
                              "characters each and attach longer evidence as a file.", "claims")
    if row.false_positive and not reason:
        raise ValidationError(f"Finding {name}: give a reason for each finding marked Yes.",
                              "claims")
    if row.false_positive and reason == _OTHER and not evidence:
        raise ValidationError(f"Finding {name}: explain the reason under “Evidence / remarks”, "
                              f"since the reason is “{_OTHER}”.", "claims")
    return row


def _canonical_reason(reason: str) -> str:
    """A reason from the list in its listed spelling; free text as typed (trimmed)."""
    text = (reason or "").strip()
    folded = re.sub(r"\s+", " ", text).casefold()
    return next((known for known in REASONS if known.casefold() == folded), text)


def _finding_label(finding: ScanFinding) -> str:
    ident = ", ".join(finding.ids) or finding.signature or finding.type
    if finding.component_name:
        return f"{ident} in {finding.component_name} {finding.component_version or ''}".strip()
    return ident


def _file(actor: User, version: AssetVersion, scan: Scan, claims: list[AppealClaim],
          evidence_files, proof: tuple[bytes, str] | None, address: str | None) -> Appeal:
    """Store the files, then the appeal and its claims; on any refusal nothing stays.

    The files go to storage before any row is written, so no database transaction
    is held while they stream (SQLite would lock the whole database meanwhile).
    """
    uploads = _evidence_uploads(evidence_files)
    prefix = storage.appeal_prefix(actor.id, version.asset_id, version.id,
                                   storage.new_upload_id())
    db.session.commit()
    stored: list[str] = []
    try:
        evidence = []
        for number, (name, stream) in enumerate(uploads, start=1):
            stored.append(f"{prefix}evidence/{number}")
            evidence.append(_store_evidence(stored[-1], name, stream))
        if proof is not None:
            stored.append(prefix + "report.xlsx")
            storage.put_bytes(stored[-1], proof[0], content_type=_XLSX)
        now = utcnow()
        appeal = Appeal(version=version, scan=scan, seller_id=actor.id, submitted_at=now,
                        due_at=sla.compute_due(now), claims=claims, evidence=evidence,
                        proof_key=prefix + "report.xlsx" if proof else None,
                        proof_name=proof[1] if proof else None, comment="")
        db.session.add(appeal)
        db.session.refresh(version, with_for_update=True)  # two submissions: one wins
        state.move(version, "appeal", actor=actor, address=address)
        record_event(actor, "appeal.submit", appeal, after={
            "version": version.id, "scan": scan.id, "claims": len(claims),
            "disputed": sum(c.false_positive for c in claims), "evidence": len(uploads),
            "via": "report" if proof else "form", "due_at": appeal.due_at.isoformat()},
            address=address)
        db.session.commit()
    except BaseException:
        db.session.rollback()
        _remove(stored)
        raise
    return appeal


def _evidence_uploads(files) -> list[tuple[str, BinaryIO]]:
    uploads = [(_clean_name(name), stream) for name, stream in files if (name or "").strip()]
    if len(uploads) > MAX_EVIDENCE_FILES:
        raise ValidationError(f"Attach at most {MAX_EVIDENCE_FILES} evidence files.", "evidence")
    for name, _ in uploads:
        if not name:
            raise ValidationError("An evidence file has no usable name; rename it and try "
                                  "again.", "evidence")
    return uploads


def _store_evidence(key: str, name: str, stream: BinaryIO) -> AppealEvidence:
    """Examine one evidence file (``portal.services.evidence``), then store it."""
    try:
        with receive(name, stream, max_bytes=MAX_EVIDENCE_BYTES) as received:
            checked = check_file(name, received.path, clamd=current_app.config["CLAMD_ADDRESS"])
            with open(received.path, "rb") as f:
                storage.put_stream(key, f, max_bytes=MAX_EVIDENCE_BYTES)
    except EvidenceRefused as refused:
        raise ValidationError(str(refused), "evidence") from None
    return AppealEvidence(key=key, filename=name, size=received.size, sha256=received.sha256,
                          scanned_with=checked.engines[:255], scanned_at=utcnow())


def _examine_stored(row: AppealEvidence) -> None:
    with tempfile.TemporaryDirectory(prefix="evidence-") as tmp:
        path = Path(tmp) / "file"
        storage.fetch_to_file(row.key, path)
        try:
            checked = check_file(row.filename, path, clamd=current_app.config["CLAMD_ADDRESS"])
        except EvidenceRefused as refused:
            raise ValidationError(str(refused), "evidence") from None
    row.scanned_with, row.scanned_at = checked.engines[:255], utcnow()
    db.session.commit()


def _clean_name(name: str | None) -> str:
    """A file name to show and offer for download: no folders, no control characters."""
    base = Path((name or "").replace("\\", "/")).name
    base = "".join(ch for ch in base if unicodedata.category(ch)[0] != "C").strip()
    return base[-200:]


def _remove(keys: list[str]) -> None:
    for key in keys:
        try:
            storage.delete(key)
        except Exception:  # noqa: BLE001 - the orphan sweeper removes what is left
            current_app.logger.warning("could not delete %s now; the sweeper will", key)


def finding_rows(scan: Scan | None, appeal: Appeal | None) -> list[FindingRow]:
    """Every finding of the scan with the appeal's claim on it, if any."""
    if scan is None:
        return []
    claims = {c.finding_fingerprint: c for c in (appeal.claims if appeal else [])}
    before = false_positives.accepted_fingerprints(scan.version.asset_id)
    return [FindingRow(f, claims.get(f.fingerprint), f.fingerprint in before or
                       bool(f.accepted_note)) for f in scan.findings]
