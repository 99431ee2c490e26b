"""Everything a package can hide, through the whole scan: file systems, disks, firmware, images, apps.

Each sample is built at test time by the format tests' builders (each holds the
EICAR file at ``opt/app/eicar.com`` and PyYAML 5.3's ``METADATA``), wrapped in a
seller package, and scanned by :func:`scan_package` with the real OSV corpus and
a real clamd. Both the virus and PyYAML's advisories must be found, at the
location path through every container.
"""

from __future__ import annotations

import fnmatch
import gzip
import io
import struct
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from scanner.model import NEST, Component, Limits, ScanError, Settings
from scanner.osv import OsvDatabase
from scanner.pipeline import scan_package

from .formats import test_disks, test_filesystems, test_firmware, test_flash, test_hfs
from .formats.conftest import EICAR, METADATA, METADATA_PATH, needs, populate, wrap
from .formats.test_apps_binaries import axml, make_zip
from .formats.test_oci import BASE, TOP, layer, oci_tar, sha

OSV = Path(__file__).parents[1] / "data" / "corpus" / "osv"
PYYAML_CVES = {"CVE-2020-1747", "CVE-2020-14343"}
EICAR_AT = "opt/app/eicar.com"


@pytest.fixture(scope="module")
def osv() -> OsvDatabase:
    return OsvDatabase.load([OSV])


@pytest.fixture
def scan(clamd, osv, tmp_path):
    def run(package: Path, kind: str = "binary"):
        settings = Settings(osv_paths=(OSV,), clamd=clamd.address, kind=kind, scratch_dir=tmp_path)
        return scan_package(package, settings, osv=osv)

    return run


def run(*argv, cwd=None, stdin=None) -> bytes:
    done = subprocess.run(
        [str(a) for a in argv], check=True, capture_output=True, cwd=cwd, input=stdin
    )
    return done.stdout


# -- samples: (builder, tools, pattern of EICAR's path, pattern of METADATA's path) --


def _hex(target: str):
    def build(tmp: Path) -> Path:
        fs = test_filesystems.squashfs(tmp)
        out = tmp / f"fw.{target}"
        run("objcopy", "-I", "binary", "-O", target, "--change-addresses", "0x08000000", fs, out)
        return out

    return build


def _disk(driver: str | None, *options: str):
    def build(tmp: Path) -> Path:
        disk = test_disks.mbr_disk(tmp)
        if driver is None:
            return disk
        converted = tmp / f"disk.{driver}"
        run("qemu-img", "convert", "-O", driver, *options, disk, converted)
        return converted

    return build


def _cpio(tmp: Path) -> Path:
    path = tmp / "initramfs.cpio"
    path.write_bytes(test_firmware.cpio_archive(tmp))
    return path


def _uimage(tmp: Path) -> Path:
    ramdisk = tmp / "ramdisk.cpio.gz"
    ramdisk.write_bytes(gzip.compress(test_firmware.cpio_archive(tmp)))
    image = tmp / "uRamdisk"
    run(
        "mkimage",
        "-A",
        "arm",
        "-O",
        "linux",
        "-T",
        "ramdisk",
        "-C",
        "gzip",
        "-n",
        "rd",
        "-d",
        ramdisk,
        image,
    )
    return image


def _boot(tmp: Path) -> Path:
    path = tmp / "boot.img"
    ramdisk = gzip.compress(test_firmware.cpio_archive(tmp))
    path.write_bytes(test_firmware.boot_image(b"kernel", ramdisk, 2))
    return path


def _sparse(tmp: Path) -> Path:
    raw = tmp / "system.raw"
    run("mke2fs", "-q", "-F", "-t", "ext4", "-d", populate(tmp / "tree"), raw, "4M")
    sparse = tmp / "system.img"
    run("img2simg", raw, sparse)
    return sparse


