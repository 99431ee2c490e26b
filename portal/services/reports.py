"""Security scan reports as people download them, written again from the stored scan.

The worker stores a scan's report when the scan completes. Once the scan has an
appeal, what is downloaded is written again from the scan's stored result (its JSON
summary), so it shows what happened since: findings accepted as false positives in
column J with the reviewer's notes, the appeal's outcome on the Summary sheet, and the
seller's claims in F–H as they were stored. A reviewer never receives the file a
seller uploaded: nothing the seller changed outside F–H (the Summary's verdict,
columns I–S) reaches them.
"""

from __future__ import annotations

import json
from dataclasses import replace

from flask import current_app

from portal import storage
from portal.models import Appeal, ClaimVerdict, Scan
from portal.services import calendar, false_positives
from portal.services.errors import NotFound
from scanner.model import Claim, ScanResult
from scanner.report import write_report

#: The stored JSON summary of a scan; reports of 100,000 findings stay well below this.
MAX_SUMMARY_BYTES = 512 * 1024**2


def report_id(scan: Scan) -> str:
    """The id a scan's report is bound to (and an appeal's report is checked against)."""
    return f"scan-{scan.id}"


def stored_result(scan: Scan) -> ScanResult:
    """The scanner's result of a completed scan, as the worker stored it."""
    if not scan.summary_key:
        raise NotFound("This scan has no stored result to write a report from.")
    data = json.loads(storage.get_bytes(scan.summary_key, MAX_SUMMARY_BYTES))
    data.pop("scan_id", None)
    return ScanResult.from_dict(data)


def scan_report(scan: Scan, appeal: Appeal | None = None) -> bytes:
    """The report of ``scan`` written now: accepted false positives in column J and,
    with ``appeal``, its claims in F–H, the reviewer's notes and the outcome."""
    result = stored_result(scan)
    accepted = false_positives.accepted_for_scan(scan.id)
    verdict = false_positives.effective_verdict(result, accepted)
    claims, review, lines = ({}, {}, []) if appeal is None else _appeal_parts(appeal)
    version = scan.version
    return write_report(replace(result, verdict=verdict), report_id=report_id(scan),
                        secret=current_app.config["REPORT_KEY"], asset_name=version.asset.name,
                        version_label=version.label, accepted=accepted, claims=claims,
                        review=review, appeal_rows=lines)


def latest_appeal(scan: Scan) -> Appeal | None:
    """The newest appeal on the scan, open or decided, if any."""
    appeals = [a for a in scan.version.appeals if a.scan_id == scan.id]
    return max(appeals, key=lambda a: (a.submitted_at, a.id)) if appeals else None


def _appeal_parts(appeal: Appeal) -> tuple[dict, dict, list]:
    claims, review = {}, {}
    for c in appeal.claims:
        claims[c.finding_fingerprint] = Claim(c.finding_fingerprint, c.false_positive,
                                              c.reason or "", c.evidence or "", 0)
        if c.verdict is ClaimVerdict.rejected:
            review[c.finding_fingerprint] = f"Not accepted: {c.note}" if c.note else \
                "Not accepted"
        elif c.verdict is ClaimVerdict.accepted and c.note:
            review[c.finding_fingerprint] = f"Reviewer's note: {c.note}"
    zone = current_app.config.get("TIMEZONE", "UTC")
    submitted = calendar.local_time(appeal.submitted_at, zone)
    lines: list[tuple[str, object]] = [("Appeal", f"#{appeal.id}, submitted {submitted:%Y-%m-%d}")]
    if appeal.decision is None:
        lines.append(("Appeal decision", "open: a reviewer decides it by "
                      f"{calendar.local_time(appeal.due_at, zone):%Y-%m-%d %H:%M}"))
    else:
        decided = calendar.local_time(appeal.decided_at, zone) if appeal.decided_at else None
        when = f" on {decided:%Y-%m-%d}" if decided else ""
        by = f" by {appeal.reviewer.name}" if appeal.reviewer is not None else ""
        lines.append(("Appeal decision", f"{appeal.decision.value}{by}{when}"))
        if appeal.comment:
            lines.append(("Reviewer's comment", appeal.comment))
    return claims, review, lines
