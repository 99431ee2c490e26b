"""Carving: containers found at an offset inside kernels, flash dumps and firmware blobs."""

from __future__ import annotations

import io
import lzma
import random
import shutil
import subprocess
import tarfile
import zipfile
from pathlib import Path

import pytest

from scanner.formats import carve
from scanner.model import NEST, Limits
from scanner.unpack import unpack

from .conftest import EICAR, METADATA_PATH, needs, populate

KERNEL = Path(__file__).parents[2] / "data" / "kernel" / "bzImage"


def run(*argv) -> None:
    subprocess.run([str(a) for a in argv], check=True, capture_output=True)


def squashfs(tmp: Path) -> bytes:
    img = tmp / "rootfs.sqfs"
    run("mksquashfs", populate(tmp / "root"), img, "-comp", "xz", "-quiet", "-noappend", "-no-progress")
    return img.read_bytes()


def noise(size: int, seed: int = 1) -> bytes:
    return random.Random(seed).randbytes(size)


def pack(tmp: Path, fmt: str, name: str, data: bytes) -> Path:
    """A seller's package holding ``data`` as ``name``: a deflated zip or a .tar.gz."""
    if fmt == "zip":
        package = tmp / "pkg.zip"
        with zipfile.ZipFile(package, "w", zipfile.ZIP_DEFLATED) as zf:
            zf.writestr(name, data)
        return package
    package = tmp / "pkg.tar.gz"
    with tarfile.open(package, "w:gz") as tf:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    return package


def newc(files: dict[str, bytes]) -> bytes:
    """A newc cpio archive, as the kernel's gen_init_cpio writes it."""
    out = bytearray()

    def entry(name: str, mode: int, data: bytes) -> None:
        raw = name.encode() + b"\0"
        fields = [0, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(raw), 0]
        out.extend(b"070701" + b"".join(b"%08X" % f for f in fields) + raw)
        out.extend(b"\0" * (-len(out) % 4))
        out.extend(data)
        out.extend(b"\0" * (-len(out) % 4))

    dirs = sorted({"/".join(p.split("/")[:i]) for p in files for i in range(1, p.count("/") + 1)})
    for d in dirs:
        entry(d, 0o40755, b"")
    for name, data in files.items():
        entry(name, 0o100644, data)
    entry("TRAILER!!!", 0, b"")
    out.extend(b"\0" * (-len(out) % 512))
    return bytes(out)


def check(result, base: str) -> None:
    viruses = [f.location for f in result.findings if f.type == "virus"]
    where = base + "opt/app/eicar.com"
    assert where in viruses, result.findings
    # ClamAV may also see the file through the container holding it (stored uncompressed)
    assert all(where.startswith(v + NEST) or v == where for v in viruses), viruses
    pyyaml = [f for f in result.findings if f.component and f.component.name == "PyYAML"]
    assert pyyaml and {f.location for f in pyyaml} == {base + METADATA_PATH}, result.findings
    assert not [f for f in result.findings if f.type == "unscanned"], result.findings
    assert result.verdict == "rejected"


# --------------------------------------------------------------------------- flash dumps


@needs("mksquashfs", "unsquashfs")
@pytest.mark.parametrize("fmt", ["zip", "tar.gz"])
@pytest.mark.parametrize("offset", [0x1C0123, 0x200000])
def test_squashfs_in_a_flash_dump_is_found(tmp_path, scan_package_at, fmt, offset):
    fs = squashfs(tmp_path)
    dump = noise(offset) + fs + b"\xff" * (0x400000 - offset - len(fs))
    result = scan_package_at(pack(tmp_path, fmt, "flash.bin", dump))
    check(result, f"pkg.{fmt}{NEST}flash.bin{NEST}@0x{offset:x}.squashfs{NEST}")


@needs("mke2fs", "7zz")
def test_ext4_after_a_boot_loader_is_found(tmp_path, scan_package_at):
    img = tmp_path / "rootfs.ext4"
    run("mke2fs", "-q", "-t", "ext4", "-d", populate(tmp_path / "root"), img, "4M")
    dump = noise(0x100000) + img.read_bytes()
    result = scan_package_at(pack(tmp_path, "tar.gz", "firmware.img", dump))
    check(result, f"pkg.tar.gz{NEST}firmware.img{NEST}@0x100000.ext{NEST}")


# --------------------------------------------------------------------------- kernels


def zimage(vmlinux: bytes) -> bytes:
    """A bzImage-like file: a setup header ("HdrS" at 0x202), then the gzip-compressed kernel."""
    import gzip

    setup = bytearray(noise(0x4000, seed=7))
    setup[0x202:0x206] = b"HdrS"
    setup = bytes(setup).replace(b"\x1f\x8b", b"\x1f\x8c")
    return setup + gzip.compress(vmlinux, mtime=0)


