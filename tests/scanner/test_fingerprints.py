"""Finding ids bind virus and unscanned findings to the bytes they are about.

An accepted false positive is remembered by its id: a virus or unscanned id that
named only a signature (or reason) and a path would cover whatever a seller puts
at that path later. Real packages as sellers send them (.tar.gz, deflated .zip),
the real clamd and the OSV corpus.
"""

from __future__ import annotations

import io
import tarfile
import zipfile
from pathlib import Path

import pytest

from scanner.nested import bind_content

from . import hostile
from .formats.conftest import METADATA, METADATA_PATH

# Assay's body signature: any bytes around it still match, so two contents share a signature.
MARKER = b"ASSAY-MALWARE-TEST-SIGNATURE:3b9f0c1e-not-a-virus"


@pytest.fixture
def scan(scan_package_at):
    return scan_package_at


def encrypted_zip(entries: dict[str, bytes]) -> bytes:
    """A zip whose first entry is flagged encrypted: the scanner cannot read it."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in entries.items():
            z.writestr(name, data)
    data = bytearray(buffer.getvalue())
    for signature, flag_at in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        at = data.find(signature)
        data[at + flag_at] |= 1
    return bytes(data)


def seller_tgz(path: Path, files: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


def by_kind(result) -> dict[tuple[str, str], str]:
    return {(f.type, f.location): f.id for f in result.findings}


def package(tmp: Path, folder: str, payload: bytes, sample: bytes, readme: bytes) -> Path:
    """``pkg.tar.gz`` (locations start with the package's name: the same one each time)."""
    (tmp / folder).mkdir()
    return seller_tgz(tmp / folder / "pkg.tar.gz", {
        "app/payload.zip": payload,
        "app/sample.bin": sample,
        "app/README": readme,
        "app/python/" + METADATA_PATH: METADATA,
    })  # fmt: skip


def test_other_bytes_at_the_same_location_get_other_ids(tmp_path, scan):
    payload = encrypted_zip({"secret.bin": b"first secret", "plain.txt": b"x"})
    other_payload = encrypted_zip({"secret.bin": b"something else", "plain.txt": b"x"})
    sample, other_sample = MARKER + b" one", MARKER + b" two"

    first = scan(package(tmp_path, "one", payload, sample, b"v1"))
    # Same files, another README: the package's bytes differ, the flagged files do not.
    same = scan(package(tmp_path, "same", payload, sample, b"v2"))
    replaced = scan(package(tmp_path, "two", other_payload, other_sample, b"v1"))

    ids, same_ids, replaced_ids = by_kind(first), by_kind(same), by_kind(replaced)
    unscanned = ("unscanned", "pkg.tar.gz!/app/payload.zip!/secret.bin")
    virus = ("virus", "pkg.tar.gz!/app/sample.bin")
    assert unscanned in ids and virus in ids
    assert same_ids == ids  # the same content keeps its ids
    assert replaced_ids.keys() == ids.keys()
    for key in ids:
        if key[0] != "vulnerability":
            assert replaced_ids[key] != ids[key], key
    # A vulnerability is the same claim wherever it sits: its id does not change.
    vulns = {i for (kind, _), i in ids.items() if kind == "vulnerability"}
    assert vulns and vulns == {i for (k, _), i in replaced_ids.items() if k == "vulnerability"}


def test_a_finding_on_an_unwritten_entry_binds_to_its_container(tmp_path, scan):
    """The encrypted entry never reached the disk: its container's bytes stand for it."""
    inner = encrypted_zip({"secret.bin": b"first secret"})
    outer = tmp_path / "pkg.zip"
    hostile.make_zip(outer, {"lib/payload.zip": inner})
    again = tmp_path / "again" / "pkg.zip"
    again.parent.mkdir()
    hostile.make_zip(again, {"lib/payload.zip": inner, "lib/other.txt": b"new file"})

    entry = "pkg.zip!/lib/payload.zip!/secret.bin"
    (first,) = [f for f in scan(outer).findings if f.location == entry]
    (second,) = [f for f in scan(again).findings if f.location == entry]

    assert first.type == second.type == "unscanned"
    assert first.id == second.id


def test_a_finding_on_the_package_itself_binds_to_the_package():
    from scanner.model import Finding

    finding = Finding(id="abc", type="unscanned", location="pkg.zip", blocking=True)
    one = bind_content([finding], {}, ("pkg.zip", "11" * 32))
    two = bind_content([finding], {}, ("pkg.zip", "22" * 32))
    assert one[0].id != two[0].id
    # A file known by its own bytes wins over the package.
    inner = Finding(id="abc", type="virus", location="pkg.zip!/a", blocking=True)
    known = {"pkg.zip!/a": b"\x01" * 32}
    assert (bind_content([inner], known, ("pkg.zip", "11" * 32))[0].id
            == bind_content([inner], known, ("pkg.zip", "22" * 32))[0].id)
