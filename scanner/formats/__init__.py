"""Format back ends: file systems, disk images, firmware, images and apps the unpacker hands over.

The unpacker opens ordinary archives itself (zip, tar, gzip, bzip2, xz). For
anything else it asks :func:`detect` for a format name and, when there is one,
calls :func:`extract` to get the container's files into a fresh directory.

* :func:`detect` reads a few KB and never raises.
* :func:`extract` creates only regular files and directories under ``outdir``;
  counts apparent bytes against the :class:`~scanner.model.Limits`; runs each
  external tool in its own process group with a wall-clock timeout; returns
  :class:`Problem` for whatever it could not open or skipped, and never raises
  for bad input. Symbolic links, device nodes and FIFOs have no content and are
  not created; that is not a problem.
* :func:`apply_oci` applies a container image's layers (whiteouts honoured).
* :func:`inspect_binary` finds the versions of a few well-known libraries
  embedded in ELF and PE files; :func:`describe` names a mobile app's package.

What opens what (Debian packages unless marked PyPI):

=====================================================  ==============================
squashfs ext iso9660 udf fat ntfs exfat cramfs hfsplus  7zip (``7zz``); lz4 SquashFS:
wim, and disk images qcow2 vmdk vhd vhdx vdi mbr gpt    squashfs-tools (``unsquashfs``);
                                                       disks 7-Zip cannot read:
                                                       qemu-utils (``qemu-img``)
ubi ubifs / jffs2                                     ubi_reader, jefferson (PyPI)
yaffs2 (every page, spare and byte-order layout)       Python
erofs                                                  erofs-utils (``fsck.erofs``)
oci-image docker-archive                               Python (zstd layers: zstandard)
romfs cpio ihex srec uimage fit zimage android-sparse   Python
android-boot android-vendor-boot android-ota-payload
rockchip
android-transfer-list (block-based OTA: the            Python (brotli, PyPI)
partition rebuilt from ``<name>.new.dat[.br]``)
hfs (classic; 7-Zip reads only HFS+)                   hfsutils (``hmount``, ``hls``,
                                                       ``hcopy``)
=====================================================  ==============================
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from scanner.formats._common import LimitExceeded, Problem
from scanner.formats.detect import detect
from scanner.formats.oci import ImageRoot, apply_oci
from scanner.model import Limits

__all__ = [
    "ImageRoot",
    "Problem",
    "apply_oci",
    "describe",
    "detect",
    "extract",
    "extractable",
    "inspect_binary",
    "ota_partition",
]

Extractor = Callable[[str, Path, Path, Limits, float], list[Problem]]


def _oci(fmt: str, path: Path, outdir: Path, limits: Limits, timeout: float) -> list[Problem]:
    return apply_oci(path, outdir, limits)[1]


def _registry() -> dict[str, Extractor]:
    from scanner.formats import erofs, firmware, flash, hfs, ota, ota_block, romfs, sevenzip, yaffs2

    table: dict[str, Extractor] = {"oci-image": _oci, "docker-archive": _oci}
    for name in sevenzip.FORMATS:
        table[name] = sevenzip.extract
    table.update(firmware.EXTRACTORS)
    table.update(romfs.EXTRACTORS)
    table.update(flash.EXTRACTORS)
    table.update(yaffs2.EXTRACTORS)
    table.update(erofs.EXTRACTORS)
    table.update(ota.EXTRACTORS)
    table.update(ota_block.EXTRACTORS)
    table.update(hfs.EXTRACTORS)
    return table


def extractable() -> frozenset[str]:
    """Every format :func:`extract` opens (``elf``, ``pe`` and the zip/tar-based apps are
    left to the unpacker and to :func:`inspect_binary` / :func:`describe`)."""
    return frozenset(_registry())


def extract(
    fmt: str, path: Path, outdir: Path, *, limits: Limits, timeout: float = 300
) -> list[Problem]:
    """Extract the container's files into ``outdir`` (created by the caller, empty).

    Returns the problems met; never raises for bad input.
    """
    table = _registry()
    func = table.get(fmt)
    if func is None:
        return [Problem("", f"no extractor for the {fmt} format")]
    path, outdir = Path(path).absolute(), Path(outdir).absolute()
    try:
        return func(fmt, path, outdir, limits, timeout)
    except LimitExceeded as exc:
        return [Problem("", str(exc))]
    except Exception as exc:  # noqa: BLE001 - fail closed: anything unread is a problem
        return [Problem("", f"{fmt} could not be read: {type(exc).__name__}: {exc}")]


def ota_partition(path: Path) -> tuple[Path | None, Path | None] | None:
    """For a block-based OTA's ``<name>.transfer.list`` or ``<name>.new.dat[.br]``: the
    partition's transfer list and new data as they are on disk beside it (None for the
    one not there yet); None for any other file. The partition is extracted from its
    transfer list (format ``android-transfer-list``) once both are there."""
    from scanner.formats.ota_block import partition

    return partition(Path(path))


def inspect_binary(path: Path) -> list[tuple[str, str, str]]:
    """(ecosystem, name, version) of libraries whose version strings are embedded in a binary."""
    from scanner.formats.binary import inspect_binary as inspect

    return inspect(Path(path))


def describe(fmt: str, path: Path) -> dict:
    """Identity of an app package (``apk``, ``ipa``, ``hap``, ``ova``): id, version, name."""
    from scanner.formats.apps import describe as describe_app

    return describe_app(fmt, Path(path))

