"""Real ClamAV daemons for the scanner tests, and the whole scan with the OSV corpus."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ops.clamd import start_clamd
from ops.services import Service

#: Deliberately small limits, so "over the limit" needs no gigabytes.
SMALL_LIMITS = {
    "MaxFileSize": 64 * 1024,
    "MaxScanSize": 256 * 1024,
    "PCREMaxFileSize": 64 * 1024,
    "StreamMaxLength": 512 * 1024,
}


@pytest.fixture(scope="session")
def clamd(tmp_path_factory) -> Iterator[Service]:
    """A real clamd with Assay's configuration and signatures; ``.address`` is ``tcp://...``."""
    service = start_clamd(tmp_path_factory.mktemp("clamd"))
    try:
        yield service
    finally:
        service.stop()


@pytest.fixture(scope="session")
def clamd_small_limits(tmp_path_factory) -> Iterator[Service]:
    """A real clamd whose size limits are a few hundred kilobytes."""
    service = start_clamd(tmp_path_factory.mktemp("clamd-small"), limits=SMALL_LIMITS)
    try:
        yield service
    finally:
        service.stop()


#: The corpus' OSV records: the vulnerability data every whole-scan test matches against.
OSV = Path(__file__).parents[1] / "data" / "corpus" / "osv"


@pytest.fixture(scope="session")
def corpus_osv():
    """The corpus' vulnerability data, loaded once."""
    from scanner.osv import OsvDatabase

    return OsvDatabase.load([OSV])


@pytest.fixture
def scan_package_at(clamd, corpus_osv, tmp_path) -> Callable:
    """``run(package, **settings)``: the whole scan of a seller package with the real clamd
    and the corpus' OSV data (scratch under the test's tmp_path)."""
    from scanner.model import Settings
    from scanner.pipeline import scan_package

    def run(package: Path, **settings):
        options = {"osv_paths": (OSV,), "clamd": clamd.address, "scratch_dir": tmp_path,
                   **settings}
        return scan_package(package, Settings(**options), osv=corpus_osv)

    return run
