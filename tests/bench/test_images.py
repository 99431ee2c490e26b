"""Scan time and memory of Assay on 1 GB file-system and disk images, against the raw tools.

Two generated packages, cached under ``var/bench/cache/`` (same bytes on every
run): a ``.tar`` holding a ~1 GB SquashFS image, and a ``.tar`` holding a ~1 GB
QCOW2 disk (one ext4 file system). Both images hold the same tree: incompressible
blobs, many small compressible text files, a Python ``dist-info`` ``METADATA``
(PyYAML 5.3) and the EICAR file.

- raw: ``bsdtar -xf`` of the package, then ``unsquashfs -d`` (SquashFS) or
  ``qemu-img convert -O raw`` + ``7zz x`` (QCOW2), then ``clamdscan --multiscan``
  over the extracted tree;
- Assay: ``scan_package`` in a process of its own (peak RSS from ``wait4``).

Both sides use one clamd started for the benchmark. Figures are printed and
recorded; the assertions are about correctness only.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import tarfile
import time
from pathlib import Path

import pytest

from .packages import CACHE, EICAR, MB, remove_tree
from .test_scan import ROUNDS, _assay, _Cpu, _ScratchPeak, fresh_clamd, work_dir  # noqa: F401

pytestmark = pytest.mark.bench

#: Bump when the recipe changes, so a stale cached image is not reused.
RECIPE = 1
SEED = 20261
EICAR_AT = "opt/app/samples/eicar.com"
METADATA_AT = "usr/lib/python3/dist-packages/PyYAML-5.3.dist-info/METADATA"
METADATA = b"Metadata-Version: 2.1\nName: PyYAML\nVersion: 5.3\nSummary: YAML parser\n"
#: Of the tree's ~1.1 GB: incompressible blobs, the rest small text files.
BLOBS = 9
BLOB_BYTES = 96 * MB
TEXT_BYTES = 220 * MB
TEXT_FILE = 64 * 1024
_WORDS = b"def class return import value result config request handler stream index error".split()


def _tree(root: Path, rng: random.Random) -> Path:
    """The image contents: blobs of random bytes, compressible text, METADATA and EICAR."""
    for i in range(BLOBS):
        blob = root / f"var/data/blob-{i:02d}.bin"
        blob.parent.mkdir(parents=True, exist_ok=True)
        with open(blob, "wb") as fh:
            fh.writelines(rng.randbytes(MB) for _ in range(BLOB_BYTES // MB))
    for i in range(TEXT_BYTES // TEXT_FILE):
        text = root / f"srv/app/module-{i // 200:03d}/file-{i:05d}.py"
        text.parent.mkdir(parents=True, exist_ok=True)
        words = [rng.choice(_WORDS) for _ in range(TEXT_FILE // 6)]
        text.write_bytes(b" ".join(words)[:TEXT_FILE])
    for rel, data in ((EICAR_AT, EICAR), (METADATA_AT, METADATA)):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return root


def _squashfs(tree: Path, image: Path) -> None:
    _run("mksquashfs", tree, image, "-comp", "gzip", "-noappend", "-quiet", "-no-progress")


def _qcow2(tree: Path, image: Path) -> None:
    raw = image.with_suffix(".raw")
    try:
        _run("mke2fs", "-q", "-F", "-t", "ext4", "-d", tree, raw, "1400M")
        _run("qemu-img", "convert", "-f", "raw", "-O", "qcow2", raw, image)
    finally:
        raw.unlink(missing_ok=True)


BUILDERS = {"squashfs": (_squashfs, "fs.squashfs"), "qcow2": (_qcow2, "disk.qcow2")}


def image_package(kind: str) -> Path:
    """The cached ``.tar`` package holding the ~1 GB ``kind`` image; built when missing."""
    path = CACHE / f"image-{kind}-1g-s{SEED}-r{RECIPE}.tar"
    if path.exists():
        return path
    build, member = BUILDERS[kind]
    work = CACHE / f".build-{kind}"
    if work.exists():
        remove_tree(work)
    work.mkdir(parents=True)
    try:
        tree = _tree(work / "tree", random.Random(f"{SEED}-tree"))
        image = work / member
        build(tree, image)
        remove_tree(tree)
        partial = path.with_suffix(".partial")
        with tarfile.open(partial, "w", format=tarfile.PAX_FORMAT) as tar:
            tar.add(image, arcname=f"images/{member}")
        partial.rename(path)
    finally:
        remove_tree(work)
    return path


def _run(*argv) -> None:
    subprocess.run([str(a) for a in argv], check=True, capture_output=True)


@pytest.mark.parametrize("kind", sorted(BUILDERS))
def test_image_scan_vs_raw_tools(kind, work_dir, tmp_path, bench_record):  # noqa: F811
    tools = {"squashfs": ["mksquashfs", "unsquashfs"], "qcow2": ["mke2fs", "qemu-img", "7zz"]}
    if missing := [t for t in ["bsdtar", "clamdscan", *tools[kind]] if not shutil.which(t)]:
        pytest.skip(f"needs {', '.join(missing)}")
    package = image_package(kind)
    raws, assays = [], []
    for n in range(ROUNDS):
        with fresh_clamd(tmp_path / f"clamd-raw{n}") as clamd:
            raws.append(_raw_tools(kind, package, clamd, work_dir / f"raw{n}"))
        with fresh_clamd(tmp_path / f"clamd-assay{n}") as clamd:
            assays.append(_assay(package, clamd, work_dir / f"assay{n}"))
    raw = min(raws, key=lambda r: r["seconds"])
    assay = min(assays, key=lambda r: r["seconds"])
    rss = max(a["rss_mb"] for a in assays)
    ratio = assay["seconds"] / raw["seconds"]
    member = BUILDERS[kind][1]
    print(
        f"\n[{kind} 1g] package {package.stat().st_size / MB:.0f} MB, {os.cpu_count()} cores\n"
        f"  raw   {raw['label']}: {raw['seconds']:7.1f} s, scratch peak {raw['scratch_mb']:.0f} MB\n"
        f"  assay scan_package: {assay['seconds']:7.1f} s, "
        f"scratch peak {max(a['scratch_mb'] for a in assays):.0f} MB, peak RSS {rss:.0f} MB\n"
        f"  CPU seconds (tools + clamd): raw {raw['cpu']:.1f}, assay {assay['cpu']:.1f}\n"
        f"  ratio assay / raw = {ratio:.2f} (fastest of {ROUNDS} each)"
    )
    bench_record(f"scan_vs_raw_ratio_{kind}_1g", round(ratio, 3), "x")
    bench_record(f"scan_peak_rss_mb_{kind}_1g", round(rss, 1), "MB")
    bench_record(f"scan_seconds_{kind}_1g", round(assay["seconds"], 1), "s")
    bench_record(f"raw_seconds_{kind}_1g", round(raw["seconds"], 1), "s")

    assert raw["found_eicar"], "clamdscan did not find the EICAR file"
    assert assay["verdict"] == "rejected"
    assert not assay["unscanned"], assay["unscanned"]
    where = f"{package.name}!/images/{member}!/"
    assert any(v.startswith(where) and v.endswith(EICAR_AT) for v in assay["viruses"]), assay[
        "viruses"
    ]


def _raw_tools(kind: str, package: Path, clamd, target: Path) -> dict:
    """Unpack the package and the image with the raw tools, then ``clamdscan --multiscan``."""
    target.mkdir()
    tree = target / "tree"
    image = target / "images" / BUILDERS[kind][1]
    cpu = _Cpu(clamd)
    with _ScratchPeak(target) as peak:
        started = time.perf_counter()
        steps = [["bsdtar", "-xf", str(package), "-C", str(target)]]
        for argv in steps + _extract_steps(kind, image, tree):
            done = cpu.run(argv)
            if done.returncode != 0:
                pytest.fail(f"{argv[0]} failed ({done.returncode}): {done.stderr[-2000:]}")
        image.unlink()
        scan = cpu.run(
            ["clamdscan", f"--config-file={clamd.extra['config']}", "--multiscan",
             "--no-summary", "--infected", str(tree)]
        )  # fmt: skip
        seconds = time.perf_counter() - started
    if scan.returncode not in (0, 1):
        pytest.fail(f"clamdscan failed ({scan.returncode}): {scan.stderr or scan.stdout}")
    label = {
        "squashfs": "bsdtar + unsquashfs -d + clamdscan --multiscan",
        "qcow2": "bsdtar + qemu-img convert + 7zz x + clamdscan --multiscan",
    }[kind]
    remove_tree(target)
    return {"seconds": seconds, "scratch_mb": peak.mb, "found_eicar": "FOUND" in scan.stdout,
            "cpu": cpu.seconds(), "label": label}  # fmt: skip


def _extract_steps(kind: str, image: Path, tree: Path) -> list[list[str]]:
    if kind == "squashfs":
        return [["unsquashfs", "-n", "-d", str(tree), str(image)]]
    raw = image.with_suffix(".raw")
    return [
        ["qemu-img", "convert", "-f", "qcow2", "-O", "raw", str(image), str(raw)],
        ["7zz", "x", "-y", "-bd", f"-o{tree}", str(raw)],
        ["rm", "-f", str(raw)],
    ]
