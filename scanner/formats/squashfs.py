"""SquashFS through ``unsquashfs`` (squashfs-tools), for what 7-Zip cannot read (lz4).

The listing (``-lls``) is read first: links, device nodes, FIFOs and sockets are
excluded so that they are never created, and files whose declared (apparent)
size is over the limits are excluded with a problem, so that a sparse bomb is
never written.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from scanner.formats._common import Budget, Problem, harvest, remove_tree, run_tool, staging_dir

_LINE = re.compile(r"^([-dlbcps])\S*\s+\S+\s+(?:(\d+)|\d+,\s*\d+)\s+\S+\s+\S+\s+squashfs-root(/.*)?$")


def unsquashfs(path: Path, outdir: Path, budget: Budget, timeout: float) -> list[Problem]:
    tool = shutil.which("unsquashfs")
    if tool is None:
        return [Problem("", "SquashFS could not be opened: unsquashfs is not installed")]
    image = str(path.resolve())
    listing = run_tool([tool, "-n", "-lls", image], timeout=timeout, limits=budget.limits)
    if listing.timed_out:
        return [Problem("", f"unsquashfs timed out after {timeout:.0f} s")]
    if listing.returncode != 0:
        return [Problem("", f"SquashFS could not be read: {_last(listing.stderr)}")]
    excluded, problems = plan(listing.stdout, budget)
    stage = staging_dir(outdir)
    try:
        argv = [tool, "-n", "-no-xattrs", "-d", str(stage / "root")]
        if excluded:
            (stage / "exclude.txt").write_text("\n".join(excluded) + "\n", "utf-8")
            argv += ["-exclude-file", str(stage / "exclude.txt")]
        argv.append(image)
        res = run_tool(
            argv,
            cwd=stage,
            timeout=timeout,
            max_file_bytes=budget.limits.max_file_bytes,
            watch=(stage, budget.cap - budget.total),
            limits=budget.limits,
        )
        if res.over_cap:
            problems.append(Problem("", "unsquashfs wrote more than the image declared; stopped"))
        elif res.timed_out:
            problems.append(Problem("", f"unsquashfs timed out after {timeout:.0f} s"))
        elif res.returncode != 0:
            problems.append(Problem("", f"SquashFS could not be fully extracted: {_last(res.stderr)}"))
        if (stage / "root").is_dir():
            problems += harvest(stage / "root", outdir, budget)
    finally:
        remove_tree(stage)
    return problems


def plan(listing: str, budget: Budget) -> tuple[list[str], list[Problem]]:
    excluded: list[str] = []
    problems: list[Problem] = []
    planned = Budget(budget.limits)
    planned.cap, planned.total, planned.members = budget.cap, budget.total, budget.members
    for line in listing.splitlines():
        m = _LINE.match(line)
        if not m or not m.group(3):
            continue
        kind, size, rel = m.group(1), m.group(2), m.group(3).split(" -> ", 1)[0]
        if kind == "d":
            continue
        if kind != "-":
            # Exclusions are wildcards: a crafted name must not exclude real files.
            if not any(c in rel for c in "*?["):
                excluded.append(rel.lstrip("/"))
            continue
        reason = planned.file_fits(int(size or 0))
        if reason:
            excluded.append(rel.lstrip("/"))
            problems.append(Problem(rel.lstrip("/"), f"not extracted: {reason}"))
        else:
            planned.take(int(size or 0))
    return excluded, problems


def _last(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[-1] if lines else "unknown error"
