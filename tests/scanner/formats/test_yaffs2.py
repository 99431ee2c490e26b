"""YAFFS2 in the layouts found in the field, from images a real mkyaffs2image wrote.

``tests/data/yaffs2/README.md`` says how the two images were written. The other
layouts (bad-block marker before the tags, no spare areas, 512- and 4096-byte
pages, tags in either byte order) are the same pages re-laid.
"""

from __future__ import annotations

import gzip
import struct
import subprocess
from pathlib import Path

import pytest

from scanner.formats import detect, extract
from scanner.formats import yaffs2 as reader
from scanner.model import NEST, Limits, Settings
from scanner.osv import OsvDatabase
from scanner.pipeline import scan_package

from .conftest import EICAR, METADATA_PATH, assert_sample, needs, only_plain, wrap

DATA = Path(__file__).parents[2] / "data" / "yaffs2"
OSV = Path(__file__).parents[2] / "data" / "corpus" / "osv"
PAGE, SPARE, TAGS = 2048, 64, 28  # as mkyaffs2image writes: packed tags and their ECC
PLACEHOLDER = b"EICAR-PLACEHOLDER".ljust(68, b".")
BIG = bytes(range(256)) * 19 + bytes(136)


def original(name: str) -> bytes:
    """The image as mkyaffs2image wrote it, with the EICAR file's placeholder filled in."""
    raw = gzip.decompress((DATA / f"mkyaffs2image-{name}.yaffs2.gz").read_bytes())
    assert raw.count(PLACEHOLDER) == 1
    return raw.replace(PLACEHOLDER, EICAR)


def relay(
    raw: bytes,
    *,
    page: int = PAGE,
    spare: int | None = SPARE,
    marker: bool = False,
    swap_tags: bool = False,
) -> bytes:
    """The same pages in another layout. ``spare=None``: no spare areas at all."""
    out = bytearray()
    for at in range(0, len(raw), PAGE + SPARE):
        data, oob = raw[at : at + PAGE], raw[at + PAGE : at + PAGE + SPARE]
        if page < PAGE:
            assert data[page:] == b"\xff" * (PAGE - page), "a page holds more than fits"
        out += data[:page].ljust(page, b"\xff")
        if spare is None:
            continue
        tags = oob[:TAGS]
        if swap_tags and tags != b"\xff" * TAGS:
            tags = struct.pack(">4I", *struct.unpack("<4I", tags[:16])) + tags[16:]
        lead = b"\xff\xff" if marker else b""
        room = spare - len(lead)
        tags = tags if room >= TAGS else tags[:16]  # a 16-byte spare has room for the tags alone
        out += (lead + tags).ljust(spare, b"\xff")
    return bytes(out)


LAYOUTS = {
    # name: (image, relay options, expected Layout)
    "2048-le": ("le", {}, reader.Layout(2048, 64, 0, "<")),
    "2048-le-marker": ("le", {"marker": True}, reader.Layout(2048, 64, 2, "<")),
    "2048-le-no-oob": ("le", {"spare": None}, reader.Layout(2048, 0, 0, "<")),
    "512-le": ("le", {"page": 512, "spare": 16}, reader.Layout(512, 16, 0, "<")),
    "512-le-no-oob": ("le", {"page": 512, "spare": None}, reader.Layout(512, 0, 0, "<")),
    "4096-le-marker": (
        "le",
        {"page": 4096, "spare": 128, "marker": True},
        reader.Layout(4096, 128, 2, "<"),
    ),
    "4096-le-224-marker": (
        "le",
        {"page": 4096, "spare": 224, "marker": True},
        reader.Layout(4096, 224, 2, "<"),
    ),
    "4096-le-no-oob": ("le", {"page": 4096, "spare": None}, reader.Layout(4096, 0, 0, "<")),
    "2048-be": ("be", {}, reader.Layout(2048, 64, 0, ">", "<")),
    "2048-be-marker": ("be", {"marker": True}, reader.Layout(2048, 64, 2, ">", "<")),
    "2048-be-swapped-tags-marker": (
        "be",
        {"marker": True, "swap_tags": True},
        reader.Layout(2048, 64, 2, ">"),
    ),
    "2048-be-no-oob": ("be", {"spare": None}, reader.Layout(2048, 0, 0, ">")),
}


def image(tmp_path: Path, layout: str) -> Path:
    name, options, _ = LAYOUTS[layout]
    path = tmp_path / f"{layout}.yaffs2"
    path.write_bytes(relay(original(name), **options))
    return path


