"""External tools run under limits set before they start: memory, file size, output, time.

The limits are set by ``prlimit`` (no ``preexec_fn``: the scan is threaded). What
crosses one ends the tool, and the back end turns that into a problem with a reason.
"""

from __future__ import annotations

import os
import shutil
import sys
import threading
import time
from pathlib import Path

import pytest

from scanner.formats import extract
from scanner.formats._common import Budget, run_tool
from scanner.formats.squashfs import unsquashfs
from scanner.model import Limits

from .conftest import assert_sample

HOG = f"#!{sys.executable}\nx = bytearray(8 * 1024 ** 3)\nprint(len(x))\n"
LOUD = "#!/bin/sh\nexec yes 'a line that never ends'\n"


def test_the_memory_limit_is_set_before_the_tool_runs():
    limits = Limits(max_tool_memory_bytes=512 * 1024**2)
    res = run_tool(["sh", "-c", "ulimit -v"], limits=limits)
    assert res.returncode == 0 and res.stdout.strip() == str(512 * 1024)


def test_a_tool_over_the_memory_limit_fails_its_allocation():
    started = time.monotonic()
    res = run_tool([sys.executable, "-c", "x = bytearray(2 * 1024 ** 3)"],
                   limits=Limits(max_tool_memory_bytes=256 * 1024**2), timeout=60)
    assert res.returncode not in (0, None) and "MemoryError" in res.stderr
    assert time.monotonic() - started < 20


def test_a_tool_that_prints_without_end_is_stopped_at_the_output_cap():
    started = time.monotonic()
    res = run_tool(["yes"], limits=Limits(max_tool_output_bytes=1024 * 1024), timeout=60)
    assert res.returncode is None and res.over_output and not res.timed_out
    assert len(res.stdout) == 1024 * 1024
    assert res.stderr.splitlines()[-1] == "yes: stopped: output over the 1048576-byte limit"
    assert time.monotonic() - started < 20


def test_stderr_is_capped_too():
    res = run_tool(["sh", "-c", "yes >&2"], limits=Limits(max_tool_output_bytes=4096), timeout=60)
    assert res.over_output and "output over the 4096-byte limit" in res.stderr


def test_the_file_size_limit_still_holds(tmp_path):
    res = run_tool(["sh", "-c", "head -c 100000 /dev/zero > big"], cwd=tmp_path,
                   max_file_bytes=1000)
    assert (tmp_path / "big").stat().st_size <= 1001
    assert res.returncode != 0 and "File size limit exceeded" in res.stderr  # SIGXFSZ, not ignored


def test_a_missing_tool_is_reported_by_name():
    res = run_tool(["assay-no-such-tool"])
    assert res.returncode == 127 and res.stderr == "assay-no-such-tool: not found"


