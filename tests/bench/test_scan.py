"""Scan time, memory and scratch space of Assay against the raw tools, on one machine.

For each generated mixed package (sizes from ``ASSAY_BENCH_SIZES``, default
``100m,1g``; ``5g`` works too) this measures, each run against a clamd of its
own started for it (ClamAV remembers the files it found clean: a clamd shared
between runs would make every run after the first one scan less):

- raw: ``bsdtar -xf`` into a scratch directory, then ``clamdscan --multiscan``
  over it (clamd reads the files itself and opens nested archives itself);
- Assay: ``scan_package`` in a process of its own (its peak RSS is read with
  ``wait4``), with the scratch directory polled for its peak size, and the
  share of its catalog stage in its time (``catalog_share_<size>``).

Figures are printed and recorded (``make bench`` writes them to
``var/bench/results.json``); nothing here asserts a time. The only assertions
are about correctness: both sides find the EICAR file.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Self

import pytest

from ops.clamd import start_clamd

from .packages import EICAR_LOCATION, ROOT, mixed_package, remove_tree

pytestmark = pytest.mark.bench

SIZES = [s.strip() for s in os.environ.get("ASSAY_BENCH_SIZES", "100m,1g").split(",") if s.strip()]
#: Each side runs this many times, alternating, and its fastest run counts: the
#: machine may be busy with other work for part of a run.
ROUNDS = int(os.environ.get("ASSAY_BENCH_ROUNDS", "2"))
WORK = ROOT / "var" / "bench" / "work"
OSV = ROOT / "tests" / "data" / "corpus" / "osv"
MEMORY = Path("/dev/shm")
MB = 1024**2


@contextmanager
def fresh_clamd(workdir: Path):
    """A clamd with Assay's configuration and an empty cache, for one run."""
    service = start_clamd(workdir)
    try:
        yield service
    finally:
        service.stop()


@pytest.fixture
def work_dir():
    WORK.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix="run-", dir=WORK))
    try:
        yield path
    finally:
        remove_tree(path)


@pytest.mark.parametrize("size", SIZES)
def test_scan_vs_raw_tools(size, work_dir, tmp_path, bench_record):
    package = mixed_package(size)
    raws, assays = [], []
    for n in range(ROUNDS):
        with fresh_clamd(tmp_path / f"clamd-raw{n}") as clamd:
            raws.append(_raw_tools(package, clamd, work_dir / f"raw{n}"))
        with fresh_clamd(tmp_path / f"clamd-assay{n}") as clamd:
            assays.append(_assay(package, clamd, work_dir / f"assay{n}"))
    raw = min(raws, key=lambda r: r["seconds"])
    assay = min(assays, key=lambda r: r["seconds"])
    assay["rss_mb"] = max(a["rss_mb"] for a in assays)
    assay["scratch_mb"] = max(a["scratch_mb"] for a in assays)
    assay["memory_mb"] = max(a["memory_mb"] for a in assays)

    ratio = assay["seconds"] / raw["seconds"]
    print(
        f"\n[{size}] package {package.stat().st_size / MB:.0f} MB, 2 cores ({os.cpu_count()} here)\n"
        f"  raw   bsdtar -xf + clamdscan --multiscan: {raw['seconds']:7.1f} s, "
        f"scratch peak {raw['scratch_mb']:6.0f} MB\n"
        f"  assay scan_package:                     {assay['seconds']:7.1f} s, "
        f"scratch peak {assay['scratch_mb']:6.0f} MB (+ {assay['memory_mb']:.0f} MB in /dev/shm), "
        f"peak RSS {assay['rss_mb']:.0f} MB\n"
        f"  CPU seconds (tools + clamd): raw {raw['cpu']:.1f}, assay {assay['cpu']:.1f}\n"
        f"  all runs: raw {[round(r['seconds'], 1) for r in raws]}, "
        f"assay {[round(a['seconds'], 1) for a in assays]}\n"
        f"  ratio assay / raw = {ratio:.2f} (fastest of {ROUNDS} each)"
    )
    bench_record(f"scan_vs_raw_ratio_{size}", round(ratio, 3), "x")
    bench_record(f"scan_seconds_{size}", round(assay["seconds"], 1), "s")
    bench_record(f"raw_seconds_{size}", round(raw["seconds"], 1), "s")
    bench_record(f"scan_peak_rss_mb_{size}", round(assay["rss_mb"], 1), "MB")
    # the worker scans in a process of its own too: its peak is the scan's
    bench_record(f"worker_peak_rss_mb_{size}", round(assay["rss_mb"], 1), "MB")
    bench_record(f"scratch_peak_mb_{size}", round(assay["scratch_mb"], 1), "MB")
    bench_record(f"raw_scratch_peak_mb_{size}", round(raw["scratch_mb"], 1), "MB")
    bench_record(f"memory_dir_peak_mb_{size}", round(assay["memory_mb"], 1), "MB")
    # the catalog stage's share of the fastest scan: what cataloging adds to a scan
    share = assay["catalog_seconds"] / assay["seconds"]
    print(f"  catalog stage {assay['catalog_seconds']:.2f} s = {share:.1%} of the scan")
    bench_record(f"catalog_share_{size}", round(share, 4), "ratio",
                 catalog_seconds=round(assay["catalog_seconds"], 2),
                 components=assay["components"])
    bench_record(f"scan_cpu_seconds_{size}", round(assay["cpu"], 1), "s")
    bench_record(f"raw_cpu_seconds_{size}", round(raw["cpu"], 1), "s")

    assert raw["found_eicar"], "clamdscan did not find the EICAR file"
    assert assay["verdict"] == "rejected"
    assert any(v.startswith(f"{package.name}!/{EICAR_LOCATION.split('!/')[0]}")
               for v in assay["viruses"]), assay["viruses"]


