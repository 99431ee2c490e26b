"""Sample builders shared by the format tests: every sample is made at test time."""

from __future__ import annotations

import shutil
import tarfile
import zipfile
from pathlib import Path

import pytest

# The EICAR test file, split so that this source file is not itself a virus hit.
EICAR = (
    b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$" + b"EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
)
METADATA_PATH = "usr/lib/python3/dist-packages/PyYAML-5.3.dist-info/METADATA"
METADATA = b"Metadata-Version: 2.1\nName: PyYAML\nVersion: 5.3\n"


def needs(*tools: str):
    """Skip a test when a Debian tool it builds samples with is not installed."""
    missing = [t for t in tools if shutil.which(t) is None]
    return pytest.mark.skipif(bool(missing), reason=f"needs {', '.join(missing)}")


def populate(root: Path) -> Path:
    """A small tree holding the EICAR file and a Python dist-info, as the end-to-end tests expect."""
    (root / "opt/app").mkdir(parents=True)
    (root / "opt/app/eicar.com").write_bytes(EICAR)
    meta = root / METADATA_PATH
    meta.parent.mkdir(parents=True)
    meta.write_bytes(METADATA)
    (root / "etc").mkdir(exist_ok=True)
    (root / "etc/hostname").write_text("device\n")
    return root


def assert_sample(outdir: Path, prefix: str = "") -> None:
    base = outdir / prefix if prefix else outdir
    assert (base / "opt/app/eicar.com").read_bytes() == EICAR
    assert (base / METADATA_PATH).read_bytes() == METADATA


def only_plain(outdir: Path) -> None:
    """Nothing but regular files and directories, no set-id bits, all inside outdir."""
    for p in outdir.rglob("*"):
        assert not p.is_symlink(), p
        assert p.is_file() or p.is_dir(), p
        assert not p.stat().st_mode & 0o7000, p


def wrap(sample: Path, package: Path) -> Path:
    """A seller package holding ``sample`` alone, as sellers send it: a deflated .zip or a
    .tar.gz. An image of a few files is mostly empty blocks and deflates to very little."""
    if package.name.endswith(".zip"):
        with zipfile.ZipFile(package, "w", zipfile.ZIP_DEFLATED) as zf:
            zf.write(sample, sample.name)
    else:
        with tarfile.open(package, "w:gz") as tar:
            tar.add(sample, sample.name)
    return package
