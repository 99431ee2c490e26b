"""Firmware containers, built with Debian's tools (or by hand where Debian has none)."""

from __future__ import annotations

import gzip
import os
import struct
import subprocess
from pathlib import Path

import pytest

from scanner.formats import detect, extract
from scanner.model import Limits

from .conftest import EICAR, METADATA_PATH, assert_sample, needs, only_plain, populate


def run(*argv, cwd=None, stdin=None) -> bytes:
    res = subprocess.run([str(a) for a in argv], check=True, capture_output=True, cwd=cwd, input=stdin)
    return res.stdout


def out_dir(tmp_path: Path, name: str = "out") -> Path:
    out = tmp_path / name
    out.mkdir(parents=True)
    return out


def opened(tmp_path: Path, path: Path, fmt: str, name: str = "out") -> Path:
    assert detect(path) == fmt
    out = out_dir(tmp_path, name)
    assert extract(fmt, path, out, limits=Limits()) == []
    only_plain(out)
    return out


def cpio_archive(tmp_path: Path, fmt: str = "newc") -> bytes:
    root = populate(tmp_path / "tree")
    os.symlink("/etc/shadow", root / "etc/evil-link")
    names = sorted(str(p.relative_to(root)) for p in root.rglob("*"))
    return run("cpio", "--quiet", "-o", "-H", fmt, cwd=root, stdin="\n".join(names).encode())


# --------------------------------------------------------------------------- cpio


@needs("cpio")
@pytest.mark.parametrize("fmt", ["newc", "crc", "odc", "bin"])
def test_cpio(tmp_path, fmt):
    archive = tmp_path / "initramfs.cpio"
    archive.write_bytes(cpio_archive(tmp_path, fmt))
    out = opened(tmp_path, archive, "cpio")
    assert_sample(out)
    assert not (out / "etc/evil-link").exists()


def newc(name: str, data: bytes = b"", mode: int = 0o100644) -> bytes:
    fields = [0, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(name) + 1, 0]
    head = b"070701" + b"".join(b"%08X" % f for f in fields) + name.encode() + b"\0"
    head += b"\0" * (-len(head) % 4)
    return head + data + b"\0" * (-len(data) % 4)


def test_hostile_cpio_is_contained(tmp_path):
    archive = tmp_path / "evil.cpio"
    archive.write_bytes(
        newc("../../escape.txt", b"x")
        + newc("/abs/ok.txt", b"fine")
        + newc("dev/console", mode=0o020600)
        + newc("bin/su", b"suid", mode=0o104755)
        + newc("TRAILER!!!")
        + b"\0" * 512
        + newc("early.txt", b"second archive")  # concatenated, as initramfs images are
        + newc("TRAILER!!!")
    )
    out = out_dir(tmp_path / "sub")
    problems = extract("cpio", archive, out, limits=Limits())
    assert [p.path for p in problems] == ["../../escape.txt"]
    assert (out / "abs/ok.txt").read_bytes() == b"fine"
    assert (out / "early.txt").read_bytes() == b"second archive"
    assert not (out / "dev/console").exists()
    only_plain(tmp_path)
    assert not list(tmp_path.rglob("escape.txt"))


def test_truncated_cpio(tmp_path):
    archive = tmp_path / "cut.cpio"
    archive.write_bytes(newc("a.txt", b"x" * 100)[:150])
    problems = extract("cpio", archive, out_dir(tmp_path), limits=Limits())
    assert problems and "truncated" in problems[0].reason


# --------------------------------------------------------------------------- hex


@needs("objcopy")
@pytest.mark.parametrize("fmt,target", [("ihex", "ihex"), ("srec", "srec")])
def test_hex_files(tmp_path, fmt, target):
    blob = tmp_path / "fw.bin"
    blob.write_bytes(b"\x00" * 16 + EICAR)
    hexfile = tmp_path / "fw.hex"
    run("objcopy", "-I", "binary", "-O", target, "--change-addresses", "0x08000000", blob, hexfile)
    out = opened(tmp_path, hexfile, fmt)
    assert [p.name for p in out.iterdir()] == ["segment-0x08000000.bin"]
    assert EICAR in (out / "segment-0x08000000.bin").read_bytes()


def test_bad_hex_checksum(tmp_path):
    bad = tmp_path / "bad.hex"
    bad.write_text(":0300300002337A1F\n:00000001FF\n")
    problems = extract("ihex", bad, out_dir(tmp_path), limits=Limits())
    assert problems and "checksum" in problems[0].reason


# --------------------------------------------------------------------------- U-Boot


@needs("mkimage", "cpio")
def test_uimage_ramdisk_then_cpio(tmp_path):
    ramdisk = tmp_path / "ramdisk.cpio.gz"
    ramdisk.write_bytes(gzip.compress(cpio_archive(tmp_path)))
    uimage = tmp_path / "uRamdisk"
    run("mkimage", "-A", "arm", "-O", "linux", "-T", "ramdisk", "-C", "gzip", "-n", "rd", "-d", ramdisk, uimage)
    out = opened(tmp_path, uimage, "uimage")
    payload = out / "payload"
    assert_sample(opened(tmp_path, payload, "cpio", "rootfs"))


