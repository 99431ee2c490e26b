"""Format detection by magic bytes and a little structure: cheap, and never raises."""

from __future__ import annotations

import re
import struct
import tarfile
import zipfile
from pathlib import Path

HEAD = 64 * 1024
#: How many tar headers a look at a tar may read before giving up.
TAR_PEEK = 20_000


def detect(
    path: Path, *, head: bytes | None = None, tail: bytes | None = None, size: int | None = None
) -> str | None:
    """The format name of ``path``, or None for ordinary archives and unknown files.

    A caller that has the file's ``size``, ``head`` (its first :data:`HEAD` bytes,
    or all of it when shorter) and ``tail`` (its last 512 bytes) spares reading them.
    """
    try:
        if head is not None and tail is not None and size is not None:
            if len(head) == min(size, HEAD) and (size < 512 or len(tail) == 512):
                return _detect(Path(path), head, tail if size >= 512 else b"", size)
        with open(path, "rb") as fh:
            head = fh.read(HEAD)
            size = fh.seek(0, 2)
            tail = b""
            if size >= 512:
                fh.seek(size - 512)
                tail = fh.read(512)
        return _detect(Path(path), head, tail, size)
    except Exception:  # noqa: BLE001 - detection is a guess; a broken file is simply unknown
        return None


def _at(head: bytes, offset: int, magic: bytes) -> bool:
    return head[offset : offset + len(magic)] == magic


def _u16le(head: bytes, offset: int) -> int:
    return struct.unpack_from("<H", head, offset)[0] if len(head) >= offset + 2 else -1


def _u32le(head: bytes, offset: int) -> int:
    return struct.unpack_from("<I", head, offset)[0] if len(head) >= offset + 4 else -1


def _u32be(head: bytes, offset: int) -> int:
    return struct.unpack_from(">I", head, offset)[0] if len(head) >= offset + 4 else -1


_SIMPLE: list[tuple[int, bytes, str]] = [
    (0, b"QFI\xfb", "qcow2"),
    (0, b"KDMV", "vmdk"),
    (0, b"# Disk DescriptorFile", "vmdk"),
    (0, b"vhdxfile", "vhdx"),
    (0, b"conectix", "vhd"),
    (0, b"<<< Oracle VM VirtualBox Disk Image >>>", "vdi"),
    (0, b"<<< Sun xVM VirtualBox Disk Image >>>", "vdi"),
    (0, b"<<< innotek VirtualBox Disk Image >>>", "vdi"),
    (0, b"hsqs", "squashfs"),
    (0, b"sqsh", "squashfs"),
    (0, b"-rom1fs-", "romfs"),
    (0, b"E=\xcd\x28", "cramfs"),
    (0, b"\x28\xcd=E", "cramfs"),
    (0, b"MSWIM\x00\x00\x00", "wim"),
    (0, b"UBI#", "ubi"),
    (0, b"\x31\x18\x10\x06", "ubifs"),
    (0, b"\x27\x05\x19\x56", "uimage"),
    (0, b"\x3a\xff\x26\xed", "android-sparse"),
    (0, b"ANDROID!", "android-boot"),
    (0, b"VNDRBOOT", "android-vendor-boot"),
    (0, b"CrAU", "android-ota-payload"),
    (0, b"RKFW", "rockchip"),
    (0, b"RKAF", "rockchip"),
    (0, b"070701", "cpio"),
    (0, b"070702", "cpio"),
    (0, b"070707", "cpio"),
    (0, b"\xc7\x71", "cpio"),
    (0, b"\x71\xc7", "cpio"),
    (0, b"\x7fELF", "elf"),
    (0x8001, b"CD001", "iso9660"),
    (0x8001, b"BEA01", "udf"),
    (512, b"EFI PART", "gpt"),
    (4096, b"EFI PART", "gpt"),
    (1024, b"H+\x00\x04", "hfsplus"),
    (1024, b"\xe2\xe1\xf5\xe0", "erofs"),  # EROFS superblock magic 0xE0F5E1E2
    (1024, b"HX\x00\x05", "hfsplus"),
]

