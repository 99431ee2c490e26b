"""Classic HFS volumes made with hformat (hfsutils), opened without root or a kernel mount."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from scanner.formats import detect, extract
from scanner.model import Limits

from .conftest import EICAR, METADATA, METADATA_PATH, assert_sample, needs, only_plain, populate

pytestmark = needs("hformat", "hmount", "hmkdir", "hcopy", "hls", "humount")


def hfs(tmp_path: Path, root: Path, extra=()) -> Path:
    """An HFS image holding ``root``'s files (and ``extra`` (hfs path, host file) pairs)."""
    img = tmp_path / "vol.hfs"
    with open(img, "wb") as fh:
        fh.truncate(4 * 1024 * 1024)
    home = tmp_path / "home"
    home.mkdir()
    env = {**os.environ, "HOME": str(home)}

    def h(*argv):
        subprocess.run([os.fsdecode(a) for a in argv], check=True, capture_output=True, env=env)

    h("hformat", "-l", "Sample", img)
    for path in sorted(root.rglob("*")):
        hfs_path = ":" + ":".join(path.relative_to(root).parts)
        if path.is_dir():
            h("hmkdir", hfs_path)
        else:
            h("hcopy", "-r", path, hfs_path)
    for hfs_path, host in extra:
        h("hcopy", "-r", host, hfs_path)
    h("humount")
    return img


def test_hfs_volume(tmp_path):
    img = hfs(tmp_path, populate(tmp_path / "tree"))
    assert detect(img) == "hfs"
    out = tmp_path / "out"
    out.mkdir()
    assert extract("hfs", img, out, limits=Limits()) == []
    assert_sample(out)
    assert (out / "etc/hostname").read_text() == "device\n"
    only_plain(out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home", "out", "tree", "vol.hfs"]


def test_odd_names_become_plain_host_names(tmp_path):
    root = tmp_path / "tree"
    root.mkdir()
    payload = tmp_path / "payload"
    payload.write_bytes(EICAR)
    meta = tmp_path / "meta"
    meta.write_bytes(METADATA)
    img = hfs(
        tmp_path,
        root,
        [
            (b":a/b", payload),
            (b":..", meta),
            (b':caf\x8e "q"', meta),
            (b":a_b", meta),
            (b":line\nbreak", meta),
        ],
    )
    out = tmp_path / "out"
    out.mkdir()
    assert extract("hfs", img, out, limits=Limits()) == []
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(["a_b", "a_b~2", "_..", 'café "q"', "line\nbreak"])
    assert {(out / n).read_bytes() for n in names} == {EICAR, METADATA}
    only_plain(out)


def test_resource_forks_come_out_beside_the_data(tmp_path):
    root = tmp_path / "tree"
    root.mkdir()
    img = hfs(tmp_path, root)
    # MacBinary II: header, data fork, resource fork (each padded to 128 bytes).
    rsrc = b"resource " + EICAR
    header = bytearray(128)
    header[1] = 4
    header[2:6] = b"tool"
    header[65:73] = b"APPLtest"
    header[83:87] = len(METADATA).to_bytes(4, "big")
    header[87:91] = len(rsrc).to_bytes(4, "big")
    header[122:124] = b"\x81\x81"
    import binascii

    header[124:126] = binascii.crc_hqx(bytes(header[:124]), 0).to_bytes(2, "big")
    pad = lambda b: b + bytes(-len(b) % 128)  # noqa: E731
    macbin = tmp_path / "tool.bin"
    macbin.write_bytes(bytes(header) + pad(METADATA) + pad(rsrc))
    home = tmp_path / "home"
    env = {**os.environ, "HOME": str(home)}
    for argv in (["hmount", img], ["hcopy", "-m", macbin, ":tool"], ["humount"]):
        subprocess.run([os.fsdecode(a) for a in argv], check=True, capture_output=True, env=env)
    out = tmp_path / "out"
    out.mkdir()
    assert extract("hfs", img, out, limits=Limits()) == []
    assert (out / "tool").read_bytes() == METADATA
    assert (out / "tool.rsrc").read_bytes() == rsrc


def test_over_the_limits_and_damaged(tmp_path):
    img = hfs(tmp_path, populate(tmp_path / "tree"))
    out = tmp_path / "out"
    out.mkdir()
    problems = extract("hfs", img, out, limits=Limits(max_file_bytes=20))
    assert {p.path for p in problems} == {"opt/app/eicar.com", METADATA_PATH}
    assert all("limit" in p.reason for p in problems)
    assert not (out / "opt/app/eicar.com").exists()

    bad = tmp_path / "bad.hfs"
    data = bytearray(img.read_bytes())
    data[1024 + 0x1C : 1024 + 0x1C + 0x40] = b"\xff" * 0x40  # allocation block size etc.
    bad.write_bytes(bytes(data))
    out2 = tmp_path / "out2"
    out2.mkdir()
    problems = extract("hfs", bad, out2, limits=Limits())
    assert problems and all(p.reason for p in problems)


@pytest.mark.parametrize("missing", ["hmount"])
def test_without_hfsutils_the_volume_fails_closed(tmp_path, monkeypatch, missing):
    img = hfs(tmp_path, populate(tmp_path / "tree"))
    import scanner.formats.hfs as backend

    real = backend.shutil.which
    monkeypatch.setattr(backend.shutil, "which", lambda t: None if t == missing else real(t))
    out = tmp_path / "out"
    out.mkdir()
    [problem] = extract("hfs", img, out, limits=Limits())
    assert "hmount" in problem.reason and "not installed" in problem.reason