@needs("mkimage")
def test_uimage_multi_and_damaged_crc(tmp_path):
    kernel = tmp_path / "kernel"
    kernel.write_bytes(b"kernel" + EICAR)
    other = tmp_path / "other"
    other.write_bytes(b"x" * 7)
    uimage = tmp_path / "uMulti"
    run("mkimage", "-A", "arm", "-O", "linux", "-T", "multi", "-C", "none", "-d", f"{kernel}:{other}", uimage)
    out = opened(tmp_path, uimage, "uimage")
    assert (out / "part-0").read_bytes() == kernel.read_bytes()
    assert (out / "part-1").read_bytes() == b"x" * 7
    data = bytearray(uimage.read_bytes())
    data[-1] ^= 0xFF
    uimage.write_bytes(data)
    problems = extract("uimage", uimage, out_dir(tmp_path, "o2"), limits=Limits())
    assert [p.reason for p in problems] == ["uImage data checksum does not match"]


#: A FIT image source with a kernel and a gzip ramdisk, both read from files beside it.
FIT_SOURCE = """/dts-v1/;
/ {
    description = "test";
    #address-cells = <1>;
    images {
        kernel-1 {
            data = /incbin/("kernel.bin");
            type = "kernel"; arch = "arm"; os = "linux"; compression = "none";
            load = <0x80000>; entry = <0x80000>;
        };
        ramdisk-1 {
            data = /incbin/("rootfs.cpio.gz");
            type = "ramdisk"; arch = "arm"; os = "linux"; compression = "gzip";
        };
    };
    configurations {
        default = "conf-1";
        conf-1 { kernel = "kernel-1"; ramdisk = "ramdisk-1"; };
    };
};
"""


@needs("mkimage", "dtc", "cpio")
@pytest.mark.parametrize("external", [False, True])
def test_fit_image(tmp_path, external):
    (tmp_path / "kernel.bin").write_bytes(b"kernel" + EICAR)
    (tmp_path / "rootfs.cpio.gz").write_bytes(gzip.compress(cpio_archive(tmp_path)))
    its = tmp_path / "image.its"
    its.write_text(FIT_SOURCE)
    fit = tmp_path / "image.itb"
    run("mkimage", *(["-E"] if external else []), "-f", its, fit, cwd=tmp_path)
    out = opened(tmp_path, fit, "fit")
    assert EICAR in (out / "images/kernel-1").read_bytes()
    assert_sample(opened(tmp_path, out / "images/ramdisk-1", "cpio", "rootfs"))


def test_zimage(tmp_path):
    kernel = b"\x7fELF fake kernel " + EICAR
    image = bytearray(0x800)
    struct.pack_into("<I", image, 0x24, 0x016F2818)
    image += gzip.compress(kernel) + b"\0" * 64
    path = tmp_path / "zImage"
    path.write_bytes(image)
    out = opened(tmp_path, path, "zimage")
    assert (out / "vmlinux").read_bytes() == kernel


# --------------------------------------------------------------------------- Android


@needs("img2simg", "mke2fs", "7zz")
def test_android_sparse_then_ext4(tmp_path):
    root = populate(tmp_path / "tree")
    raw = tmp_path / "system.raw"
    run("mke2fs", "-q", "-F", "-t", "ext4", "-d", root, raw, "8M")
    sparse = tmp_path / "system.img"
    run("img2simg", raw, sparse)
    out = opened(tmp_path, sparse, "android-sparse")
    assert (out / "image.raw").read_bytes() == raw.read_bytes()
    assert_sample(opened(tmp_path, out / "image.raw", "ext", "rootfs"))


def test_android_sparse_bomb(tmp_path):
    header = struct.pack("<IHHHHIIII", 0xED26FF3A, 1, 0, 28, 12, 4096, 2**31, 1, 0)
    chunk = struct.pack("<HHII", 0xCAC3, 0, 2**31, 12)
    bomb = tmp_path / "bomb.img"
    bomb.write_bytes(header + chunk)
    out = out_dir(tmp_path)
    problems = extract("android-sparse", bomb, out, limits=Limits())
    assert problems and "limit" in problems[0].reason
    assert list(out.iterdir()) == []


def boot_image(kernel: bytes, ramdisk: bytes, version: int) -> bytes:
    page = 4096 if version >= 3 else 2048

    def pad(b: bytes) -> bytes:
        return b + b"\0" * (-len(b) % page)

    if version >= 3:
        header = struct.pack("<8sIIII4I I", b"ANDROID!", len(kernel), len(ramdisk), 0, 1580 + 4 * (version >= 4), 0, 0, 0, 0, version)
    else:
        header = struct.pack("<8s10I", b"ANDROID!", len(kernel), 0x8000, len(ramdisk), 0x1000000, 0, 0, 0x100, page, version, 0)
    return pad(header) + pad(kernel) + pad(ramdisk)


