"""Unpacking: real packages, nesting, and hostile archives built at test time.

Every hostile case checks four things: nothing escaped the scratch root (and
no link, device, fifo or setuid file was created anywhere), the scratch disk it
really allocated (blocks, not apparent size) stayed under 600 MB, the bad entry is
an ``unscanned`` finding with a clear summary, and the good entries beside it were
still extracted.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import stat
import tarfile
import uuid
import zipfile
from pathlib import Path

import pytest

from scanner.model import NEST, Limits
from scanner.unpack import Member, finding_id, unpack
from tests.scanner import hostile

CORPUS = Path(__file__).parents[1] / "data" / "corpus" / "packages"
#: What one package may really take on the scratch disk, whatever it claims to hold.
SCRATCH_CAP = 600 * 1024 * 1024


@pytest.fixture
def outside(tmp_path):
    """An absolute path no archive may write to; checked after each test."""
    target = Path("/tmp") / f"assay-outside-{uuid.uuid4().hex}"
    yield target
    assert not os.path.lexists(target), f"{target} was written outside the scratch root"


def run(tmp_path: Path, package: Path, limits: Limits | None = None, name: str | None = None):
    """Unpack ``package`` two levels below tmp_path, then check containment and the disk
    it really took."""
    scratch = tmp_path / "work" / "deep" / "scratch"
    scratch.parent.mkdir(parents=True, exist_ok=True)
    before = _walk(tmp_path)
    with hostile.PeakDisk(scratch.parent) as disk:
        result = unpack(package, scratch, limits or Limits(), name=name or package.name)
    after = _walk(tmp_path)
    added = after - before
    escaped = [p for p in added if scratch not in p.parents and p != scratch]
    assert not escaped, f"written outside the scratch root: {escaped}"
    for path in _walk(scratch):
        mode = path.lstat().st_mode
        assert stat.S_ISREG(mode) or stat.S_ISDIR(mode), f"not a regular file or directory: {path}"
        assert not mode & (stat.S_ISUID | stat.S_ISGID | stat.S_ISVTX), f"special mode bits: {path}"
    for member in result.members[1:]:
        assert scratch in member.path.parents
        assert member.path.stat().st_size == member.size
    assert disk.peak < SCRATCH_CAP, f"{disk.peak} bytes allocated on the scratch disk"
    return result


def _walk(root: Path) -> set[Path]:
    found = set()
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            found.add(Path(dirpath) / name)
    return found


def locations(result) -> dict[str, Member]:
    return {m.location: m for m in result.members}


def summaries(result) -> list[str]:
    return [f.summary for f in result.findings]


def assert_all_unscanned(result):
    for f in result.findings:
        assert f.type == "unscanned" and f.blocking and f.engine == "unpack"
        assert len(f.id) == 32 and int(f.id, 16) >= 0


# -- real packages --------------------------------------------------------------


@pytest.mark.parametrize(
    "package", ["pkg-a-python-app.tar.gz", "pkg-b-node-app.zip", "pkg-c-clean.tar.gz"]
)
def test_corpus_packages_unpack_cleanly(tmp_path, package):
    result = run(tmp_path, CORPUS / package)
    assert result.findings == []
    first = result.members[0]
    assert (first.location, first.depth, first.container) == (package, 0, True)
    assert first.path == CORPUS / package
    assert all(m.depth == 1 and not m.container for m in result.members[1:])
    with (
        tarfile.open(CORPUS / package)
        if package.endswith("gz")
        else zipfile.ZipFile(CORPUS / package) as archive
    ):
        names = (
            [i.name for i in archive.getmembers() if i.isfile()]
            if isinstance(archive, tarfile.TarFile)
            else [n for n in archive.namelist() if not n.endswith("/")]
        )
    assert sorted(m.location for m in result.members[1:]) == sorted(
        f"{package}{NEST}{n}" for n in names
    )


def test_nested_zips_in_order_with_depths(tmp_path):
    result = run(tmp_path, CORPUS / "pkg-d-eicar-nested.zip")
    assert result.findings == []
    eicar = (
        "pkg-d-eicar-nested.zip!/acme-docs-bundle-1.0/assets/extras.zip"
        "!/inner/payload.zip!/tools/eicar.com"
    )
    members = locations(result)
    assert members[eicar].depth == 3 and members[eicar].size == 68
    assert b"EICAR-STANDARD-ANTIVIRUS-TEST-FILE" in members[eicar].path.read_bytes()
    order = [m.location for m in result.members]
    extras = "pkg-d-eicar-nested.zip!/acme-docs-bundle-1.0/assets/extras.zip"
    assert members[extras].container and members[extras].depth == 1
    # A container is followed by its own members.
    assert order.index(extras) < order.index(extras + "!/inner/payload.zip") < order.index(eicar)


def test_every_compressor_and_tarball_is_opened_by_content(tmp_path):
    inner_tgz = io.BytesIO()
    with tarfile.open(fileobj=inner_tgz, mode="w:gz") as tf:
        hostile.tar_entry(tf, "package/package.json", b'{"name": "x", "version": "1.0.0"}')
    jar = io.BytesIO()
    with zipfile.ZipFile(jar, "w") as zf:
        zf.writestr("META-INF/MANIFEST.MF", "Manifest-Version: 1.0\n")
    package = hostile.make_tar(
        tmp_path / "pkg.tar",
        [
            ("notes.txt.gz", gzip.compress(b"gzipped text")),
            ("notes.txt.bz2", bz2.compress(b"bzipped text")),
            ("notes.txt.xz", lzma.compress(b"xz text")),
            ("x-1.0.0.tgz", inner_tgz.getvalue()),
            ("lib/renamed.bin", jar.getvalue()),  # a jar whose name says nothing
        ],
    )
    result = run(tmp_path, package)
    assert result.findings == []
    members = locations(result)
    assert members["pkg.tar!/notes.txt.gz!/notes.txt"].path.read_bytes() == b"gzipped text"
    assert members["pkg.tar!/notes.txt.bz2!/notes.txt"].path.read_bytes() == b"bzipped text"
    assert members["pkg.tar!/notes.txt.xz!/notes.txt"].path.read_bytes() == b"xz text"
    assert "pkg.tar!/x-1.0.0.tgz!/package/package.json" in members
    assert members["pkg.tar!/lib/renamed.bin"].container
    assert "pkg.tar!/lib/renamed.bin!/META-INF/MANIFEST.MF" in members


def test_duplicate_and_conflicting_names_are_all_kept(tmp_path):
    package = hostile.make_tar(
        tmp_path / "dup.tar",
        [("a.txt", b"first"), ("a.txt", b"second"), ("b", b"file"), ("b/c.txt", b"under")],
    )
    result = run(tmp_path, package)
    contents = sorted(m.path.read_bytes() for m in result.members[1:])
    assert contents == [b"file", b"first", b"second", b"under"]
    assert sorted(m.location for m in result.members[1:]) == [
        "dup.tar!/a.txt",
        "dup.tar!/a.txt",
        "dup.tar!/b",
        "dup.tar!/b/c.txt",
    ]


def test_zip_names_in_utf8_and_cp437_stay_readable(tmp_path):
    path = tmp_path / "names.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("文档/说明.txt", b"utf-8 flagged")
        legacy = zipfile.ZipInfo("placeholder")
        zf.writestr(legacy, b"cp437")
    # Rewrite the second entry's name as cp437 bytes with no UTF-8 flag.
    data = path.read_bytes().replace(b"placeholder", "caf\u00e9-11.txt".encode("cp437"))
    path.write_bytes(data)
    result = run(tmp_path, path)
    names = sorted(m.location for m in result.members[1:])
    assert names == ["names.zip!/caf\u00e9-11.txt", "names.zip!/文档/说明.txt"]


def test_progress_is_reported(tmp_path):
    seen = []
    unpack(
        CORPUS / "pkg-c-clean.tar.gz",
        tmp_path / "s",
        Limits(),
        name="pkg-c-clean.tar.gz",
        progress=lambda *a: seen.append(a),
    )
    size = (CORPUS / "pkg-c-clean.tar.gz").stat().st_size
    assert seen and seen[-1] == ("unpack", size, size)


# -- hostile archives -------------------------------------------------------------


def test_path_traversal_and_absolute_paths(tmp_path, outside):
    result = run(tmp_path, hostile.traversal_tar(tmp_path / "evil.tar", outside))
    assert_all_unscanned(result)
    assert sorted(locations(result)) == [
        "evil.tar",
        "evil.tar!/good/first.txt",
        "evil.tar!/good/second.txt",
    ]
    assert sorted(summaries(result)) == sorted(
        [
            "path escapes the package root: ../../escaped.txt",
            "path escapes the package root: good/../../../escaped2.txt",
            f"absolute path refused: {outside}",
        ]
    )
    assert not (tmp_path / "work" / "escaped.txt").exists()
    assert result.findings[0].location == "evil.tar!/../../escaped.txt"
    assert result.findings[0].id == finding_id("evil.tar!/../../escaped.txt", "traversal")


def test_links_are_never_created_and_escaping_ones_reported(tmp_path, outside):
    result = run(tmp_path, hostile.links_tar(tmp_path / "links.tar", outside))
    assert_all_unscanned(result)
    assert sorted(summaries(result)) == sorted(
        [
            "link points outside the package: up -> ../../..",
            f"link points outside the package: abs -> {outside}",
            "link points outside the package: hard -> ../../etc/passwd",
        ]
    )
    members = locations(result)
    assert {"links.tar!/good/first.txt", "links.tar!/good/second.txt"} <= set(members)
    # A file "behind" the link lands as a plain file inside the scratch root.
    assert members["links.tar!/up/through.txt"].path.read_bytes() == b"through the link"


def test_devices_fifos_and_setuid(tmp_path):
    result = run(tmp_path, hostile.specials_tar(tmp_path / "special.tar"))
    assert_all_unscanned(result)
    assert sorted(summaries(result)) == [
        "block device was not extracted: special.tar!/dev/sda9",
        "character device was not extracted: special.tar!/dev/null2",
        "fifo was not extracted: special.tar!/run/pipe",
    ]
    members = locations(result)
    setuid = members["special.tar!/bin/setuid"]
    # Its content is examined like any file; the mode bits never reach the disk.
    assert stat.S_IMODE(setuid.path.stat().st_mode) & 0o7000 == 0
    assert {"special.tar!/good/first.txt", "special.tar!/good/second.txt"} <= set(members)


def test_zip_links_fifos_and_backslash_traversal(tmp_path):
    result = run(tmp_path, hostile.zip_with_links(tmp_path / "links.zip"))
    assert_all_unscanned(result)
    assert sorted(summaries(result)) == [
        "fifo was not extracted: links.zip!/fifo",
        "link points outside the package: escape -> ../../../../etc/passwd",
        "path escapes the package root: ..\\..\\evil.txt",
    ]
    assert sorted(locations(result)) == [
        "links.zip",
        "links.zip!/also-good.txt",
        "links.zip!/good.txt",
    ]


def test_nesting_deeper_than_the_limit(tmp_path):
    package = hostile.nested_zip(tmp_path / "deep.zip", levels=6)
    result = run(tmp_path, package, Limits(max_depth=3))
    assert_all_unscanned(result)
    not_opened = "deep.zip!/level1.zip!/level2.zip!/level3.zip"
    assert summaries(result) == [f"nesting deeper than 3 levels: {not_opened} was not opened"]
    members = locations(result)
    assert members[not_opened].depth == 3 and not members[not_opened].container
    assert "deep.zip!/level1.zip!/level2.zip!/note3.txt" in members
    assert max(m.depth for m in result.members) == 3
    # Within the limit, the payload at the bottom is reached.
    full = run(tmp_path / "again", package, Limits(max_depth=8))
    assert full.findings == []
    assert any(m.location.endswith("level5.zip!/payload.txt") for m in full.members)


def test_default_depth_limit_is_eight(tmp_path):
    result = run(tmp_path, hostile.nested_zip(tmp_path / "deep.zip", levels=10))
    assert summaries(result) == [
        "nesting deeper than 8 levels: "
        + "!/".join(["deep.zip"] + [f"level{i}.zip" for i in range(1, 9)])
        + " was not opened"
    ]


def test_gzip_bomb_is_stopped_by_the_ratio(tmp_path):
    package = hostile.bomb_tar(tmp_path / "bomb.tar", tmp_path)
    result = run(tmp_path, package, Limits(max_ratio=20))
    assert_all_unscanned(result)
    bomb = "bomb.tar!/data/zeros.bin.gz"
    assert summaries(result)[0].startswith(
        ("expansion ratio over 20", "package expands more than 20")
    )
    members = locations(result)
    written = members[bomb + "!/zeros.bin"].size
    assert written <= 20 * package.stat().st_size
    assert "bomb.tar!/good.txt" in members


def test_compressed_package_bomb_with_the_default_ratio(tmp_path):
    package = hostile.zeros_gz(tmp_path / "filler.gz", 64 * 1024 * 1024, fill=b"BOMB")
    tgz = tmp_path / "bomb.tar.gz"
    with tarfile.open(tgz, "w:gz") as tf:
        hostile.tar_entry(tf, "good.txt")
        tf.add(package, "filler.gz")  # already compressed: stored as is in the tar.gz
        info = tarfile.TarInfo("filler.bin")
        info.size = 64 * 1024 * 1024
        tf.addfile(info, io.BytesIO(b"BOMB" * (info.size // 4)))
    result = run(tmp_path, tgz)
    assert any(
        s.startswith("expansion ratio over 200: the rest of bomb.tar.gz") for s in summaries(result)
    )
    assert "bomb.tar.gz!/good.txt" in locations(result)
    assert hostile.allocated(tmp_path / "work") < SCRATCH_CAP


def test_zeros_cost_no_disk_and_are_no_bomb(tmp_path):
    """Empty blocks are what images are mostly made of: they are holes, not data."""
    package = hostile.zeros_gz(tmp_path / "zeros.gz", 64 * 1024 * 1024)
    tgz = tmp_path / "images.tar.gz"
    with tarfile.open(tgz, "w:gz") as tf:
        hostile.tar_entry(tf, "good.txt")
        tf.add(package, "zeros.gz")
        info = tarfile.TarInfo("disk.img")  # 256 MiB: a little data, then zeros
        info.size = 256 * 1024 * 1024
        tf.addfile(info, io.BytesIO(b"boot sector".ljust(512, b"\1") + bytes(info.size - 512)))
    assert tgz.stat().st_size < 1024 * 1024
    result = run(tmp_path, tgz)
    assert result.findings == []
    members = locations(result)
    assert members["images.tar.gz!/disk.img"].size == 256 * 1024 * 1024
    assert members["images.tar.gz!/zeros.gz!/zeros"].size == 64 * 1024 * 1024
    assert hostile.allocated(tmp_path / "work") < 8 * 1024 * 1024
    disk = members["images.tar.gz!/disk.img"].path.read_bytes()
    assert disk.startswith(b"boot sector\1") and disk.count(0) == 256 * 1024 * 1024 - 512


def test_zeros_still_count_as_work(tmp_path):
    package = hostile.zeros_gz(tmp_path / "zeros.gz", 64 * 1024 * 1024)
    result = run(tmp_path, package, Limits(max_inflated_bytes=16 * 1024 * 1024))
    assert_all_unscanned(result)
    assert summaries(result) == [
        "more than 16 MiB inflated in total: the rest of zeros.gz and anything after it was"
        " not examined"
    ]


def test_huge_member_header_is_refused_before_writing(tmp_path):
    result = run(tmp_path, hostile.huge_header_tar(tmp_path / "huge.tar"))
    assert_all_unscanned(result)
    assert (
        summaries(result)[0] == "file larger than 20 GiB: huge.tar!/huge.bin was not fully examined"
    )
    # Its missing body is never read through (tarfile alone would spin over 100 GB).
    assert summaries(result)[1:] == [
        "expansion ratio over 200: the rest of huge.tar was not examined"
    ]
    members = locations(result)
    assert "huge.tar!/good.txt" in members and "huge.tar!/huge.bin" not in members
    assert sum(m.size for m in result.members[1:]) < 1024


def test_header_declaring_more_than_the_body_holds(tmp_path):
    result = run(tmp_path, hostile.huge_header_tar(tmp_path / "short.tar", declared=500_000))
    assert_all_unscanned(result)
    assert all(s.startswith("archive is corrupt:") for s in summaries(result))
    members = locations(result)
    assert members["short.tar!/huge.bin"].size < 1024  # what the archive really held
    assert "short.tar!/good.txt" in members


def test_refused_entry_with_a_huge_header_does_not_hang(tmp_path):
    package = hostile.huge_header_tar(tmp_path / "t.tar", declared=2**80, name="../../x")
    result = run(tmp_path, package)
    assert summaries(result) == [
        "path escapes the package root: ../../x",
        "expansion ratio over 200: the rest of t.tar was not examined",
    ]


@pytest.mark.parametrize("posix", [False, True], ids=["gnu-sparse", "pax-sparse"])
def test_sparse_member_counts_its_apparent_size(tmp_path, posix):
    package = hostile.sparse_tar(tmp_path / "sparse.tar", tmp_path, 8 * 1024**3, posix=posix)
    if package is None:
        pytest.skip("GNU tar is not installed")
    assert package.stat().st_size < 64 * 1024
    result = run(tmp_path, package, Limits(max_file_bytes=1024**3))
    assert_all_unscanned(result)
    assert summaries(result) == [
        "file larger than 1 GiB: sparse.tar!/sparse.img was not fully examined"
    ]
    assert "sparse.tar!/good.txt" in locations(result)
    # Within the limits its holes stay holes: all of it read, next to nothing on disk.
    small = hostile.sparse_tar(tmp_path / "small.tar", tmp_path, 1024**3, posix=posix)
    result = run(tmp_path / "again", small)
    assert result.findings == []
    assert locations(result)["small.tar!/sparse.img"].size == 1024**3
    assert hostile.allocated(tmp_path / "again") < 8 * 1024 * 1024


def test_too_many_members(tmp_path):
    result = run(tmp_path, hostile.many_tar(tmp_path / "many.tar", 30), Limits(max_members=10))
    assert_all_unscanned(result)
    assert summaries(result) == [
        "more than 10 members: the rest of many.tar and anything after it was not examined"
    ]
    assert len(result.members) == 11


def test_total_bytes_limit(tmp_path):
    package = hostile.make_tar(
        tmp_path / "big.tar", [(f"f{i}.bin", os.urandom(300_000)) for i in range(5)]
    )
    result = run(tmp_path, package, Limits(max_total_bytes=1_000_000))
    assert_all_unscanned(result)
    assert summaries(result) == [
        (
            "more than 976.6 KiB unpacked in total: the rest of big.tar and anything after it"
            " was not examined"
        )
    ]
    assert sum(m.size for m in result.members[1:]) <= 1_000_000


def test_truncated_gzip_keeps_what_was_read(tmp_path):
    result = run(tmp_path, hostile.truncated_tgz(tmp_path / "cut.tar.gz"))
    assert_all_unscanned(result)
    assert len(result.findings) >= 1
    assert all(s.startswith("archive is corrupt:") for s in summaries(result))
    members = locations(result)
    assert members["cut.tar.gz!/first.txt"].path.read_bytes() == hostile.GOOD
    assert members["cut.tar.gz!/second.txt"].path.read_bytes() == hostile.GOOD
    assert "cut.tar.gz!/last.txt" not in members


def test_truncated_single_gzip_member(tmp_path):
    data = gzip.compress(os.urandom(200_000))
    package = hostile.make_tar(
        tmp_path / "p.tar", [("x.bin.gz", data[:50_000]), ("ok.txt", hostile.GOOD)]
    )
    result = run(tmp_path, package)
    assert [f.location for f in result.findings] == ["p.tar!/x.bin.gz!/x.bin"]
    assert summaries(result)[0].startswith("archive is corrupt:")
    assert "p.tar!/ok.txt" in locations(result)


def test_zip_with_a_corrupt_central_directory_is_salvaged(tmp_path):
    result = run(tmp_path, hostile.bad_directory_zip(tmp_path / "broken.zip"))
    assert_all_unscanned(result)
    assert len(result.findings) == 1
    assert result.findings[0].location == "broken.zip"
    assert result.findings[0].summary.startswith("archive is corrupt:")
    members = locations(result)
    assert members["broken.zip!/one.txt"].path.read_bytes() == hostile.GOOD
    assert members["broken.zip!/dir/two.txt"].path.read_bytes() == hostile.GOOD * 100
    assert members["broken.zip!/three.bin"].path.read_bytes() == b"\x00" * 10


def test_corrupt_tar_in_the_middle_is_reported(tmp_path):
    package = hostile.make_tar(
        tmp_path / "mid.tar", [("first.txt", hostile.GOOD), ("second.txt", hostile.GOOD)]
    )
    data = bytearray(package.read_bytes())
    second = data.find(b"second.txt")
    data[second : second + 512] = os.urandom(512)  # garbage where a header should be
    package.write_bytes(bytes(data))
    result = run(tmp_path, package)
    assert "mid.tar!/first.txt" in locations(result)
    assert any("archive is corrupt" in s for s in summaries(result))


def test_encrypted_zip_entry_and_unsupported_archive(tmp_path):
    path = hostile.make_zip(tmp_path / "enc.zip", {"secret.txt": b"x", "plain.txt": b"y"})
    data = bytearray(path.read_bytes())
    # Set the "encrypted" flag of the first entry in both headers.
    for signature, flag_at in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        at = data.find(signature)
        data[at + flag_at] |= 1
    path.write_bytes(bytes(data))
    package = hostile.make_tar(
        tmp_path / "p.tar",
        [("enc.zip", path.read_bytes()), ("old.7z", b"7z\xbc\xaf\x27\x1c" + bytes(64))],
    )
    result = run(tmp_path, package)
    assert sorted(summaries(result)) == [
        "a 7-Zip archive cannot be opened: its content was not examined",
        "encrypted entry was not examined: p.tar!/enc.zip!/secret.txt",
    ]
    assert "p.tar!/enc.zip!/plain.txt" in locations(result)


def test_findings_are_stable_across_runs(tmp_path, outside):
    package = hostile.traversal_tar(tmp_path / "evil.tar", outside)
    first = run(tmp_path / "one", package)
    second = run(tmp_path / "two", package)
    assert [f.id for f in first.findings] == [f.id for f in second.findings]


def test_modes_are_fixed_whatever_the_umask(tmp_path):
    previous = os.umask(0o077)
    try:
        result = run(tmp_path, CORPUS / "pkg-d-eicar-nested.zip")
    finally:
        os.umask(previous)
    scratch = result.root
    assert {stat.S_IMODE(m.path.stat().st_mode) for m in result.members[1:]} == {0o644}
    directories = {Path(d) for d, _, _ in os.walk(scratch)} - {scratch}
    assert {stat.S_IMODE(d.stat().st_mode) for d in directories} == {0o755}


def test_streamed_zip_with_data_descriptors_is_salvaged(tmp_path):
    class Unseekable(io.RawIOBase):
        def __init__(self):
            self.data = bytearray()

        def writable(self):
            return True

        def write(self, b):
            self.data += b
            return len(b)

    out = Unseekable()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in (("a.txt", b"hello" * 1000), ("b/c.txt", b"world" * 10)):
            with zf.open(name, "w") as f:
                f.write(data)
    data = bytearray(out.data)
    at = data.find(b"PK\x01\x02")
    data[at : at + 4] = b"XXXX"
    (tmp_path / "streamed.zip").write_bytes(bytes(data))
    result = run(tmp_path, tmp_path / "streamed.zip")
    assert summaries(result) == ["archive is corrupt: Bad magic number for central directory"]
    members = locations(result)
    assert members["streamed.zip!/a.txt"].path.read_bytes() == b"hello" * 1000
    assert members["streamed.zip!/b/c.txt"].path.read_bytes() == b"world" * 10


def test_a_tar_gz_whose_checksum_is_wrong_is_reported(tmp_path):
    """The gzip member's CRC is checked at its end: its bytes were not what was packed."""
    good = hostile.make_tar(tmp_path / "p.tar", [("first.txt", hostile.GOOD)])
    data = bytearray(gzip.compress(good.read_bytes()))
    data[-8] ^= 0xFF  # the CRC32 in the trailer
    package = tmp_path / "p.tar.gz"
    package.write_bytes(bytes(data))
    result = run(tmp_path, package)
    assert summaries(result) == [
        "archive is corrupt: zlib error: Error -3 while decompressing data: incorrect data check"
    ]
