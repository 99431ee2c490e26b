"""``python -m scanner``: scan a package offline, or read an appeal back.

    python -m scanner scan PACKAGE --osv PATH [--osv PATH ...] [--threshold 7.0]
        [--json OUT|-] [--report OUT.xlsx] [--sbom OUT.cdx.json] [--clamd ADDRESS]
        [--inventory OUT.jsonl] [--secret KEY]
    python -m scanner appeal REPORT.xlsx --secret KEY [--report-id ID]

Exit status: 0 approved, 1 rejected, 2 error (one line on stderr). ``scan`` may be
left out: ``python -m scanner PACKAGE --osv PATH``.

The report is bound to the scan with an HMAC under a key derived from ``--secret`` or
the ``ASSAY_SECRET_KEY`` environment variable (the portal derives the same one, so the
CLI reads the portal's reports), and its report ID is the package's
sha256 and the scan's start time, ``<sha256>@<started>``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

from scanner.model import STAGES, ScanError, ScanResult, Settings

EXIT_APPROVED, EXIT_REJECTED, EXIT_ERROR = 0, 1, 2
SECRET_ENV = "ASSAY_SECRET_KEY"


class _Parser(argparse.ArgumentParser):
    """Usage errors as one line on stderr, exit status 2."""

    def error(self, message: str):
        self.exit(EXIT_ERROR, f"{self.prog}: error: {_one_line(message)}\n")


class _Failure(Exception):
    """An error already phrased for the user."""


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] not in ("scan", "appeal") and not argv[0].startswith("-"):
        argv.insert(0, "scan")
    args = _parser().parse_args(argv)
    try:
        return args.run(args)
    except (_Failure, ScanError) as exc:
        return _fail(str(exc))
    except OSError as exc:
        return _fail(f"{exc.filename or ''}: {exc.strerror or exc}".lstrip(": "))
    except Exception as exc:  # noqa: BLE001 -- the exit-status contract holds whatever failed
        return _fail(f"unexpected {type(exc).__name__}: {exc}")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m scanner", description="Assay package scanner")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    scan = commands.add_parser("scan", help="scan a package and decide its verdict")
    scan.add_argument("package", type=Path)
    scan.add_argument(
        "--osv",
        type=Path,
        action="append",
        required=True,
        help="OSV data: a folder of JSON records or an all.zip (repeatable)",
    )
    scan.add_argument(
        "--threshold",
        type=_threshold,
        default=7.0,
        help="CVSS base score from which a vulnerability blocks (default 7.0)",
    )
    scan.add_argument("--json", metavar="OUT|-", help="write the JSON result ('-' for stdout)")
    scan.add_argument(
        "--report", type=Path, metavar="OUT.xlsx", help="write the security scan report"
    )
    scan.add_argument(
        "--sbom", type=Path, metavar="OUT.cdx.json", help="write a CycloneDX JSON SBOM"
    )
    scan.add_argument(
        "--inventory",
        type=Path,
        metavar="OUT.jsonl",
        help="write what was examined, one JSON line per file (written as the scan goes)",
    )
    scan.add_argument(
        "--clamd",
        metavar="ADDRESS",
        help="clamd address, tcp://host:port or unix:///path (default: clamscan)",
    )
    scan.add_argument(
        "--kind",
        choices=("binary", "docker"),
        default="binary",
        help="the asset's kind; a docker package must hold container images (default binary)",
    )
    scan.add_argument("--secret", help=f"report signing key (default: ${SECRET_ENV})")
    scan.set_defaults(run=_scan)

    appeal = commands.add_parser("appeal", help="print the F/G/H claims of a filled-in report")
    appeal.add_argument("report", type=Path)
    appeal.add_argument("--secret", help=f"report signing key (default: ${SECRET_ENV})")
    appeal.add_argument("--report-id", help="refuse a report issued for another scan")
    appeal.set_defaults(run=_appeal)
    return parser


def _scan(args) -> int:
    secret = args.secret or os.environ.get(SECRET_ENV)
    if args.report and not secret:
        raise _Failure(f"--report needs --secret or ${SECRET_ENV}")
    if not args.package.is_file():
        raise _Failure(f"package not found: {args.package}")
    from scanner.pipeline import scan_package

    if args.inventory is not None and not args.inventory.parent.is_dir():
        raise _Failure(f"--inventory: no such directory: {args.inventory.parent}")
    settings = Settings(
        osv_paths=tuple(args.osv), threshold=args.threshold, clamd=args.clamd, kind=args.kind,
        inventory=args.inventory,
    )
    progress = TerminalProgress(sys.stderr) if sys.stderr.isatty() else None
    try:
        result = scan_package(args.package, settings, progress)
        _write_outputs(args, result, secret, progress)
    finally:
        if progress:
            progress.close()
    if args.json != "-":
        _print_summary(result, sys.stdout)
    return EXIT_APPROVED if result.verdict == "approved" else EXIT_REJECTED


def _write_outputs(args, result: ScanResult, secret: str | None, progress) -> None:
    outputs = [x for x in (args.json, args.report, args.sbom) if x]
    done = 0
    progress = progress if outputs else None
    if progress:
        progress("report", done, len(outputs))
    if args.json:
        text = json.dumps(result.to_dict(), indent=2, ensure_ascii=False) + "\n"
        if args.json == "-":
            sys.stdout.write(text)
            sys.stdout.flush()
        else:
            Path(args.json).write_text(text, encoding="utf-8")
        done += 1
    if args.report:
        from scanner.report import binding_key, write_report

        report_id = f"{result.package.sha256}@{result.scan.started}"
        args.report.write_bytes(
            write_report(result, report_id=report_id, secret=binding_key(secret))
        )
        done += 1
    if args.sbom:
        from scanner.sbom import write_sbom

        args.sbom.write_text(write_sbom(result), encoding="utf-8")
        done += 1
    if progress:
        progress("report", done, len(outputs))


def _appeal(args) -> int:
    from scanner.report import ReportError, binding_key, read_appeal

    secret = args.secret or os.environ.get(SECRET_ENV)
    if not secret:
        raise _Failure(f"appeal needs --secret or ${SECRET_ENV}")
    if not args.report.is_file():
        raise _Failure(f"report not found: {args.report}")
    try:
        appeal = read_appeal(
            args.report.read_bytes(), secret=binding_key(secret), report_id=args.report_id,
            require_yes=False,
        )
    except ReportError as exc:
        raise _Failure(str(exc)) from exc
    data = {
        "report_id": appeal.report_id,
        "claims": [dataclasses.asdict(claim) for claim in appeal.claims],
    }
    print(json.dumps(data, indent=2, ensure_ascii=False))
    return EXIT_APPROVED


def _print_summary(result: ScanResult, out) -> None:
    counts = {
        kind: sum(f.type == kind for f in result.findings)
        for kind in ("virus", "vulnerability", "unscanned")
    }
    blocking = [f for f in result.findings if f.blocking or f.type != "vulnerability"]
    print(
        f"{result.verdict.upper()}: {result.package.name} "
        f"({len(result.components)} components, {counts['vulnerability']} vulnerabilities, "
        f"{counts['virus']} viruses, {counts['unscanned']} unscanned)",
        file=out,
    )
    for f in blocking:
        if f.type == "vulnerability":
            what = f"{f.component.name} {f.component.version}" if f.component else f.location
            print(f"  {f.cvss.score if f.cvss else '-':>4}  {', '.join(f.ids)}  {what}", file=out)
        else:
            print(f"  {f.type:>5}  {f.signature or f.summary}  {f.location}", file=out)


def _threshold(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.0 <= value <= 10.0:
        raise argparse.ArgumentTypeError("must be between 0 and 10")
    return value


def _fail(message: str) -> int:
    print(f"error: {_one_line(message)}", file=sys.stderr)
    return EXIT_ERROR


def _one_line(text: str) -> str:
    return " ".join(str(text).split()) or "failed"


class TerminalProgress:
    """One self-rewriting status line on a terminal: stage, step of total, done/total."""

    BYTE_STAGES = ("fetch", "unpack")

    def __init__(self, stream, interval: float = 0.1):
        self.stream = stream
        self.interval = interval
        self._last = 0.0
        self._stage = None
        self._width = 0

    def __call__(self, stage: str, done: int, total: int) -> None:
        now = time.monotonic()
        if stage == self._stage and done < total and now - self._last < self.interval:
            return
        self._stage, self._last = stage, now
        step = STAGES.index(stage) + 1 if stage in STAGES else "?"
        if stage in self.BYTE_STAGES:
            amount = f"{done / 1e6:.1f}/{total / 1e6:.1f} MB"
        else:
            amount = f"{done}/{total}" if total else str(done)
        percent = f" {100 * done // total:3d}%" if total else ""
        line = f"[{step}/{len(STAGES)}] {stage:<9}{percent}  {amount}"
        self.stream.write("\r" + line.ljust(self._width))
        self.stream.flush()
        self._width = len(line)

    def close(self) -> None:
        if self._stage is not None:
            self.stream.write("\n")
            self.stream.flush()