def _ota(tmp: Path) -> Path:
    raw = tmp / "system.raw"
    run("mke2fs", "-q", "-F", "-t", "ext4", "-d", populate(tmp / "tree"), raw, "4M")
    path = tmp / "payload.bin"
    path.write_bytes(test_firmware.payload([("system", raw.read_bytes(), 8)]))
    return path


def _fit(tmp: Path) -> Path:
    (tmp / "kernel.bin").write_bytes(b"kernel")
    (tmp / "rootfs.cpio.gz").write_bytes(gzip.compress(test_firmware.cpio_archive(tmp)))
    (tmp / "image.its").write_text(test_firmware.FIT_SOURCE)
    run("mkimage", "-f", "image.its", "image.itb", cwd=tmp)
    return tmp / "image.itb"


def _rockchip(tmp: Path) -> Path:
    """A RockChip update image (RKFW around RKAF) whose system partition is a SquashFS."""
    system = test_filesystems.squashfs(tmp).read_bytes()
    entries = [("package-file", "SELF", b""), ("system", "Image/system.img", system)]
    rkaf = bytearray(140 + 16 * 112)
    rkaf[:4] = b"RKAF"
    struct.pack_into("<I", rkaf, 136, len(entries))
    body = b""
    for i, (name, filename, data) in enumerate(entries):
        pos = len(rkaf) + len(body)
        fields = (name.encode(), filename.encode(), 0, pos, 0, len(data), len(data))
        struct.pack_into("<32s60s5I", rkaf, 140 + 112 * i, *fields)
        body += data
    rkaf += body
    loader = b"loader-bytes"
    head = bytearray(0x66)
    head[:4] = b"RKFW"
    struct.pack_into(
        "<IIII", head, 0x19, len(head), len(loader), len(head) + len(loader), len(rkaf)
    )
    path = tmp / "update.img"
    path.write_bytes(bytes(head) + loader + bytes(rkaf))
    return path


def _romfs(tmp: Path) -> Path:
    img = tmp / "rom.img"
    run("genromfs", "-f", img, "-d", populate(tmp / "tree"))
    return img


def _image(tmp: Path) -> Path:
    return oci_tar(tmp / "app.tar", [layer(BASE), layer(TOP)])


def _apk(tmp: Path) -> Path:
    return make_zip(tmp / "shop.apk", {
        "AndroidManifest.xml": axml("com.example.shop", "2.4.1", 241),
        "classes.dex": b"dex\n035\0",
        "lib/arm64-v8a/libcrypto.so": b"\x7fELF" + b"\0" * 60 + b"OpenSSL 1.1.1k  25 Mar 2021\0",
        "assets/python/" + METADATA_PATH: METADATA,
        "assets/" + EICAR_AT: EICAR,
    })  # fmt: skip


