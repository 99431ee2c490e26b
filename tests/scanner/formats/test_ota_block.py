"""Block-based (non-A/B) Android OTA: partitions rebuilt from a transfer list and its new data.

Each sample is an ext4 image made with ``mke2fs -d`` (EICAR + PyYAML 5.3's
METADATA), cut into ``system.transfer.list`` (version 4, ``new`` ranges out of
order, ``zero`` and ``erase`` ranges) and ``system.new.dat[.br]`` the way the
OTA tools cut it, and zipped as an OTA package.
"""

from __future__ import annotations

import os
import subprocess
import zipfile
from pathlib import Path

import brotli
import pytest

from scanner.formats import detect, extract, ota_partition
from scanner.model import NEST, Limits, Settings
from scanner.osv import OsvDatabase
from scanner.pipeline import scan_package
from scanner.unpack import unpack

from .conftest import METADATA_PATH, assert_sample, needs, only_plain, populate

BLOCK = 4096
OSV = Path(__file__).parents[2] / "data" / "corpus" / "osv"
INCREMENTAL = "incremental OTA cannot be rebuilt without the source image"


def ext4(tmp: Path) -> bytes:
    raw = tmp / "system.raw"
    subprocess.run(
        ["mke2fs", "-q", "-F", "-t", "ext4", "-b", "4096", "-d", populate(tmp / "tree"), raw, "4M"],
        check=True,
        capture_output=True,
    )
    return raw.read_bytes()


def _rangeset(pairs: list[tuple[int, int]]) -> str:
    return ",".join(str(v) for v in [2 * len(pairs), *(x for p in pairs for x in p)])


def _runs(flags: list[bool]) -> list[tuple[bool, int, int]]:
    """(value, start, end) for each run of equal flags."""
    runs: list[tuple[bool, int, int]] = []
    for i, flag in enumerate(flags):
        if runs and runs[-1][0] == flag and runs[-1][2] == i:
            runs[-1] = (flag, runs[-1][1], i + 1)
        else:
            runs.append((flag, i, i + 1))
    return runs


def cut(image: bytes, *, shuffle: bool = True, extra: int = 8) -> tuple[str, bytes]:
    """A version-4 transfer list and the new data for ``image``.

    Non-zero blocks are written by ``new`` commands (in reverse order when
    ``shuffle``, the last one with two ranges), zero blocks by ``zero``, and
    ``extra`` blocks past the image are erased.
    """
    blocks = len(image) // BLOCK
    nonzero = [any(image[i * BLOCK : (i + 1) * BLOCK]) for i in range(blocks)]
    runs = _runs(nonzero)
    news = [(s, e) for used, s, e in runs if used]
    zeros = [(s, e) for used, s, e in runs if not used]
    groups = [[r] for r in news]
    if len(groups) >= 3:
        groups[-2:] = [groups[-2] + groups[-1]]
    if shuffle:
        groups.reverse()
    lines = ["4", str(sum(e - s for s, e in news + zeros)), "0", "0"]
    if extra:
        lines.append(f"erase {_rangeset([(blocks, blocks + extra)])}")
    data = b""
    for group in groups:
        lines.append(f"new {_rangeset(group)}")
        data += b"".join(image[s * BLOCK : e * BLOCK] for s, e in group)
    if zeros:
        lines.append(f"zero {_rangeset(zeros)}")
    return "\n".join(lines) + "\n", data


def ota_zip(path: Path, listing: str, data: bytes, *, compressed=True, data_first=False) -> Path:
    """An OTA zip: unsigned packages hold the transfer list first, signed ones go in name order."""
    name = "system.new.dat.br" if compressed else "system.new.dat"
    blob = brotli.compress(data, quality=6) if compressed else data
    entries = [("system.transfer.list", listing.encode()), (name, blob), ("system.patch.dat", b"")]
    if data_first:
        entries.reverse()
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("META-INF/com/google/android/updater-script", 'ui_print("Installing");\n')
        # its other images keep a package of a tiny file system under the expansion ratio
        zf.writestr("boot.img", os.urandom(64 * 1024))
        for entry, body in entries:
            zf.writestr(entry, body)
    return path