@needs("cpio")
@pytest.mark.parametrize("version", [0, 2, 3, 4])
def test_android_boot_image(tmp_path, version):
    kernel = b"kernel " + EICAR
    ramdisk = gzip.compress(cpio_archive(tmp_path))
    boot = tmp_path / "boot.img"
    boot.write_bytes(boot_image(kernel, ramdisk, version))
    out = opened(tmp_path, boot, "android-boot")
    assert (out / "kernel").read_bytes() == kernel
    assert (out / "ramdisk").read_bytes() == ramdisk


# --------------------------------------------------------------------------- RockChip and romfs


def test_rockchip_update_image(tmp_path):
    parts = [("boot", "Image/boot.img", b"boot " + EICAR), ("system", "Image/meta.txt", b"Name: x\n")]
    rkaf = bytearray(140 + 16 * 112)
    rkaf[:4] = b"RKAF"
    struct.pack_into("<I", rkaf, 136, len(parts) + 1)
    body = b""
    entries = [("package-file", "SELF", b"")] + parts
    for i, (name, filename, data) in enumerate(entries):
        pos = len(rkaf) + len(body)
        struct.pack_into("<32s60s5I", rkaf, 140 + 112 * i, name.encode(), filename.encode(), 0, pos, 0, len(data), len(data))
        body += data
    rkaf += body
    loader = b"loader-bytes"
    head = bytearray(0x66)
    head[:4] = b"RKFW"
    struct.pack_into("<IIII", head, 0x19, len(head), len(loader), len(head) + len(loader), len(rkaf))
    path = tmp_path / "update.img"
    path.write_bytes(bytes(head) + loader + bytes(rkaf))
    out = opened(tmp_path, path, "rockchip")
    assert (out / "loader.bin").read_bytes() == loader
    assert (out / "update/Image/boot.img").read_bytes() == b"boot " + EICAR
    assert (out / "update/Image/meta.txt").exists()


@needs("genromfs")
def test_romfs(tmp_path):
    root = populate(tmp_path / "tree")
    os.symlink("../etc/hostname", root / "opt/link")
    (root / "opt/app/tool").write_bytes(b"#!/bin/sh\n")
    (root / "opt/app/tool").chmod(0o4755)
    img = tmp_path / "rom.img"
    run("genromfs", "-f", img, "-d", root)
    out = opened(tmp_path, img, "romfs")
    assert_sample(out)
    assert (out / "opt/app/tool").stat().st_mode & 0o7777 == 0o755
    assert (out / METADATA_PATH).exists() and not (out / "opt/link").exists()


# --------------------------------------------------------------------------- Android OTA payload


def _pb_varint(n: int) -> bytes:
    out = b""
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def pb(*items: tuple[int, int | bytes]) -> bytes:
    """A protobuf message from (field number, int or bytes) pairs."""
    out = b""
    for number, value in items:
        if isinstance(value, int):
            out += _pb_varint(number << 3) + _pb_varint(value)
        else:
            out += _pb_varint(number << 3 | 2) + _pb_varint(len(value)) + value
    return out


def payload(parts: list[tuple[str, bytes, int]], bad_hash: bool = False) -> bytes:
    """A full-OTA payload.bin: each partition is one REPLACE/REPLACE_XZ operation plus a ZERO."""
    import hashlib
    import lzma

    blobs, manifest_parts = b"", []
    for name, image, kind in parts:
        data = lzma.compress(image) if kind == 8 else image
        digest = hashlib.sha256(b"x" if bad_hash else data).digest()
        blocks = len(image) // 4096
        op = pb((1, kind), (2, len(blobs)), (3, len(data)), (6, pb((1, 0), (2, blocks))), (8, digest))
        zero = pb((1, 6), (6, pb((1, blocks), (2, 1))))
        size = len(image) + 4096
        manifest_parts.append(pb((1, name.encode()), (7, pb((1, size))), (8, op), (8, zero)))
        blobs += data
    manifest = pb((3, 4096), *[(13, p) for p in manifest_parts])
    return b"CrAU" + struct.pack(">QQI", 2, len(manifest), 0) + manifest + blobs


@needs("mke2fs", "7zz")
def test_android_ota_payload(tmp_path):
    root = populate(tmp_path / "tree")
    raw = tmp_path / "system.raw"
    run("mke2fs", "-q", "-F", "-t", "ext4", "-d", root, raw, "4M")
    boot = b"kernel " + EICAR
    boot += b"\0" * (-len(boot) % 4096)
    path = tmp_path / "payload.bin"
    path.write_bytes(payload([("system", raw.read_bytes(), 8), ("boot", boot, 0)]))
    out = opened(tmp_path, path, "android-ota-payload")
    assert (out / "boot.img").read_bytes()[: len(boot)] == boot
    assert (out / "system.img").stat().st_size == raw.stat().st_size + 4096
    assert_sample(opened(tmp_path, out / "system.img", "ext", "rootfs"))


def test_android_ota_payload_bad_hash(tmp_path):
    path = tmp_path / "payload.bin"
    path.write_bytes(payload([("boot", b"k" * 4096, 0)], bad_hash=True))
    problems = extract("android-ota-payload", path, out_dir(tmp_path), limits=Limits())
    assert [(p.path, p.reason) for p in problems] == [("boot.img", "operation data does not match its hash")]
