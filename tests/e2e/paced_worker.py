"""``python -m tests.e2e.paced_worker``: the real worker, with each scan stage held a moment.

The corpus packages scan in well under the badge's 2 s poll, so a browser would see Queued jump
straight to the verdict. Holding each stage for ``ASSAY_E2E_STAGE_PAUSE`` seconds (after its
progress is recorded) lets the test watch Scanning with its stages; the scan itself is the real
one.
"""

from __future__ import annotations

import os
import time

from portal.services import scans

PAUSE = float(os.environ.get("ASSAY_E2E_STAGE_PAUSE", "1.5"))


def _paced(record):
    seen: set[tuple[int, str]] = set()

    def record_progress(scan_id: int, stage: str, done: int, total: int) -> None:
        record(scan_id, stage, done, total)
        if (scan_id, stage) not in seen:
            seen.add((scan_id, stage))
            time.sleep(PAUSE)

    return record_progress


scans.record_progress = _paced(scans.record_progress)

if __name__ == "__main__":
    from worker.__main__ import main

    raise SystemExit(main())
