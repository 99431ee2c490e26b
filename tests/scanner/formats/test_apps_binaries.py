"""App identity (APK, IPA, HAP, OVA) and library versions embedded in binaries."""

from __future__ import annotations

import io
import json
import plistlib
import ssl
import struct
import subprocess
import tarfile
import zipfile
import zlib
from pathlib import Path

import pytest

from scanner.formats import describe, detect, inspect_binary

from .conftest import EICAR, needs

# --------------------------------------------------------------------------- binary XML


def _string_pool(strings: list[str]) -> bytes:
    """A UTF-16 string pool chunk, as aapt writes it."""
    offsets, body = [], b""
    for s in strings:
        offsets.append(len(body))
        body += struct.pack("<H", len(s)) + s.encode("utf-16-le") + b"\0\0"
    body += b"\0" * (-len(body) % 4)
    header_size = 28
    strings_start = header_size + 4 * len(strings)
    size = strings_start + len(body)
    head = struct.pack("<HHIIIIII", 0x0001, header_size, size, len(strings), 0, 0, strings_start, 0)
    return head + struct.pack(f"<{len(strings)}I", *offsets) + body


def axml(package: str, version_name: str, version_code: int, stripped_names: bool = False) -> bytes:
    """A binary AndroidManifest.xml with one <manifest> element."""
    attr_names = ["", ""] if stripped_names else ["versionCode", "versionName"]
    strings = [*attr_names, "package", "android", "http://schemas.android.com/apk/res/android",
               "manifest", package, version_name]  # fmt: skip
    pool = _string_pool(strings)
    res_map = struct.pack("<HHI", 0x0180, 8, 16) + struct.pack("<II", 0x0101021B, 0x0101021C)
    ns = 4

    def attr(ns_idx, name, raw, vtype, data):
        return struct.pack("<IIIHBBI", ns_idx, name, raw, 8, 0, vtype, data)

    attrs = (
        attr(ns, 0, 0xFFFFFFFF, 0x10, version_code)
        + attr(ns, 1, 7, 0x03, 7)
        + attr(0xFFFFFFFF, 2, 6, 0x03, 6)
    )
    element = struct.pack("<HHIII", 0x0102, 16, 36 + len(attrs), 1, 0xFFFFFFFF)
    element += struct.pack("<IIHHHHHH", 0xFFFFFFFF, 5, 20, 20, 3, 0, 0, 0) + attrs
    end = struct.pack("<HHIIIII", 0x0103, 16, 24, 1, 0xFFFFFFFF, 0xFFFFFFFF, 5)
    body = pool + res_map + element + end
    return struct.pack("<HHI", 0x0003, 8, 8 + len(body)) + body