ALL = "*/"  # partition and volume directories are named by the tool that opens the disk
SAMPLES = {
    "squashfs": (lambda t: test_filesystems.squashfs(t), ["mksquashfs"], "", ""),
    "ext4": (test_filesystems.ext4, ["mke2fs"], "", ""),
    "iso9660": (test_filesystems.iso, ["genisoimage"], "", ""),
    "udf": (lambda t: test_filesystems.iso(t, udf=True), ["genisoimage"], "", ""),
    "fat": (test_filesystems.fat, ["mkfs.fat", "mcopy"], "", ""),
    "cramfs": (test_filesystems.cramfs, ["mkfs.cramfs"], "", ""),
    "wim": (test_filesystems.wim, ["wimlib-imagex"], "", ""),
    "hfs": (lambda t: test_hfs.hfs(t, populate(t / "tree")), ["hformat", "hcopy"], "", ""),
    "jffs2": (test_flash.jffs2, ["mkfs.jffs2"], "", ""),
    "ubi": (test_flash.ubi, ["mkfs.ubifs", "ubinize"], "rootfs/", "rootfs/"),
    "yaffs2": (test_flash.yaffs2, ["unyaffs"], "", ""),
    "mbr": (_disk(None), ["mke2fs", "mkfs.fat", "mcopy"], ALL, ALL),
    "gpt": (test_disks.gpt_disk, ["mke2fs", "mkfs.fat", "mcopy"], ALL, ALL),
    "qcow2": (_disk("qcow2", "-c"), ["qemu-img", "mke2fs", "mcopy"], ALL, ALL),
    "vmdk-stream": (
        _disk("vmdk", "-o", "subformat=streamOptimized"),
        ["qemu-img", "mcopy"],
        ALL,
        ALL,
    ),
    "vhd": (_disk("vpc"), ["qemu-img", "mke2fs", "mcopy"], ALL, ALL),
    "vhdx": (_disk("vhdx"), ["qemu-img", "mke2fs", "mcopy"], ALL, ALL),
    "vdi": (_disk("vdi"), ["qemu-img", "mke2fs", "mcopy"], ALL, ALL),
    "cpio": (_cpio, ["cpio"], "", ""),
    "uimage": (_uimage, ["mkimage", "cpio"], "payload!/", "payload!/"),
    "android-boot": (_boot, ["cpio"], "ramdisk!/*!/", "ramdisk!/*!/"),
    "android-sparse": (_sparse, ["img2simg", "mke2fs"], "image.raw!/", "image.raw!/"),
    "android-ota": (_ota, ["mke2fs"], "system.img!/", "system.img!/"),
    "ihex": (_hex("ihex"), ["objcopy", "mksquashfs"], "*!/", "*!/"),
    "srec": (_hex("srec"), ["objcopy", "mksquashfs"], "*!/", "*!/"),
    "romfs": (_romfs, ["genromfs"], "", ""),
    "fit": (_fit, ["mkimage", "dtc", "cpio"], "images/ramdisk-1!/", "images/ramdisk-1!/"),
    "rockchip": (_rockchip, ["mksquashfs"], "*/Image/system.img!/", "*/Image/system.img!/"),
    "oci-image": (_image, [], "registry.example/app:1.0/", "registry.example/app:1.0/"),
    "apk": (_apk, [], "assets/", "assets/python/"),
}


def _tools_missing(tools: list[str]) -> list[str]:
    import shutil

    return [t for t in ["7zz", *tools] if shutil.which(t) is None]


@pytest.mark.parametrize("name", ["pkg.zip", "pkg.tar.gz"])
@pytest.mark.parametrize("fmt", sorted(SAMPLES))
def test_everything_inside_is_scanned(tmp_path, scan, fmt, name):
    build, tools, eicar_dir, metadata_dir = SAMPLES[fmt]
    if missing := _tools_missing(tools):
        pytest.skip(f"needs {', '.join(missing)}")
    sample = build(tmp_path)
    package = wrap(sample, tmp_path / name)
    result = scan(package)
    # rejected for what is inside, never because part of it was not examined
    assert [f.summary for f in result.findings if f.type == "unscanned"] == []

    base = f"{name}{NEST}{sample.name}{NEST}"
    viruses = [f.location for f in result.findings if f.type == "virus"]
    wanted = (base + eicar_dir + EICAR_AT).lower()
    assert any(fnmatch.fnmatchcase(v.lower(), wanted) for v in viruses), (
        viruses,
        [f.summary for f in result.findings if f.type == "unscanned"],
    )
    pyyaml = [f for f in result.findings if f.component and f.component.name == "PyYAML"]
    assert PYYAML_CVES <= {i for f in pyyaml for i in (*f.ids, *f.aliases)}
    assert all(f.blocking for f in pyyaml if f.cvss and f.cvss.score >= 7.0)
    wanted = base + metadata_dir + METADATA_PATH
    if fmt == "oci-image":  # the layer the file came from
        wanted += " (layer sha256:*)"
    assert pyyaml and all(fnmatch.fnmatchcase(f.location, wanted) for f in pyyaml), (
        [f.location for f in pyyaml],
        [f.location for f in result.findings if f.type == "unscanned"],
    )
    assert result.verdict == "rejected"


