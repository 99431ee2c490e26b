"""Package identification: the name rule and the format, by content."""

from __future__ import annotations

import bz2
import gzip
import io
import tarfile
import zipfile
from pathlib import Path

import pytest

from scanner.identify import NAME_RE, identify, sniff
from scanner.model import ScanError

CORPUS = Path(__file__).parents[1] / "data" / "corpus" / "packages"


def tar_bytes(compression: str = "") -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=f"w:{compression}") as tf:
        info = tarfile.TarInfo("app/readme.txt")
        info.size = 5
        tf.addfile(info, io.BytesIO(b"hello"))
    return buffer.getvalue()


def zip_bytes() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("app/readme.txt", "hello")
    return buffer.getvalue()


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / "upload"
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(
    "package, expected",
    [
        ("pkg-a-python-app.tar.gz", "tar.gz"),
        ("pkg-b-node-app.zip", "zip"),
        ("pkg-c-clean.tar.gz", "tar.gz"),
        ("pkg-d-eicar-nested.zip", "zip"),
    ],
)
def test_corpus_packages(package, expected):
    assert identify(CORPUS / package, package) == expected


@pytest.mark.parametrize(
    "name, data, expected",
    [
        ("My_App-(v2)-1.zip", zip_bytes(), "zip"),
        ("app.tar", tar_bytes(), "tar"),
        ("app.tar.gz", tar_bytes("gz"), "tar.gz"),
        ("APP.ZIP", zip_bytes(), "zip"),
    ],
)
def test_accepted(tmp_path, name, data, expected):
    assert identify(write(tmp_path, name, data), name) == expected


@pytest.mark.parametrize(
    "name, message",
    [
        (
            "my app!.zip",
            (
                'package name "my app!" may contain only letters, digits, "-", "_", "(" and ")"'
                " (found ' !')"
            ),
        ),
        (
            "app.v2.zip",
            'package name "app.v2" may contain only letters, digits, "-", "_", "(" and ")" (found \'.\')',
        ),
        (
            "../app.zip",
            'package name "../app" may contain only letters, digits, "-", "_", "(" and ")" (found \'./\')',
        ),
        (
            "应用.zip",
            'package name "应用" may contain only letters, digits, "-", "_", "(" and ")" (found \'应用\')',
        ),
        ("app.rar", '"app.rar" is not a .zip, .tar or .tar.gz file'),
        ("app.tgz", '"app.tgz" is not a .zip, .tar or .tar.gz file'),
        ("app", '"app" is not a .zip, .tar or .tar.gz file'),
        (".zip", '".zip" has no name before .zip'),
        ("a" * 300 + ".zip", "the package file name is longer than 255 bytes"),
    ],
)
def test_names_outside_the_rules(tmp_path, name, message):
    with pytest.raises(ScanError) as caught:
        identify(write(tmp_path, name, zip_bytes()), name)
    assert str(caught.value) == message


@pytest.mark.parametrize(
    "name, data, message",
    [
        ("app.zip", b"", "app.zip is empty"),
        (
            "app.zip",
            tar_bytes(),
            "app.zip is named .zip but its content is a tar archive; name it .tar or upload a zip archive",
        ),
        (
            "app.tar",
            tar_bytes("gz"),
            (
                "app.tar is named .tar but its content is a gzip-compressed tar archive;"
                " name it .tar.gz or upload a tar archive"
            ),
        ),
        (
            "app.tar.gz",
            zip_bytes(),
            (
                "app.tar.gz is named .tar.gz but its content is a zip archive;"
                " name it .zip or upload a gzip-compressed tar archive"
            ),
        ),
        (
            "app.tar.gz",
            gzip.compress(b"just text"),
            "app.tar.gz is gzip-compressed but does not hold a tar archive",
        ),
        (
            "app.tar.gz",
            bz2.compress(tar_bytes()),
            "app.tar.gz is not a zip, tar or tar.gz archive (its content is a bzip2-compressed tar archive)",
        ),
        (
            "app.zip",
            b"%PDF-1.7\n...",
            "app.zip is not a zip, tar or tar.gz archive (its content is a PDF document)",
        ),
        (
            "app.tar",
            b"hello world",
            "app.tar is not a zip, tar or tar.gz archive (its content is not a recognised archive)",
        ),
    ],
)
def test_content_outside_the_rules(tmp_path, name, data, message):
    with pytest.raises(ScanError) as caught:
        identify(write(tmp_path, name, data), name)
    assert str(caught.value) == message
    assert "\n" not in str(caught.value)


def test_name_re_is_the_rule():
    assert NAME_RE.fullmatch("Abc-123_(x)")
    assert not NAME_RE.fullmatch("a b")
    assert not NAME_RE.fullmatch("a\n")


@pytest.mark.parametrize(
    "data, kind",
    [
        (tar_bytes("bz2"), "tar.bz2"),
        (tar_bytes("xz"), "tar.xz"),
        (bz2.compress(b"text"), "bz2"),
        (b"7z\xbc\xaf\x27\x1c\x00\x04", "7z"),
        (b"\x7fELF\x02\x01\x01", "elf"),
    ],
)
def test_sniff(tmp_path, data, kind):
    assert sniff(write(tmp_path, "x", data)) == kind