@pytest.mark.parametrize("compression", ["xz", "gz", "cpio"])
def test_initramfs_in_a_kernel_stand_in_is_found(tmp_path, scan_package_at, compression):
    """A vmlinux-like ELF with a newc initramfs inside (xz, gzip or not compressed), in a zImage."""
    import gzip

    cpio = newc({"opt/app/eicar.com": EICAR, METADATA_PATH: b"Metadata-Version: 2.1\nName: PyYAML\nVersion: 5.3\n"})
    ramfs = {
        "xz": lambda: lzma.compress(cpio, check=lzma.CHECK_CRC32),
        "gz": lambda: gzip.compress(cpio, mtime=0),
        "cpio": lambda: cpio,
    }[compression]()
    offset = 0x31234 if compression != "cpio" else 0x31200  # the kernel aligns a plain cpio
    text = b"\x7fELF\x02\x01\x01" + noise(offset - 7, seed=3)
    vmlinux = text + ramfs + noise(0x20000, seed=4)
    result = scan_package_at(pack(tmp_path, "zip", "bzImage", zimage(vmlinux)))
    check(result, f"pkg.zip{NEST}bzImage{NEST}vmlinux{NEST}@0x{offset:x}.{compression}{NEST}")


@pytest.mark.skipif(not KERNEL.exists(), reason="tests/data/kernel/bzImage not built")
@pytest.mark.parametrize("fmt", ["zip", "tar.gz"])
def test_initramfs_built_into_a_real_kernel_is_found(tmp_path, scan_package_at, fmt):
    result = scan_package_at(pack(tmp_path, fmt, "bzImage", KERNEL.read_bytes()))
    viruses = [f.location for f in result.findings if f.type == "virus"]
    inside = [v for v in viruses if v.endswith(f"{NEST}opt/app/eicar.com")]
    assert len(inside) == 1 and inside[0].startswith(f"pkg.{fmt}{NEST}bzImage{NEST}vmlinux{NEST}@0x")
    base = inside[0][: -len("opt/app/eicar.com")]
    check(result, base)


# --------------------------------------------------------------------------- what is not carved


def test_stray_magic_in_a_blob_is_not_a_finding(tmp_path):
    """Signatures met by chance (no valid container behind them) give nothing at all."""
    blob = bytearray(noise(0x80000, seed=5))
    for at, magic in [
        (0x1000, b"hsqs" + bytes(92)), (0x2000, b"070701" + b"0" * 104), (0x3000, b"\x1f\x8b\x08\x00" + bytes(8)),
        (0x4000, b"\xfd7zXZ\x00\x00\x04"), (0x5000, b"PK\x03\x04"), (0x6000, b"PK\x05\x06" + bytes(18)),
        (0x7000, b"BZh91AY&SY"), (0x8000, b"\x28\xb5\x2f\xfd\x00"), (0x9000 + 1080, b"\x53\xef\x01\x00"),
    ]:
        blob[at : at + len(magic)] = magic
    package = pack(tmp_path, "zip", "fw.bin", bytes(blob))
    result = unpack(package, tmp_path / "scratch", Limits(), name="pkg.zip")
    assert result.findings == []
    assert [m.location for m in result.members] == ["pkg.zip", f"pkg.zip{NEST}fw.bin"]


def test_only_kernels_dumps_and_blobs_are_carved():
    big = carve.MIN_SIZE
    assert carve.wanted("pkg.zip!/flash.bin", None, None, big)
    assert carve.wanted("pkg.zip!/boot/vmlinux-6.1.0", "elf", None, big)
    assert not carve.wanted("pkg.zip!/flash.bin", None, None, big - 1)
    assert not carve.wanted("pkg.zip!/usr/lib/libc.so.6", "elf", None, big)
    assert not carve.wanted("pkg.zip!/app.bin", "elf", None, big)  # an executable
    assert not carve.wanted("pkg.zip!/manual.pdf", "pdf", None, big)
    assert not carve.wanted("pkg.zip!/data", None, None, big)  # no name saying it is a dump
    assert not carve.wanted("pkg.zip!/rootfs.img", None, "squashfs", big)  # opened as itself


def test_honest_binaries_are_not_carved_and_give_no_unscanned(tmp_path, scan_package_at):
    """The machine's own libraries and programs: nothing carved, nothing unscanned."""
    files = sorted(Path("/usr/lib/x86_64-linux-gnu").glob("*.so*"))[:20] + sorted(
        p for p in Path("/usr/bin").iterdir() if p.is_file() and not p.is_symlink()
    )[:20]
    package = tmp_path / "pkg.zip"
    with zipfile.ZipFile(package, "w", zipfile.ZIP_DEFLATED) as zf:
        for p in files:
            if p.is_file() and p.stat().st_size < 32 * 1024 * 1024:
                zf.write(p, p.relative_to("/").as_posix())
    listed = unpack(package, tmp_path / "scratch", Limits(), name="pkg.zip")
    assert len(listed.members) > 30
    assert not [m.location for m in listed.members if NEST + carve.MARK in m.location]
    shutil.rmtree(tmp_path / "scratch")
    result = scan_package_at(package)
    assert not [f for f in result.findings if f.type == "unscanned"], result.findings


def test_a_stream_over_the_limits_is_examined_in_part_and_said(tmp_path):
    """A carved stream far too long to be chance is opened up to the limit, and that is a finding."""
    import gzip

    stream = gzip.compress(b"0123456789abcdef" * 0x100000, mtime=0)  # 16 MiB of data
    package = pack(tmp_path, "zip", "fw.bin", noise(0x20000, seed=8) + stream)
    limits = Limits(max_total_bytes=4 * 1024 * 1024)
    result = unpack(package, tmp_path / "scratch", limits, name="pkg.zip")
    where = f"pkg.zip{NEST}fw.bin{NEST}@0x20000.gz"
    assert [(f.type, f.location) for f in result.findings] == [("unscanned", where)]
    assert "only its start was examined" in result.findings[0].summary
    assert where in [m.location for m in result.members]
