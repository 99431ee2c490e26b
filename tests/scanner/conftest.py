"""Real ClamAV daemons for the scanner tests."""

from __future__ import annotations

from collections.abc import Iterator

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