def make_zip(path: Path, files: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return path


@pytest.mark.parametrize("stripped", [False, True])
def test_apk(tmp_path, stripped):
    apk = make_zip(tmp_path / "shop.apk", {
        "AndroidManifest.xml": axml("com.example.shop", "2.4.1", 241, stripped),
        "classes.dex": b"dex\n035\0",
        "assets/eicar.com": EICAR,
    })  # fmt: skip
    assert detect(apk) == "apk"
    assert describe("apk", apk) == {"id": "com.example.shop", "version": "2.4.1", "version_code": "241"}


def test_ipa(tmp_path):
    info = plistlib.dumps({"CFBundleIdentifier": "com.example.Shop", "CFBundleShortVersionString": "3.1",
                           "CFBundleVersion": "310", "CFBundleName": "Shop"}, fmt=plistlib.FMT_BINARY)  # fmt: skip
    ipa = make_zip(tmp_path / "Shop.ipa", {"Payload/Shop.app/Info.plist": info, "Payload/Shop.app/Shop": b"\xcf\xfa"})
    assert detect(ipa) == "ipa"
    assert describe("ipa", ipa) == {"id": "com.example.Shop", "version": "3.1", "name": "Shop", "version_code": "310"}


def test_hap(tmp_path):
    module = {"app": {"bundleName": "com.example.harmony", "versionCode": 1000000, "versionName": "1.0.0"},
              "module": {"name": "entry", "type": "entry"}}  # fmt: skip
    hap = make_zip(tmp_path / "entry.hap", {"module.json": json.dumps(module).encode(), "resources.index": b"\0",
                                            "pack.info": b"{}"})  # fmt: skip
    assert detect(hap) == "hap"
    assert describe("hap", hap) == {"id": "com.example.harmony", "version": "1.0.0", "version_code": "1000000",
                                    "name": "entry"}  # fmt: skip


def test_ova(tmp_path):
    ovf = b"""<?xml version="1.0"?><Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1">
      <VirtualSystem><ProductSection><Product>Shop Appliance</Product><Version>5.2</Version>
      </ProductSection></VirtualSystem></Envelope>"""
    ova = tmp_path / "shop.ova"
    with tarfile.open(ova, "w") as tar:
        for name, data in [("shop.ovf", ovf), ("shop-disk1.vmdk", b"KDMV")]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    assert detect(ova) == "ova"
    assert describe("ova", ova) == {"id": "Shop Appliance", "version": "5.2", "name": "Shop Appliance"}


def test_describe_never_raises(tmp_path):
    junk = tmp_path / "junk.apk"
    junk.write_bytes(b"PK\x03\x04 not really")
    assert describe("apk", junk) == {}
    bad = make_zip(tmp_path / "bad.apk", {"AndroidManifest.xml": b"\x03\x00\x08\x00garbage", "classes.dex": b""})
    assert describe("apk", bad) == {}
    assert describe("ipa", tmp_path / "missing.ipa") == {}


# --------------------------------------------------------------------------- binaries


@needs("cc")
def test_banners_in_a_compiled_binary(tmp_path):
    src = tmp_path / "app.c"
    src.write_text(
        'const char *v[] = {"OpenSSL 1.0.2k  26 Jan 2017",\n'
        '  " deflate 1.2.11 Copyright 1995-2017 Jean-loup Gailly and Mark Adler ",\n'
        '  "BusyBox v1.30.1 (2019-06-12) multi-call binary.",\n'
        '  "requires OpenSSL 1.0.0 or later"};\n'
        "int main(int c, char **a) { return v[c][0]; }\n"
    )
    exe = tmp_path / "app"
    subprocess.run(["cc", "-O0", "-o", str(exe), str(src)], check=True, capture_output=True)
    assert detect(exe) == "elf"
    assert inspect_binary(exe) == [
        ("Assay-native", "openssl", "1.0.2k"),
        ("Assay-native", "zlib", "1.2.11"),
        ("Assay-native", "busybox", "1.30.1"),
    ]


def test_the_systems_own_libraries():
    libz = Path("/usr/lib/x86_64-linux-gnu/libz.so.1")
    libcrypto = Path("/usr/lib/x86_64-linux-gnu/libcrypto.so.3")
    if not (libz.exists() and libcrypto.exists()):
        pytest.skip("needs Debian's zlib1g and libssl3")
    assert ("Assay-native", "zlib", zlib.ZLIB_RUNTIME_VERSION) in inspect_binary(libz)
    assert ("Assay-native", "openssl", ssl.OPENSSL_VERSION.split()[1]) in inspect_binary(libcrypto)


def test_pe_detection_and_odd_input(tmp_path):
    pe = bytearray(512)
    pe[:2] = b"MZ"
    struct.pack_into("<I", pe, 0x3C, 0x80)
    pe[0x80:0x84] = b"PE\0\0"
    pe += b"BusyBox v1.36.1"
    path = tmp_path / "tool.exe"
    path.write_bytes(pe)
    assert detect(path) == "pe"
    assert inspect_binary(path) == [("Assay-native", "busybox", "1.36.1")]
    (tmp_path / "empty").write_bytes(b"")
    assert inspect_binary(tmp_path / "empty") == [] and detect(tmp_path / "empty") is None
    assert inspect_binary(tmp_path / "missing") == [] and detect(tmp_path / "missing") is None
