"""Scan one package in a process of its own, so its peak RSS can be read alone.

``python -m tests.bench.scan_child PACKAGE --clamd ADDRESS --osv DIR --scratch DIR
[--memory-dir DIR]``
prints one JSON line: seconds spent in ``scan_package``, the seconds of its
catalog stage (from the progress callback's stage events: reading the component
sources kept during unpacking and parsing them), the verdict and the virus
locations.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from scanner.model import Settings
from scanner.osv import OsvDatabase
from scanner.pipeline import scan_package


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("package", type=Path)
    parser.add_argument("--clamd", required=True)
    parser.add_argument("--osv", type=Path, required=True)
    parser.add_argument("--scratch", type=Path, required=True)
    parser.add_argument("--memory-dir", type=Path, default=None)
    args = parser.parse_args()
    settings = Settings(osv_paths=(args.osv,), clamd=args.clamd, scratch_dir=args.scratch,
                        memory_dir=args.memory_dir)
    osv = OsvDatabase.load(settings.osv_paths)
    stages: dict[tuple[str, int], float] = {}

    def progress(stage: str, done: int, total: int) -> None:
        if stage == "catalog":
            stages.setdefault((stage, done), time.perf_counter())

    started = time.perf_counter()
    result = scan_package(args.package, settings, progress, osv=osv)
    seconds = time.perf_counter() - started
    print(json.dumps({
        "seconds": seconds,
        "catalog_seconds": stages[("catalog", 1)] - stages[("catalog", 0)],
        "verdict": result.verdict,
        "components": len(result.components),
        "viruses": sorted(f.location for f in result.findings if f.type == "virus"),
        "unscanned": sorted(f"{f.location}: {f.summary}"
                            for f in result.findings if f.type == "unscanned"),
    }))


if __name__ == "__main__":
    main()