def test_an_app_its_native_libraries_and_jars(tmp_path, scan):
    jar = io.BytesIO()
    with zipfile.ZipFile(jar, "w") as zf:
        zf.writestr(
            "META-INF/maven/org.apache.logging.log4j/log4j-core/pom.properties",
            "groupId=org.apache.logging.log4j\nartifactId=log4j-core\nversion=2.14.1\n",
        )
    apk = _apk(tmp_path)
    with zipfile.ZipFile(apk, "a") as zf:
        zf.writestr("libs/log4j-core.jar", jar.getvalue())
    result = scan(wrap(apk, tmp_path / "app.zip"))

    found = {(c.ecosystem, c.name, c.version, c.location, c.purl) for c in result.components}
    base = "app.zip!/shop.apk"
    assert {
        (
            "Generic",
            "com.example.shop",
            "2.4.1",
            base,
            "pkg:generic/com.example.shop@2.4.1?app=apk",
        ),
        (
            "Assay-native",
            "openssl",
            "1.1.1k",
            f"{base}!/lib/arm64-v8a/libcrypto.so",
            "pkg:generic/openssl@1.1.1k",
        ),
    } <= found
    log4j = [f for f in result.findings if f.component and f.component.name.endswith("log4j-core")]
    assert [f.location for f in log4j] == [
        f"{base}!/libs/log4j-core.jar!/META-INF/maven/org.apache.logging.log4j/log4j-core/pom.properties"
    ]
    assert "CVE-2021-45105" in log4j[0].aliases + log4j[0].ids
    # OpenSSL 1.1.1k, known by its banner in the bundled libcrypto.so
    [openssl] = [f for f in result.findings if f.component and f.component.name == "openssl"]
    assert openssl.ids == ("CVE-2022-0778",) and openssl.blocking
    assert openssl.location == f"{base}!/lib/arm64-v8a/libcrypto.so"
    assert openssl.summary.startswith("Identified from the version string embedded in the binary")


def test_a_copy_is_scanned_once_and_reported_everywhere(tmp_path, scan):
    package = tmp_path / "pkg.zip"
    with zipfile.ZipFile(package, "w") as zf:
        zf.writestr("a/eicar.com", EICAR)
        zf.writestr("b/eicar.com", EICAR)
        zf.writestr("a/" + METADATA_PATH, METADATA)
        zf.writestr("b/" + METADATA_PATH, METADATA)
    result = scan(package)
    viruses = sorted(f.location for f in result.findings if f.type == "virus")
    assert viruses == ["pkg.zip!/a/eicar.com", "pkg.zip!/b/eicar.com"]
    assert {c.location for c in result.components} == {
        "pkg.zip!/a/" + METADATA_PATH,
        "pkg.zip!/b/" + METADATA_PATH,
    }


