"""Flash file systems through their extractors: UBI/UBIFS and JFFS2.

* UBI and UBIFS: ``ubireader_extract_files`` (PyPI ``ubi_reader``); a UBI image
  gives one directory per volume, named after the volume.
* JFFS2: ``jefferson`` (PyPI).

YAFFS2 is read in-process, in every layout found on flash (:mod:`scanner.formats.yaffs2`).

None of these can list sizes before writing, so each runs with a per-file size
cap (RLIMIT_FSIZE), a cap on everything it writes (measured while it runs) and
the wall-clock timeout. They run in a private staging directory; only regular
files and directories are moved into ``outdir``.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from scanner.formats._common import Budget, Problem, harvest, remove_tree, run_tool, staging_dir
from scanner.model import Limits


def _script(name: str) -> str | None:
    """A console script installed beside this interpreter, or on PATH."""
    here = Path(sys.executable).parent / name
    return str(here) if here.exists() else shutil.which(name)


def _argv(fmt: str, image: str, dest: Path) -> tuple[list[str] | None, str]:
    if fmt in ("ubi", "ubifs"):
        tool = _script("ubireader_extract_files")
        return ([tool, "-o", str(dest), image] if tool else None), "ubi_reader"
    tool = _script("jefferson")
    return ([tool, "-d", str(dest), image] if tool else None), "jefferson"


def extract(fmt: str, path: Path, outdir: Path, limits: Limits, timeout: float) -> list[Problem]:
    budget = Budget(limits, path.stat().st_size)
    stage = staging_dir(outdir)
    dest = stage / "files"
    argv, name = _argv(fmt, str(path.resolve()), dest)
    if argv is None:
        remove_tree(stage)
        return [Problem("", f"{fmt} image could not be opened: {name} is not installed")]
    problems: list[Problem] = []
    try:
        res = run_tool(
            argv,
            cwd=stage,
            timeout=timeout,
            max_file_bytes=limits.max_file_bytes,
            watch=(dest, budget.cap),
            limits=limits,
        )
        if res.over_cap:
            problems.append(Problem("", f"{name} output passed the {budget.cap}-byte limit; stopped"))
        elif res.timed_out:
            problems.append(Problem("", f"{name} timed out after {timeout:.0f} s"))
        elif res.returncode != 0 or not dest.is_dir():
            problems.append(Problem("", f"{fmt} image could not be read: {_last(res.stdout + res.stderr)}"))
        if dest.is_dir():
            root = _ubi_volumes(dest) if fmt == "ubi" else dest
            problems += harvest(root, outdir, budget)
    finally:
        remove_tree(stage)
    return problems


def _ubi_volumes(dest: Path) -> Path:
    """ubi_reader writes ``<image sequence number>/<volume>/``: keep the volume level."""
    entries = [e for e in os.scandir(dest) if e.is_dir(follow_symlinks=False)]
    return Path(entries[0].path) if len(entries) == 1 else dest


def _last(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[-1][:300] if lines else "unknown error"


EXTRACTORS = {name: extract for name in ("ubi", "ubifs", "jffs2")}
