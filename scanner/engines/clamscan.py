"""Scanning with ``clamscan`` when no clamd is running.

clamscan loads its databases on every start, so files go to it in large
batches through ``--file-list``. Each file is listed under a symlink named by
its index: the answer lines then map back to members whatever characters the
real names hold (``: `` or newlines included).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Callable, Iterable

from .clamav import (
    OFFICIAL_DB_DIR,
    SIGNATURE_DIR,
    Answer,
    clamscan_args,
    database_files,
    official_files,
    parse_reply,
)

BATCH = 20_000


class ClamscanMissing(RuntimeError):
    """clamscan is not installed."""


def executable() -> str:
    found = shutil.which("clamscan")
    if not found:
        raise ClamscanMissing("clamscan is not installed")
    return found


def database_args(
    extra_dirs: Iterable[Path] = (), official_dir: Path = OFFICIAL_DB_DIR
) -> list[str]:
    """``-d`` for Assay's signatures, each extra directory, and the official data if present."""
    dirs = [SIGNATURE_DIR, *extra_dirs]
    args = [f"--database={d}" for d in dirs if database_files(Path(d))]
    if official_files(official_dir):
        args.append(f"--database={official_dir}")
    return args


def version(official_dir: Path = OFFICIAL_DB_DIR) -> str:
    """``ClamAV 1.4.6/27xxx/<date>`` (the daily version only with official data)."""
    args = [executable(), "--version"]
    if official_files(official_dir):
        args.append(f"--database={official_dir}")
    out = subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)
    return out.stdout.strip() or f"clamscan (version unknown: {out.stderr.strip()[:200]})"


def scan(
    files: list[tuple[int, Path]],
    limits: dict[str, int],
    on_answer: Callable[[int, Answer], None],
    *,
    extra_dirs: Iterable[Path] = (),
    scratch_dir: Path | None = None,
) -> None:
    """Scan ``(key, path)`` pairs; call ``on_answer(key, answer)`` once for every key.

    A file clamscan gave no answer for (it could not open it, or clamscan
    failed) is answered "unscanned", never clean.
    """
    base = [executable(), "--no-summary", *clamscan_args(limits), *database_args(extra_dirs)]
    for start in range(0, len(files), BATCH):
        _scan_batch(base, files[start:start + BATCH], on_answer, scratch_dir)


def _scan_batch(base, batch, on_answer, scratch_dir) -> None:
    with tempfile.TemporaryDirectory(prefix="assay-clamscan-", dir=scratch_dir) as tmp:
        links = Path(tmp) / "files"
        links.mkdir()
        by_link: dict[str, int] = {}
        for n, (key, path) in enumerate(batch):
            link = links / str(n)
            os.symlink(Path(path).resolve(), link)
            by_link[str(link)] = key
        listing = Path(tmp) / "list"
        listing.write_text("".join(f"{link}\n" for link in by_link))
        errors = Path(tmp) / "stderr"
        with open(errors, "wb") as err, subprocess.Popen(
            [*base, f"--file-list={listing}"], stdout=subprocess.PIPE, stderr=err,
            stdin=subprocess.DEVNULL, text=True, errors="replace",
        ) as proc:
            for line in proc.stdout:
                link, sep, reply = line.rstrip("\n").rpartition(": ")
                key = by_link.pop(link, None) if sep else None
                if key is not None:
                    on_answer(key, parse_reply(reply))
            rc = proc.wait()
        stderr = errors.read_text(errors="replace")
        for link, key in by_link.items():
            on_answer(key, Answer("unscanned", None, _failure(rc, stderr, link)))


def _failure(rc: int, stderr: str, link: str) -> str:
    """Why clamscan left this file unanswered: its own message about it, else the last one."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    mine = [line.split(f"{link}: ", 1)[1] for line in lines if f"{link}: " in line]
    detail = f": {(mine or lines)[-1][:200]}" if (mine or lines) else ""
    if rc == 2 and not mine:
        return f"clamscan failed (exit 2){detail}"
    return f"clamscan could not scan this file{detail}"