def _raw_tools(package: Path, clamd, target: Path) -> dict:
    """``bsdtar -xf`` then ``clamdscan --multiscan`` against the same clamd."""
    target.mkdir()
    cpu = _Cpu(clamd)
    with _ScratchPeak(target) as peak:
        started = time.perf_counter()
        cpu.run(["bsdtar", "-xf", str(package), "-C", str(target)])
        scan = cpu.run(
            ["clamdscan", f"--config-file={clamd.extra['config']}", "--multiscan",
             "--no-summary", "--infected", str(target)],
        )
        seconds = time.perf_counter() - started
    if scan.returncode not in (0, 1):
        pytest.fail(f"clamdscan failed ({scan.returncode}): {scan.stderr or scan.stdout}")
    remove_tree(target)
    return {"seconds": seconds, "scratch_mb": peak.mb, "found_eicar": "FOUND" in scan.stdout,
            "cpu": cpu.seconds()}


def _assay(package: Path, clamd, scratch: Path) -> dict:
    """``scan_package`` in a child process; its peak RSS comes from ``wait4``.

    Small files go to a memory directory of the run's own under ``/dev/shm``
    (as the worker's do by default); its peak is measured apart from scratch's.
    """
    scratch.mkdir()
    memory = Path(tempfile.mkdtemp(prefix="assay-bench-", dir=MEMORY)) if MEMORY.is_dir() else None
    args = [sys.executable, "-m", "tests.bench.scan_child", str(package),
            "--clamd", clamd.address, "--osv", str(OSV), "--scratch", str(scratch)]
    if memory is not None:
        args += ["--memory-dir", str(memory)]
    cpu = _Cpu(clamd)
    try:
        with _ScratchPeak(scratch) as peak, _ScratchPeak(memory or scratch) as memory_peak:
            child = cpu.run(args)
    finally:
        if memory is not None:
            remove_tree(memory)
    if child.returncode != 0:
        pytest.fail(f"scan failed ({child.returncode}): {child.stderr[-2000:]}")
    result = json.loads(child.stdout)
    return {**result, "rss_mb": cpu.maxrss / 1024, "scratch_mb": peak.mb, "cpu": cpu.seconds(),
            "memory_mb": memory_peak.mb if memory is not None else 0.0}


class _Cpu:
    """CPU time of the commands run through it, plus clamd's over the same span."""

    def __init__(self, clamd):
        self.clamd_pid = clamd.proc.pid
        self.clamd_start = _process_cpu(self.clamd_pid)
        self.children = 0.0
        self.maxrss = 0

    def run(self, args: list[str]) -> subprocess.CompletedProcess:
        """Run ``args``; its peak RSS comes from ``wait4``, so it is its own."""
        child = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        out, err = child.stdout.read(), child.stderr.read()
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
        child.stdout.close()
        child.stderr.close()
        self.children += usage.ru_utime + usage.ru_stime
        self.maxrss = max(self.maxrss, usage.ru_maxrss)
        return subprocess.CompletedProcess(
            args, child.returncode, out.decode(errors="replace"), err.decode(errors="replace")
        )

    def seconds(self) -> float:
        return self.children + _process_cpu(self.clamd_pid) - self.clamd_start


def _process_cpu(pid: int) -> float:
    """User + system CPU seconds of a running process, threads included."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class _ScratchPeak:
    """Polls the disk space used under a directory, keeping the largest figure."""

    INTERVAL = 0.5

    def __init__(self, path: Path):
        self.path = path
        self.peak = 0
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._poll, daemon=True)

    @property
    def mb(self) -> float:
        return self.peak / MB

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.done.set()
        self.thread.join()

    def _poll(self) -> None:
        while not self.done.wait(self.INTERVAL):
            self.peak = max(self.peak, _disk_usage(self.path))


def _disk_usage(path: Path) -> int:
    total = 0
    stack = [str(path)]
    while stack:
        try:
            with os.scandir(stack.pop()) as entries:
                for entry in entries:
                    try:
                        if entry.is_dir(follow_symlinks=False):
                            stack.append(entry.path)
                        else:
                            total += entry.stat(follow_symlinks=False).st_blocks * 512
                    except OSError:
                        pass  # removed while it was counted
        except OSError:
            pass
    return total