def test_tools_run_side_by_side_from_threads():
    results = []

    def one(i: int) -> None:
        results.append(run_tool(["sh", "-c", f"echo {i}"]).stdout.strip())

    threads = [threading.Thread(target=one, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(results, key=int) == [str(i) for i in range(16)]


def _fake(tmp_path: Path, monkeypatch, name: str, script: str) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    tool = bin_dir / name
    tool.write_text(script)
    tool.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")


def test_a_back_end_tool_over_the_default_memory_limit_is_a_problem(tmp_path, monkeypatch):
    _fake(tmp_path, monkeypatch, "unsquashfs", HOG)
    image = tmp_path / "fs.img"
    image.write_bytes(b"hsqs" + bytes(1020))
    out = tmp_path / "out"
    out.mkdir()
    started = time.monotonic()
    problems = unsquashfs(image, out, Budget(Limits()), timeout=60)
    assert [p.reason for p in problems] == ["SquashFS could not be read: MemoryError"]
    assert time.monotonic() - started < 20


def test_a_back_end_tool_that_prints_without_end_is_a_problem(tmp_path, monkeypatch):
    _fake(tmp_path, monkeypatch, "unsquashfs", LOUD)
    image = tmp_path / "fs.img"
    image.write_bytes(b"hsqs" + bytes(1020))
    out = tmp_path / "out"
    out.mkdir()
    started = time.monotonic()
    problems = unsquashfs(image, out, Budget(Limits()), timeout=120)
    limit = Limits().max_tool_output_bytes
    assert [p.reason for p in problems] == [
        f"SquashFS could not be read: {tmp_path}/bin/unsquashfs: stopped: output over the"
        f" {limit}-byte limit"]
    assert time.monotonic() - started < 60


# -- the scan's own limits reach every back end's tool ---------------------------------

#: Records the address-space limit it was started under, then fails like a broken image.
PROBE = '#!/bin/sh\nulimit -v >> "$LIMIT_PROBE"\necho "not an image" >&2\nexit 1\n'


@pytest.mark.parametrize("fmt,tools", [
    ("ext", ["7zz"]),
    ("vhd", ["qemu-img", "7zz"]),
    ("squashfs", ["7zz", "unsquashfs"]),
    ("erofs", ["fsck.erofs"]),
    ("hfs", ["hmount", "hls", "hcopy", "humount"]),
])  # fmt: skip
def test_the_scans_memory_limit_reaches_the_tool(tmp_path, monkeypatch, fmt, tools):
    probe = tmp_path / "probe.txt"
    monkeypatch.setenv("LIMIT_PROBE", str(probe))
    for name in tools:
        _fake(tmp_path, monkeypatch, name, PROBE)
    image = tmp_path / "image.bin"
    image.write_bytes(bytes(64 * 1024))
    out = tmp_path / "out"
    out.mkdir()
    problems = extract(fmt, image, out, limits=Limits(max_tool_memory_bytes=300 * 1024**2))
    assert problems
    seen = probe.read_text().split()
    assert len(seen) >= 1 and set(seen) == {str(300 * 1024)}, seen  # KiB, as ulimit -v says


def _built(tmp_path: Path, fmt: str) -> Path:
    """A small real image of ``fmt`` holding the sample tree."""
    from . import test_erofs, test_filesystems, test_flash, test_hfs
    from .conftest import populate

    if fmt == "ext":
        return test_filesystems.ext4(tmp_path)
    if fmt == "squashfs":  # lz4: unsquashfs's, not 7-Zip's
        return test_filesystems.squashfs(tmp_path, "lz4")
    if fmt == "erofs":
        return test_erofs.erofs(tmp_path)
    if fmt == "hfs":
        return test_hfs.hfs(tmp_path, populate(tmp_path / "tree"))
    return {"jffs2": test_flash.jffs2, "ubi": test_flash.ubi}[fmt](tmp_path)


BUILDERS = {
    "ext": ("mke2fs", "7zz"),
    "squashfs": ("mksquashfs", "unsquashfs"),
    "erofs": ("mkfs.erofs", "fsck.erofs"),
    "hfs": ("hformat", "hmount", "hcopy", "hls", "humount"),
    "jffs2": ("mkfs.jffs2",),
    "ubi": ("mkfs.ubifs", "ubinize"),
}


@pytest.mark.parametrize("fmt", sorted(BUILDERS))
def test_a_real_tool_runs_under_the_scans_memory_limit(tmp_path, fmt):
    if missing := [t for t in BUILDERS[fmt] if shutil.which(t) is None]:
        pytest.skip(f"needs {', '.join(missing)}")
    image = _built(tmp_path, fmt)
    roomy, tight = tmp_path / "roomy", tmp_path / "tight"
    roomy.mkdir()
    tight.mkdir()
    prefix = "rootfs" if fmt == "ubi" else ""
    assert extract(fmt, image, roomy, limits=Limits()) == []
    assert_sample(roomy, prefix)
    # 2 MiB of address space: too little for the tool even to load its libraries
    problems = extract(fmt, image, tight, limits=Limits(max_tool_memory_bytes=2 * 1024**2))
    assert problems and not [p for p in tight.rglob("*") if p.is_file()], problems


@pytest.mark.parametrize("fmt", ["ext", "squashfs"])
def test_a_real_tool_is_stopped_at_the_scans_output_cap(tmp_path, fmt):
    if missing := [t for t in BUILDERS[fmt] if shutil.which(t) is None]:
        pytest.skip(f"needs {', '.join(missing)}")
    image = _built(tmp_path, fmt)
    out = tmp_path / "out"
    out.mkdir()
    problems = extract(fmt, image, out, limits=Limits(max_tool_output_bytes=200))
    assert problems, problems
    assert all("output over the 200-byte limit" in p.reason for p in problems), problems
    assert not [p for p in out.rglob("*") if p.is_file()]
