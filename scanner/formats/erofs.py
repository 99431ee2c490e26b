"""EROFS images (Android's system partitions since Android 13) through erofs-utils.

``fsck.erofs --extract`` (Debian ``erofs-utils``) checks the image and writes its
tree into a private staging directory beside ``outdir``; :func:`harvest` then moves
in regular files and directories only, walking with ``lstat``: symbolic links and
device nodes the tool made stay in the staging directory, are never followed, and
are removed with it. fsck.erofs itself refuses a directory whose entries are out of
order (so no name can appear twice and be written through a link of the same name)
and never descends into a path that is not a directory.

fsck.erofs 1.5 can exit 0 after an error it printed (a bad superblock checksum,
say), so any ``<E>`` line on its error output counts as a failure too. What could
not be read is a :class:`Problem` naming the format and the tool's own words.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from scanner.formats._common import Budget, Problem, harvest, remove_tree, run_tool, staging_dir
from scanner.model import Limits

TOOL = "fsck.erofs"


def extract(fmt: str, path: Path, outdir: Path, limits: Limits, timeout: float) -> list[Problem]:
    tool = shutil.which(TOOL)
    if tool is None:
        return [
            Problem("", f"EROFS image could not be opened: {TOOL} (erofs-utils) is not installed")
        ]
    budget = Budget(limits, path.stat().st_size)
    stage = staging_dir(outdir)
    dest = stage / "files"
    problems: list[Problem] = []
    try:
        res = run_tool(
            [tool, f"--extract={dest}", "--no-preserve", str(path.resolve())],
            cwd=stage,
            timeout=timeout,
            max_file_bytes=limits.max_file_bytes,
            watch=(stage, budget.cap),
            limits=limits,
        )
        errors = [ln.strip() for ln in res.stderr.splitlines() if ln.strip().startswith("<E>")]
        if res.over_cap:
            problems.append(
                Problem(
                    "", f"EROFS image: {TOOL} output passed the {budget.cap}-byte limit; stopped"
                )
            )
        elif res.timed_out:
            problems.append(Problem("", f"EROFS image: {TOOL} timed out after {timeout:.0f} s"))
        elif res.returncode != 0 or errors:
            why = errors[0] if errors else _last(res.stdout + res.stderr)
            problems.append(Problem("", f"EROFS image could not be read in full: {why[:300]}"))
        if dest.is_dir():
            problems += harvest(dest, outdir, budget)
    finally:
        remove_tree(stage)
    return problems


def _last(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[-1] if lines else f"{TOOL} failed"


EXTRACTORS = {"erofs": extract}