def sample_dir(tmp: Path, listing: str, data: bytes | None, compressed: bool = True) -> Path:
    d = tmp / "ota"
    d.mkdir()
    (d / "system.transfer.list").write_text(listing)
    if data is not None:
        name = "system.new.dat.br" if compressed else "system.new.dat"
        (d / name).write_bytes(brotli.compress(data, quality=5) if compressed else data)
    return d / "system.transfer.list"


def out_dir(tmp: Path) -> Path:
    out = tmp / "out"
    out.mkdir()
    return out


# --------------------------------------------------------------------------- the back end


@needs("mke2fs", "7zz")
@pytest.mark.parametrize("compressed", [True, False])
def test_the_partition_is_rebuilt_byte_for_byte(tmp_path, compressed):
    image = ext4(tmp_path)
    listing, data = cut(image)
    assert 0 < len(data) < len(image)
    path = sample_dir(tmp_path, listing, data, compressed)
    assert detect(path) == "android-transfer-list"
    out = out_dir(tmp_path)
    assert extract("android-transfer-list", path, out, limits=Limits()) == []
    only_plain(out)
    rebuilt = out / "system.img"
    assert rebuilt.stat().st_size == len(image) + 8 * BLOCK
    body = rebuilt.read_bytes()
    assert body[: len(image)] == image and not any(body[len(image) :])
    fs = tmp_path / "fs"
    fs.mkdir()
    assert extract("ext", rebuilt, fs, limits=Limits()) == []
    assert_sample(fs)


def test_version_1_and_2_lists_are_read(tmp_path):
    data = b"A" * BLOCK + b"B" * BLOCK
    for version, head in ((1, "1\n2\n"), (2, "2\n2\n0\n0\n")):
        d = tmp_path / f"v{version}"
        d.mkdir()
        path = sample_dir(d, head + "erase 2,0,4\nnew 4,3,4,1,2\n", data)
        out = out_dir(d)
        assert extract("android-transfer-list", path, out, limits=Limits()) == []
        body = (out / "system.img").read_bytes()
        assert body == bytes(BLOCK) + b"B" * BLOCK + bytes(BLOCK) + b"A" * BLOCK


def test_an_incremental_ota_is_a_problem(tmp_path):
    listing = "4\n2\n1\n1\nstash abc 2,0,1\nbsdiff 0 10 abc 2,0,1 1 abc\nnew 2,1,2\n"
    path = sample_dir(tmp_path, listing, b"x" * BLOCK)
    out = out_dir(tmp_path)
    problems = extract("android-transfer-list", path, out, limits=Limits())
    assert len(problems) == 1 and INCREMENTAL in problems[0].reason
    assert list(out.iterdir()) == []


def test_more_blocks_than_the_limits_allow_are_refused_before_writing(tmp_path):
    # 2^31 blocks: 8 TiB of apparent size, from a few bytes of data.
    listing = "4\n1\n0\n0\nerase 2,0,2147483648\nnew 2,0,1\n"
    path = sample_dir(tmp_path, listing, b"x" * BLOCK)
    out = out_dir(tmp_path)
    problems = extract("android-transfer-list", path, out, limits=Limits())
    assert [p.path for p in problems] == ["system.img"]
    assert "limit" in problems[0].reason
    assert list(out.iterdir()) == []
    # 400 MB of zeros from a few bytes of data: more than the scratch space left...
    (tmp_path / "r").mkdir()
    listing = "4\n1\n0\n0\nzero 2,1,100000\nnew 2,0,1\n"
    path = sample_dir(tmp_path / "r", listing, b"x" * BLOCK)
    out = out_dir(tmp_path / "r")
    problems = extract("android-transfer-list", path, out, limits=Limits(max_total_bytes=10**8))
    assert [p.path for p in problems] == ["system.img"] and list(out.iterdir()) == []
    # ...but within it, a partition that is mostly empty is rebuilt with holes: no disk
    (tmp_path / "h").mkdir()
    path = sample_dir(tmp_path / "h", listing, b"x" * BLOCK)
    out = out_dir(tmp_path / "h")
    assert extract("android-transfer-list", path, out, limits=Limits()) == []
    image = (out / "system.img").stat()
    assert image.st_size == 100000 * BLOCK and image.st_blocks * 512 < 1024 * 1024


