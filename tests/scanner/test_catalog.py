"""Component cataloging: the corpus packages, and a realistic fixture per ecosystem.

Fixtures are packed into a package and go through the real unpacker, so each
component's location is the path a seller would see.
"""

from __future__ import annotations

import io
import json
import shutil
import sqlite3
import struct
import subprocess
import tarfile
import zipfile
import zlib
from pathlib import Path

import pytest

from scanner.catalog import catalog
from scanner.catalogers import golang, python
from scanner.model import NEST, Limits
from scanner.unpack import unpack

CORPUS = Path(__file__).parents[1] / "data" / "corpus" / "packages"
MANIFEST = json.loads((CORPUS / "manifest.json").read_text())


# -- helpers -----------------------------------------------------------------------


def zip_bytes(files: dict[str, bytes | str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buffer.getvalue()


def tgz_bytes(files: dict[str, bytes | str]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tf:
        for name, data in files.items():
            data = data.encode() if isinstance(data, str) else data
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def scan(tmp_path: Path, files: dict[str, bytes | str]):
    """Catalog a zip package holding ``files``."""
    package = tmp_path / "pkg.zip"
    package.write_bytes(zip_bytes(files))
    unpacked = unpack(package, tmp_path / "scratch", Limits(), name="pkg.zip")
    assert unpacked.findings == []
    return catalog(unpacked)


def found(components) -> set[tuple[str, str, str, str]]:
    """(ecosystem, name, version, location inside the package) of each component."""
    return {(c.ecosystem, c.name, c.version, c.location.split(NEST, 1)[1]) for c in components}


def purls(components) -> set[str]:
    return {c.purl for c in components}


# -- the corpus ---------------------------------------------------------------------

#: zlib compiled into lxml's extension modules: their banner is all that names it.
EMBEDDED = {
    "pkg-a-python-app.tar.gz": {
        ("zlib", "1.2.11", "etree.cpython-38-x86_64-linux-gnu.so"),
        ("zlib", "1.2.11", "objectify.cpython-38-x86_64-linux-gnu.so"),
    }
}


#: The pins of the python app's requirements.txt: the manifest lists installed metadata.
LOCKED = {
    "pkg-a-python-app.tar.gz": {
        ("PyPI", name, version, "acme-python-app-1.0/requirements.txt")
        for name, version in [
            ("requests", "2.19.1"), ("urllib3", "1.24.1"), ("PyYAML", "5.3"),
            ("Jinja2", "2.10"), ("lxml", "4.6.2"), ("six", "1.17.0"),
        ]
    }
}


@pytest.mark.parametrize("entry", MANIFEST["packages"], ids=lambda e: e["file"].split("/")[-1])
def test_corpus_packages_yield_exactly_the_manifest(tmp_path, entry):
    name = entry["file"].split("/")[-1]
    components = catalog(unpack(CORPUS / name, tmp_path / "s", Limits(), name=name))
    expected = {
        (c["ecosystem"], c["name"], c["version"], c["location_in_package"])
        for c in entry["components"]
    } | LOCKED.get(name, set())
    # The manifest lists package-manager metadata; libraries compiled into
    # executables (Assay-native) are checked on their own below.
    managed = [c for c in components if c.ecosystem != "Assay-native"]
    assert found(managed) == expected
    assert len(managed) == len(expected)
    embedded = {(c.name, c.version, c.location.rsplit("/", 1)[-1]) for c in components} - {
        (c.name, c.version, c.location.rsplit("/", 1)[-1]) for c in managed
    }
    assert embedded == EMBEDDED.get(name, set())
    for c in components:
        assert c.location.startswith(name + NEST)
        prefix = {"PyPI": "pkg:pypi/", "npm": "pkg:npm/", "Assay-native": "pkg:generic/"}
        assert c.purl.startswith(prefix[c.ecosystem])


def test_result_is_sorted_and_deduplicated(tmp_path):
    lock = {
        "lockfileVersion": 1,
        "dependencies": {
            "a": {"version": "1.0.0", "dependencies": {"b": {"version": "2.0.0"}}},
            "b": {"version": "2.0.0"},
        },
    }
    components = scan(tmp_path, {"app/package-lock.json": json.dumps(lock)})
    keys = [(c.ecosystem, c.name, c.version, c.location) for c in components]
    assert keys == sorted(set(keys))
    assert [c.name for c in components] == ["a", "b"]


# -- Python -------------------------------------------------------------------------

METADATA = (
    "Metadata-Version: 2.1\nName: {name}\nVersion: {version}\nSummary: x\n\nLong text\nName: nope\n"
)


def test_python_sources(tmp_path):
    wheel = zip_bytes(
        {
            "Foo_Bar-1.2.0.dist-info/METADATA": METADATA.format(name="Foo_Bar", version="1.2.0"),
            "foo_bar/__init__.py": "",
        }
    )
    sdist = tgz_bytes(
        {
            "bar-2.0/PKG-INFO": METADATA.format(name="bar", version="2.0"),
            "bar-2.0/src/bar.egg-info/PKG-INFO": METADATA.format(name="bar", version="2.0"),
            "bar-2.0/setup.py": "",
        }
    )
    egg = zip_bytes({"EGG-INFO/PKG-INFO": METADATA.format(name="eggy", version="0.3")})
    components = scan(
        tmp_path,
        {
            "app/wheels/Foo_Bar-1.2.0-py3-none-any.whl": wheel,
            "app/sdists/bar-2.0.tar.gz": sdist,
            "app/eggs/eggy-0.3-py3.8.egg": egg,
            "app/site-packages/old-0.9-py3.8.egg-info": METADATA.format(name="old", version="0.9"),
            "app/site-packages/PyYAML-5.3-py3.8.egg-info/PKG-INFO": METADATA.format(
                name="PyYAML", version="5.3"
            ),
            "app/site-packages/nothing.dist-info/RECORD": "",
            "app/docs/METADATA": METADATA.format(name="not-a-dist-info", version="1"),
        },
    )
    assert found(components) == {
        (
            "PyPI",
            "Foo_Bar",
            "1.2.0",
            "app/wheels/Foo_Bar-1.2.0-py3-none-any.whl!/Foo_Bar-1.2.0.dist-info/METADATA",
        ),
        ("PyPI", "bar", "2.0", "app/sdists/bar-2.0.tar.gz!/bar-2.0/PKG-INFO"),
        ("PyPI", "eggy", "0.3", "app/eggs/eggy-0.3-py3.8.egg!/EGG-INFO/PKG-INFO"),
        ("PyPI", "old", "0.9", "app/site-packages/old-0.9-py3.8.egg-info"),
        ("PyPI", "PyYAML", "5.3", "app/site-packages/PyYAML-5.3-py3.8.egg-info/PKG-INFO"),
    }
    assert {"pkg:pypi/foo-bar@1.2.0", "pkg:pypi/pyyaml@5.3"} <= purls(components)
    assert python.canonical("Foo.Bar__baz") == "foo-bar-baz"


# -- npm ----------------------------------------------------------------------------


def test_npm_sources(tmp_path):
    def pkg(name, version):
        return json.dumps({"name": name, "version": version, "description": "x"})

    lock_v2 = {
        "name": "web",
        "lockfileVersion": 3,
        "packages": {
            "": {"name": "web", "version": "1.0.0"},
            "node_modules/lodash": {"version": "4.17.15"},
            "node_modules/@types/node": {"version": "20.1.0"},
            "node_modules/a/node_modules/minimist": {"version": "0.0.8"},
            "node_modules/alias": {"name": "real-name", "version": "3.0.0"},
            "node_modules/linked": {"link": True, "resolved": "packages/linked"},
            "packages/linked": {"version": "0.0.1"},
        },
    }
    lock_v1 = {
        "lockfileVersion": 1,
        "dependencies": {
            "ms": {"version": "2.0.0"},
            "debug": {"version": "2.6.9", "dependencies": {"ms": {"version": "2.1.3"}}},
            "gitdep": {"version": "git+https://github.com/x/y.git#abc"},
        },
    }
    components = scan(
        tmp_path,
        {
            "app/package.json": pkg("my-app", "1.0.0"),
            "app/node_modules/ejs/package.json": pkg("ejs", "3.1.6"),
            "app/node_modules/@babel/core/package.json": pkg("@babel/core", "7.12.0"),
            "app/node_modules/ejs/node_modules/jake/package.json": pkg("jake", "10.8.2"),
            "app/node_modules/ejs/lib/package.json": json.dumps({"type": "module"}),
            "app/node_modules/broken/package.json": "{not json",
            "app/vendor/is-number-7.0.0.tgz": tgz_bytes(
                {"package/package.json": pkg("is-number", "7.0.0")}
            ),
            "web/package-lock.json": json.dumps(lock_v2),
            "old/npm-shrinkwrap.json": json.dumps(lock_v1),
        },
    )
    assert found(components) == {
        ("npm", "ejs", "3.1.6", "app/node_modules/ejs/package.json"),
        ("npm", "@babel/core", "7.12.0", "app/node_modules/@babel/core/package.json"),
        ("npm", "jake", "10.8.2", "app/node_modules/ejs/node_modules/jake/package.json"),
        ("npm", "is-number", "7.0.0", "app/vendor/is-number-7.0.0.tgz!/package/package.json"),
        ("npm", "lodash", "4.17.15", "web/package-lock.json"),
        ("npm", "@types/node", "20.1.0", "web/package-lock.json"),
        ("npm", "minimist", "0.0.8", "web/package-lock.json"),
        ("npm", "real-name", "3.0.0", "web/package-lock.json"),
        ("npm", "ms", "2.0.0", "old/npm-shrinkwrap.json"),
        ("npm", "ms", "2.1.3", "old/npm-shrinkwrap.json"),
        ("npm", "debug", "2.6.9", "old/npm-shrinkwrap.json"),
    }
    assert {"pkg:npm/%40babel/core@7.12.0", "pkg:npm/ejs@3.1.6"} <= purls(components)


# -- Java ----------------------------------------------------------------------------


def pom(group, artifact, version):
    return f"#Generated by Maven\n#Tue Jan 01 00:00:00 UTC 2019\ngroupId={group}\nartifactId={artifact}\nversion={version}\n"


def manifest(**fields):
    lines = ["Manifest-Version: 1.0"] + [f"{k.replace('_', '-')}: {v}" for k, v in fields.items()]
    return "\r\n".join(lines) + "\r\n\r\nName: some/entry\r\nImplementation-Version: 9.9\r\n"


def test_java_jars_nested_in_a_war(tmp_path):
    commons = zip_bytes(
        {
            "META-INF/MANIFEST.MF": manifest(
                Implementation_Title="Apache Commons Text", Implementation_Version="1.9"
            ),
            "META-INF/maven/org.apache.commons/commons-text/pom.properties": pom(
                "org.apache.commons", "commons-text", "1.9"
            ),
            "org/apache/commons/text/StringSubstitutor.class": b"\xca\xfe\xba\xbe",
        }
    )
    shaded = zip_bytes(
        {
            "META-INF/maven/com.acme/fat/pom.properties": pom("com.acme", "fat", "3.0"),
            "META-INF/maven/com.fasterxml.jackson.core/jackson-databind/pom.properties": pom(
                "com.fasterxml.jackson.core", "jackson-databind", "2.9.10.1"
            ),
        }
    )
    legacy = zip_bytes(
        {
            "META-INF/MANIFEST.MF": manifest(
                Implementation_Title="legacy-lib",
                Implementation_Version="2.1",
                Bundle_Version="2.1.0.v2019",
            ),
        }
    )
    bare = zip_bytes({"META-INF/MANIFEST.MF": manifest(Created_By="javac")})
    war = zip_bytes(
        {
            "META-INF/maven/com.acme/shop/pom.properties": pom("com.acme", "shop", "1.0.0"),
            "WEB-INF/lib/commons-text-1.9.jar": commons,
            "WEB-INF/lib/fat.jar": shaded,
            "WEB-INF/lib/legacy.jar": legacy,
            "WEB-INF/lib/bare.jar": bare,
        }
    )
    components = scan(tmp_path, {"deploy/shop.war": war})
    lib = "deploy/shop.war!/WEB-INF/lib"
    assert found(components) == {
        (
            "Maven",
            "com.acme:shop",
            "1.0.0",
            "deploy/shop.war!/META-INF/maven/com.acme/shop/pom.properties",
        ),
        (
            "Maven",
            "org.apache.commons:commons-text",
            "1.9",
            f"{lib}/commons-text-1.9.jar!/META-INF/maven/org.apache.commons/commons-text/pom.properties",
        ),
        (
            "Maven",
            "com.acme:fat",
            "3.0",
            f"{lib}/fat.jar!/META-INF/maven/com.acme/fat/pom.properties",
        ),
        (
            "Maven",
            "com.fasterxml.jackson.core:jackson-databind",
            "2.9.10.1",
            f"{lib}/fat.jar!/META-INF/maven/com.fasterxml.jackson.core/jackson-databind/pom.properties",
        ),
    }  # legacy.jar: a title and a version, no group id: nothing a Maven advisory could name
    assert "pkg:maven/org.apache.commons/commons-text@1.9" in purls(components)


# -- Go -------------------------------------------------------------------------------

INFO_START = bytes.fromhex("3077af0c9274080241e1c107e6d618e6")
INFO_END = bytes.fromhex("f932433186182072008242104116d8f2")
MODINFO = (
    "path\texample.com/app/cmd/server\n"
    "mod\texample.com/app\t(devel)\t\n"
    "dep\tgithub.com/gin-gonic/gin\tv1.7.0\th1:jGFQ8dqKHSVZd1wfRqXNkWkXobAAqOp7NWsOKXsbSs0=\n"
    "dep\tgolang.org/x/net\tv0.0.0-20210226172049-e18ecbb05110\th1:qWPm9rbaAMKs8Bq7Gg5...\n"
    "dep\tgithub.com/old/mod\tv1.0.0\th1:abc=\n"
    "=>\tgithub.com/new/mod\tv1.2.0\th1:def=\n"
    "build\t-compiler=gc\nbuild\tGOOS=linux\n"
)
BASE = 0x400000
DATA_AT = 128  # the first section's file offset in elf()


def elf(sections: dict[str, bytes], *, section_headers: bool = True) -> bytes:
    """A minimal little-endian ELF64 executable: one PT_LOAD mapping the file at BASE."""
    body = bytearray(DATA_AT)
    placed = []
    for name, data in sections.items():
        body += bytes(-len(body) % 16)
        placed.append((name, len(body), len(data)))
        body += data
    names = b"\0"
    headers = [bytes(64)]
    for name, offset, size in placed:
        headers.append(
            struct.pack("<IIQQQQIIQQ", len(names), 1, 3, BASE + offset, offset, size, 0, 0, 16, 0)
        )
        names += name.encode() + b"\0"
    body += bytes(-len(body) % 8)
    strtab_at = len(body)
    headers.append(
        struct.pack("<IIQQQQIIQQ", len(names), 3, 0, 0, strtab_at, len(names) + 10, 0, 0, 1, 0)
    )
    names += b".shstrtab\0"
    body += names + bytes(-len(names) % 8)
    shoff = len(body)
    if section_headers:
        body += b"".join(headers)
    ident = b"\x7fELF\x02\x01\x01" + bytes(9)
    ehdr = ident + struct.pack(
        "<HHIQQQIHHHHHH",
        2,
        62,
        1,
        BASE,
        64,
        shoff if section_headers else 0,
        0,
        64,
        56,
        1,
        64,
        len(headers) if section_headers else 0,
        len(headers) - 1 if section_headers else 0,
    )
    phdr = struct.pack("<IIQQQQQQ", 1, 5, 0, BASE, BASE, len(body), len(body), 0x1000)
    body[: len(ehdr) + len(phdr)] = ehdr + phdr
    return bytes(body)


def uvarint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def buildinfo_inline(version: str, modinfo: str) -> bytes:
    v, m = version.encode(), INFO_START + modinfo.encode() + INFO_END
    return golang.MAGIC + bytes([8, 2]) + bytes(16) + uvarint(len(v)) + v + uvarint(len(m)) + m


def buildinfo_pointers(version: str, modinfo: str, at: int) -> bytes:
    """The pre-1.18 layout, for a blob mapped at virtual address ``at``."""
    v, m = version.encode(), INFO_START + modinfo.encode() + INFO_END
    header = golang.MAGIC + bytes([8, 0]) + struct.pack("<QQ", at + 32, at + 48)
    strings = struct.pack("<QQ", at + 64, len(v)) + struct.pack("<QQ", at + 64 + len(v), len(m))
    return header + strings + v + m


GO_EXPECTED = {
    ("Go", "github.com/gin-gonic/gin", "1.7.0"),
    ("Go", "golang.org/x/net", "0.0.0-20210226172049-e18ecbb05110"),
    ("Go", "github.com/new/mod", "1.2.0"),
}


@pytest.mark.parametrize(
    "binary, toolchain, stdlib",
    [
        (elf({".go.buildinfo": buildinfo_inline("go1.20.3", MODINFO)}), "go1.20.3", "1.20.3"),
        (
            elf({".go.buildinfo": buildinfo_pointers("go1.16", MODINFO, BASE + DATA_AT)}),
            "go1.16",
            "1.16.0",
        ),
        # Stripped of section headers: found by searching for the magic.
        (
            elf({".data": buildinfo_inline("go1.21rc2", MODINFO)}, section_headers=False),
            "go1.21rc2",
            "1.21.0-rc.2",
        ),
        (
            elf(
                {
                    ".data": b"x" * 100
                    + buildinfo_pointers("go1.17.5", MODINFO, BASE + DATA_AT + 100)
                },
                section_headers=False,
            ),
            "go1.17.5",
            "1.17.5",
        ),
    ],
    ids=["inline", "pointers", "inline-searched", "pointers-searched"],
)
def test_go_build_info(tmp_path, binary, toolchain, stdlib):
    components = scan(tmp_path, {"bin/server": binary, "bin/readme.txt": "not a binary"})
    got = {(c.ecosystem, c.name, c.version) for c in components}
    assert got == GO_EXPECTED | {("Go", "stdlib", stdlib)}
    assert {c.location for c in components} == {"pkg.zip!/bin/server"}
    assert "pkg:golang/github.com/gin-gonic/gin@v1.7.0" in purls(components)


PE_BASE = 0x140000000


def pe(data: bytes) -> bytes:
    """A minimal PE32+ executable whose .data section (at RVA 0x1000) holds ``data``."""
    dos = b"MZ" + bytes(58) + struct.pack("<I", 64)
    coff = b"PE\0\0" + struct.pack("<HHIIIHH", 0x8664, 1, 0, 0, 0, 240, 0x22)
    optional = bytearray(240)
    optional[0:2] = b"\x0b\x02"
    optional[24:32] = struct.pack("<Q", PE_BASE)
    raw = data + bytes(-len(data) % 0x200)
    section = struct.pack("<8sIIII", b".data", len(data), 0x1000, len(raw), 0x200) + bytes(16)
    headers = dos + coff + bytes(optional) + section
    return headers + bytes(0x200 - len(headers)) + raw


@pytest.mark.parametrize(
    "blob",
    [
        buildinfo_inline("go1.20.3", MODINFO),
        buildinfo_pointers("go1.20.3", MODINFO, PE_BASE + 0x1000),
    ],
    ids=["inline", "pointers"],
)
def test_go_build_info_in_a_windows_executable(tmp_path, blob):
    components = scan(tmp_path, {"bin/server.exe": pe(blob)})
    got = {(c.ecosystem, c.name, c.version) for c in components}
    assert got == GO_EXPECTED | {("Go", "stdlib", "1.20.3")}


def test_go_binary_holding_the_magic_as_data_only(tmp_path):
    # The go command itself carries the magic string as a constant.
    components = scan(tmp_path, {"bin/go": elf({".rodata": golang.MAGIC + b"\x00" * 64})})
    assert components == []


def test_go_mod(tmp_path):
    go_mod = """module example.com/app

go 1.20

require github.com/pkg/errors v0.9.1

require (
	github.com/gin-gonic/gin v1.7.0 // indirect
	golang.org/x/text v0.3.5
	github.com/old/mod v1.0.0
	example.com/local v0.0.0
)

replace github.com/old/mod => github.com/new/mod v1.2.0
replace example.com/local => ../local
exclude golang.org/x/text v0.3.4

require github.com/shunned/mod v1.1.0
exclude (
	github.com/shunned/mod v1.1.0
)
"""
    components = scan(
        tmp_path,
        {
            "src/go.mod": go_mod,
            "src/vendor/github.com/pkg/errors/go.mod": "module github.com/pkg/errors\nrequire golang.org/x/sys v0.0.1\n",
        },
    )
    assert found(components) == {
        ("Go", "github.com/pkg/errors", "0.9.1", "src/go.mod"),
        ("Go", "github.com/gin-gonic/gin", "1.7.0", "src/go.mod"),
        ("Go", "golang.org/x/text", "0.3.5", "src/go.mod"),
        ("Go", "github.com/new/mod", "1.2.0", "src/go.mod"),
        # example.com/local is replaced by a directory: no published version was built;
        # github.com/shunned/mod v1.1.0 is excluded: go does not build it.
    }


# -- Rust -----------------------------------------------------------------------------

AUDIT = {
    "packages": [
        {
            "name": "server",
            "version": "0.1.0",
            "source": "local",
            "root": True,
            "dependencies": [1, 2],
        },
        {"name": "smallvec", "version": "1.6.0", "source": "crates.io"},
        {"name": "cc", "version": "1.0.79", "source": "crates.io", "kind": "build"},
        {"name": "fork", "version": "0.2.0", "source": "git"},
    ]
}
AUDIT_EXPECTED = {("crates.io", "smallvec", "1.6.0"), ("crates.io", "fork", "0.2.0")}


def test_cargo_auditable_section(tmp_path):
    binary = elf({".text": b"\x90" * 64, ".dep-v0": zlib.compress(json.dumps(AUDIT).encode())})
    components = scan(tmp_path, {"bin/server": binary})
    assert {(c.ecosystem, c.name, c.version) for c in components} == AUDIT_EXPECTED
    assert "pkg:cargo/smallvec@1.6.0" in purls(components)


def test_cargo_auditable_in_a_binary_built_by_rustc(tmp_path):
    rustc = shutil.which("rustc") or str(Path.home() / ".cargo" / "bin" / "rustc")
    if not Path(rustc).exists():
        pytest.skip("rustc is not installed")
    work = tmp_path / "build"
    work.mkdir()
    blob = zlib.compress(json.dumps(AUDIT).encode())
    (work / "dep-v0.z").write_bytes(blob)
    (work / "main.rs").write_text(
        '#[used]\n#[link_section = ".dep-v0"]\n'
        f'static AUDITABLE_VERSION_INFO: [u8; {len(blob)}] = *include_bytes!("dep-v0.z");\n'
        'fn main() { println!("hello"); }\n'
    )
    build = subprocess.run(
        [rustc, "main.rs", "-o", "server"], cwd=work, capture_output=True, timeout=300, check=False
    )
    if build.returncode != 0:
        pytest.skip(f"rustc could not build: {build.stderr.decode()[-200:]}")
    components = scan(tmp_path, {"bin/server": (work / "server").read_bytes()})
    assert {(c.ecosystem, c.name, c.version) for c in components} == AUDIT_EXPECTED


def test_cargo_lock(tmp_path):
    lock = """# This file is automatically @generated by Cargo.
version = 3

[[package]]
name = "server"
version = "0.1.0"
dependencies = ["smallvec"]

[[package]]
name = "smallvec"
version = "1.6.0"
source = "registry+https://github.com/rust-lang/crates.io-index"
checksum = "fe0f37c9e8f3c5a4a66ad655a93c74daac4ad00c441533bf5c6e7990bb42604e"

[[package]]
name = "time"
version = "0.1.43"
source = "registry+https://github.com/rust-lang/crates.io-index"
"""
    components = scan(tmp_path, {"src/Cargo.lock": lock, "other/Cargo.lock": "not [toml"})
    assert found(components) == {
        ("crates.io", "smallvec", "1.6.0", "src/Cargo.lock"),
        ("crates.io", "time", "0.1.43", "src/Cargo.lock"),
    }


# -- PHP, .NET, Swift ----------------------------------------------------------------------


def test_composer(tmp_path):
    lock = {
        "packages": [
            {"name": "symfony/http-kernel", "version": "v5.4.6", "type": "library"},
            {"name": "guzzlehttp/psr7", "version": "1.8.1"},
        ],
        "packages-dev": [{"name": "phpunit/phpunit", "version": "9.5.10"}],
    }
    installed_v2 = {
        "packages": [
            {"name": "Monolog/Monolog", "version": "2.3.5", "version_normalized": "2.3.5.0"}
        ],
        "dev": True,
    }
    installed_v1 = [{"name": "twig/twig", "version": "v2.14.0"}]
    components = scan(
        tmp_path,
        {
            "site/composer.lock": json.dumps(lock),
            "site/vendor/composer/installed.json": json.dumps(installed_v2),
            "legacy/vendor/composer/installed.json": json.dumps(installed_v1),
            "broken/composer.lock": json.dumps({"packages": "oops"}),
        },
    )
    assert found(components) == {
        ("Packagist", "symfony/http-kernel", "5.4.6", "site/composer.lock"),
        ("Packagist", "guzzlehttp/psr7", "1.8.1", "site/composer.lock"),
        ("Packagist", "phpunit/phpunit", "9.5.10", "site/composer.lock"),
        ("Packagist", "monolog/monolog", "2.3.5", "site/vendor/composer/installed.json"),
        ("Packagist", "twig/twig", "2.14.0", "legacy/vendor/composer/installed.json"),
    }
    assert "pkg:composer/symfony/http-kernel@5.4.6" in purls(components)


def test_dotnet_deps_json(tmp_path):
    deps = {
        "runtimeTarget": {"name": ".NETCoreApp,Version=v6.0"},
        "libraries": {
            "Shop.Web/1.0.0": {"type": "project", "serviceable": False},
            "Newtonsoft.Json/12.0.1": {
                "type": "package",
                "sha512": "sha512-x",
                "path": "newtonsoft.json/12.0.1",
            },
            "System.Text.Encodings.Web/4.5.0": {"type": "package"},
            "Shop.Core/1.0.0": {"type": "reference"},
        },
    }
    components = scan(tmp_path, {"publish/Shop.Web.deps.json": json.dumps(deps)})
    assert found(components) == {
        ("NuGet", "Newtonsoft.Json", "12.0.1", "publish/Shop.Web.deps.json"),
        ("NuGet", "System.Text.Encodings.Web", "4.5.0", "publish/Shop.Web.deps.json"),
    }
    assert "pkg:nuget/Newtonsoft.Json@12.0.1" in purls(components)


def test_swift_package_resolved_v1_and_v2(tmp_path):
    v1 = {
        "object": {
            "pins": [
                {
                    "package": "swift-nio",
                    "repositoryURL": "https://github.com/apple/swift-nio.git",
                    "state": {"branch": None, "revision": "abc", "version": "2.40.0"},
                },
                {
                    "package": "Edge",
                    "repositoryURL": "https://github.com/x/edge.git",
                    "state": {"branch": "main", "revision": "def", "version": None},
                },
            ]
        },
        "version": 1,
    }
    v2 = {
        "pins": [
            {
                "identity": "alamofire",
                "kind": "remoteSourceControl",
                "location": "https://github.com/Alamofire/Alamofire",
                "state": {"revision": "f", "version": "5.4.0"},
            },
            {
                "identity": "yams",
                "kind": "remoteSourceControl",
                "location": "git@github.com:jpsim/Yams.git",
                "state": {"revision": "e", "version": "4.0.6"},
            },
        ],
        "version": 2,
    }
    components = scan(
        tmp_path,
        {
            "ios/App.xcworkspace/xcshareddata/swiftpm/Package.resolved": json.dumps(v1),
            "server/Package.resolved": json.dumps(v2),
        },
    )
    assert found(components) == {
        (
            "SwiftURL",
            "github.com/apple/swift-nio",
            "2.40.0",
            "ios/App.xcworkspace/xcshareddata/swiftpm/Package.resolved",
        ),
        (  # pinned to a branch: the revision shipped
            "SwiftURL",
            "github.com/x/edge",
            "def",
            "ios/App.xcworkspace/xcshareddata/swiftpm/Package.resolved",
        ),
        ("SwiftURL", "github.com/Alamofire/Alamofire", "5.4.0", "server/Package.resolved"),
        ("SwiftURL", "github.com/jpsim/Yams", "4.0.6", "server/Package.resolved"),
    }
    assert "pkg:swift/github.com/apple/swift-nio@2.40.0" in purls(components)


# -- operating-system packages ------------------------------------------------------------

DPKG_STATUS = """Package: libssl1.1
Status: install ok installed
Priority: optional
Architecture: amd64
Multi-Arch: same
Source: openssl
Version: 1.1.1n-0+deb11u3
Description: Secure Sockets Layer toolkit - shared libraries
 This package is part of the OpenSSL project's implementation.

Package: openssl
Status: install ok installed
Architecture: amd64
Version: 1.1.1n-0+deb11u3
Description: Secure Sockets Layer toolkit - cryptographic utility

Package: login
Status: install ok installed
Essential: yes
Source: shadow
Version: 1:4.8.1-1
Description: system login tools

Package: libgcc-s1
Status: install ok installed
Source: gcc-10 (10.2.1-6)
Version: 10.2.1-6+b1
Description: GCC support library

Package: removed-thing
Status: deinstall ok config-files
Version: 0.1-1
Description: gone
"""


def test_dpkg_status(tmp_path):
    components = scan(
        tmp_path,
        {
            "rootfs/var/lib/dpkg/status": DPKG_STATUS,
            "rootfs/etc/os-release": 'PRETTY_NAME="Debian GNU/Linux 11 (bullseye)"\nID=debian\n',
            "rootfs/var/lib/dpkg/status-old": DPKG_STATUS,
            "distroless/var/lib/dpkg/status.d/tzdata": "Package: tzdata\nVersion: 2021a-1+deb11u8\nArchitecture: all\n",
            "distroless/var/lib/dpkg/status.d/tzdata.md5sums": "abc  usr/share/zoneinfo/UTC\n",
            "ubuntu/var/lib/dpkg/status": "Package: bash\nStatus: install ok installed\nVersion: 5.1-6ubuntu1\n",
            "ubuntu/etc/os-release": 'NAME="Ubuntu"\nID=ubuntu\n',
        },
    )
    status = "rootfs/var/lib/dpkg/status"
    assert found(components) == {
        ("Debian", "openssl", "1.1.1n-0+deb11u3", status),
        ("Debian", "shadow", "1:4.8.1-1", status),
        ("Debian", "gcc-10", "10.2.1-6", status),
        ("Debian", "tzdata", "2021a-1+deb11u8", "distroless/var/lib/dpkg/status.d/tzdata"),
        ("Ubuntu", "bash", "5.1-6ubuntu1", "ubuntu/var/lib/dpkg/status"),
    }
    assert "pkg:deb/debian/shadow@1:4.8.1-1?arch=source" in purls(components)


def test_apk_installed(tmp_path):
    installed = """C:Q1abc=
P:musl
V:1.2.3-r4
A:x86_64
S:383152
o:musl
m:Timo Teräs <timo.teras@iki.fi>

C:Q1def=
P:libssl3
V:3.0.8-r0
A:x86_64
o:openssl

C:Q1ghi=
P:libcrypto3
V:3.0.8-r0
A:x86_64
o:openssl

P:busybox
V:1.35.0-r29
"""
    components = scan(tmp_path, {"image/lib/apk/db/installed": installed})
    assert found(components) == {
        ("Alpine", "musl", "1.2.3-r4", "image/lib/apk/db/installed"),
        ("Alpine", "openssl", "3.0.8-r0", "image/lib/apk/db/installed"),
        ("Alpine", "busybox", "1.35.0-r29", "image/lib/apk/db/installed"),
    }
    assert "pkg:apk/alpine/openssl@3.0.8-r0" in purls(components)


def rpm_header(tags: dict[int, str | int]) -> bytes:
    """An rpm header blob as rpmdb.sqlite stores it: counts, index entries, data store."""
    index, store = [], bytearray()
    for tag, value in tags.items():
        if isinstance(value, int):
            store += bytes(-len(store) % 4)
            index.append(struct.pack(">IIiI", tag, 4, len(store), 1))
            store += struct.pack(">i", value)
        else:
            index.append(struct.pack(">IIiI", tag, 6, len(store), 1))
            store += value.encode() + b"\0"
    return struct.pack(">II", len(index), len(store)) + b"".join(index) + bytes(store)


def rpmdb(path: Path, packages: list[dict[int, str | int]]) -> bytes:
    connection = sqlite3.connect(path)
    connection.execute(
        "CREATE TABLE Packages (hnum INTEGER PRIMARY KEY AUTOINCREMENT, blob BLOB NOT NULL)"
    )
    connection.executemany(
        "INSERT INTO Packages (blob) VALUES (?)", [(rpm_header(p),) for p in packages]
    )
    connection.commit()
    connection.close()
    return path.read_bytes()


def test_rpm_sqlite_database(tmp_path):
    db = rpmdb(
        tmp_path / "rpmdb.sqlite",
        [
            {
                1000: "openssl-libs",
                1001: "3.0.7",
                1002: "16.el9_2",
                1003: 1,
                1022: "x86_64",
                1044: "openssl-3.0.7-16.el9_2.src.rpm",
            },
            {1000: "bash", 1001: "5.1.8", 1002: "6.el9_1", 1022: "x86_64"},
            {1000: "rocky-release", 1001: "9.2", 1002: "1.7.el9", 1022: "noarch"},
            {1000: "gpg-pubkey", 1001: "350d275d", 1002: "6279464b"},
        ],
    )
    components = scan(
        tmp_path,
        {"rootfs/var/lib/rpm/rpmdb.sqlite": db, "bad/var/lib/rpm/rpmdb.sqlite": b"not sqlite"},
    )
    db_at = "rootfs/var/lib/rpm/rpmdb.sqlite"
    assert found(components) == {
        ("Rocky Linux", "openssl-libs", "1:3.0.7-16.el9_2", db_at),
        ("Rocky Linux", "bash", "5.1.8-6.el9_1", db_at),
        ("Rocky Linux", "rocky-release", "9.2-1.7.el9", db_at),
    }
    assert "pkg:rpm/rocky/openssl-libs@3.0.7-16.el9_2?arch=x86_64&epoch=1" in purls(components)


def test_malformed_metadata_is_skipped(tmp_path):
    components = scan(
        tmp_path,
        {
            "a/node_modules/x/package.json": "[1, 2",
            "b/node_modules/y/package.json": json.dumps(["not", "an", "object"]),
            "c/package-lock.json": json.dumps({"packages": {"node_modules/z": "nope"}}),
            "d/app.deps.json": json.dumps({"libraries": ["x"]}),
            "e/Package.resolved": json.dumps({"pins": "x"}),
            "f/x.dist-info/METADATA": b"\xff\xfe\x00garbage",
            "g/package-lock.json": "[" * 100_000,
            "h/bin/tool": b"\x7fELF" + b"\xff" * 200,
            "i/vendor/composer/installed.json": "{}",
        },
    )
    assert components == []


# -- Mariner / Azure Linux distroless, OpenWrt ------------------------------------------

# `rpm -qa --qf '%{NAME}\t%{VERSION}-%{RELEASE}\t%{INSTALLTIME}\t%{BUILDTIME}\t%{VENDOR}\t(none)\t
# %{SIZE}\t%{ARCH}\t%{EPOCHNUM}\t%{SOURCERPM}\n'`, as the distroless images keep it.
RPM_MANIFEST = "\n".join("\t".join(fields) for fields in [
    ("openssl-libs", "1.1.1k-21.cm2", "1671000000", "1670000000", "Microsoft Corporation",
     "(none)", "4001000", "x86_64", "0", "openssl-1.1.1k-21.cm2.src.rpm"),
    ("tzdata", "2022g-1.cm2", "1671000000", "1670000000", "Microsoft Corporation",
     "(none)", "1500000", "noarch", "0", "tzdata-2022g-1.cm2.src.rpm"),
    ("ca-certificates-base", "3.0.0-8.azl3", "1748000000", "1735000000",
     "Microsoft Corporation", "(none)", "130628", "noarch", "1",
     "ca-certificates-3.0.0-8.azl3.src.rpm"),
    ("truncated-line", "1.0-1.cm2", "1671000000"),
]) + "\n"  # fmt: skip

OPKG_STATUS = """Package: busybox
Version: 1.36.1-1
Depends: libc
Status: install user installed
Architecture: aarch64_cortex-a53
Installed-Time: 1700000000

Package: dropbear
Version: 2022.82-6
Depends: libc
Status: install user installed
Architecture: aarch64_cortex-a53
Conffiles:
 /etc/config/dropbear 0d8e2e8b1a5c0a5f

Package: luci-removed
Version: 1.0-1
Status: deinstall ok not-installed
Architecture: all
"""


def test_mariner_distroless_manifest(tmp_path):
    where = "img/var/lib/rpmmanifest/container-manifest-2"
    components = scan(tmp_path, {where: RPM_MANIFEST})
    assert found(components) == {
        ("Mariner", "openssl-libs", "1.1.1k-21.cm2", where),
        ("Mariner", "tzdata", "2022g-1.cm2", where),
        ("Azure Linux", "ca-certificates-base", "1:3.0.0-8.azl3", where),
    }
    assert ("pkg:rpm/mariner/openssl-libs@1.1.1k-21.cm2?arch=x86_64"
            "&upstream=openssl-1.1.1k-21.cm2.src.rpm") in purls(components)


def test_opkg_status(tmp_path):
    components = scan(tmp_path, {
        "rootfs/usr/lib/opkg/status": OPKG_STATUS,
        "overlay/var/lib/opkg/status": "Package: nginx\nVersion: 1.25.3-1\n"
                                       "Status: install ok installed\nArchitecture: mips_24kc\n",
        "rootfs/usr/lib/opkg/status-copy": OPKG_STATUS,
    })  # fmt: skip
    assert found(components) == {
        ("OpenWrt", "busybox", "1.36.1-1", "rootfs/usr/lib/opkg/status"),
        ("OpenWrt", "dropbear", "2022.82-6", "rootfs/usr/lib/opkg/status"),
        ("OpenWrt", "nginx", "1.25.3-1", "overlay/var/lib/opkg/status"),
    }
    assert "pkg:opkg/openwrt/busybox@1.36.1-1?arch=aarch64_cortex-a53" in purls(components)


@pytest.mark.parametrize("where", [
    "img/var/lib/rpmmanifest/container-manifest-2", "rootfs/usr/lib/opkg/status",
])
def test_os_manifests_that_are_not_text_give_nothing(tmp_path, where):
    assert scan(tmp_path, {where: bytes(range(256)) * 64}) == []


def berkeley_rpmdb(tmp_path: Path, packages: list[dict[int, str | int]], pagesize=4096,
                   lorder: int = 1234) -> bytes:
    """rpm's Packages as Berkeley DB writes it: db_load builds the hash database from
    (instance number, header blob) pairs, record 0 holding the next instance number."""
    lines = ["VERSION=3", "format=bytevalue", "type=hash", f"db_pagesize={pagesize}",
             f"db_lorder={lorder}", "HEADER=END"]
    records = [(0, struct.pack("<I", len(packages) + 1))]
    records += [(n, rpm_header(p)) for n, p in enumerate(packages, start=1)]
    for key, value in records:
        lines += [" " + struct.pack("<I", key).hex(), " " + value.hex()]
    lines.append("DATA=END")
    dump, db = tmp_path / "Packages.dump", tmp_path / "Packages"
    dump.write_text("\n".join(lines) + "\n")
    subprocess.run(["db5.3_load", "-f", str(dump), str(db)], check=True)
    return db.read_bytes()


@pytest.mark.skipif(not shutil.which("db5.3_load"), reason="needs db5.3-util (ops/install.sh)")
def test_rpm_berkeley_db(tmp_path):
    packages = [
        # a description longer than a page: the header goes to overflow pages
        {1000: "openssl-libs", 1001: "1.0.2k", 1002: "19.el7", 1003: 1, 1022: "x86_64",
         1005: "OpenSSL libraries " * 600},
        {1000: "bash", 1001: "4.2.46", 1002: "34.el7", 1022: "x86_64"},
        {1000: "centos-release", 1001: "7", 1002: "9.2009.0.el7.centos", 1022: "x86_64"},
        {1000: "gpg-pubkey", 1001: "f4a80eb5", 1002: "53a7ff4b"},
    ] + [{1000: f"lib{n}", 1001: "1.0", 1002: "1.el7", 1022: "noarch"} for n in range(300)]
    db = berkeley_rpmdb(tmp_path, packages)
    assert len(db) > 4 * 4096  # several pages, overflow pages among them
    components = scan(tmp_path, {
        "centos7/var/lib/rpm/Packages": db,
        "bad/var/lib/rpm/Packages": b"not a database" * 100,
    })  # fmt: skip
    at = "centos7/var/lib/rpm/Packages"
    got = found(components)
    assert {("Red Hat", "openssl-libs", "1:1.0.2k-19.el7", at),
            ("Red Hat", "bash", "4.2.46-34.el7", at),
            ("Red Hat", "centos-release", "7-9.2009.0.el7.centos", at)} <= got
    assert len(got) == 3 + 300  # every package once, no gpg-pubkey, nothing from the bad one


@pytest.mark.skipif(not shutil.which("db5.3_load"), reason="needs db5.3-util (ops/install.sh)")
def test_rpm_berkeley_db_big_endian_and_broken_chains(tmp_path):
    from scanner.catalogers.distro import berkeley_hash_values

    data = bytearray(berkeley_rpmdb(tmp_path, [
        {1000: "zlib", 1001: "1.2.7", 1002: "18.el7", 1022: "s390x", 1005: "x" * 9000},
    ], lorder=4321))  # fmt: skip
    assert data[12:16] == bytes.fromhex("00061561")  # written big-endian
    values = berkeley_hash_values(bytes(data))
    assert any(b"zlib" in v and len(v) > 9000 for v in values)
    # every overflow page turned into a loop onto itself: reading stops, nothing hangs
    for start in range(4096, len(data), 4096):
        if data[start + 25] == 7:
            data[start + 16 : start + 20] = struct.pack(">I", start // 4096)
    assert all(len(v) <= 9000 + 4096 for v in berkeley_hash_values(bytes(data)))
