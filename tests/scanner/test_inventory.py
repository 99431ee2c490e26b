"""The inventory of what a scan examined: ``--inventory OUT.jsonl`` and the JSON counts."""

import gzip
import hashlib
import io
import json
import tarfile
import zipfile
from pathlib import Path

from scanner.model import Limits
from tests.scanner.formats.conftest import EICAR, needs
from tests.scanner.formats.test_carve import noise, squashfs
from tests.scanner.test_cli import OSV, cli

NOTES = b"the same notes\n"
SEVEN_ZIP = b"7z\xbc\xaf\x27\x1c" + b"\0" * 40


def _zip(entries: dict[str, bytes], *, encrypt_first: bool = False) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in entries.items():
            z.writestr(name, data)
    data = bytearray(buffer.getvalue())
    if encrypt_first:  # the "encrypted" flag of the first entry, in both of its headers
        for signature, flag_at in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
            at = data.find(signature)
            data[at + flag_at] |= 1
    return bytes(data)


def _nested_package(path: Path) -> dict[str, bytes]:
    """A .tar.gz holding a deflated zip (an encrypted entry, a jar inside), a copy of a
    file of that zip, a gzip stream and a 7-Zip archive; returns what went in."""
    jar = _zip({
        "META-INF/MANIFEST.MF": b"Manifest-Version: 1.0\n",
        "com/example/App.class": b"\xca\xfe\xba\xbe" + b"x" * 100,
    })  # fmt: skip
    bundle = _zip(
        {"secret.txt": b"hidden", "lib/inner.jar": jar, "notes.txt": NOTES}, encrypt_first=True
    )
    files = {
        "app/bundle.zip": bundle,
        "app/notes-copy.txt": NOTES,
        "app/log.txt.gz": gzip.compress(b"log line\n"),
        "app/old.7z": SEVEN_ZIP,
    }
    with tarfile.open(path, "w:gz") as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return {**files, "jar": jar}


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_the_cli_writes_one_line_per_file_saying_how_it_was_opened(tmp_path):
    package = tmp_path / "pkg.tar.gz"
    put = _nested_package(package)
    out, result = tmp_path / "inventory.jsonl", tmp_path / "result.json"

    proc = cli("scan", package, "--osv", OSV, "--inventory", out, "--json", result)

    assert proc.returncode == 1, proc.stderr  # the encrypted entry and the 7-Zip archive
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    by_location = {line["location"]: line for line in lines}
    assert len(by_location) == len(lines) == 11
    assert lines[0] == {
        "location": "pkg.tar.gz", "size": package.stat().st_size,
        "sha256": _sha(package.read_bytes()), "kind": "tar.gz", "opened": "tar",
        "not_opened": None,
    }  # fmt: skip

    bundle = "pkg.tar.gz!/app/bundle.zip"
    jar = bundle + "!/lib/inner.jar"
    assert by_location[bundle] == {
        "location": bundle, "size": len(put["app/bundle.zip"]),
        "sha256": _sha(put["app/bundle.zip"]), "kind": "zip", "opened": "zip",
        "not_opened": None,
    }  # fmt: skip
    assert by_location[jar]["opened"] == "zip"
    assert by_location[jar]["sha256"] == _sha(put["jar"])
    manifest = by_location[jar + "!/META-INF/MANIFEST.MF"]
    assert (manifest["opened"], manifest["not_opened"], manifest["size"]) == (None, "leaf", 22)
    assert manifest["sha256"] == _sha(b"Manifest-Version: 1.0\n")
    assert by_location[jar + "!/com/example/App.class"]["not_opened"] == "leaf"

    secret = by_location[bundle + "!/secret.txt"]
    assert secret["extracted"] is False
    assert (secret["not_opened"], secret["sha256"], secret["size"]) == ("encrypted", None, 6)
    assert "encrypted entry was not examined" in secret["detail"]

    original = by_location[bundle + "!/notes.txt"]
    copy = by_location["pkg.tar.gz!/app/notes-copy.txt"]
    assert original["not_opened"] == "leaf" and "copy_of" not in original
    assert copy["not_opened"] == "copy"
    assert copy["copy_of"] == bundle + "!/notes.txt"
    assert copy["sha256"] == original["sha256"] == _sha(NOTES)

    stream = by_location["pkg.tar.gz!/app/log.txt.gz"]
    assert (stream["kind"], stream["opened"]) == ("gz", "gzip")
    assert by_location["pkg.tar.gz!/app/log.txt.gz!/log.txt"]["sha256"] == _sha(b"log line\n")

    seven = by_location["pkg.tar.gz!/app/old.7z"]
    assert (seven["kind"], seven["opened"], seven["not_opened"]) == ("7z", None, "unsupported")

    assert json.loads(result.read_text())["coverage"] == {
        "files": 10, "containers_opened": 4, "containers_not_opened": 1,
        "entries_not_extracted": 1,
    }  # fmt: skip