def test_missing_new_data_is_a_problem(tmp_path):
    path = sample_dir(tmp_path, "4\n1\n0\n0\nnew 2,0,1\n", None)
    out = out_dir(tmp_path)
    problems = extract("android-transfer-list", path, out, limits=Limits())
    assert len(problems) == 1 and "system.new.dat" in problems[0].reason
    assert list(out.iterdir()) == []


def test_new_data_that_does_not_fit_its_list_is_a_problem(tmp_path):
    for name, data in (("short", b"x" * BLOCK), ("long", b"x" * 3 * BLOCK), ("bad", None)):
        d = tmp_path / name
        d.mkdir()
        path = sample_dir(d, "4\n2\n0\n0\nnew 2,0,2\n", data or b"")
        if data is None:
            (d / "ota/system.new.dat.br").write_bytes(b"\xff" * 100)
        problems = extract("android-transfer-list", path, out_dir(d), limits=Limits())
        assert len(problems) == 1, (name, problems)


def test_a_brotli_bomb_is_read_in_bounded_steps(tmp_path):
    d = tmp_path / "ota"
    d.mkdir()
    (d / "system.transfer.list").write_text("4\n1\n0\n0\nnew 2,0,1\n")
    (d / "system.new.dat.br").write_bytes(brotli.compress(bytes(256 << 20), quality=1))
    assert (d / "system.new.dat.br").stat().st_size < 1 << 20
    listing = d / "system.transfer.list"
    problems = extract("android-transfer-list", listing, out_dir(tmp_path), limits=Limits())
    assert [p.reason for p in problems] == [
        "system.new.dat.br holds data past the blocks its transfer list places"
    ]


@pytest.mark.parametrize(
    "text",
    [
        "4\n1\n0\n0\nnew 3,0,1\n",
        "4\n1\n0\n0\nnew 2,5,1\n",
        "4\n1\n0\n0\nnew 2,a,b\n",
        "4\n1\n0\n0\nfrobnicate 2,0,1\n",
        "4\n1\n0\n0\nnew\n",
        "4\n1\n0\n0\n",
    ],
)
def test_a_damaged_list_is_a_problem(tmp_path, text):
    path = sample_dir(tmp_path, text, b"x" * BLOCK)
    problems = extract("android-transfer-list", path, out_dir(tmp_path), limits=Limits())
    assert len(problems) == 1 and problems[0].path == ""


def test_detection_and_pairing(tmp_path):
    d = tmp_path / "ota"
    d.mkdir()
    (d / "notes.transfer.list").write_text("hello\n")
    (d / "system.transfer.list").write_text("3\n1\n0\n0\nnew 2,0,1\n")
    assert detect(d / "notes.transfer.list") is None
    assert ota_partition(d / "notes.transfer.list") is None
    assert detect(d / "system.transfer.list") == "android-transfer-list"
    assert ota_partition(d / "system.transfer.list") == (d / "system.transfer.list", None)
    (d / "system.new.dat").write_bytes(b"x" * BLOCK)
    assert ota_partition(d / "system.new.dat") == (d / "system.transfer.list", d / "system.new.dat")
    (d / "system.new.dat.br").write_bytes(brotli.compress(b"x" * BLOCK))
    assert ota_partition(d / "system.new.dat") is None  # the compressed data is the one used
    assert ota_partition(d / "system.new.dat.br") == (
        d / "system.transfer.list",
        d / "system.new.dat.br",
    )
    assert ota_partition(d / "vendor.new.dat.br") is None  # not there
    (d / "vendor.new.dat.br").write_bytes(b"")
    assert ota_partition(d / "vendor.new.dat.br") == (None, d / "vendor.new.dat.br")
    assert ota_partition(d / "system.patch.dat") is None


