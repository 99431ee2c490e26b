"""Container images: OCI layouts and docker-save archives, built here layer by layer."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from pathlib import Path

from scanner.formats import apply_oci, detect, extract
from scanner.model import Limits

from .conftest import EICAR, METADATA, METADATA_PATH, only_plain


def layer(entries: list[tuple]) -> bytes:
    """A layer tar from (name, bytes) files, (name, None) dirs, (name, "->", target) symlinks."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for entry in entries:
            name, data = entry[0], entry[1]
            info = tarfile.TarInfo(name)
            if data is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            elif data == "->":
                info.type, info.linkname = tarfile.SYMTYPE, entry[2]
                tar.addfile(info)
            elif data == "=>":
                info.type, info.linkname = tarfile.LNKTYPE, entry[2]
                tar.addfile(info)
            elif data == "dev":
                info.type, info.devmajor, info.devminor = tarfile.CHRTYPE, 1, 3
                tar.addfile(info)
            else:
                info.size, info.mode = len(data), entry[2] if len(entry) > 2 else 0o644
                tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


BASE = [
    ("etc", None),
    ("etc/os-release", b'ID=debian\nVERSION_ID="12"\nPRETTY_NAME="Debian GNU/Linux 12"\n'),
    ("bin", None),
    ("bin/sh", b"\x7fELF shell", 0o4755),
    ("bin/ls", "=>", "bin/sh"),
    ("lib", "->", "usr/lib"),
    ("dev", None),
    ("dev/null", "dev"),
    ("usr/lib/python3/dist-packages/PyYAML-5.3.dist-info", None),
    (METADATA_PATH, METADATA),
    ("var/cache/old", None),
    ("var/cache/old/a.bin", b"lower"),
    ("var/cache/keep.txt", b"lower"),
    ("tmp/secret.txt", b"removed later"),
]
TOP = [
    ("tmp/.wh.secret.txt", b""),
    ("var/cache/.wh..wh..opq", b""),
    ("var/cache/new.txt", b"upper"),
    ("opt/app/eicar.com", EICAR),
]


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def oci_tar(path: Path, layers: list[bytes], *, gz=True, ref="registry.example/app:1.0",
            corrupt_layer: int | None = None, zstd: bool = False) -> Path:
    blobs: dict[str, bytes] = {}

    def blob(data: bytes) -> str:
        blobs[sha(data)] = data
        return sha(data)

    diff_ids = [sha(raw) for raw in layers]
    stored = [gzip.compress(raw, mtime=0) if gz else raw for raw in layers]
    if zstd:
        import zstandard

        stored = [zstandard.ZstdCompressor().compress(raw) for raw in layers]
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode()
    manifest = json.dumps({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": blob(config), "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": blob(s), "size": len(s)} for s in stored],
    }).encode()
    index = json.dumps({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": blob(manifest), "size": len(manifest),
        "annotations": {"io.containerd.image.name": ref, "org.opencontainers.image.ref.name": "1.0"},
    }]}).encode()
    if corrupt_layer is not None:
        d = sha(stored[corrupt_layer])
        blobs[d] = gzip.compress(layers[corrupt_layer], mtime=1)  # same content, other bytes
    with tarfile.open(path, "w") as tar:
        files = {"oci-layout": b'{"imageLayoutVersion": "1.0.0"}', "index.json": index}
        files |= {f"blobs/sha256/{d.split(':')[1]}": data for d, data in blobs.items()}
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def docker_save_tar(path: Path, layers: list[bytes], tag="app:2.0") -> Path:
    diff_ids = [sha(raw) for raw in layers]
    config = json.dumps({"rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode()
    config_name = sha(config).split(":")[1] + ".json"
    names = [f"{d.split(':')[1][:12]}/layer.tar" for d in diff_ids]
    manifest = json.dumps([{"Config": config_name, "RepoTags": [tag], "Layers": names}]).encode()
    with tarfile.open(path, "w") as tar:
        for name, data in [(config_name, config), *zip(names, layers), ("manifest.json", manifest)]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_oci_layers_are_applied_with_whiteouts(tmp_path):
    image = oci_tar(tmp_path / "app.tar", [layer(BASE), layer(TOP)])
    assert detect(image) == "oci-image"
    out = tmp_path / "out"
    out.mkdir()
    roots, problems = apply_oci(image, out, Limits())
    assert problems == []
    [root] = roots
    assert (root.name, root.tag) == ("registry.example/app", "1.0")
    assert root.root == out / "registry.example_app_1.0"
    assert root.layers == [sha(gzip.compress(layer(BASE), mtime=0)),
                           sha(gzip.compress(layer(TOP), mtime=0))]
    assert root.os_release["ID"] == "debian" and root.os_release["VERSION_ID"] == "12"
    r = root.root
    assert (r / "opt/app/eicar.com").read_bytes() == EICAR
    assert (r / METADATA_PATH).read_bytes() == METADATA
    assert not (r / "tmp/secret.txt").exists()
    assert sorted(p.name for p in (r / "var/cache").iterdir()) == ["new.txt"]
    assert (r / "bin/ls").read_bytes() == b"\x7fELF shell"  # hard link copied
    assert not (r / "lib").exists() and not (r / "dev/null").exists()
    assert (r / "bin/sh").stat().st_mode & 0o7777 == 0o755
    only_plain(out)


def test_docker_save_layout_checks_diff_ids(tmp_path):
    image = docker_save_tar(tmp_path / "app.tar", [layer(BASE), layer(TOP)])
    assert detect(image) == "docker-archive"
    out = tmp_path / "out"
    out.mkdir()
    roots, problems = apply_oci(image, out, Limits())
    assert problems == []
    assert [(r.name, r.tag, r.root.name) for r in roots] == [("app", "2.0", "app_2.0")]
    assert (roots[0].root / "opt/app/eicar.com").read_bytes() == EICAR


def test_unpacked_directory_and_extract_entry_point(tmp_path):
    image = oci_tar(tmp_path / "app.tar", [layer(BASE), layer(TOP)], gz=False)
    unpacked = tmp_path / "unpacked"
    with tarfile.open(image) as tar:
        tar.extractall(unpacked, filter="data")
    out = tmp_path / "out"
    out.mkdir()
    roots, problems = apply_oci(unpacked, out, Limits())
    assert problems == [] and (roots[0].root / METADATA_PATH).exists()
    out2 = tmp_path / "out2"
    out2.mkdir()
    assert extract("oci-image", image, out2, limits=Limits()) == []
    assert (out2 / "registry.example_app_1.0/opt/app/eicar.com").exists()


def test_tampered_layer_is_a_problem(tmp_path):
    image = oci_tar(tmp_path / "app.tar", [layer(BASE), layer(TOP)], corrupt_layer=1)
    out = tmp_path / "out"
    out.mkdir()
    roots, problems = apply_oci(image, out, Limits())
    assert len(roots) == 1
    assert any("does not match its digest" in p.reason for p in problems)


def test_escaping_names_and_limits(tmp_path):
    evil = layer([("../../escape.txt", b"x"), ("/abs/ok.txt", b"y"), ("big.bin", b"z" * 5000)])
    image = oci_tar(tmp_path / "app.tar", [evil])
    out = tmp_path / "o" / "out"
    out.mkdir(parents=True)
    roots, problems = apply_oci(image, out, Limits(max_file_bytes=4096))
    reasons = {p.path.rsplit("/", 1)[-1]: p.reason for p in problems}
    assert "leaves the image root" in reasons["escape.txt"]
    assert "limit" in reasons["big.bin"]
    assert (roots[0].root / "abs/ok.txt").read_bytes() == b"y"
    assert not list(tmp_path.rglob("escape.txt"))


def test_not_an_image(tmp_path):
    junk = tmp_path / "junk.tar"
    with tarfile.open(junk, "w") as tar:
        info = tarfile.TarInfo("readme.txt")
        tar.addfile(info, io.BytesIO(b""))
    out = tmp_path / "out"
    out.mkdir()
    roots, problems = apply_oci(junk, out, Limits())
    assert roots == [] and "not a container image" in problems[0].reason
    (tmp_path / "garbage").write_bytes(b"\x00" * 10)
    assert apply_oci(tmp_path / "garbage", out, Limits())[1][0].path == ""
    assert detect(junk) is None


def test_zstd_layers(tmp_path):
    image = oci_tar(tmp_path / "app.tar", [layer(BASE), layer(TOP)], zstd=True)
    out = tmp_path / "out"
    out.mkdir()
    roots, problems = apply_oci(image, out, Limits())
    assert problems == []
    assert (roots[0].root / "opt/app/eicar.com").read_bytes() == EICAR
    assert not (roots[0].root / "tmp/secret.txt").exists()