def test_without_inventory_the_json_still_counts(tmp_path):
    package = tmp_path / "pkg.tar.gz"
    _nested_package(package)
    proc = cli("scan", package, "--osv", OSV, "--json", "-")
    assert proc.returncode == 1, proc.stderr
    assert json.loads(proc.stdout)["coverage"]["containers_opened"] == 4


def test_an_inventory_in_a_missing_directory_is_a_one_line_error(tmp_path):
    package = tmp_path / "pkg.tar.gz"
    _nested_package(package)
    proc = cli("scan", package, "--osv", OSV, "--inventory", tmp_path / "nowhere" / "i.jsonl")
    assert proc.returncode == 2
    assert "--inventory: no such directory" in proc.stderr


def test_a_container_too_deep_is_listed_as_not_opened(tmp_path, scan_package_at):
    package = tmp_path / "pkg.tar.gz"
    _nested_package(package)
    out = tmp_path / "inventory.jsonl"

    result = scan_package_at(package, limits=Limits(max_depth=2), inventory=out)

    lines = {json.loads(x)["location"]: json.loads(x) for x in out.read_text().splitlines()}
    jar = lines["pkg.tar.gz!/app/bundle.zip!/lib/inner.jar"]
    assert (jar["kind"], jar["opened"], jar["not_opened"]) == ("zip", None, "depth")
    assert not any(location.startswith(jar["location"] + "!/") for location in lines)
    assert result.coverage.containers_not_opened == 2  # the jar and the 7-Zip archive
    assert result.coverage.files == sum("extracted" not in line for line in lines.values())


@needs("mksquashfs", "unsquashfs")
def test_file_systems_and_carving_are_named_as_their_back_ends(tmp_path, scan_package_at):
    fs = squashfs(tmp_path)
    dump = noise(0x10000) + fs + b"\xff" * 4096
    package = tmp_path / "pkg.tar.gz"
    with tarfile.open(package, "w:gz") as tf:
        for name, data in (("rootfs.sqfs", fs), ("flash.bin", dump)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    out = tmp_path / "inventory.jsonl"

    result = scan_package_at(package, inventory=out)

    lines = {json.loads(x)["location"]: json.loads(x) for x in out.read_text().splitlines()}
    image = lines["pkg.tar.gz!/rootfs.sqfs"]
    assert (image["kind"], image["opened"], image["sha256"]) == ("squashfs", "squashfs", _sha(fs))
    assert lines["pkg.tar.gz!/rootfs.sqfs!/opt/app/eicar.com"]["sha256"] == _sha(EICAR)
    flash = lines["pkg.tar.gz!/flash.bin"]
    assert (flash["opened"], flash["not_opened"]) == ("carve", None)
    carved = lines["pkg.tar.gz!/flash.bin!/@0x10000.squashfs!/opt/app/eicar.com"]
    assert carved["not_opened"] == "copy"  # the same bytes as in rootfs.sqfs
    assert carved["copy_of"] == "pkg.tar.gz!/rootfs.sqfs!/opt/app/eicar.com"
    assert result.coverage.containers_opened == 3  # the package, the image, the dump
