"""Real backing services for the whole suite, started lazily and stopped at the end.

Session fixtures (each starts its service the first time a test asks for it):

- ``redis_service``   ``.address`` = ``redis://127.0.0.1:PORT/0``; ``.stop()`` / ``.restart()``
- ``s3_service``      ``.address`` = ``http://127.0.0.1:PORT``, ``.extra["access_key"]``,
                      ``.extra["secret_key"]``; bucket ``S3_BUCKET`` exists
- ``clamd_service``   ``.address`` = ``tcp://127.0.0.1:PORT`` (Assay's config and signatures)
- ``postgres_service`` a throw-away cluster, only when ``ASSAY_TEST_DB=postgresql``
- ``database_url``    the suite's database: a SQLite file, or a fresh PostgreSQL database
- ``services_env``    every ``ASSAY_*`` variable pointing at the services above
- ``chromium_path`` / ``browser``  Debian's chromium driven by Playwright

Function fixtures: ``empty_database_url`` (a new empty database per test), ``bench_record``.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from ops import services
from ops.services import Service

ROOT = Path(__file__).resolve().parent.parent
S3_BUCKET = "assay"
TEST_DB = os.environ.get("ASSAY_TEST_DB", "sqlite")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu",
    "--disable-background-networking", "--disable-component-update",
]

if TEST_DB not in ("sqlite", "postgresql"):
    raise pytest.UsageError(f"ASSAY_TEST_DB must be sqlite or postgresql, not {TEST_DB!r}")


@pytest.fixture(scope="session")
def services_dir(tmp_path_factory) -> Path:
    """Where the session's services keep their data and logs."""
    return tmp_path_factory.mktemp("services")


def _run(service: Service) -> Iterator[Service]:
    try:
        yield service
    finally:
        service.stop()


@pytest.fixture(scope="session")
def redis_service(services_dir) -> Iterator[Service]:
    yield from _run(services.start_redis(services_dir / "redis"))


@pytest.fixture(scope="session")
def s3_service(services_dir) -> Iterator[Service]:
    yield from _run(services.start_s3(services_dir / "s3", bucket=S3_BUCKET))


@pytest.fixture(scope="session")
def clamd_service(services_dir) -> Iterator[Service]:
    from ops.clamd import start_clamd

    yield from _run(start_clamd(services_dir / "clamd"))


@pytest.fixture(scope="session")
def postgres_service(services_dir) -> Iterator[Service]:
    if TEST_DB != "postgresql":
        pytest.skip("PostgreSQL runs only with ASSAY_TEST_DB=postgresql")
    yield from _run(services.start_postgres(services_dir / "postgres"))


@pytest.fixture(scope="session")
def database_kind() -> str:
    """``sqlite`` or ``postgresql``: the database engine of this run."""
    return TEST_DB


class _Databases:
    """Hands out new, empty databases of this run's engine."""

    def __init__(self, root: Path, request: pytest.FixtureRequest):
        self.root, self.request, self.count = root, request, 0

    def new(self, prefix: str = "assay") -> str:
        self.count += 1
        name = f"{prefix}_{self.count}"
        if TEST_DB == "postgresql":
            postgres = self.request.getfixturevalue("postgres_service")
            return services.create_database(postgres, name)
        self.root.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{self.root / name}.db"


@pytest.fixture(scope="session")
def _databases(tmp_path_factory, request) -> _Databases:
    return _Databases(tmp_path_factory.mktemp("databases"), request)


@pytest.fixture(scope="session")
def database_url(_databases) -> str:
    """The session's database (empty: the app's fixtures apply the migrations)."""
    return _databases.new("assay_session")


@pytest.fixture
def empty_database_url(_databases) -> str:
    """A new empty database for one test (e.g. ``flask db upgrade`` from nothing)."""
    return _databases.new("assay_empty")


@pytest.fixture(scope="session")
def var_dir(tmp_path_factory) -> Path:
    """The session's ``ASSAY_VAR``, with the bundled OSV records in ``osv/``."""
    var = tmp_path_factory.mktemp("var")
    shutil.copytree(ROOT / "tests" / "data" / "corpus" / "osv", var / "osv")
    return var


@pytest.fixture(scope="session")
def services_env(var_dir, database_url, redis_service, s3_service, clamd_service) -> dict:
    """The environment a portal, worker or CLI process needs to use the test services."""
    return {
        "ASSAY_VAR": str(var_dir),
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_service.address,
        "ASSAY_S3_ENDPOINT": s3_service.address,
        "ASSAY_S3_ACCESS_KEY": s3_service.extra["access_key"],
        "ASSAY_S3_SECRET_KEY": s3_service.extra["secret_key"],
        "ASSAY_S3_BUCKET": S3_BUCKET,
        "ASSAY_CLAMD": clamd_service.address,
        "ASSAY_OSV_DIR": str(var_dir / "osv"),
        "ASSAY_SCRATCH_DIR": str(var_dir / "scratch"),
        "ASSAY_SECRET_KEY": secrets.token_hex(32),
        "ASSAY_TIMEZONE": "Asia/Shanghai",
        "ASSAY_COUNTRY": "CN",
    }


@pytest.fixture(scope="session")
def chromium_path() -> str:
    """Debian's chromium; a missing browser fails the test rather than skipping it."""
    path = os.environ.get("ASSAY_CHROMIUM", "/usr/bin/chromium")
    if not os.access(path, os.X_OK):
        pytest.fail(f"chromium not found at {path}: install the Debian package "
                    "'chromium' (make install does as root) or set ASSAY_CHROMIUM")
    return path


@pytest.fixture(scope="session")
def browser(chromium_path):
    """A headless chromium driven by Playwright, shared by the session."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=chromium_path, headless=True, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="session")
def test_output_dir() -> Path:
    """``test-output/`` at the repository root (screenshots and other artefacts to look at)."""
    path = ROOT / "test-output"
    path.mkdir(exist_ok=True)
    return path


# --- benchmarks (make bench) -------------------------------------------------

_BENCH = pytest.StashKey[dict]()


def pytest_configure(config) -> None:
    config.stash[_BENCH] = {}


@pytest.fixture
def bench_record(request):
    """Record a figure: ``bench_record("upload_1gb", 41.2, "s", note="...")``."""
    results = request.config.stash[_BENCH]

    def record(name: str, value: float, unit: str, **details) -> None:
        results[name] = {"value": value, "unit": unit, "test": request.node.nodeid, **details}

    return record


def pytest_terminal_summary(terminalreporter, config) -> None:
    results = config.stash.get(_BENCH, {})
    if not results:
        return
    terminalreporter.section("benchmarks")
    for name, entry in sorted(results.items()):
        terminalreporter.write_line(f"{name:40} {entry['value']:>14.3f} {entry['unit']}")
    out = os.environ.get("ASSAY_BENCH_RESULTS")
    if out:
        path = ROOT / out
        path.parent.mkdir(parents=True, exist_ok=True)
        old = json.loads(path.read_text()) if path.exists() else {}
        path.write_text(json.dumps({**old, **results}, indent=2, sort_keys=True) + "\n")
        terminalreporter.write_line(f"written to {path}")