# --------------------------------------------------------------------------- the unpacker


def _unpack(tmp: Path, package: Path):
    return unpack(package, tmp / "scratch", Limits(), name=package.name)


@needs("mke2fs", "7zz")
@pytest.mark.parametrize(
    "compressed,data_first", [(True, False), (True, True), (False, True), (False, False)]
)
def test_the_unpacker_rebuilds_the_partition_whichever_file_comes_first(
    tmp_path, compressed, data_first
):
    # Raw new data in ascending order starts with the ext4 superblock: it must not be
    # opened on its own as a broken file system.
    listing, data = cut(ext4(tmp_path), shuffle=compressed)
    ota = ota_zip(tmp_path / "ota.zip", listing, data, compressed=compressed, data_first=data_first)
    result = _unpack(tmp_path, ota)
    assert result.findings == []
    image = f"ota.zip{NEST}system.transfer.list{NEST}system.img"
    locations = {m.location for m in result.members}
    assert f"{image}{NEST}opt/app/eicar.com" in locations
    assert f"{image}{NEST}{METADATA_PATH}" in locations
    assert not any(".new.dat" + NEST in loc for loc in locations)
    assert sum(1 for loc in locations if loc.endswith("/eicar.com")) == 1


@needs("mke2fs", "7zz")
def test_new_data_without_its_transfer_list_is_opened_as_any_file(tmp_path):
    image = ext4(tmp_path)
    package = tmp_path / "ota.zip"
    with zipfile.ZipFile(package, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("system.new.dat", image)
        zf.writestr("boot.img", os.urandom(64 * 1024))
    result = _unpack(tmp_path, package)
    assert result.findings == []
    locations = {m.location for m in result.members}
    assert f"ota.zip{NEST}system.new.dat{NEST}opt/app/eicar.com" in locations


def test_the_unpacker_reports_an_incremental_ota(tmp_path):
    listing = "4\n1\n0\n0\nbsdiff 0 10 2,0,1 2,0,1\n"
    ota = ota_zip(tmp_path / "ota.zip", listing, b"x" * BLOCK)
    result = _unpack(tmp_path, ota)
    assert [(f.type, f.location) for f in result.findings] == [
        ("unscanned", f"ota.zip{NEST}system.transfer.list")
    ]
    assert INCREMENTAL in result.findings[0].summary


# --------------------------------------------------------------------------- the whole scan


@needs("mke2fs", "7zz")
def test_a_scan_finds_the_virus_and_the_component_in_the_partition(tmp_path, clamd):
    listing, data = cut(ext4(tmp_path))
    ota = ota_zip(tmp_path / "ota.zip", listing, data, data_first=True)
    package = tmp_path / "pkg.zip"
    with zipfile.ZipFile(package, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.write(ota, ota.name)
        zf.writestr("noise.bin", os.urandom(256 * 1024))  # real packages are not all zeros
    settings = Settings(osv_paths=(OSV,), clamd=clamd.address, scratch_dir=tmp_path)
    result = scan_package(package, settings, osv=OsvDatabase.load([OSV]))

    base = f"pkg.zip{NEST}ota.zip{NEST}system.transfer.list{NEST}system.img{NEST}"
    viruses = [f.location for f in result.findings if f.type == "virus"]
    assert viruses == [base + "opt/app/eicar.com"], result.findings
    pyyaml = [f for f in result.findings if f.component and f.component.name == "PyYAML"]
    assert pyyaml and {f.location for f in pyyaml} == {base + METADATA_PATH}
    assert {"CVE-2020-1747", "CVE-2020-14343"} <= {i for f in pyyaml for i in (*f.ids, *f.aliases)}
    assert not [f for f in result.findings if f.type == "unscanned"]
    assert result.verdict == "rejected"
