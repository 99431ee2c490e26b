"""Disk images: a raw MBR or GPT disk with an ext4 and a FAT partition, converted by qemu-img."""

from __future__ import annotations

import struct
import subprocess
import uuid
import zlib
from pathlib import Path

import pytest

from scanner.formats import detect, extract
from scanner.model import Limits

from .conftest import EICAR, METADATA_PATH, assert_sample, needs, only_plain, populate

pytestmark = needs("7zz", "qemu-img", "mke2fs", "mkfs.fat", "mcopy")
SECTOR = 512
START = 2048


def run(*argv) -> None:
    subprocess.run([str(a) for a in argv], check=True, capture_output=True)


def partitions(tmp_path: Path) -> list[bytes]:
    root = populate(tmp_path / "tree")
    ext = tmp_path / "ext.img"
    run("mke2fs", "-q", "-F", "-t", "ext4", "-d", root, ext, "4M")
    fat = tmp_path / "fat.img"
    run("mkfs.fat", "-C", fat, "1024")
    (tmp_path / "eicar.com").write_bytes(EICAR)
    run("mcopy", "-i", fat, tmp_path / "eicar.com", "::/EICAR.COM")
    return [ext.read_bytes(), fat.read_bytes()]


def mbr_disk(tmp_path: Path) -> Path:
    parts = partitions(tmp_path)
    disk = bytearray((START + 64) * SECTOR + sum(len(p) for p in parts))
    lba = START
    for i, (data, kind) in enumerate(zip(parts, (0x83, 0x0C))):
        entry = struct.pack("<B3sB3sII", 0, b"\0" * 3, kind, b"\0" * 3, lba, len(data) // SECTOR)
        disk[446 + 16 * i : 462 + 16 * i] = entry
        disk[lba * SECTOR : lba * SECTOR + len(data)] = data
        lba += len(data) // SECTOR
    disk[510:512] = b"\x55\xaa"
    path = tmp_path / "disk.raw"
    path.write_bytes(disk)
    return path


def gpt_disk(tmp_path: Path) -> Path:
    parts = partitions(tmp_path)
    sectors = START + sum(len(p) for p in parts) // SECTOR + 64
    disk = bytearray(sectors * SECTOR)
    # Protective MBR.
    disk[446:462] = struct.pack("<B3sB3sII", 0, b"\0" * 3, 0xEE, b"\0" * 3, 1, sectors - 1)
    disk[510:512] = b"\x55\xaa"
    linux = uuid.UUID("0FC63DAF-8483-4772-8E79-3D69D8477DE4").bytes_le
    basic = uuid.UUID("EBD0A0A2-B9E5-4433-87C0-68B6B72699C7").bytes_le
    entries = bytearray(128 * 128)
    lba = START
    for i, (data, kind) in enumerate(zip(parts, (linux, basic))):
        last = lba + len(data) // SECTOR - 1
        name = f"part{i}".encode("utf-16-le").ljust(72, b"\0")
        entries[128 * i : 128 * (i + 1)] = kind + uuid.uuid4().bytes_le + struct.pack("<QQQ", lba, last, 0) + name
        disk[lba * SECTOR : (last + 1) * SECTOR] = data
        lba = last + 1
    header = struct.pack(
        "<8sIIIIQQQQ16sQIII",
        b"EFI PART", 0x00010000, 92, 0, 0, 1, sectors - 1, 34, sectors - 34,
        uuid.uuid4().bytes_le, 2, 128, 128, zlib.crc32(entries),
    )  # fmt: skip
    header = header[:16] + struct.pack("<I", zlib.crc32(header)) + header[20:]
    disk[SECTOR : SECTOR + len(header)] = header
    disk[2 * SECTOR : 2 * SECTOR + len(entries)] = entries
    path = tmp_path / "gpt.raw"
    path.write_bytes(disk)
    return path


def check(out: Path) -> None:
    [ext_dir, fat_dir] = sorted(p for p in out.iterdir())
    assert_sample(ext_dir)
    assert (fat_dir / "EICAR.COM").read_bytes() == EICAR
    only_plain(out)


@pytest.mark.parametrize(
    "fmt,driver,options",
    [
        ("mbr", None, []),
        ("qcow2", "qcow2", []),
        ("qcow2", "qcow2", ["-c", "-o", "compression_type=zstd"]),  # 7-Zip cannot: qemu-img can
        ("vmdk", "vmdk", []),
        ("vmdk", "vmdk", ["-o", "subformat=streamOptimized"]),
        ("vhd", "vpc", []),
        ("vhdx", "vhdx", []),
        ("vdi", "vdi", []),
    ],
)
def test_disk_image(tmp_path, fmt, driver, options):
    disk = mbr_disk(tmp_path)
    if driver:
        converted = tmp_path / f"disk.{fmt}"
        run("qemu-img", "convert", "-O", driver, *options, disk, converted)
        disk = converted
    assert detect(disk) == fmt
    out = tmp_path / "out"
    out.mkdir()
    assert extract(fmt, disk, out, limits=Limits()) == []
    check(out)


def test_gpt_disk(tmp_path):
    disk = gpt_disk(tmp_path)
    assert detect(disk) == "gpt"
    out = tmp_path / "out"
    out.mkdir()
    assert extract("gpt", disk, out, limits=Limits()) == []
    check(out)
    assert (sorted(out.iterdir())[0] / METADATA_PATH).exists()


def test_backing_file_is_never_read(tmp_path):
    secret = tmp_path / "host-secret.raw"
    secret.write_bytes(b"\0" * 1024 * 1024)
    overlay = tmp_path / "overlay.qcow2"
    run("qemu-img", "create", "-q", "-f", "qcow2", "-b", secret, "-F", "raw", overlay)
    out = tmp_path / "out"
    out.mkdir()
    problems = extract("qcow2", overlay, out, limits=Limits())
    assert problems and "parent file" in problems[0].reason
    assert list(out.iterdir()) == []


def test_partition_over_the_limits(tmp_path):
    disk = mbr_disk(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    problems = extract("mbr", disk, out, limits=Limits(max_file_bytes=2 * 1024 * 1024))
    assert [p.path for p in problems] == ["0.img"]
    assert (out / "1.fat/EICAR.COM").exists()


def test_vmdk_descriptor_never_reads_the_files_it_names(tmp_path):
    secret = tmp_path / "secret.raw"
    secret.write_bytes(b"host secret " * 1000)
    descriptor = tmp_path / "disk.vmdk"
    descriptor.write_text(
        '# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\ncreateType="monolithicFlat"\n'
        f'RW 24 FLAT "{secret}" 0\nRW 24 FLAT "../../etc/passwd" 0\n'
    )
    assert detect(descriptor) == "vmdk"
    out = tmp_path / "out"
    out.mkdir()
    assert extract("vmdk", descriptor, out, limits=Limits()) == []
    assert list(out.iterdir()) == []


@pytest.mark.parametrize("fmt,driver", [("vhd", "vpc"), ("vdi", "vdi")])
def test_differencing_disks_are_refused(tmp_path, fmt, driver):
    disk = tmp_path / f"disk.{fmt}"
    run("qemu-img", "convert", "-O", driver, mbr_disk(tmp_path), disk)
    data = bytearray(disk.read_bytes())
    if fmt == "vhd":  # disk type in the footer and in its copy at the start
        data[60:64] = data[-452:-448] = (4).to_bytes(4, "big")
    else:
        data[0x4C:0x50] = (4).to_bytes(4, "little")
    disk.write_bytes(data)
    out = tmp_path / "out"
    out.mkdir()
    problems = extract(fmt, disk, out, limits=Limits())
    assert problems and "differencing disk" in problems[0].reason
    assert list(out.iterdir()) == []