def yaffs2(tmp_path: Path) -> Path:
    """The common large-page NAND layout: 2 KiB pages, tags after the bad-block marker."""
    return image(tmp_path, "2048-le-marker")


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_every_layout_is_recognised_and_read(tmp_path, layout):
    img = image(tmp_path, layout)
    assert detect(img) == "yaffs2"
    head = img.read_bytes()[:70000]
    assert reader.probe(head, img.stat().st_size) == LAYOUTS[layout][2]
    out = tmp_path / "out"
    out.mkdir()
    assert extract("yaffs2", img, out, limits=Limits()) == []
    assert_sample(out)
    assert (out / "etc/hostname").read_bytes() == b"device\n"
    if LAYOUTS[layout][0] == "be":
        assert (out / "opt/app/big.bin").read_bytes() == BIG  # three pages, put together
    only_plain(out)
    # the symbolic link, the device node and the FIFO have no content: not created
    assert not (out / "etc/passwd-link").exists() and not (out / "etc/passwd-link").is_symlink()
    assert not (out / "dev-console").exists() and not (out / "fifo").exists()


@needs("unyaffs")
def test_the_marker_layout_is_the_one_debian_unyaffs_reads(tmp_path):
    """The re-laid bad-block-marker image is what Debian's unyaffs reads with ``-b``."""
    img = image(tmp_path, "2048-le-marker")
    done = subprocess.run(
        ["unyaffs", "-b", "-t", str(img)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "opt/app/eicar.com" in done.stdout and METADATA_PATH in done.stdout


def test_the_old_detection_missed_the_marker_layout(tmp_path):
    """Tags behind the bad-block marker: page 0's tags do not start the spare area."""
    img = image(tmp_path, "2048-le-marker")
    raw = img.read_bytes()
    assert struct.unpack_from("<4I", raw, PAGE)[2:] != (0, 0xFFFF)
    assert struct.unpack_from("<4I", raw, PAGE + 2)[2:] == (0, 0xFFFF)


def test_a_newer_copy_of_a_page_wins(tmp_path):
    """A file rewritten on the device: the data page with the higher sequence number counts."""
    raw = bytearray(relay(original("le")))
    stride = PAGE + SPARE
    for at in range(0, len(raw), stride):
        if raw[at : at + len(EICAR)] == EICAR:
            old = bytes(raw[at : at + stride])
            break
    seq, obj, chunk, _nbytes = struct.unpack_from("<4I", old, PAGE)
    struct.pack_into("<I", raw, at + PAGE, seq + 1)  # this copy was written last ...
    stale = (
        b"stale".ljust(PAGE, b"\xff") + struct.pack("<4I", seq, obj, chunk, 5) + old[PAGE + 16 :]
    )
    # ... though the stale copy comes later in the image: its sequence number is lower
    free = raw.index(b"\xff" * stride, len(raw) - 8 * stride)
    raw[free : free + stride] = stale
    img = tmp_path / "rewritten.yaffs2"
    img.write_bytes(bytes(raw))
    out = tmp_path / "out"
    out.mkdir()
    assert extract("yaffs2", img, out, limits=Limits()) == []
    assert (out / "opt/app/eicar.com").read_bytes() == EICAR


def test_a_truncated_image_is_read_in_part_and_says_so(tmp_path):
    raw = relay(original("be"), marker=True)
    stride = PAGE + SPARE
    big = raw.index(BIG[:256])
    cut = tmp_path / "cut.yaffs2"
    cut.write_bytes(raw[: big + stride])  # big.bin's first page only
    assert detect(cut) == "yaffs2"
    out = tmp_path / "out"
    out.mkdir()
    problems = extract("yaffs2", cut, out, limits=Limits())
    assert [p.path for p in problems] == ["opt/app/big.bin"]
    assert "YAFFS2 file read only in part" in problems[0].reason
    assert (out / "opt/app/big.bin").read_bytes()[:PAGE] == BIG[:PAGE]


def test_a_hostile_name_or_size_does_not_escape(tmp_path):
    raw = bytearray(relay(original("le"), marker=True))
    at = raw.index(b"hostname\0")
    raw[at : at + 9] = b"..\0\0\0\0\0\0\0"  # the file's name becomes ".."
    at = raw.index(b"eicar.com\0")
    header = at - 10
    struct.pack_into("<I", raw, header + 292, 0xFFFFFFF0)  # a 4 GB file with one page of data
    img = tmp_path / "hostile.yaffs2"
    img.write_bytes(bytes(raw))
    out = tmp_path / "box" / "out"
    out.mkdir(parents=True)
    problems = extract("yaffs2", img, out, limits=Limits(max_file_bytes=1 << 20))
    reasons = {p.path: p.reason for p in problems}
    assert "over the 1048576-byte limit" in reasons["opt/app/eicar.com"]
    assert "leaves the image" in reasons["etc/.."]
    assert sorted(p.name for p in (tmp_path / "box").iterdir()) == ["out"]
    only_plain(out)


def test_something_that_only_looks_like_yaffs2_is_not_taken_for_it(tmp_path):
    raw = bytearray(relay(original("le")))
    raw[PAGE : PAGE + 16] = b"\x00" * 16  # page 0's tags: sequence number 0
    img = tmp_path / "not.bin"
    img.write_bytes(bytes(raw))
    assert reader.probe(bytes(raw[:70000]), len(raw)) is None


def damaged() -> bytes:
    """The first pages are sound (the file is taken for YAFFS2), the later ones garbage."""
    raw = bytearray(relay(original("le"), marker=True))
    stride = PAGE + SPARE
    for at in range(stride * (reader.PROBE_PAGES + 1), len(raw), stride):
        raw[at : at + stride] = bytes([0x5A]) * stride
    return bytes(raw)


def test_a_damaged_image_is_read_in_part_and_says_so(tmp_path):
    img = tmp_path / "broken.yaffs2"
    img.write_bytes(damaged())
    assert detect(img) == "yaffs2"
    out = tmp_path / "out"
    out.mkdir()
    problems = extract("yaffs2", img, out, limits=Limits())
    assert problems and all("YAFFS2" in p.reason for p in problems)
    assert any("pages could not be read" in p.reason for p in problems)
    only_plain(out)


def test_page_zero_alone_is_not_yaffs2(tmp_path):
    """A valid header at page 0 that the next pages do not bear out is not taken for YAFFS2."""
    raw = bytearray(relay(original("le"), marker=True))
    stride = PAGE + SPARE
    for at in range(stride, len(raw), stride):
        raw[at : at + stride] = bytes([0x5A]) * stride
    img = tmp_path / "blob.bin"
    img.write_bytes(bytes(raw))
    assert detect(img) is None


# --------------------------------------------------------------------------- whole scan


@pytest.fixture(scope="module")
def osv() -> OsvDatabase:
    return OsvDatabase.load([OSV])


@pytest.mark.parametrize("name", ["pkg.zip", "pkg.tar.gz"])
@pytest.mark.parametrize(
    "layout", ["2048-le-marker", "2048-be-no-oob", "4096-le-224-marker", "512-le"]
)
def test_found_through_the_whole_scan(tmp_path, clamd, osv, layout, name):
    sample = image(tmp_path, layout)
    package = wrap(sample, tmp_path / name)
    settings = Settings(osv_paths=(OSV,), clamd=clamd.address, kind="binary", scratch_dir=tmp_path)
    result = scan_package(package, settings, osv=osv)
    assert [f.summary for f in result.findings if f.type == "unscanned"] == []
    base = f"{name}{NEST}{sample.name}{NEST}"
    assert base + "opt/app/eicar.com" in [f.location for f in result.findings if f.type == "virus"]
    pyyaml = [f for f in result.findings if f.component and f.component.name == "PyYAML"]
    assert pyyaml and {f.location for f in pyyaml} == {base + METADATA_PATH}
    assert result.verdict == "rejected"


def test_an_unreadable_yaffs2_in_a_package_is_unscanned(tmp_path, clamd, osv):
    sample = tmp_path / "nand.img"
    sample.write_bytes(damaged())
    package = wrap(sample, tmp_path / "pkg.zip")
    settings = Settings(osv_paths=(OSV,), clamd=clamd.address, kind="binary", scratch_dir=tmp_path)
    result = scan_package(package, settings, osv=osv)
    unscanned = [f for f in result.findings if f.type == "unscanned"]
    assert unscanned and all("YAFFS2" in f.summary for f in unscanned), [
        f.summary for f in unscanned
    ]
    assert unscanned[0].location.startswith("pkg.zip!/nand.img")
    assert result.verdict == "rejected"