_ARCHIVES = (b"PK\x03\x04", b"PK\x05\x06", b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00")


def _detect(path: Path, head: bytes, tail: bytes, size: int) -> str | None:
    if path.name.endswith(".transfer.list") and transfer_list_head(head):
        return "android-transfer-list"
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        return _zip_kind(path)
    if head.startswith(_ARCHIVES):
        return None
    for offset, magic, name in _SIMPLE:
        if _at(head, offset, magic):
            if name == "iso9660" and _udf_descriptor(head):
                return "udf"
            return name
    if tail.startswith(b"conectix"):
        return "vhd"
    if _u32le(head, 0x40) == 0xBEDA107F:
        return "vdi"
    if _u16le(head, 1024 + 56) == 0xEF53:
        return "ext"
    if _at(head, 1024, b"BD") and _u16le(head, 1024 + 18) and len(head) > 1100:
        return "hfs"
    if _u32le(head, 512) == 0x28CD3D45:
        return "cramfs"
    if head.startswith(b"\xd0\x0d\xfe\xed"):
        # A FIT is a device tree with an /images node, near the start of its structure block.
        return "fit" if b"images\x00" in head else None
    if _is_jffs2(head):
        return "jffs2"
    if head.startswith(b"MZ"):
        pe = _u32le(head, 0x3C)
        return "pe" if 0 < pe < len(head) - 4 and _at(head, pe, b"PE\x00\x00") else None
    if _u32le(head, 0x24) == 0x016F2818 or _at(head, 0x202, b"HdrS"):
        return "zimage"
    if len(head) >= 512 and _at(head, 510, b"\x55\xaa"):
        fat = _fat_or_mbr(head)
        if fat:
            return fat
    if _is_yaffs2(head, size):
        return "yaffs2"
    text = _text_kind(head)
    if text:
        return text
    if size >= 1024 and len(head) >= 512 and _is_tar(head):
        return _tar_kind(path)
    return None


_TRANSFER_HEAD = re.compile(
    rb"([1-4])\r?\n[0-9]{1,19}\r?\n"  # version, blocks written
    rb"([0-9]{1,19}\r?\n[0-9]{1,19}(?:\r?\n|\Z))?"  # stash entries, stash blocks (from 2)
)


def transfer_list_head(head: bytes) -> bool:
    """True for the start of a block-based OTA transfer list: its version (1 to 4), the
    blocks it writes and, from version 2, its stash entries and blocks, a line each."""
    found = _TRANSFER_HEAD.match(head)
    return bool(found) and (found.group(1) == b"1" or found.group(2) is not None)


def _udf_descriptor(head: bytes) -> bool:
    for n in range(1, 8):
        off = 0x8001 + 2048 * n
        if head[off : off + 4] == b"NSR0":
            return True
    return False


def _fat_or_mbr(head: bytes) -> str | None:
    if head[54:59] in (b"FAT12", b"FAT16") or head[82:87] == b"FAT32" or head[54:58] == b"FAT ":
        return "fat"
    if _at(head, 3, b"NTFS    "):
        return "ntfs"
    if _at(head, 3, b"EXFAT   "):
        return "exfat"
    entries = [head[446 + 16 * i : 462 + 16 * i] for i in range(4)]
    used = [e for e in entries if e[4] != 0]
    if used and all(e[0] in (0, 0x80) for e in entries) and all(
        struct.unpack_from("<I", e, 12)[0] > 0 for e in used
    ):
        return "mbr"
    return None


def _is_jffs2(head: bytes) -> bool:
    if len(head) < 12:
        return False
    for fmt in ("<HH", ">HH"):
        magic, nodetype = struct.unpack_from(fmt, head, 0)
        if magic == 0x1985 and nodetype in (0xE001, 0xE002, 0x2003, 0x2004, 0xE006, 0xE008, 0xE009):
            return True
    return False


def _is_yaffs2(head: bytes, size: int) -> bool:
    # By structure: page 0 is an object header whose parent is the root, in a page and
    # spare layout that the following pages bear out (scanner.formats.yaffs2.probe).
    from scanner.formats.yaffs2 import probe

    return probe(head, size) is not None


_IHEX_LINE = re.compile(rb":([0-9A-Fa-f]{2})([0-9A-Fa-f]{4})([0-9A-Fa-f]{2})([0-9A-Fa-f]*)\r?$")
_SREC_LINE = re.compile(rb"S[0-9]([0-9A-Fa-f]{2})([0-9A-Fa-f]+)\r?$")


def _text_kind(head: bytes) -> str | None:
    lines = head.split(b"\n", 4)[:3]
    lines = [ln.strip() for ln in lines if ln.strip()]
    if not lines:
        return None
    if all(_IHEX_LINE.match(ln) for ln in lines) and _ihex_ok(lines[0]):
        return "ihex"
    if all(_SREC_LINE.match(ln) for ln in lines) and _srec_ok(lines[0]):
        return "srec"
    return None


def _ihex_ok(line: bytes) -> bool:
    try:
        data = bytes.fromhex(line[1:].decode())
    except ValueError:
        return False
    return len(data) == data[0] + 5 and sum(data) & 0xFF == 0


def _srec_ok(line: bytes) -> bool:
    try:
        data = bytes.fromhex(line[2:].decode())
    except ValueError:
        return False
    return len(data) == data[0] + 1 and (sum(data[:-1]) + data[-1]) & 0xFF == 0xFF


def _is_tar(head: bytes) -> bool:
    if head[257:262] == b"ustar":
        return True
    try:
        return tarfile.TarInfo.frombuf(head[:512], "utf-8", "surrogateescape") is not None
    except tarfile.TarError:
        return False


def _tar_kind(path: Path) -> str | None:
    names: set[str] = set()
    first = None
    with tarfile.open(path, "r:") as tar:
        for i, info in enumerate(tar):
            if i >= TAR_PEEK:
                break
            name = info.name.lstrip("./")
            names.add(name)
            if first is None and info.isreg():
                first = name
            tar.members = []
    if "oci-layout" in names and "index.json" in names:
        return "oci-image"
    if "manifest.json" in names and (
        "index.json" in names or any(n.endswith("/layer.tar") or n.startswith("blobs/") for n in names)
    ):
        return "docker-archive"
    if first and first.lower().endswith(".ovf"):
        return "ova"
    return None


def _zip_kind(path: Path) -> str | None:
    with zipfile.ZipFile(path) as zf:
        names = set(zf.namelist()[:TAR_PEEK])
    if "AndroidManifest.xml" in names and any(n.endswith(".dex") or n == "resources.arsc" for n in names):
        return "apk"
    if any(re.fullmatch(r"Payload/[^/]+\.app/Info\.plist", n) for n in names):
        return "ipa"
    if ("module.json" in names or "config.json" in names) and (
        "pack.info" in names or "resources.index" in names
    ):
        return "hap"
    return None