def test_an_archive_shipped_twice_is_cataloged_at_both_locations(tmp_path, scan):
    """One archive's bytes are opened once; its components are shipped wherever it sits,
    copies inside copies included."""
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(METADATA_PATH, METADATA)
    outer = io.BytesIO()
    with zipfile.ZipFile(outer, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("lib/vendor.zip", inner.getvalue())
        zf.writestr("lib/again/vendor.zip", inner.getvalue())
    package = tmp_path / "pkg.tar.gz"
    with tarfile.open(package, "w:gz") as tf:
        for name in ("app/bundle.zip", "backup/bundle.zip"):
            info = tarfile.TarInfo(name)
            info.size = len(outer.getvalue())
            tf.addfile(info, io.BytesIO(outer.getvalue()))
    result = scan(package)
    expected = {
        f"pkg.tar.gz!/{top}/bundle.zip!/lib/{sub}vendor.zip!/{METADATA_PATH}"
        for top in ("app", "backup") for sub in ("", "again/")
    }
    assert {c.location for c in result.components if c.name == "PyYAML"} == expected
    # one finding per component version and advisory, wherever it sits
    assert any(f.component and f.component.name == "PyYAML" for f in result.findings)


@needs("mksquashfs")
def test_the_unpack_time_limit_fails_closed(tmp_path, clamd, osv):
    fs = test_filesystems.squashfs(tmp_path)
    package = wrap(fs, tmp_path / "pkg.zip")
    limits = Limits(max_unpack_seconds=0)
    settings = Settings(osv_paths=(OSV,), clamd=clamd.address, limits=limits)
    result = scan_package(package, settings, osv=osv)
    assert result.verdict == "rejected"
    assert any(f.type == "unscanned" and "longer than" in f.summary for f in result.findings), (
        result.findings
    )


# -- Docker image packages --------------------------------------------------------

DPKG_STATUS = b"""Package: nginx-light
Status: install ok installed
Source: nginx
Version: 1.2.1-2.2+wheezy2
Architecture: amd64

Package: base-files
Status: install ok installed
Version: 7.1wheezy11
Architecture: amd64
"""
APK_INSTALLED = b"""C:Q1abc=
P:musl
V:1.2.4_git20230717-r4
A:x86_64
o:musl

C:Q1def=
P:busybox-binsh
V:1.36.1-r15
A:x86_64
o:busybox
"""
DEB_LOWER = [
    ("etc/os-release", b'PRETTY_NAME="Debian GNU/Linux 7 (wheezy)"\nID=debian\nVERSION_ID="7"\n'),
    ("var/lib/dpkg/status", DPKG_STATUS),
    ("usr/lib/python3/dist-packages/PyYAML-5.3.dist-info", None),
    (METADATA_PATH, METADATA),
]
DEB_UPPER = [
    ("usr/lib/python3/dist-packages/.wh.PyYAML-5.3.dist-info", b""),
    (
        "usr/lib/python3/dist-packages/six-1.16.0.dist-info/METADATA",
        b"Name: six\nVersion: 1.16.0\n",
    ),
]
ALPINE = [
    (
        "usr/lib/os-release",
        b'NAME="Alpine Linux"\nID=alpine\nVERSION_ID=3.19.1\nPRETTY_NAME="Alpine Linux v3.19"\n',
    ),
    ("lib/apk/db/installed", APK_INSTALLED),
    ("opt/app/eicar.com", EICAR),
]


def _images_package(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    lower, upper, alpine = layer(DEB_LOWER), layer(DEB_UPPER), layer(ALPINE)
    oci_tar(tmp_path / "debian.tar", [lower, upper], ref="registry.example/shop:7")
    oci_tar(tmp_path / "alpine.tar", [alpine], ref="registry.example/edge:3.19")
    package = tmp_path / "images.tar"
    with tarfile.open(package, "w") as tar:
        tar.add(tmp_path / "debian.tar", "debian.tar")
        tar.add(tmp_path / "alpine.tar", "alpine.tar")
    digests = {
        name: sha(gzip.compress(raw, mtime=0))
        for name, raw in (("lower", lower), ("upper", upper), ("alpine", alpine))
    }
    return package, digests


def test_docker_package_of_two_images(tmp_path, scan):
    package, layers = _images_package(tmp_path)
    result = scan(package, kind="docker")

    deb = "images.tar!/debian.tar!/registry.example/shop:7/"
    alp = "images.tar!/alpine.tar!/registry.example/edge:3.19/"
    found = {(c.ecosystem, c.name, c.version, c.location) for c in result.components}
    assert found == {
        (
            "Debian:7",
            "nginx",
            "1.2.1-2.2+wheezy2",
            f"{deb}var/lib/dpkg/status (layer {layers['lower']})",
        ),
        (
            "Debian:7",
            "base-files",
            "7.1wheezy11",
            f"{deb}var/lib/dpkg/status (layer {layers['lower']})",
        ),
        (
            "PyPI",
            "six",
            "1.16.0",
            f"{deb}usr/lib/python3/dist-packages/six-1.16.0.dist-info/METADATA (layer {layers['upper']})",
        ),
        (
            "Alpine:v3.19",
            "musl",
            "1.2.4_git20230717-r4",
            f"{alp}lib/apk/db/installed (layer {layers['alpine']})",
        ),
        (
            "Alpine:v3.19",
            "busybox",
            "1.36.1-r15",
            f"{alp}lib/apk/db/installed (layer {layers['alpine']})",
        ),
    }
    nginx = next(c for c in result.components if c.name == "nginx")
    assert nginx.purl == "pkg:deb/debian/nginx@1.2.1-2.2%2Bwheezy2?arch=source&distro=debian-7"
    # DSA-3029-1 is a Debian:7 advisory: the release matches, the fix is not installed.
    vulns = {(f.component.name, f.ids) for f in result.findings if f.type == "vulnerability"}
    assert vulns == {("nginx", ("DSA-3029-1",))}
    viruses = [f.location for f in result.findings if f.type == "virus"]
    assert viruses == [f"{alp}opt/app/eicar.com"]
    assert [(i["name"], i["tag"], i["os"], i["os_version"]) for i in result.images] == [
        ("registry.example/shop", "7", "Debian GNU/Linux 7 (wheezy)", "7"),
        ("registry.example/edge", "3.19", "Alpine Linux v3.19", "3.19.1"),
    ]
    assert result.images[0]["layers"] == [layers["lower"], layers["upper"]]


def test_docker_package_without_an_image_is_refused(tmp_path, scan):
    package = tmp_path / "app.tar.gz"
    with tarfile.open(package, "w:gz") as tar:
        info = tarfile.TarInfo("app/readme.txt")
        info.size = 5
        tar.addfile(info, io.BytesIO(b"hello"))
    with pytest.raises(ScanError, match="holds no container image"):
        scan(package, kind="docker")


def test_docker_package_with_a_broken_image_fails_closed(tmp_path, scan):
    index = b'{"schemaVersion": 2, "manifests": [{"digest": "sha256:' + b"0" * 64 + b'"}]}'
    image = tmp_path / "app.tar"
    with tarfile.open(image, "w") as tar:
        for name, data in (
            ("oci-layout", b'{"imageLayoutVersion": "1.0.0"}'),
            ("index.json", index),
        ):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    result = scan(wrap(image, tmp_path / "pkg.tar.gz"), kind="docker")
    assert result.verdict == "rejected"
    assert [f.location for f in result.findings if f.type == "unscanned"] == ["pkg.tar.gz!/app.tar"]


def test_release_advisories_apply_to_their_release_only(osv):
    def match(ecosystem: str) -> set[str]:
        c = Component(ecosystem, "nginx", "1.2.1-2.2+wheezy2", "pkg:deb/debian/nginx", "x")
        return {i for f in osv.match([c], 7.0) for i in f.ids}

    assert match("Debian:7") == {"DSA-3029-1"}
    assert match("Debian") == {"DSA-3029-1"}  # release unknown: every release's records
    assert match("Debian:12") == set()


def test_cli_kind_option(tmp_path):
    package = tmp_path / "plain.tar.gz"
    with tarfile.open(package, "w:gz") as tar:
        info = tarfile.TarInfo("readme.txt")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"hi"))
    proc = subprocess.run(
        [sys.executable, "-m", "scanner", "scan", package, "--osv", OSV, "--kind", "docker"],
        check=False,
        capture_output=True,
        text=True,
        cwd=Path(__file__).parents[2],
        timeout=120,
    )
    assert proc.returncode == 2
    assert "holds no container image" in proc.stderr
