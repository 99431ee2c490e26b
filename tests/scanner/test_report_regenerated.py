"""A report written again after an appeal: the stored claims in F–H, the review in J."""

import io

import openpyxl

from scanner.model import Claim
from scanner.report import read_appeal

from .report_fixtures import UNSCANNED_ID, VIRUS_ID, VULN_ID
from .test_report import REPORT_ID, SECRET, issued

CLAIMS = {
    VULN_ID: Claim(VULN_ID, True, "Vulnerable code not in execute path", "full_load unused", 3),
    VIRUS_ID: Claim(VIRUS_ID, False, "", "we will remove it", 2),
}
REVIEW = {VULN_ID: "Reviewer: confirmed, full_load is never reached",
          UNSCANNED_ID: "Reviewer: not disputed"}
ACCEPTED = {VULN_ID: "accepted by rita@example.com on 2026-12-01"}


def test_claims_review_and_appeal_lines_are_written_and_read_back():
    data = issued(accepted=ACCEPTED, claims=CLAIMS, review=REVIEW,
                  appeal_rows=[("Appeal", "#7, accepted on 2026-12-01"),
                               ("Reviewer's comment", "Thanks for the detail.")])
    wb = openpyxl.load_workbook(io.BytesIO(data))
    rows = {r[0].value: [c.value for c in r] for r in wb["Findings"].iter_rows(min_row=2)}
    assert rows[VULN_ID][5:10] == ["Yes", "Vulnerable code not in execute path",
                                   "full_load unused", "No (accepted)",
                                   ACCEPTED[VULN_ID] + "\n" + REVIEW[VULN_ID]]
    assert rows[VIRUS_ID][5:10] == ["No", None, "we will remove it", "Yes", None]
    assert rows[UNSCANNED_ID][9] == REVIEW[UNSCANNED_ID]
    summary = {r[0].value: r[1].value for r in wb["Summary"].iter_rows() if r[0].value}
    assert summary["Appeal"] == "#7, accepted on 2026-12-01"
    assert summary["Reviewer's comment"] == "Thanks for the detail."
    appeal = read_appeal(data, secret=SECRET, report_id=REPORT_ID)
    assert [(c.finding_id, c.false_positive, c.reason, c.evidence) for c in appeal.claims] == [
        (VIRUS_ID, False, "", "we will remove it"),
        (VULN_ID, True, "Vulnerable code not in execute path", "full_load unused"),
    ]
