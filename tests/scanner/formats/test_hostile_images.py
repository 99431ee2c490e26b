"""Hostile images through the whole scan (real clamd): what they cost and how they end.

* A 4 GB ext4 image, almost all zeros, in a .tar.gz: no disk, seconds, its files found.
* A sparse VMDK claiming a 2 TB virtual size: an ``unscanned`` finding naming it, at once.
* A reader that never exits: an ``unscanned`` finding at its timeout; the next scan works.

The scratch disk is sampled while each scan runs (blocks allocated, not apparent size).
"""

from __future__ import annotations

import os
import subprocess
import tarfile
import time
from pathlib import Path

import pytest

from scanner.model import NEST, Limits
from tests.scanner import hostile

from .conftest import METADATA_PATH, needs, populate

MiB = 1024 * 1024


def run(*argv) -> None:
    subprocess.run([str(a) for a in argv], check=True, capture_output=True)


def found(result, base: str) -> None:
    """EICAR and PyYAML found under ``base``, nothing unscanned, the package rejected."""
    viruses = [f.location for f in result.findings if f.type == "virus"]
    assert base + "opt/app/eicar.com" in viruses, result.findings
    pyyaml = [f for f in result.findings if f.component and f.component.name == "PyYAML"]
    assert {f.location for f in pyyaml} == {base + METADATA_PATH}, result.findings
    assert not [f for f in result.findings if f.type == "unscanned"], result.findings
    assert result.verdict == "rejected"


def unscanned(result) -> list:
    return [f for f in result.findings if f.type == "unscanned"]


@needs("mke2fs", "7zz")
def test_a_4gb_ext4_image_of_zeros_costs_no_disk(tmp_path, scan_package_at):
    img = tmp_path / "rootfs.ext4"
    run("mke2fs", "-q", "-F", "-t", "ext4", "-E", "lazy_itable_init=1,lazy_journal_init=1",
        "-d", populate(tmp_path / "root"), img, "4G")
    package = hostile.image_tgz(img, tmp_path / "pkg.tar.gz", "rootfs.ext4")
    img.unlink()
    assert package.stat().st_size < 16 * MiB
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    started = time.monotonic()
    with hostile.PeakDisk(scratch) as disk:
        result = scan_package_at(package, scratch_dir=scratch, memory_dir=None)
    seconds = time.monotonic() - started
    found(result, f"pkg.tar.gz{NEST}rootfs.ext4{NEST}")
    assert disk.peak < 64 * MiB, f"{disk.peak} bytes allocated on the scratch disk"
    assert seconds < 60, f"{seconds:.0f} s"


@needs("qemu-img")
def test_a_vmdk_claiming_2tb_is_refused_by_its_virtual_size(tmp_path, scan_package_at):
    disk_image = tmp_path / "disk.vmdk"
    run("qemu-img", "create", "-q", "-f", "vmdk", disk_image, "2T")
    package = hostile.image_tgz(disk_image, tmp_path / "pkg.tar.gz", "disk.vmdk")
    disk_image.unlink()
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    limit = 4 * 1024**3
    started = time.monotonic()
    with hostile.PeakDisk(scratch) as disk:
        result = scan_package_at(package, scratch_dir=scratch, memory_dir=None,
                                 limits=Limits(max_total_bytes=limit))
    seconds = time.monotonic() - started
    findings = unscanned(result)
    assert len(findings) == 1, result.findings
    [finding] = findings
    assert finding.location == f"pkg.tar.gz{NEST}disk.vmdk"
    assert f"its virtual size of {2 * 1024**4} bytes (2.0 TiB) is over the" in finding.summary
    # the limit is the scratch space left: the package's own limit less the vmdk written
    assert "-byte limit (the scratch space left)" in finding.summary
    left = int(finding.summary.split(" is over the ")[1].split("-byte")[0])
    assert 0 < left <= limit
    assert result.verdict == "rejected"
    assert disk.peak < 64 * MiB and seconds < 60, (disk.peak, seconds)


#: A 7-Zip that never ends: it starts a child that holds its output open, and waits.
HANG = """#!/bin/sh
echo $$ >> "$HANG_PIDS"
sleep 3600 &
echo $! >> "$HANG_PIDS"
wait
"""


def _gone(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    return "State:\tZ" in status  # ended, not yet reaped by whoever adopted it


@needs("mke2fs", "7zz")
def test_a_reader_that_never_exits_ends_at_its_timeout(tmp_path, scan_package_at, monkeypatch):
    img = tmp_path / "rootfs.ext4"
    run("mke2fs", "-q", "-F", "-t", "ext4", "-d", populate(tmp_path / "root"), img, "4M")
    package = tmp_path / "pkg.tar.gz"
    with tarfile.open(package, "w:gz") as tf:
        tf.add(img, "rootfs.ext4")
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "7zz").write_text(HANG)
    (fake / "7zz").chmod(0o755)
    pids = tmp_path / "pids.txt"
    with monkeypatch.context() as m:
        m.setenv("PATH", f"{fake}{os.pathsep}{os.environ['PATH']}")
        m.setenv("HANG_PIDS", str(pids))
        started = time.monotonic()
        result = scan_package_at(package, limits=Limits(max_unpack_seconds=3))
        seconds = time.monotonic() - started
    assert seconds < 30, f"{seconds:.0f} s"
    [finding] = unscanned(result)
    assert finding.location == f"pkg.tar.gz{NEST}rootfs.ext4"
    assert "timed out after 3 s" in finding.summary, finding.summary
    assert result.verdict == "rejected"
    started_pids = [int(p) for p in pids.read_text().split()]
    assert len(started_pids) == 2  # the tool and the child it left behind: both ended
    deadline = time.monotonic() + 5
    while not all(_gone(p) for p in started_pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert all(_gone(p) for p in started_pids)
    # the real 7-Zip back: the same package scans in full
    again = scan_package_at(package)
    found(again, f"pkg.tar.gz{NEST}rootfs.ext4{NEST}")


@pytest.fixture(autouse=True)
def _no_leftovers(tmp_path):
    yield
    assert not list(tmp_path.glob("scratch/assay-scan-*")), "scratch left behind"
